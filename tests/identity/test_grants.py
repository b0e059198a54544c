"""Per-call grants: bound to tool, arguments, the agent's request and the upstream; single use; ≤ 60 s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcps.core.encoding import b64u_decode
from mcps.core.envelope import GRANT_KEY
from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.grants import GRANT_TYP, GrantVerifier, VerifiedGrant, argument_hash, mint_grant
from mcps.identity.jws import sign_compact
from mcps.identity.levels import TrustLevel
from mcps.stores.nonces import MemoryNonceStore

from .pki import NOW, make_key, passport, signed_request

GATEWAY = make_key("gateway")
UPSTREAM = "mcp://files.internal"


def forwarded(**overrides: Any) -> dict[str, Any]:
    """The agent's signed request as the gateway forwards it, with a grant minted for it."""
    request = signed_request(passport())
    params = request["params"]
    grant_args: dict[str, Any] = {
        "iss": "https://gateway.example",
        "sub": "agent-1",
        "aud": UPSTREAM,
        "tool": params["name"],
        "arguments": params["arguments"],
        "request_sig": params["_meta"]["mcps/sig"]["sig"],
        "level": TrustLevel.L2,
        "scopes": ["tools:call"],
        "now": NOW,
    }
    grant_args.update(overrides)
    params["_meta"][GRANT_KEY] = mint_grant(GATEWAY, **grant_args)
    return request


def make_verifier(nonces: MemoryNonceStore | None = None) -> GrantVerifier:
    return GrantVerifier(
        issuers=[GATEWAY.public_key],
        audience=UPSTREAM,
        nonces=nonces if nonces is not None else MemoryNonceStore(),
        clock=lambda: NOW,
    )


async def refused(message: dict[str, Any], verifier: GrantVerifier | None = None, **kwargs: Any) -> ErrorCode:
    with pytest.raises(McpsError) as caught:
        await (verifier or make_verifier()).verify_request(message, **({"agent": "agent-1"} | kwargs))
    return caught.value.code


async def test_valid_grant_is_handed_to_the_tool() -> None:
    grant = await make_verifier().verify_request(forwarded(), agent="agent-1")
    assert grant == VerifiedGrant(
        iss="https://gateway.example",
        issuer_kid=GATEWAY.kid,
        agent_id="agent-1",  # type: ignore[arg-type]
        aud=UPSTREAM,
        tool="read_file",
        level=TrustLevel.L2,
        scopes=frozenset({"tools:call"}),
        jti=grant.jti,
        iat=NOW,
        exp=NOW + 30,
    )


def test_grant_claims_are_the_design_ones() -> None:
    message = forwarded()
    token = message["params"]["_meta"][GRANT_KEY]
    claims = json.loads(b64u_decode(token.split(".")[1]))
    assert set(claims) == {"iss", "sub", "aud", "tool", "args", "req", "tl", "scope", "jti", "iat", "exp"}
    assert claims["args"] == argument_hash({"path": "/tmp/x"})
    assert argument_hash(None) == argument_hash({})


async def test_wrong_tool() -> None:
    message = forwarded()
    message["params"]["name"] = "delete_file"
    assert await refused(message) is ErrorCode.GRANT_MISMATCH


async def test_arguments_changed() -> None:
    message = forwarded()
    message["params"]["arguments"] = {"path": "/etc/shadow"}
    assert await refused(message) is ErrorCode.GRANT_MISMATCH


async def test_minted_for_another_agent_than_the_verified_sender() -> None:
    assert await refused(forwarded(), agent="agent-2") is ErrorCode.GRANT_MISMATCH
    # The check is skipped only when the caller says, explicitly, that it knows no sender identity.
    assert (await make_verifier().verify_request(forwarded(), agent=None)).agent_id == "agent-1"


async def test_bound_to_another_request() -> None:
    other = forwarded()
    message = signed_request(passport())
    message["params"]["_meta"][GRANT_KEY] = other["params"]["_meta"][GRANT_KEY]  # same tool and arguments
    assert await refused(message) is ErrorCode.GRANT_MISMATCH


async def test_replayed() -> None:
    verifier = make_verifier()
    message = forwarded()
    await verifier.verify_request(message, agent="agent-1")
    assert await refused(message, verifier) is ErrorCode.GRANT_REPLAYED


async def test_a_refused_grant_is_not_used_up() -> None:
    verifier = make_verifier()
    message = forwarded()
    tampered = json.loads(json.dumps(message))
    tampered["params"]["arguments"] = {"path": "/etc/shadow"}
    assert await refused(tampered, verifier) is ErrorCode.GRANT_MISMATCH
    await verifier.verify_request(message, agent="agent-1")


async def test_expired_and_not_yet_valid() -> None:
    assert await refused(forwarded(now=NOW - 61)) is ErrorCode.GRANT_INVALID  # exp = NOW - 31 < NOW - skew
    assert await refused(forwarded(now=NOW + 31)) is ErrorCode.GRANT_INVALID
    await make_verifier().verify_request(forwarded(now=NOW - 60), agent="agent-1")  # exp + skew still ahead


async def test_wrong_audience() -> None:
    assert await refused(forwarded(aud="mcp://other.internal")) is ErrorCode.AUDIENCE_MISMATCH


async def test_lifetime_at_most_60_seconds() -> None:
    with pytest.raises(ValueError):
        forwarded(lifetime=61)
    message = forwarded()
    token = message["params"]["_meta"][GRANT_KEY]
    claims = json.loads(b64u_decode(token.split(".")[1]))
    claims["exp"] = claims["iat"] + 61
    message["params"]["_meta"][GRANT_KEY] = sign_compact(claims, GATEWAY, typ=GRANT_TYP)
    assert await refused(message) is ErrorCode.GRANT_INVALID


async def test_untrusted_issuer_forgery_and_form() -> None:
    message = forwarded()
    token = message["params"]["_meta"][GRANT_KEY]
    claims = json.loads(b64u_decode(token.split(".")[1]))
    message["params"]["_meta"][GRANT_KEY] = sign_compact(claims, make_key("rogue"), typ=GRANT_TYP)
    assert await refused(message) is ErrorCode.GRANT_INVALID
    head, _, sig = token.split(".")
    other = sign_compact({**claims, "tl": 4}, GATEWAY, typ=GRANT_TYP).split(".")[1]
    message["params"]["_meta"][GRANT_KEY] = f"{head}.{other}.{sig}"
    assert await refused(message) is ErrorCode.GRANT_INVALID
    message["params"]["_meta"][GRANT_KEY] = passport()  # a passport is not a grant
    assert await refused(message) is ErrorCode.GRANT_INVALID
    for claim, value in [("tl", 9), ("jti", "short"), ("tool", 3), ("iat", "now")]:
        message["params"]["_meta"][GRANT_KEY] = sign_compact({**claims, claim: value}, GATEWAY, typ=GRANT_TYP)
        assert await refused(message) is ErrorCode.GRANT_INVALID
    del message["params"]["_meta"][GRANT_KEY]
    assert await refused(message) is ErrorCode.GRANT_INVALID


class _DownNonceStore:
    async def claim(self, kid: object, nonce: str, *, expires_at: int, now: float) -> bool:
        raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="down")

    async def aclose(self) -> None:
        return None


async def test_grant_store_down_refuses() -> None:
    verifier = GrantVerifier(
        issuers=[GATEWAY.public_key], audience=UPSTREAM, nonces=_DownNonceStore(), clock=lambda: NOW
    )  # type: ignore[arg-type]
    assert await refused(forwarded(), verifier) is ErrorCode.STORE_UNAVAILABLE
