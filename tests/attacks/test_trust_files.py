"""Runner for the trust-file table: the anchors and key-file loaders refuse each attack file with its code (and
load the control); the lock-file parser refuses each attack with ``ValueError`` (and parses the control)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcps.core.errors import McpsError
from mcps.core.keys import load_public_jwk
from mcps.core.tools import parse_lockfile
from mcps.identity.anchors import TrustAnchors

from .cases_trust_files import ANCHORS_FILE, CASES, JWK_FILE
from .corpus import Case, case_params


def load(kind: str, data: bytes, path: Path) -> object:
    if kind == ANCHORS_FILE:
        path.write_bytes(data)
        return TrustAnchors.load(path)
    if kind == JWK_FILE:
        path.write_bytes(data)
        return load_public_jwk(path)
    return parse_lockfile(data)


@pytest.mark.parametrize("case", case_params(CASES))
def test_trust_file_attack(case: Case[tuple[str, bytes]], tmp_path: Path) -> None:
    kind, control = case.build(False)
    assert load(kind, control, tmp_path / "control")
    _, attack = case.build(True)
    if case.code is None:
        with pytest.raises(ValueError, match="not a valid mcps.lock"):
            load(kind, attack, tmp_path / "attack")
        return
    with pytest.raises(McpsError) as refused:
        load(kind, attack, tmp_path / "attack")
    assert refused.value.code is case.code, refused.value.diagnostics()
