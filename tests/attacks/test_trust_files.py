"""Runner for the trust-file table: the anchors and key-file loaders refuse each attack file with its code (and
load the control); the lock-file parser refuses each attack with ``ValueError`` (and parses the control)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mcps.bindings.tofu import UnsafeTrustOnFirstUse, UnsafeTrustWarning
from mcps.core.errors import McpsError
from mcps.core.keys import load_public_jwk
from mcps.core.tools import parse_lockfile
from mcps.identity.anchors import TrustAnchors

from .cases_trust_files import ANCHORS_FILE, CASES, JWK_FILE, KNOWN_KEYS_FILE, LOCK_FILE
from .corpus import Case, case_params
from .pki import SERVER_ID


def load(kind: str, data: bytes, path: Path) -> object:
    if kind == ANCHORS_FILE:
        path.write_bytes(data)
        return TrustAnchors.load(path)
    if kind == JWK_FILE:
        path.write_bytes(data)
        return load_public_jwk(path)
    if kind == KNOWN_KEYS_FILE:
        path.mkdir(mode=0o700)
        (path / "known_keys.json").write_bytes(data)
        (path / "known_keys.json").chmod(0o600)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafeTrustWarning)  # unsafe by name, and warns on every use
            return UnsafeTrustOnFirstUse(SERVER_ID, path=path / "known_keys.json").pinned
    return parse_lockfile(data)


@pytest.mark.parametrize("case", case_params(CASES))
def test_trust_file_attack(case: Case[tuple[str, bytes]], tmp_path: Path) -> None:
    kind, control = case.build(False)
    assert load(kind, control, tmp_path / "control")
    _, attack = case.build(True)
    if case.code is None:
        with pytest.raises(ValueError, match="not a valid mcps.lock" if kind == LOCK_FILE else "known-keys"):
            load(kind, attack, tmp_path / "attack")
        return
    with pytest.raises(McpsError) as refused:
        load(kind, attack, tmp_path / "attack")
    assert refused.value.code is case.code, refused.value.diagnostics()
