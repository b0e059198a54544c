"""The passport cache follows the anchors (issue 9 §1.2, SPEC.md §7.4): a cached path is used only while the
anchors answer as they did when it was verified, so a resolver with the cache on never accepts what one with the
cache off refuses — an issuer pulled from a refreshed ``issuerKeysUrl`` document or from a reloaded anchors file,
a cap lowered, a source gone stale past ``max_stale``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity import chains
from mcps.identity.anchors import AnchorSource, TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.remote_anchors import RemoteTrustAnchors
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageVerifier

from .pki import ANCHOR, ANCHORS, AUDIENCE, LOW_ANCHOR, NOW, delegated, make_key, passport, signed_request

URL = "https://issuer.example/.well-known/agent-trust-keys"
WITHOUT_ANCHOR = TrustAnchors([TrustAnchor(LOW_ANCHOR.public_key, TrustLevel.L1)])


class Clock:
    def __init__(self) -> None:
        self.now: float = NOW

    def __call__(self) -> float:
        return self.now


class Issuer:
    """An ``issuerKeysUrl`` whose document can change between fetches."""

    def __init__(self, anchors: TrustAnchors) -> None:
        self.anchors = anchors

    def handler(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(self.anchors.to_jwks()).encode())


def resolvers(anchors: AnchorSource, **options: Any) -> tuple[PassportResolver, PassportResolver]:
    """The same resolver twice: with the cache (the default) and without it."""
    common: dict[str, Any] = {"audience": AUDIENCE, "revocations": MemoryRevocationStore(), **options}
    return PassportResolver(anchors=anchors, **common), PassportResolver(anchors=anchors, cache_size=0, **common)


def verifier(resolver: PassportResolver, clock: Clock) -> MessageVerifier:
    return MessageVerifier(audience=AUDIENCE, keys=resolver, nonces=MemoryNonceStore(), clock=clock)


async def refused(verifier: MessageVerifier, token: str, chain: list[str] | None = None, *, now: float) -> ErrorCode:
    with pytest.raises(McpsError) as caught:
        await verifier.verify(json.dumps(signed_request(token, chain, now=now)).encode())
    return caught.value.code


def outcome(resolver: PassportResolver, token: str, chain: list[str] | None = None) -> ErrorCode | TrustLevel:
    try:
        return resolver._verify_path(token, chain, now=NOW).agent.level
    except McpsError as exc:
        return exc.code


async def test_cached_passport_is_refused_once_a_refreshed_issuer_keys_document_drops_its_issuer() -> None:
    issuer, clock = Issuer(ANCHORS), Clock()
    anchors = RemoteTrustAnchors(URL, transport=httpx.MockTransport(issuer.handler), clock=clock)
    await anchors.refresh()
    cached, uncached = resolvers(anchors)
    token = passport()
    for resolver in (cached, uncached):
        assert (await verifier(resolver, clock).verify(json.dumps(signed_request(token)).encode())).agent is not None
    issuer.anchors = WITHOUT_ANCHOR  # the compromised issuer is pulled
    await anchors.refresh()
    for resolver in (cached, uncached):
        assert await refused(verifier(resolver, clock), token, now=NOW) is ErrorCode.UNKNOWN_KEY
    assert not cached._cache  # the stale entry is gone, not kept for later


async def test_cached_passport_is_refused_with_007_once_the_anchors_are_older_than_max_stale() -> None:
    clock = Clock()
    anchors = RemoteTrustAnchors(
        URL, transport=httpx.MockTransport(Issuer(ANCHORS).handler), clock=clock, refresh_interval=60, max_stale=600
    )
    await anchors.refresh()
    cached, uncached = resolvers(anchors)
    token = passport()  # valid for an hour: only the anchors go stale
    cached._verify_path(token, None, now=NOW)
    clock.now = NOW + 601
    for resolver in (cached, uncached):
        code = await refused(verifier(resolver, clock), token, now=clock.now)
        assert code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE
    # A good refresh makes the same entry usable again, without verifying the path again.
    await anchors.refresh()
    assert cached._verify_path(token, None, now=clock.now).agent.level == TrustLevel.L2


async def test_cached_passport_of_an_optional_stale_source_is_refused_as_unknown() -> None:
    clock = Clock()
    anchors = RemoteTrustAnchors(
        URL,
        transport=httpx.MockTransport(Issuer(ANCHORS).handler),
        clock=clock,
        required=False,
        refresh_interval=60,
        max_stale=600,
    )
    await anchors.refresh()
    cached, uncached = resolvers(anchors)
    token = passport()
    cached._verify_path(token, None, now=NOW)
    clock.now = NOW + 601
    assert outcome(cached, token) is outcome(uncached, token) is ErrorCode.UNKNOWN_KEY


async def test_cached_passport_is_refused_once_a_reloaded_anchors_file_drops_its_key(tmp_path: Path) -> None:
    path, clock = tmp_path / "anchors.jwks", Clock()
    path.write_text(json.dumps(ANCHORS.to_jwks()))
    cached, uncached = resolvers(TrustAnchors.load(path))
    token = passport()
    await verifier(cached, clock).verify(json.dumps(signed_request(token)).encode())
    path.write_text(json.dumps(WITHOUT_ANCHOR.to_jwks()))
    cached.anchors = uncached.anchors = TrustAnchors.load(path)
    for resolver in (cached, uncached):
        assert await refused(verifier(resolver, clock), token, now=NOW) is ErrorCode.UNKNOWN_KEY


def test_cached_passport_follows_a_lowered_anchor_cap() -> None:
    cached, uncached = resolvers(ANCHORS, min_level=TrustLevel.L0)
    token = passport(level=3)
    assert cached._verify_path(token, None, now=NOW).agent.level == TrustLevel.L3
    lowered = TrustAnchors([TrustAnchor(ANCHOR.public_key, TrustLevel.L1)])
    cached.anchors = uncached.anchors = lowered
    assert outcome(cached, token) == outcome(uncached, token) == TrustLevel.L1
    strict_cached, strict_uncached = resolvers(ANCHORS)  # min level L2
    strict_cached._verify_path(token, None, now=NOW)
    strict_cached.anchors = strict_uncached.anchors = lowered
    assert outcome(strict_cached, token) is outcome(strict_uncached, token) is ErrorCode.INSUFFICIENT_TRUST


def test_cached_chain_follows_an_intermediate_key_that_became_an_anchor() -> None:
    leaf, chain = delegated(3)
    cached, uncached = resolvers(ANCHORS)
    assert cached._verify_path(leaf, chain, now=NOW).agent.depth == 3
    intermediate = make_key("intermediate 1")  # signed the agent's passport
    grown = TrustAnchors([*ANCHORS, TrustAnchor(intermediate.public_key, TrustLevel.L3)])
    cached.anchors = uncached.anchors = grown
    assert outcome(cached, leaf, chain) is outcome(uncached, leaf, chain) is ErrorCode.PASSPORT_MALFORMED


def test_cached_chain_is_refused_once_its_top_anchor_is_dropped() -> None:
    leaf, chain = delegated(4)
    cached, uncached = resolvers(ANCHORS)
    cached._verify_path(leaf, chain, now=NOW)
    cached.anchors = uncached.anchors = WITHOUT_ANCHOR
    assert outcome(cached, leaf, chain) is outcome(uncached, leaf, chain) is ErrorCode.UNKNOWN_KEY


def test_cache_is_still_used_while_the_anchors_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = chains._verify_chain

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("mcps.identity.resolver._verify_chain", counting)
    leaf, chain = delegated(3)
    cached, _ = resolvers(ANCHORS, min_level=TrustLevel.L0)
    for _ in range(3):
        cached._verify_path(leaf, chain, now=NOW)
    cached.anchors = TrustAnchors(list(ANCHORS))  # a reload with the same content keeps the entry
    cached._verify_path(leaf, chain, now=NOW)
    self_signed = passport(issuer=make_key("agent"), iss="agent-1", level=0)
    cached.anchors = TrustAnchors([])  # a self-signed path depends on no anchor
    for _ in range(2):
        assert cached._verify_path(self_signed, None, now=NOW).agent.level == TrustLevel.L0
    assert len(calls) == 2
