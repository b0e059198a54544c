"""The interoperability vectors in ``tests/vectors/messages`` (format: ``tests/vectors/README.md``).

Each vector runs through :class:`mcps.verifier.MessageVerifier` with a fresh nonce store and the vector's own
``now``, audience, skew, limits and ``in_reply_to``; the outcome must be the vector's ``expect``. Positive vectors
also state their exact signing input. Finally, the committed files must be exactly what
``tests/vectors/generate.py`` writes, so the vectors cannot drift from the code.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mcps.core.envelope import PinnedKeys, signing_input
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey
from mcps.core.strict import Limits, parse_message
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageVerifier

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
MESSAGES_DIR = VECTORS_DIR / "messages"
VECTOR_PATHS = sorted(MESSAGES_DIR.glob("*/*.json"))

REQUIRED_NEGATIVE = {
    "tampered-param", "tampered-meta-key", "wrong-aud", "expired", "iat-in-future", "window-over-300s",
    "replayed-nonce", "high-s", "alg-not-matching-key", "duplicate-key", "nan", "too-deep", "too-large",
    "missing-block", "unknown-v", "response-bound-to-other-request", "unknown-kid", "batch", "lone-surrogate",
    "integer-too-large", "sig-not-canonical-base64url",
}  # fmt: skip
REQUIRED_POSITIVE = {
    f"{kind}-{alg}"
    for kind in ("request", "notification", "result", "error-object-data", "error-string-data")
    for alg in ("eddsa", "es256")
} | {"astral-and-floats-eddsa"}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcps_vectors_generate", VECTORS_DIR / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def _steps(vector: dict[str, Any]) -> list[tuple[str, str]]:
    if "messages" in vector:
        return [(step["message"], step["expect"]) for step in vector["messages"]]
    return [(vector["message"], vector["expect"])]


def test_every_required_vector_exists() -> None:
    assert {path.parent.name for path in VECTOR_PATHS} == {"valid", "invalid"}
    assert {path.stem for path in VECTOR_PATHS if path.parent.name == "valid"} >= REQUIRED_POSITIVE
    assert {path.stem for path in VECTOR_PATHS if path.parent.name == "invalid"} >= REQUIRED_NEGATIVE


@pytest.mark.parametrize("path", VECTOR_PATHS, ids=[f"{p.parent.name}/{p.stem}" for p in VECTOR_PATHS])
async def test_vector(path: Path) -> None:
    vector = _load(path)
    verifier = MessageVerifier(
        audience=vector["audience"],
        keys=PinnedKeys([PublicKey.from_jwk(vector["public_key"])]),
        nonces=MemoryNonceStore(),
        limits=Limits(**vector.get("limits", {})),
        max_skew=vector["skew"],
        clock=lambda: pytest.fail("the vector's now must be used"),
    )
    steps = _steps(vector)
    assert (path.parent.name == "valid") == all(expect == "valid" for _, expect in steps)
    for message, expect in steps:
        raw = message.encode("utf-8")
        if expect == "valid":
            verified = await verifier.verify(raw, in_reply_to=vector.get("in_reply_to"), now=vector["now"])
            assert verified.kid == vector["public_key"]["kid"]
        else:
            with pytest.raises(McpsError) as caught:
                await verifier.verify(raw, in_reply_to=vector.get("in_reply_to"), now=vector["now"])
            assert caught.value.code is ErrorCode.from_mcps(expect)


@pytest.mark.parametrize("path", sorted((MESSAGES_DIR / "valid").glob("*.json")), ids=lambda p: p.stem)
def test_positive_vector_states_its_signing_input(path: Path) -> None:
    vector = _load(path)
    stated = vector["signing_input"].encode("utf-8")
    assert stated == signing_input(parse_message(vector["message"].encode("utf-8")))
    assert stated.startswith(b"mcps.v1.message\n")
    # The raw text is deliberately not the canonical form: implementations must canonicalize, not hash bytes.
    assert vector["message"].encode("utf-8") != stated.removeprefix(b"mcps.v1.message\n")


def test_negative_vectors_carry_no_signing_input() -> None:
    for path in sorted((MESSAGES_DIR / "invalid").glob("*.json")):
        assert "signing_input" not in _load(path), path.name


def test_test_keys_are_labelled_and_match_the_vectors() -> None:
    trusted = set()
    for path in sorted((VECTORS_DIR / "keys").glob("*.json")):
        jwk = _load(path)
        assert jwk["comment"] == "TEST KEY — published test vector key, never use in production"
        trusted.add(PrivateKey.from_jwk(jwk).public_key.to_jwk()["kid"])
    used = {_load(path)["public_key"]["kid"] for path in VECTOR_PATHS}
    assert used <= trusted


def test_generator_reproduces_the_committed_files() -> None:
    expected = _load_generator().all_files()
    for relative, content in expected.items():
        assert (VECTORS_DIR / relative).read_text(encoding="utf-8") == content, relative
    committed = {
        str(path.relative_to(VECTORS_DIR))
        for folder in ("keys", "messages")
        for path in (VECTORS_DIR / folder).rglob("*.json")
    }
    assert committed == set(expected), "stray or missing vector files"
