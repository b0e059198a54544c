"""Trust anchors from an ``issuerKeysUrl``: fetched, validated strictly, cached, and refused (MCPS-007) when the
issuer cannot be reached and its keys are required. HTTP is served through ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.levels import TrustLevel
from mcps.identity.remote_anchors import MAX_DOCUMENT_BYTES, RemoteTrustAnchors
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageVerifier

from .pki import ANCHOR, ANCHORS, AUDIENCE, NOW, passport, signed_request

URL = "https://issuer.example/.well-known/agent-trust-keys"
JWKS = json.dumps(ANCHORS.to_jwks()).encode()


def serving(body: bytes = JWKS, status: int = 200) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler), seen


def failing(error: Callable[[httpx.Request], Exception]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(request)

    return httpx.MockTransport(handler)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def remote(transport: httpx.AsyncBaseTransport, clock: Clock | None = None, **options: object) -> RemoteTrustAnchors:
    return RemoteTrustAnchors(URL, transport=transport, clock=clock or Clock(), **options)  # type: ignore[arg-type]


async def test_fetched_anchors_verify_a_passport_end_to_end() -> None:
    transport, seen = serving()
    anchors = remote(transport)
    await anchors.refresh()
    resolver = PassportResolver(anchors=anchors, audience=AUDIENCE, revocations=MemoryRevocationStore())
    verifier = MessageVerifier(audience=AUDIENCE, keys=resolver, nonces=MemoryNonceStore(), clock=lambda: NOW)
    verified = await verifier.verify(json.dumps(signed_request(passport())).encode())
    assert verified.agent is not None
    assert verified.agent.level == TrustLevel.L2
    assert [str(r.url) for r in seen] == [URL]
    assert anchors.get(ANCHOR.kid) == ANCHORS.get(ANCHOR.kid)


@pytest.mark.parametrize(
    "transport",
    [
        failing(lambda r: httpx.ConnectError("refused", request=r)),
        failing(lambda r: httpx.ConnectTimeout("timed out", request=r)),
        serving(status=503)[0],
        serving(status=302)[0],
    ],
    ids=["connect-error", "timeout", "http-503", "redirect-not-followed"],
)
async def test_unreachable_issuer_is_mcps_007_and_lookups_fail_closed(transport: httpx.MockTransport) -> None:
    anchors = remote(transport)
    with pytest.raises(McpsError) as refused:
        await anchors.refresh()
    assert refused.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE
    with pytest.raises(McpsError) as lookup:
        anchors.get(ANCHOR.kid)
    assert lookup.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE


async def test_message_verification_is_refused_with_007_when_required_keys_are_missing() -> None:
    anchors = remote(failing(lambda r: httpx.ConnectError("refused", request=r)))
    resolver = PassportResolver(anchors=anchors, audience=AUDIENCE, revocations=MemoryRevocationStore())
    verifier = MessageVerifier(audience=AUDIENCE, keys=resolver, nonces=MemoryNonceStore(), clock=lambda: NOW)
    with pytest.raises(McpsError) as refused:
        await verifier.verify(json.dumps(signed_request(passport())).encode())
    assert refused.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE


async def test_snapshot_is_used_until_max_stale_then_refused() -> None:
    clock = Clock()
    transport, _ = serving()
    anchors = remote(transport, clock, refresh_interval=60, max_stale=600)
    await anchors.refresh()
    clock.now += 600
    assert anchors.get(ANCHOR.kid) is not None  # exactly max_stale: still usable
    clock.now += 1
    with pytest.raises(McpsError) as refused:
        anchors.get(ANCHOR.kid)
    assert refused.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE


async def test_failed_refresh_keeps_the_previous_snapshot() -> None:
    state = {"up": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(200, content=JWKS)

    anchors = remote(httpx.MockTransport(handler))
    first = await anchors.refresh()
    state["up"] = False
    with pytest.raises(McpsError):
        await anchors.refresh()
    assert anchors.get(ANCHOR.kid) == first.get(ANCHOR.kid)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"keys": [{"kty": "OKP"}]}',
        json.dumps({"keys": [{k: v for k, v in ANCHOR.public_key.to_jwk().items()}]}).encode(),  # no mcps_max_tl
        b'{"keys": [], "keys": ' + JWKS + b"}",  # duplicate member: refused by the strict parser
        b"[" + JWKS + b"]",
        b" " * (MAX_DOCUMENT_BYTES + 1),
    ],
    ids=["not-json", "bad-key", "no-max-level", "duplicate-member", "array", "too-large"],
)
async def test_invalid_documents_are_refused_whole(body: bytes) -> None:
    anchors = remote(serving(body)[0])
    with pytest.raises(McpsError) as refused:
        await anchors.refresh()
    assert refused.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE
    assert anchors.fetched_at is None


async def test_optional_source_answers_no_anchor_instead_of_007() -> None:
    anchors = remote(failing(lambda r: httpx.ConnectError("refused", request=r)), required=False)
    with pytest.raises(McpsError):
        await anchors.refresh()
    assert anchors.get(ANCHOR.kid) is None


async def test_refreshing_fetches_first_and_refreshes_in_the_background() -> None:
    transport, seen = serving()
    anchors = remote(transport, refresh_interval=0.01, max_stale=60)
    async with anchors.refreshing():
        assert len(seen) == 1
        for _ in range(200):  # bounded: the refresher runs every 10 ms
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.01)
    assert len(seen) >= 3


async def test_refreshing_a_required_unreachable_source_raises_007() -> None:
    anchors = remote(failing(lambda r: httpx.ConnectError("refused", request=r)))
    with pytest.raises(McpsError) as refused:
        async with anchors.refreshing():
            pass
    assert refused.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE


def test_plain_http_needs_the_unsafe_option_and_warns() -> None:
    with pytest.raises(ValueError, match="https"):
        RemoteTrustAnchors("http://issuer.example/keys")
    anchors = RemoteTrustAnchors(
        "http://issuer.example/keys", unsafe_allow_http=True, transport=serving()[0], clock=Clock()
    )
    with pytest.warns(UserWarning, match="UNSAFE"):
        asyncio.run(anchors.refresh())
