"""An agent with a passport signs a request; a verifier with trust anchors accepts it at the right level, and every
negative case is refused with its code. Also: the verification cache, pinned keys, revocation after the nonce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcps.core.envelope import PinnedKeys, sign_message
from mcps.core.errors import ErrorCode, McpsError
from mcps.identity import chains
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import AgentPublicKey, PassportResolver
from mcps.identity.revocation import (
    MemoryRevocationStore,
    RevocationKey,
    RevocationKind,
    apply_revocation_list,
    issue_revocation_list,
    verify_revocation_list,
)
from mcps.stores.nonces import MemoryNonceStore
from mcps.stores.revocation_sqlite import SqliteRevocationStore
from mcps.verifier import MessageVerifier, VerifiedMessage

from .pki import (
    AGENT,
    ANCHOR,
    ANCHORS,
    AUDIENCE,
    LOW_ANCHOR,
    NOW,
    delegated,
    make_key,
    passport,
    request,
    signed_request,
)


def make_verifier(
    *, min_level: TrustLevel = TrustLevel.L0, revocations: Any = None, pinned: PinnedKeys | None = None
) -> MessageVerifier:
    resolver = PassportResolver(
        anchors=ANCHORS,
        audience=AUDIENCE,
        revocations=revocations if revocations is not None else MemoryRevocationStore(),
        min_level=min_level,
        pinned=pinned,
    )
    return MessageVerifier(audience=AUDIENCE, keys=resolver, nonces=MemoryNonceStore(), clock=lambda: NOW)


async def accept(message: dict[str, Any], verifier: MessageVerifier | None = None, **kwargs: Any) -> VerifiedMessage:
    verifier = verifier or make_verifier(**kwargs)
    return await verifier.verify(json.dumps(message).encode())


async def refuse(message: dict[str, Any], verifier: MessageVerifier | None = None, **kwargs: Any) -> ErrorCode:
    with pytest.raises(McpsError) as caught:
        await accept(message, verifier, **kwargs)
    return caught.value.code


async def test_agent_with_passport_is_accepted_at_its_effective_level() -> None:
    verified = await accept(signed_request(passport(level=2)), min_level=TrustLevel.L2)
    assert verified.agent is not None
    assert verified.agent.agent_id == "agent-1"
    assert verified.agent.level is TrustLevel.L2
    assert verified.agent.scopes == {"tools:call", "files:read"}
    assert verified.kid == AGENT.kid
    assert isinstance(verified.key, AgentPublicKey)


async def test_delegated_agent_is_accepted_through_its_chain() -> None:
    leaf, chain = delegated(3)
    verified = await accept(signed_request(leaf, chain))
    assert verified.agent is not None
    assert verified.agent.depth == 3
    assert verified.agent.level is TrustLevel.L2


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: signed_request(passport(now=NOW - 7200)), ErrorCode.PASSPORT_EXPIRED),
        (lambda: signed_request(passport(now=NOW + 600)), ErrorCode.PASSPORT_EXPIRED),
        (lambda: signed_request(passport(issuer=make_key("stranger"))), ErrorCode.UNKNOWN_KEY),
        (lambda: signed_request(passport(make_key("someone else"))), ErrorCode.UNKNOWN_KEY),  # cnf is not the signer
        (lambda: signed_request(passport(aud=["https://other.example"])), ErrorCode.AUDIENCE_MISMATCH),
        (lambda: signed_request(*delegated(6)), ErrorCode.CHAIN_TOO_DEEP),
        (lambda: signed_request("x" * 9 * 1024), ErrorCode.PASSPORT_TOO_LARGE),
        (lambda: signed_request("not.a.passport"), ErrorCode.PASSPORT_MALFORMED),
        (lambda: signed_request(None), ErrorCode.UNKNOWN_KEY),  # no passport and nothing pinned
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "unknown-issuer",
        "cnf-mismatch",
        "audience",
        "chain-of-6",
        "9-kib",
        "format",
        "no-passport",
    ],
)
async def test_negative_cases_are_refused_with_their_code(make: Any, code: ErrorCode) -> None:
    assert await refuse(make()) is code


async def test_minimum_level() -> None:
    self_signed = signed_request(passport(issuer=AGENT, level=3))
    assert (await accept(self_signed, min_level=TrustLevel.L0)).agent.level is TrustLevel.L0  # type: ignore[union-attr]
    assert await refuse(self_signed, min_level=TrustLevel.L1) is ErrorCode.INSUFFICIENT_TRUST
    capped = signed_request(passport(issuer=LOW_ANCHOR, level=3))
    assert await refuse(capped, min_level=TrustLevel.L2) is ErrorCode.INSUFFICIENT_TRUST
    assert await refuse(signed_request(passport(level=4)), min_level=TrustLevel.L4) is ErrorCode.INSUFFICIENT_TRUST


async def test_default_minimum_is_l2() -> None:
    resolver = PassportResolver(anchors=ANCHORS, audience=AUDIENCE, revocations=MemoryRevocationStore())
    assert resolver.min_level is TrustLevel.L2


async def test_passport_is_covered_by_the_message_signature() -> None:
    message = signed_request(passport(level=1))
    message["params"]["_meta"]["mcps/passport"] = passport(level=3)
    assert await refuse(message) is ErrorCode.BAD_SIGNATURE


async def test_pinned_keys_still_work_alongside_passports() -> None:
    pinned_key = make_key("pinned server")
    message = sign_message(request(), pinned_key, audience=AUDIENCE, now=NOW)
    verified = await accept(message, pinned=PinnedKeys([pinned_key.public_key]))
    assert verified.agent is None
    assert verified.key == pinned_key.public_key


async def test_results_and_errors_may_carry_a_passport_too() -> None:
    req = signed_request(passport())
    result = {"jsonrpc": "2.0", "id": 7, "result": {"content": [], "_meta": {"mcps/passport": passport()}}}
    signed = sign_message(
        result, AGENT, audience=AUDIENCE, now=NOW, in_reply_to=req["params"]["_meta"]["mcps/sig"]["sig"]
    )
    verifier = make_verifier()
    verified = await verifier.verify(json.dumps(signed).encode(), in_reply_to=req["params"]["_meta"]["mcps/sig"]["sig"])
    assert verified.agent is not None


async def test_cache_skips_chain_verification_but_not_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = chains._verify_chain

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("mcps.identity.resolver._verify_chain", counting)
    leaf, chain = delegated(3)
    token_now = {"now": NOW}
    resolver = PassportResolver(anchors=ANCHORS, audience=AUDIENCE, revocations=MemoryRevocationStore(), min_level=0)  # type: ignore[arg-type]
    verifier = MessageVerifier(
        audience=AUDIENCE, keys=resolver, nonces=MemoryNonceStore(), clock=lambda: token_now["now"]
    )
    for _ in range(3):
        await verifier.verify(json.dumps(signed_request(leaf, chain)).encode())
    assert len(calls) == 1
    # Past the earliest exp on the path (+ skew) the cached entry is refused, not trusted.
    token_now["now"] = NOW + 3600 + 31
    late = signed_request(leaf, chain, now=NOW + 3600 + 31)
    with pytest.raises(McpsError) as caught:
        await verifier.verify(json.dumps(late).encode())
    assert caught.value.code is ErrorCode.PASSPORT_EXPIRED
    # Failures are not cached; the cache is bounded.
    small = PassportResolver(anchors=ANCHORS, audience=AUDIENCE, revocations=MemoryRevocationStore(), cache_size=2)
    for n in range(4):
        small._verify_path(passport(jti=f"j{n}"), None, now=NOW)
    assert len(small._cache) == 2


async def test_revoked_agent_is_refused_on_its_next_message_after_the_nonce(tmp_path: Path) -> None:
    path = tmp_path / "revocations.sqlite3"
    verifier_store, admin_store = SqliteRevocationStore(path), SqliteRevocationStore(path)  # two "processes"
    nonces = MemoryNonceStore()
    resolver = PassportResolver(anchors=ANCHORS, audience=AUDIENCE, revocations=verifier_store, min_level=TrustLevel.L2)
    verifier = MessageVerifier(audience=AUDIENCE, keys=resolver, nonces=nonces, clock=lambda: NOW)
    token = passport(jti="jti-42")
    await verifier.verify(json.dumps(signed_request(token)).encode())  # cached now
    await admin_store.revoke(RevocationKey.local(RevocationKind.SUB, "agent-1"), now=NOW)
    refused_message = signed_request(token)
    with pytest.raises(McpsError) as caught:
        await verifier.verify(json.dumps(refused_message).encode())
    assert caught.value.code is ErrorCode.REVOKED
    # Revocation is checked after the nonce: the refused message's nonce is recorded, a replay of it is a replay.
    with pytest.raises(McpsError) as caught:
        await verifier.verify(json.dumps(refused_message).encode())
    assert caught.value.code is ErrorCode.REPLAY
    await verifier_store.aclose()
    await admin_store.aclose()


@pytest.mark.parametrize("kind", ["jti", "sub"])
@pytest.mark.parametrize("position", [0, 1, 2], ids=["agent", "intermediate", "top"])
async def test_revocation_of_any_passport_on_the_path(kind: str, position: int) -> None:
    leaf, chain = delegated(3)
    agent = chains._verify_chain(leaf, chain, anchors=ANCHORS, audience=AUDIENCE, now=NOW, skew=30)
    target = agent.path[position]
    store = MemoryRevocationStore()
    await store.revoke(RevocationKey.local(kind, target.jti if kind == "jti" else target.sub), now=NOW)
    assert await refuse(signed_request(leaf, chain), revocations=store) is ErrorCode.REVOKED


async def test_store_down_refuses_with_mcps_030() -> None:
    store = MemoryRevocationStore()
    await store.aclose()
    assert await refuse(signed_request(passport()), revocations=store) is ErrorCode.STORE_UNAVAILABLE


async def test_revocation_list_from_the_anchor_revokes_only_its_own_path() -> None:
    store = MemoryRevocationStore()
    listed = issue_revocation_list(ANCHOR, iss="https://issuer.example", jtis=["jti-leaf"], subs=["agent-9"], now=NOW)
    applied = await apply_revocation_list(listed, anchors=ANCHORS, store=store, now=NOW)
    assert applied.issuer_kid == ANCHOR.kid
    assert {(e.kind.value, e.value) for e in applied.entries} == {("jti", "jti-leaf"), ("sub", "agent-9")}
    leaf, chain = delegated(2)
    assert await refuse(signed_request(leaf, chain), revocations=store) is ErrorCode.REVOKED
    assert await refuse(signed_request(passport(sub="agent-9")), revocations=store) is ErrorCode.REVOKED
    # The other anchor's agent with the same sub is not touched: one issuer cannot revoke another's agents.
    other = await accept(signed_request(passport(issuer=LOW_ANCHOR, sub="agent-9")), revocations=store)
    assert other.agent is not None


async def test_revocation_lists_must_come_from_an_anchor_and_be_current() -> None:
    with pytest.raises(McpsError) as caught:
        verify_revocation_list(
            issue_revocation_list(make_key("x"), iss="x", jtis=["a"], now=NOW), anchors=ANCHORS, now=NOW
        )
    assert caught.value.code is ErrorCode.UNKNOWN_KEY
    stale = issue_revocation_list(ANCHOR, iss="x", jtis=["a"], now=NOW - 7200, ttl=3600)
    with pytest.raises(McpsError) as caught:
        verify_revocation_list(stale, anchors=ANCHORS, now=NOW)
    assert caught.value.code is ErrorCode.PASSPORT_EXPIRED
    with pytest.raises(McpsError) as caught:
        verify_revocation_list(passport(), anchors=ANCHORS, now=NOW)  # a passport is not a list (typ)
    assert caught.value.code is ErrorCode.PASSPORT_MALFORMED
