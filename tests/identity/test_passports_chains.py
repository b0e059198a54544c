"""Passports and chains: claims, size, time, audience, anchors and caps, self-signed L0, depth, issuers, narrowing."""

from __future__ import annotations

import json

import pytest

from mcps.core.encoding import b64u_decode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.chains import MAX_CHAIN_DEPTH, VerifiedAgent
from mcps.identity.chains import _verify_chain as verify_chain  # the primitive on its own
from mcps.identity.jws import sign_compact
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import (
    MAX_PASSPORT_BYTES,
    PASSPORT_TYP,
    AgentInfo,
    issue_passport,
    parse_passport,
    parse_scope,
)

from .pki import AGENT, ANCHOR, ANCHORS, AUDIENCE, LOW_ANCHOR, NOW, delegated, make_key, passport


def verify(token: object, chain: object = None, *, now: float = NOW, anchors: TrustAnchors = ANCHORS) -> VerifiedAgent:
    return verify_chain(token, chain, anchors=anchors, audience=AUDIENCE, now=now, skew=30)


def refused(token: object, chain: object = None, **kwargs: object) -> McpsError:
    with pytest.raises(McpsError) as caught:
        verify(token, chain, **kwargs)  # type: ignore[arg-type]
    return caught.value


def claims_of(token: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(b64u_decode(token.split(".")[1]))
    return result


def test_levels_are_ordered_and_parsed_strictly() -> None:
    assert TrustLevel.L0 < TrustLevel.L1 < TrustLevel.L2 < TrustLevel.L3 < TrustLevel.L4
    assert min(TrustLevel.L3, TrustLevel.L1) is TrustLevel.L1
    assert TrustLevel.parse(2) is TrustLevel.L2
    for bad in (True, 5, -1, "2", 2.0, None):
        with pytest.raises(ValueError):
            TrustLevel.parse(bad)


def test_issue_writes_the_design_claims() -> None:
    token = issue_passport(
        ANCHOR,
        iss="https://issuer.example",
        sub="agent-1",
        agent_key=AGENT.public_key,
        level=2,
        scopes=["b", "a"],
        now=NOW,
        ttl=600,
        aud=[AUDIENCE],
        agent=AgentInfo("bot", "1.0"),
        jti="j-1",
    )
    claims = claims_of(token)
    assert claims == {
        "iss": "https://issuer.example",
        "sub": "agent-1",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "jti": "j-1",
        "cnf": {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": AGENT.public_key.to_jwk()["x"]}},
        "mcps_tl": 2,
        "scope": "a b",
        "aud": [AUDIENCE],
        "agent": {"name": "bot", "version": "1.0"},
    }
    parsed = parse_passport(token)
    assert parsed.claims.key.kid == AGENT.kid
    assert parsed.claims.agent == AgentInfo("bot", "1.0")
    assert parsed.issuer_kid == ANCHOR.kid


def test_valid_passport_verifies_with_its_claims() -> None:
    agent = verify(passport(level=2))
    assert agent.agent_id == "agent-1"
    assert agent.level is TrustLevel.L2
    assert agent.scopes == {"tools:call", "files:read"}
    assert agent.key.kid == AGENT.kid
    assert agent.anchor == ANCHOR.kid
    assert agent.depth == 1
    assert agent.expires == NOW + 3600


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_each_level_up_to_the_cap(level: int) -> None:
    assert verify(passport(level=level)).level == level


def test_level_above_the_issuer_cap_is_capped() -> None:
    assert verify(passport(level=4)).level is TrustLevel.L3
    assert verify(passport(issuer=LOW_ANCHOR, level=3)).level is TrustLevel.L1


def test_self_signed_is_l0_whatever_it_claims() -> None:
    agent = verify(passport(issuer=AGENT, level=3))
    assert agent.level is TrustLevel.L0
    assert agent.anchor is None
    # …even when the agent key is itself a trust anchor.
    assert verify(passport(ANCHOR, issuer=ANCHOR, level=3)).level is TrustLevel.L0


def test_unknown_issuer_is_refused() -> None:
    error = refused(passport(issuer=make_key("stranger")))
    assert error.code is ErrorCode.UNKNOWN_KEY


def test_signature_must_verify() -> None:
    head, _body, sig = passport().split(".")
    other = claims_of(passport())
    other["mcps_tl"] = 3
    forged = sign_compact(other, make_key("stranger"), typ=PASSPORT_TYP).split(".")[1]
    assert refused(f"{head}.{forged}.{sig}").code is ErrorCode.BAD_SIGNATURE


def test_time_checks_with_skew() -> None:
    token = passport(ttl=100)
    verify(token, now=NOW - 30)  # nbf - skew
    verify(token, now=NOW + 130)  # exp + skew
    assert refused(token, now=NOW - 31).code is ErrorCode.PASSPORT_EXPIRED
    assert refused(token, now=NOW + 131).code is ErrorCode.PASSPORT_EXPIRED


def test_audience_binding() -> None:
    verify(passport(aud=[AUDIENCE, "https://other.example"]))
    assert refused(passport(aud=["https://other.example"])).code is ErrorCode.AUDIENCE_MISMATCH


def test_size_cap_is_8_kib() -> None:
    claims = claims_of(passport())
    claims["scope"] = " ".join(f"s{i:05d}" for i in range(900))
    big = sign_compact(claims, ANCHOR, typ=PASSPORT_TYP)
    assert len(big) > MAX_PASSPORT_BYTES
    assert refused(big).code is ErrorCode.PASSPORT_TOO_LARGE
    with pytest.raises(ValueError, match="MCPS-013"):  # the issuer refuses to write one
        passport(scopes=[f"s{i:05d}" for i in range(900)])


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("mcps_tl", 5),
        ("mcps_tl", "2"),
        ("mcps_tl", True),
        ("scope", ["a"]),
        ("scope", "a  b"),
        ("sub", ""),
        ("exp", NOW - 10),
        ("iat", "now"),
        ("cnf", {"jwk": {"kty": "RSA"}}),
        ("cnf", {"jwk": {}, "x": 1}),
        ("aud", []),
        ("aud", [1]),
        ("agent", {"name": "x"}),
        ("jti", None),
        ("mcps_issuer", "true"),
        ("mcps_issuer", 1),
        ("mcps_issuer", None),
    ],
)
def test_malformed_claims(change: str, value: object) -> None:
    claims = claims_of(passport())
    claims[change] = value
    assert refused(sign_compact(claims, ANCHOR, typ=PASSPORT_TYP)).code is ErrorCode.PASSPORT_MALFORMED


def test_unknown_claims_are_ignored() -> None:
    claims = claims_of(passport())
    claims["x-extension"] = {"anything": [1, 2]}
    assert verify(sign_compact(claims, ANCHOR, typ=PASSPORT_TYP)).level is TrustLevel.L2


def test_grant_or_other_typ_is_not_a_passport() -> None:
    claims = claims_of(passport())
    assert refused(sign_compact(claims, ANCHOR, typ="mcps-grant+jwt")).code is ErrorCode.PASSPORT_MALFORMED


@pytest.mark.parametrize("depth", [1, 2, 3, MAX_CHAIN_DEPTH])
def test_chains_up_to_depth_5(depth: int) -> None:
    leaf, chain = delegated(depth)
    agent = verify(leaf, chain)
    assert agent.depth == depth
    assert agent.level is TrustLevel.L2
    assert agent.scopes == {"tools:call"}
    assert agent.anchor == ANCHOR.kid
    assert agent.signers[-1] == ANCHOR.kid


def test_chain_of_6_is_too_deep() -> None:
    leaf, chain = delegated(6)
    assert refused(leaf, chain).code is ErrorCode.CHAIN_TOO_DEEP
    assert refused(leaf, ["garbage"] * 5).code is ErrorCode.CHAIN_TOO_DEEP  # counted before decoding


def test_effective_level_is_the_lowest_cap_on_the_path() -> None:
    intermediate = make_key("intermediate x")
    parent = passport(intermediate, sub="issuer-x", level=1, may_issue=True)
    leaf = passport(issuer=intermediate, iss="issuer-x", level=3, scopes=["tools:call"])
    assert verify(leaf, [parent]).level is TrustLevel.L1
    low_parent = passport(intermediate, issuer=LOW_ANCHOR, sub="issuer-x", level=3, may_issue=True)
    assert verify(leaf, [low_parent]).level is TrustLevel.L1


def test_self_signed_intermediate_makes_the_path_l0() -> None:
    intermediate = make_key("intermediate x")
    parent = passport(intermediate, issuer=intermediate, sub="issuer-x", level=4, may_issue=True)
    leaf = passport(issuer=intermediate, iss="issuer-x", level=3, scopes=["tools:call"])
    assert verify(leaf, [parent]).level is TrustLevel.L0
    # Signing another passport takes the marker even at L0; a self-signed passport alone needs none.
    not_issuer = passport(intermediate, issuer=intermediate, sub="issuer-x", level=4)
    assert refused(leaf, [not_issuer]).code is ErrorCode.INSUFFICIENT_TRUST
    assert verify(not_issuer).level is TrustLevel.L0


def test_delegated_scopes_only_narrow() -> None:
    intermediate = make_key("intermediate x")
    parent = passport(intermediate, sub="issuer-x", scopes=["tools:call"], may_issue=True)
    leaf = passport(issuer=intermediate, iss="issuer-x", scopes=["tools:call", "admin"])
    error = refused(leaf, [parent])
    assert error.code is ErrorCode.INSUFFICIENT_TRUST


def test_issuer_marker_is_written_only_when_asked() -> None:
    ordinary, issuer = passport(), passport(may_issue=True)
    assert "mcps_issuer" not in claims_of(ordinary)
    assert parse_passport(ordinary).claims.issuer is False
    assert claims_of(issuer)["mcps_issuer"] is True
    assert parse_passport(issuer).claims.issuer is True
    explicit_false = claims_of(ordinary) | {"mcps_issuer": False}
    assert parse_passport(sign_compact(explicit_false, ANCHOR, typ=PASSPORT_TYP)).claims.issuer is False


def test_ordinary_passport_cannot_issue_one_for_another_agent() -> None:
    # Regression: an agent with an ordinary anchored passport signed a passport for another agent's id (or a
    # server's) certifying a key of its own, and the path verified at L2.
    mallory = make_key("mallory")
    mallory_passport = passport(mallory, sub="mallory", jti="jti-mallory")
    for sub in ("agent-1", "urn:example:server"):
        forged = passport(issuer=mallory, iss="mallory", sub=sub, scopes=["tools:call"])
        error = refused(forged, [mallory_passport])
        assert error.code is ErrorCode.INSUFFICIENT_TRUST
        assert "'mallory'" in error.diagnostics()
    explicit_false = sign_compact(claims_of(mallory_passport) | {"mcps_issuer": False}, ANCHOR, typ=PASSPORT_TYP)
    forged = passport(issuer=mallory, iss="mallory", scopes=["tools:call"])
    assert refused(forged, [explicit_false]).code is ErrorCode.INSUFFICIENT_TRUST


def test_every_passport_that_signs_another_must_be_an_issuer() -> None:
    leaf, chain = delegated(4)
    verify(leaf, chain)
    for position in range(len(chain)):
        claims = claims_of(chain[position])
        del claims["mcps_issuer"]
        signer = ANCHOR if position == len(chain) - 1 else make_key(f"intermediate {position + 2}")
        stripped = [*chain[:position], sign_compact(claims, signer, typ=PASSPORT_TYP), *chain[position + 1 :]]
        error = refused(leaf, stripped)
        assert error.code is ErrorCode.INSUFFICIENT_TRUST
        assert f"mcps/chain[{position}]" in error.diagnostics()


def test_a_non_issuer_is_refused_before_the_signature_it_made_is_checked() -> None:
    # SPEC §7.4 step 3d before 3e: nothing the non-issuer signed is used, not even to check its signature.
    mallory = make_key("mallory")
    head, body, _sig = passport(issuer=mallory, iss="mallory", scopes=["tools:call"]).split(".")
    bad_signature = f"{head}.{body}.{'A' * 86}"
    error = refused(bad_signature, [passport(mallory, sub="mallory")])
    assert error.code is ErrorCode.INSUFFICIENT_TRUST


def test_anchors_and_leaves_need_no_marker() -> None:
    agent = verify(passport())  # signed by an anchor: an issuer by being one
    assert agent.level is TrustLevel.L2
    assert verify(passport(may_issue=True)).passport.issuer is True  # a marked leaf is still just an agent


def test_chain_links_must_connect() -> None:
    intermediate = make_key("intermediate x")
    leaf = passport(issuer=intermediate, iss="issuer-x", scopes=["tools:call"])
    wrong_key = passport(make_key("someone else"), sub="issuer-x", may_issue=True)
    assert refused(leaf, [wrong_key]).code is ErrorCode.PASSPORT_MALFORMED
    wrong_sub = passport(intermediate, sub="issuer-y", may_issue=True)
    assert refused(leaf, [wrong_sub]).code is ErrorCode.PASSPORT_MALFORMED
    assert refused(leaf).code is ErrorCode.UNKNOWN_KEY  # the intermediate's passport is missing
    extra = passport(intermediate, sub="issuer-x", may_issue=True)
    assert refused(passport(), [extra]).code is ErrorCode.PASSPORT_MALFORMED
    assert refused(leaf, "not-a-list").code is ErrorCode.PASSPORT_MALFORMED


def test_every_link_is_checked_for_time_and_audience() -> None:
    intermediate = make_key("intermediate x")
    leaf = passport(issuer=intermediate, iss="issuer-x", scopes=["tools:call"])
    expired_parent = passport(intermediate, sub="issuer-x", now=NOW - 7200, may_issue=True)
    assert refused(leaf, [expired_parent]).code is ErrorCode.PASSPORT_EXPIRED
    elsewhere = passport(intermediate, sub="issuer-x", aud=["https://other.example"], may_issue=True)
    assert refused(leaf, [elsewhere]).code is ErrorCode.AUDIENCE_MISMATCH
    agent = verify(leaf, [passport(intermediate, sub="issuer-x", ttl=60, may_issue=True)])
    assert agent.expires == NOW + 60


def test_parse_scope() -> None:
    assert parse_scope("") == frozenset()
    assert parse_scope("a b:c") == {"a", "b:c"}
    for bad in ("a  b", " a", "a\tb", 'a"b', 3):
        with pytest.raises(ValueError):
            parse_scope(bad)


def test_anchors_from_jwks(tmp_path: object) -> None:
    jwks = ANCHORS.to_jwks()
    assert {key["mcps_max_tl"] for key in jwks["keys"]} == {3, 1}
    loaded = TrustAnchors.from_jwks(json.loads(json.dumps(jwks)))
    assert loaded.get(ANCHOR.kid) == TrustAnchor(ANCHOR.public_key, TrustLevel.L3)
    assert loaded.get(KeyId(AGENT.kid)) is None
    assert len(loaded) == 2


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": [ANCHOR.public_key.to_jwk()]},  # no mcps_max_tl
        {"keys": [{**ANCHOR.public_key.to_jwk(), "mcps_max_tl": 7}]},
        {"keys": [{**ANCHOR.public_key.to_jwk(), "mcps_max_tl": 2, "kid": AGENT.kid}]},
        {"keys": [{**ANCHOR.public_key.to_jwk(), "mcps_max_tl": 2}, {**ANCHOR.public_key.to_jwk(), "mcps_max_tl": 3}]},
        {"keys": "nope"},
        [],
    ],
)
def test_invalid_anchor_sets_are_refused_whole(jwks: object) -> None:
    with pytest.raises(McpsError) as caught:
        TrustAnchors.from_jwks(jwks)
    assert caught.value.code is ErrorCode.UNKNOWN_KEY
