"""Evidence files: each check of SPEC "Audit log" A.6 refuses what it should (on the fixed vectors)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mcps.audit.checkpoint import open_note
from mcps.audit.evidence import check_evidence
from mcps.audit.log import Receipt
from mcps.core.encoding import b64u_decode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "audit" / "audit-log.json").read_text("utf-8"))
KEY = PublicKey.from_jwk({k: VECTORS["test_key_jwk"][k] for k in ("kty", "crv", "x")})
EVIDENCE: dict[str, Any] = VECTORS["evidence"]


def _refused(evidence: Any, key: PublicKey = KEY, receipt: Receipt | None = None) -> None:
    with pytest.raises(McpsError) as caught:
        check_evidence(evidence, key, receipt=receipt)
    assert caught.value.code is ErrorCode.AUDIT_INVALID


def _edited(**changes: Any) -> dict[str, Any]:
    evidence = copy.deepcopy(EVIDENCE)
    evidence.update(changes)
    return evidence


def test_vector_evidence_verifies_with_its_receipt() -> None:
    receipt = Receipt(EVIDENCE["log"], 2, b64u_decode(VECTORS["entries"][2]["leaf"]))
    assert check_evidence(json.dumps(EVIDENCE).encode(), KEY, receipt=receipt).index == 2


def test_refusals() -> None:
    _refused(_edited(extra=1))  # (1) other members
    _refused(b'{"type":"mcps-audit-evidence","type":"x"}')  # (1) duplicate key
    _refused(_edited(v=2))
    _refused(_edited(log="example.test/other"))  # (2) origin
    _refused(EVIDENCE, key=PrivateKey.generate().public_key)  # (2) signature
    _refused(_edited(index=3))  # (3) index
    _refused(_edited(entry={**EVIDENCE["entry"], "tool": "other"}))  # (3)/(4) leaf
    _refused(_edited(proof=EVIDENCE["proof"][:-1]))  # (4)
    _refused(_edited(proof=["!!"]))
    _refused(EVIDENCE, receipt=Receipt(EVIDENCE["log"], 1, b64u_decode(VECTORS["entries"][1]["leaf"])))  # (5)


def test_oversized_note_is_refused() -> None:
    with pytest.raises(McpsError) as caught:
        open_note("x\n" * 40_000 + "\n— n AAAA\n", "n", KEY)
    assert "too large" in (caught.value.detail or "")
