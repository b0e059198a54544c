"""Evidence for one entry, checkable offline by someone who trusts only the log's public key.

An evidence file is one JSON object (SPEC.md "Audit log", evidence file)::

    {"type": "mcps-audit-evidence", "v": 1,
     "log": "<origin>", "index": 17, "entry": {…the entry…},
     "proof": ["<b64u hash>", …],          RFC 9162 inclusion proof, bottom-up
     "checkpoint": "<signed note>"}         a checkpoint whose tree contains the entry

:func:`check_evidence` verifies, in order: (1) strict parsing and shape, (2) the checkpoint's signature with the
given key and its origin = ``log``, (3) ``entry.index`` = ``index`` and leaf = ``H(0x00 ‖ JCS(entry))``, (4) the
inclusion proof from that leaf to the checkpoint's root (RFC 9162 §2.1.3.2), and (5) when a receipt is given, that
it names the same log, index and leaf. It returns a :class:`VerifiedEvidence` or raises MCPS-033.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mcps.audit.checkpoint import Checkpoint, open_checkpoint
from mcps.audit.entry import parse_entry
from mcps.audit.log import AuditLog, Receipt
from mcps.audit.merkle import leaf_hash, verify_inclusion
from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PublicKey
from mcps.core.strict import parse_message

__all__ = ["EVIDENCE_TYPE", "VerifiedEvidence", "build_evidence", "check_evidence"]

EVIDENCE_TYPE: Final = "mcps-audit-evidence"
_MEMBERS: Final = frozenset({"type", "v", "log", "index", "entry", "proof", "checkpoint"})
_MAX_PROOF: Final = 64


def _bad(detail: str) -> McpsError:
    return McpsError(ErrorCode.AUDIT_INVALID, "audit evidence does not verify", detail=detail)


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    entry: dict[str, Any]
    index: int
    leaf: bytes
    checkpoint: Checkpoint


async def build_evidence(log: AuditLog, index: int) -> dict[str, Any]:
    """Evidence for entry ``index`` against the log's latest checkpoint, checked before it is returned."""
    checkpoint = await log.checkpoint()
    if not 0 <= index < checkpoint.size:
        raise ValueError(f"index {index} is not in the log (size {checkpoint.size})")
    rows = await log.entries(index, index + 1)
    if len(rows) != 1:
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail=f"entry {index} is missing")
    try:
        entry = parse_entry(rows[0].data)
    except ValueError as exc:
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail=f"entry {index}: {exc}") from exc
    proof = await log.inclusion_proof(index, checkpoint.size)
    evidence = {
        "type": EVIDENCE_TYPE,
        "v": 1,
        "log": log.origin,
        "index": index,
        "entry": entry,
        "proof": [b64u_encode(h) for h in proof],
        "checkpoint": checkpoint.note,
    }
    check_evidence(evidence, log.public_key)  # never hand out evidence that does not verify
    return evidence


def check_evidence(
    evidence: bytes | dict[str, Any], key: PublicKey, *, receipt: Receipt | None = None
) -> VerifiedEvidence:
    """Verify an evidence file (bytes, parsed strictly, or an object) against the log's public key."""
    # 1. Parse and check the shape.
    try:
        value = parse_message(evidence) if isinstance(evidence, bytes) else evidence
    except McpsError as exc:
        raise _bad(f"not a JSON object: {exc.diagnostics()}") from exc
    if not isinstance(value, dict) or set(value) != _MEMBERS:
        raise _bad(f"an evidence file has exactly the members {sorted(_MEMBERS)}")
    if value["type"] != EVIDENCE_TYPE or type(value["v"]) is not int or value["v"] != 1:  # `true == 1` in Python
        raise _bad("not an mcps audit evidence file, version 1")
    origin, index, entry, proof, note = (value[k] for k in ("log", "index", "entry", "proof", "checkpoint"))
    if not isinstance(origin, str) or type(index) is not int or index < 0 or not isinstance(entry, dict):
        raise _bad("log, index or entry has the wrong type")
    if not isinstance(note, str) or not isinstance(proof, list) or len(proof) > _MAX_PROOF:
        raise _bad("proof or checkpoint has the wrong type")
    try:
        hashes = [b64u_decode(h) for h in proof]
    except ValueError as exc:
        raise _bad("proof hash is not base64url") from exc
    # 2. The checkpoint: signature by the given key, for this log.
    checkpoint = open_checkpoint(note, key, origin)
    # 3. The entry: its own index, and its leaf hash.
    if entry.get("index") != index:
        raise _bad("the entry's index is not the evidence index")
    leaf = leaf_hash(canonicalize(entry))
    # 4. The inclusion proof.
    verify_inclusion(leaf, index, checkpoint.size, hashes, checkpoint.root)
    # 5. The receipt, when one is given.
    if receipt is not None and (receipt.log, receipt.index, receipt.leaf) != (origin, index, leaf):
        raise _bad("the receipt names another entry")
    return VerifiedEvidence(entry, index, leaf, checkpoint)
