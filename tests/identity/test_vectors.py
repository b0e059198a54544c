"""Run every vector in tests/vectors/passports/ and tests/vectors/grants/ (format: tests/vectors/IDENTITY.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcps.core.errors import McpsError
from mcps.core.keys import PrivateKey, PublicKey, load_jwks
from mcps.identity.anchors import TrustAnchors
from mcps.identity.grants import GrantVerifier
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore, RevocationKey, RevocationKind
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageVerifier

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
PASSPORTS = sorted((VECTORS / "passports").glob("passport-*.json"))
GRANTS = sorted((VECTORS / "grants").glob("grant-*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_case_the_issue_lists_has_a_vector() -> None:
    names = {path.stem for path in PASSPORTS + GRANTS}
    for required in [
        "passport-valid-l0-self-signed",
        "passport-valid-l1",
        "passport-valid-l2",
        "passport-valid-l3",
        "passport-valid-l4-es256-agent",
        "passport-expired",
        "passport-not-yet-valid",
        "passport-unknown-issuer",
        "passport-level-above-issuer-cap",
        "passport-self-signed-claims-l3",
        "passport-chain-of-6",
        "passport-9kib",
        "passport-revoked-by-jti",
        "passport-revoked-by-sub",
        "passport-cnf-not-signing-key",
        "passport-audience-mismatch",
        "passport-issued-by-a-non-issuer",
        "passport-for-another-agent-issued-by-an-agent",
        "grant-valid",
        "grant-wrong-tool",
        "grant-arguments-changed",
        "grant-bound-to-another-request",
        "grant-replayed",
        "grant-expired",
        "grant-wrong-audience",
    ]:
        assert required in names


@pytest.mark.parametrize("folder", ["passports", "grants"])
def test_test_keys_are_labelled_and_consistent(folder: str) -> None:
    keys = load(VECTORS / folder / "keys.json")
    assert "never use in production" in keys["comment"]
    for jwk in keys["keys"].values():
        assert "never use in production" in jwk["comment"]
        assert PrivateKey.from_jwk(jwk).kid == jwk["kid"]


@pytest.mark.parametrize("path", PASSPORTS, ids=[path.stem for path in PASSPORTS])
async def test_passport_vector(path: Path) -> None:
    case = load(path)
    revocations = MemoryRevocationStore()
    for entry in case["revoked"]:
        await revocations.revoke(RevocationKey(entry["scope"], RevocationKind(entry["kind"]), entry["value"]), now=0)
    resolver = PassportResolver(
        anchors=TrustAnchors.from_jwks(case["anchors"]),
        audience=case["audience"],
        revocations=revocations,
        min_level=TrustLevel.parse(case["min_level"]),
        skew=case["skew"],
    )
    verifier = MessageVerifier(
        audience=case["audience"], keys=resolver, nonces=MemoryNonceStore(), max_skew=case["skew"]
    )
    raw = json.dumps(case["message"]).encode()
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(McpsError) as caught:
            await verifier.verify(raw, now=case["now"])
        assert caught.value.code.mcps == expect["error"]
        return
    verified = await verifier.verify(raw, now=case["now"])
    assert verified.agent is not None
    assert verified.agent.agent_id == expect["agent"]
    assert verified.agent.level == expect["level"]
    assert verified.agent.depth == expect["depth"]
    assert sorted(verified.agent.scopes) == expect["scopes"]


@pytest.mark.parametrize("path", GRANTS, ids=[path.stem for path in GRANTS])
async def test_grant_vector(path: Path) -> None:
    case = load(path)
    issuers: list[PublicKey] = load_jwks(case["issuers"])
    verifier = GrantVerifier(issuers=issuers, audience=case["audience"], nonces=MemoryNonceStore(), skew=case["skew"])
    for _ in range(case["uses"] - 1):
        await verifier.verify_request(case["message"], agent=case.get("sender"), now=case["now"])
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(McpsError) as caught:
            await verifier.verify_request(case["message"], agent=case.get("sender"), now=case["now"])
        assert caught.value.code.mcps == expect["error"]
        return
    grant = await verifier.verify_request(case["message"], agent=case.get("sender"), now=case["now"])
    assert (grant.agent_id, grant.tool, grant.level, sorted(grant.scopes)) == (
        expect["agent"],
        expect["tool"],
        expect["level"],
        expect["scopes"],
    )
