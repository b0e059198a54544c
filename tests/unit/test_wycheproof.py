"""Project Wycheproof vectors through :meth:`mcps.core.keys.PublicKey.verify`.

Files (copied unmodified into ``tests/vectors/third_party/wycheproof``, Apache-2.0): ``ed25519_test.json`` and
``ecdsa_secp256r1_sha256_p1363_test.json`` (P1363 ``r‖s`` signatures, the ES256 wire form).

Expected outcome for each vector:

* ``valid`` — accepted, **except** ECDSA signatures with ``s > n/2``: mcps refuses high-S by design (SPEC.md §2,
  one valid form per signature, no malleability), so those are expected refusals. Wycheproof marks some
  high-S signatures ``valid`` because plain ECDSA accepts both ``s`` and ``n − s``. The number of valid vectors
  refused only for high-S is pinned below (:data:`VALID_HIGH_S_ECDSA`), so a change in the files or in the
  verifier shows up as a changed count rather than passing silently.
* ``invalid`` — refused (MCPS-004), always.
* ``acceptable`` — vectors that are not wrong but use legacy or weak forms. mcps is a strict verifier and
  expects to refuse them. The current files have none; the test says so, so a future file that adds some
  makes this decision visible again.

Keys are loaded through :meth:`PublicKey.from_crypto` from the group's DER key, and, where the group has a JWK,
also through :meth:`PublicKey.from_jwk` (with Wycheproof's placeholder ``"kid": "none"`` removed, since mcps
refuses a JWK whose kid is not its thumbprint); both must give the same key.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import P256_ORDER, Algorithm, PublicKey

WYCHEPROOF_DIR = Path(__file__).resolve().parents[1] / "vectors" / "third_party" / "wycheproof"
ED25519_FILE = "ed25519_test.json"
ECDSA_FILE = "ecdsa_secp256r1_sha256_p1363_test.json"

VALID_HIGH_S_ECDSA = 70
"""Wycheproof-``valid`` P-256 signatures with ``s > n/2``: refused by mcps on purpose (computed from the file)."""


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WYCHEPROOF_DIR / name).read_text(encoding="utf-8"))
    return data


def _key(group: dict[str, Any], alg: Algorithm) -> PublicKey:
    crypto_key = load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
    assert isinstance(crypto_key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
    key = PublicKey.from_crypto(crypto_key)
    assert key.alg is alg
    if "publicKeyJwk" in group:
        jwk = {name: value for name, value in group["publicKeyJwk"].items() if name != "kid"}
        assert PublicKey.from_jwk(jwk) == key
    return key


def _is_high_s(signature: bytes) -> bool:
    return len(signature) == 64 and int.from_bytes(signature[32:], "big") > P256_ORDER // 2


def _expect_accept(test: dict[str, Any], alg: Algorithm) -> bool:
    if test["result"] == "valid":
        return not (alg is Algorithm.ES256 and _is_high_s(bytes.fromhex(test["sig"])))
    return False  # invalid, and acceptable (strict verifier)


def _accepted(key: PublicKey, test: dict[str, Any]) -> bool:
    """True when mcps accepts the vector; a refusal must be MCPS-004 and nothing else."""
    try:
        key.verify(bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))
    except McpsError as exc:
        if exc.code is not ErrorCode.BAD_SIGNATURE:
            raise
        return False
    return True


def _run(name: str, alg: Algorithm) -> Counter[str]:
    data = _load(name)
    outcomes: Counter[str] = Counter()
    wrong: list[int] = []
    for group in data["testGroups"]:
        key = _key(group, alg)
        for test in group["tests"]:
            accepted = _accepted(key, test)
            if accepted != _expect_accept(test, alg):
                wrong.append(test["tcId"])
            label = test["result"]
            if test["result"] == "valid" and not accepted:
                label = "valid-refused-high-s"
            outcomes[label] += 1
    assert wrong == [], f"tcIds with an unexpected outcome: {wrong}"
    assert sum(outcomes.values()) == data["numberOfTests"]
    return outcomes


def test_ed25519_vectors() -> None:
    outcomes = _run(ED25519_FILE, Algorithm.EDDSA)
    assert outcomes == Counter({"valid": 88, "invalid": 63})


def test_ecdsa_p256_p1363_vectors() -> None:
    outcomes = _run(ECDSA_FILE, Algorithm.ES256)
    assert outcomes["valid-refused-high-s"] == VALID_HIGH_S_ECDSA
    assert outcomes == Counter({"valid": 103, "valid-refused-high-s": VALID_HIGH_S_ECDSA, "invalid": 89})


def test_high_s_count_is_computed_from_the_file() -> None:
    """The pinned count is what the file says, independently of the verifier."""
    data = _load(ECDSA_FILE)
    high_s_valid = sum(
        1
        for group in data["testGroups"]
        for test in group["tests"]
        if test["result"] == "valid" and _is_high_s(bytes.fromhex(test["sig"]))
    )
    assert high_s_valid == VALID_HIGH_S_ECDSA


@pytest.mark.parametrize("name", [ED25519_FILE, ECDSA_FILE])
def test_no_acceptable_vectors_in_the_current_files(name: str) -> None:
    results = {test["result"] for group in _load(name)["testGroups"] for test in group["tests"]}
    assert results == {"valid", "invalid"}


def test_every_valid_high_s_vector_verifies_once_normalized() -> None:
    """The refused high-S vectors are refused for their S alone: with ``n − s`` they verify."""
    for group in _load(ECDSA_FILE)["testGroups"]:
        key = _key(group, Algorithm.ES256)
        for test in group["tests"]:
            signature = bytes.fromhex(test["sig"])
            if test["result"] == "valid" and _is_high_s(signature):
                low_s = P256_ORDER - int.from_bytes(signature[32:], "big")
                key.verify(signature[:32] + low_s.to_bytes(32, "big"), bytes.fromhex(test["msg"]))
