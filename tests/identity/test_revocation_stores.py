"""One contract for every RevocationStore backend: memory, SQLite (a file), Redis (the real server), and the
mirror of a Redis store kept current by its change feed (``CachedRevocationStore``).

"Another process" is a second store instance on the same state: the same object for memory, a second connection
to the same file for SQLite, a second client for Redis, a second mirror with its own subscription. The kill switch
must be seen by it on the next lookup — for a mirror, once its change feed has delivered the announcement
(``settle``: ``CachedRevocationStore.sync``, which waits for a ``PING`` answer, not for time).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.revocation import (
    LOCAL_SCOPE,
    MemoryRevocationStore,
    RevocationKey,
    RevocationKind,
    RevocationStore,
)
from mcps.stores.revocation_cache import CachedRevocationStore
from mcps.stores.revocation_redis import RedisRevocationStore
from mcps.stores.revocation_sqlite import SqliteRevocationStore

from .pki import ANCHOR, NOW

JTI = RevocationKey.local(RevocationKind.JTI, "jti-1")
SUB = RevocationKey.local("sub", "agent:with:colons")
SCOPED = RevocationKey(ANCHOR.kid, RevocationKind.SUB, "agent-1")


async def _nothing(store: RevocationStore) -> None:
    return None


async def _caught_up(store: RevocationStore) -> None:
    assert isinstance(store, CachedRevocationStore)
    await store.sync()


@dataclass
class Backend:
    name: str
    _open: Callable[[], RevocationStore]
    settle: Callable[[RevocationStore], Awaitable[None]] = _nothing
    opened: list[RevocationStore] = field(default_factory=list)

    async def open(self) -> RevocationStore:
        store = self._open()
        self.opened.append(store)
        if isinstance(store, CachedRevocationStore):
            await store.start()
            await store.sync()
        return store


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cached", marks=pytest.mark.redis),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "memory":
        shared = MemoryRevocationStore()
        made = Backend("memory", lambda: shared)
    elif request.param == "sqlite":
        path = tmp_path / "state" / "revocations.sqlite3"
        made = Backend("sqlite", lambda: SqliteRevocationStore(path))
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix = f"mcps-test:{secrets.token_hex(8)}:revoked:"
        admin = redis.Redis.from_url(url)

        def cleanup() -> None:
            keys = list(admin.scan_iter(match=f"{prefix}*"))
            if keys:
                admin.delete(*keys)
            admin.close()

        if request.param == "redis":
            made = Backend("redis", lambda: RedisRevocationStore.from_url(url, prefix=prefix))
        else:
            made = Backend(
                "redis-cached",
                lambda: CachedRevocationStore(RedisRevocationStore.from_url(url, prefix=prefix)),
                settle=_caught_up,
            )
    yield made
    for store in made.opened:
        await store.aclose()
    cleanup()


async def test_nothing_is_revoked_at_first(backend: Backend) -> None:
    store = await backend.open()
    assert isinstance(store, RevocationStore)
    assert await store.is_revoked([JTI, SUB, SCOPED], now=NOW) is False
    assert await store.is_revoked([], now=NOW) is False


async def test_revoked_entries_are_found_among_others(backend: Backend) -> None:
    store = await backend.open()
    await store.revoke(SUB, now=NOW)
    assert await store.is_revoked([JTI, SUB], now=NOW) is True
    assert await store.is_revoked([JTI], now=NOW) is False
    # scope, kind and value all count
    assert await store.is_revoked([RevocationKey(ANCHOR.kid, RevocationKind.SUB, SUB.value)], now=NOW) is False
    assert await store.is_revoked([RevocationKey.local(RevocationKind.JTI, SUB.value)], now=NOW) is False


async def test_another_process_sees_a_revocation_on_its_next_lookup(backend: Backend) -> None:
    verifier_side, admin_side = await backend.open(), await backend.open()
    assert await verifier_side.is_revoked([SCOPED], now=NOW) is False
    await admin_side.revoke(SCOPED, now=NOW)
    await backend.settle(verifier_side)
    assert await verifier_side.is_revoked([SCOPED], now=NOW) is True


async def test_entries_with_until_expire_and_never_shorten(backend: Backend) -> None:
    store = await backend.open()
    far = 4_000_000_000  # the Redis server's own clock decides expiry there, so use a time it has not reached
    await store.revoke(JTI, until=far, now=NOW)
    assert await store.is_revoked([JTI], now=NOW) is True
    if backend.name != "redis":
        assert await store.is_revoked([JTI], now=far) is False
    await store.revoke(JTI, until=far - 100, now=NOW)  # an earlier until does not shorten it
    if backend.name != "redis":
        assert await store.is_revoked([JTI], now=far - 50) is True
    await store.revoke(SUB, now=NOW)
    await store.revoke(SUB, until=far, now=NOW)  # a permanent entry stays permanent
    if backend.name != "redis":
        assert await store.is_revoked([SUB], now=far + 1) is True
    if backend.name == "redis-cached":  # and a mirror built afresh from the store agrees
        fresh = await backend.open()
        assert await fresh.is_revoked([JTI], now=far - 50) is True
        assert await fresh.is_revoked([JTI], now=far) is False
        assert await fresh.is_revoked([SUB], now=far + 1) is True
    if backend.name == "redis":
        assert isinstance(store, RedisRevocationStore)
        assert await store._client.ttl(store.key(SUB)) == -1


async def test_a_closed_store_refuses_with_mcps_030(backend: Backend) -> None:
    store = await backend.open()
    await store.aclose()
    with pytest.raises(McpsError) as caught:
        await store.is_revoked([JTI], now=NOW)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE


async def test_redis_down_refuses_with_mcps_030(free_tcp_port: int) -> None:
    store = RedisRevocationStore.from_url(f"redis://127.0.0.1:{free_tcp_port}/0", socket_timeout=0.2, retries=0)
    try:
        for call in (store.is_revoked([JTI], now=NOW), store.revoke(JTI, now=NOW)):
            with pytest.raises(McpsError) as caught:
                await call
            assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
    finally:
        await store.aclose()


def test_sqlite_store_needs_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteRevocationStore(":memory:")
    store_path = tmp_path / "dir" / "r.sqlite3"
    SqliteRevocationStore(store_path)
    assert store_path.stat().st_mode & 0o077 == 0


def test_revocation_keys_are_unambiguous() -> None:
    with pytest.raises(ValueError):
        RevocationKey("a:b", RevocationKind.JTI, "x")
    with pytest.raises(ValueError):
        RevocationKey(LOCAL_SCOPE, RevocationKind.JTI, "")
