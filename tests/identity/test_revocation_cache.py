"""The revocation mirror (``CachedRevocationStore``) against the real Redis server: it answers without a round trip,
follows every change, and refuses (MCPS-030) whenever it cannot be sure it is current — a lost subscription, a
silent one, a gap in the announcements — until it has been rebuilt.

Faults are made with a TCP relay between the mirror and Redis that the test can cut (connections reset, new ones
refused) or turn into a black hole (connections held open, nothing delivered). Time is injected: a silent feed is
found by advancing the mirror's clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.revocation import RevocationKey
from mcps.stores.revocation_cache import CachedRevocationStore
from mcps.stores.revocation_redis import RedisRevocationStore

pytestmark = pytest.mark.redis

NOW = 1_763_683_200.0
AGENT = RevocationKey.local("sub", "agent-1")
OTHER = RevocationKey.local("jti", "passport-2")


class Relay:
    """A TCP relay to Redis: ``mode`` is ``pass``, ``cut`` (reset everything, refuse new connections) or ``hole``
    (keep connections open, deliver nothing either way)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "pass"
        self._pairs: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._pairs.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for side in (writer, up_writer):
            self._pairs.discard(side)
            side.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            while self.mode == "hole":  # noqa: ASYNC110 - a test switch, polled
                await asyncio.sleep(0.01)
            if self.mode == "cut":
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    def cut(self) -> None:
        self.mode = "cut"
        for writer in list(self._pairs):
            writer.transport.abort()

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class Clock:
    """Monotonic time plus an offset the test advances."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return asyncio.get_running_loop().time() + self.offset


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    parts = urlsplit(redis_url)
    made = Relay((parts.hostname or "127.0.0.1", parts.port or 6379))
    await made.start()
    yield made
    await made.aclose()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    made = f"mcps-test:{secrets.token_hex(8)}:revoked:"
    yield made
    admin = redis.Redis.from_url(redis_url)
    keys = list(admin.scan_iter(match=f"{made}*"))
    if keys:
        admin.delete(*keys)
    admin.close()


@contextlib.asynccontextmanager
async def mirror_via(relay: Relay, prefix: str, clock: Clock | None = None) -> AsyncIterator[CachedRevocationStore]:
    inner = RedisRevocationStore.from_url(f"redis://127.0.0.1:{relay.port}/0", prefix=prefix, socket_timeout=0.5)
    cache = CachedRevocationStore(inner, clock=clock or Clock())
    await cache.start()
    try:
        await cache.sync()
        yield cache
    finally:
        await cache.aclose()


@contextlib.asynccontextmanager
async def admin_store(redis_url: str, prefix: str) -> AsyncIterator[RedisRevocationStore]:
    store = RedisRevocationStore.from_url(redis_url, prefix=prefix)
    try:
        yield store
    finally:
        await store.aclose()


async def refused(cache: CachedRevocationStore) -> ErrorCode | None:
    try:
        await cache.is_revoked([AGENT], now=NOW)
    except McpsError as error:
        return error.code
    return None


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for the follower to reach a state (it works in the background, and retries with backoff)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the follower exposes state, not events
            await asyncio.sleep(0.01)


async def until_ready(cache: CachedRevocationStore) -> None:
    await wait_until(lambda: cache.ready)


async def test_lookups_do_not_ask_redis(relay: Relay, prefix: str, redis_url: str) -> None:
    async with mirror_via(relay, prefix) as cache, admin_store(redis_url, prefix) as admin:
        await admin.revoke(AGENT, now=NOW)
        await cache.sync()

        async def no_round_trip(*args: object, **kwargs: object) -> bool:
            raise AssertionError("the mirror asked Redis")

        cache.store.is_revoked = no_round_trip  # type: ignore[method-assign]
        assert await cache.is_revoked([OTHER, AGENT], now=NOW) is True
        assert await cache.is_revoked([OTHER], now=NOW) is False


async def test_a_lost_subscription_refuses_until_rebuilt_and_then_sees_what_it_missed(
    relay: Relay, prefix: str, redis_url: str
) -> None:
    states: list[bool] = []
    async with mirror_via(relay, prefix) as cache, admin_store(redis_url, prefix) as admin:
        cache.on_state = states.append
        relay.cut()
        await wait_until(lambda: not cache.ready)
        assert await refused(cache) is ErrorCode.STORE_UNAVAILABLE
        await admin.revoke(AGENT, now=NOW)  # announced while the mirror was not listening
        assert await refused(cache) is ErrorCode.STORE_UNAVAILABLE
        relay.mode = "pass"
        await until_ready(cache)
        assert await cache.is_revoked([AGENT], now=NOW) is True
        assert cache.rebuilds >= 2
        assert states[0] is False
        assert states[-1] is True


async def test_a_silent_feed_refuses_after_max_staleness(relay: Relay, prefix: str) -> None:
    clock = Clock()
    async with mirror_via(relay, prefix, clock) as cache:
        assert await cache.is_revoked([AGENT], now=NOW) is False
        relay.mode = "hole"  # the connection stays up and says nothing
        clock.offset += cache.max_staleness + 0.01
        assert await refused(cache) is ErrorCode.STORE_UNAVAILABLE
        assert not cache.ready
        relay.mode = "pass"
        await until_ready(cache)
        assert await cache.is_revoked([AGENT], now=NOW) is False


@pytest.mark.parametrize(
    ("announcement", "defect"),
    [(b"999 - *:sub:agent-9", "gap"), (b"not an announcement", "unreadable")],
)
async def test_a_gap_or_an_unreadable_announcement_rebuilds(
    relay: Relay, prefix: str, redis_url: str, announcement: bytes, defect: str
) -> None:
    states: list[bool] = []
    async with mirror_via(relay, prefix) as cache:
        cache.on_state = states.append
        before = cache.rebuilds
        publisher = redis.asyncio.Redis.from_url(redis_url)
        try:
            await publisher.publish(cache.store.channel, announcement)
        finally:
            await publisher.aclose()
        await wait_until(lambda: cache.rebuilds > before and cache.ready)
        assert states[0] is False, defect
        assert await cache.is_revoked([RevocationKey.local("sub", "agent-9")], now=NOW) is False  # never applied


async def test_entries_with_until_lapse_in_the_mirror(relay: Relay, prefix: str, redis_url: str) -> None:
    far = 4_000_000_000
    async with mirror_via(relay, prefix) as cache, admin_store(redis_url, prefix) as admin:
        await admin.revoke(OTHER, until=far, now=NOW)
        await cache.sync()
        assert await cache.is_revoked([OTHER], now=far - 1) is True
        assert await cache.is_revoked([OTHER], now=far) is False


async def test_a_mirror_that_never_reached_redis_refuses(free_tcp_port: int, prefix: str) -> None:
    inner = RedisRevocationStore.from_url(f"redis://127.0.0.1:{free_tcp_port}/0", prefix=prefix, socket_timeout=0.2)
    async with CachedRevocationStore(inner) as cache:
        with pytest.raises(McpsError) as caught:
            await cache.is_revoked([AGENT], now=NOW)
        assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
        with pytest.raises(McpsError):
            await cache.sync(within=0.3)


def test_heartbeat_must_fit_in_the_staleness_bound() -> None:
    inner = RedisRevocationStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError):
        CachedRevocationStore(inner, max_staleness=1.0, heartbeat=0.6)
