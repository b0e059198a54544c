"""One contract for every CounterStore backend: memory, SQLite (a file under tmp_path) and Redis (the real server).

The contract (src/mcps/stores/counters.py): a consume is all or nothing and atomic; a refused consume (and a dry
run) takes nothing; buckets refill with time, windows start afresh; SQLite and Redis keep counters across a
restart (a new store on the same state); a store that cannot answer raises MCPS-030. "Another replica" is a second
store on the same state: the same object for memory, a second connection for SQLite, a second client for Redis.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from mcps.core.errors import ErrorCode, McpsError
from mcps.stores.counters import CounterStore, MemoryCounterStore, TokenBucket, WindowSum
from mcps.stores.redis_counters import RedisCounterStore
from mcps.stores.sqlite_counters import SqliteCounterStore

NOW = 1_763_683_200.0  # a UTC midnight
DAY = 86_400


@dataclass
class Backend:
    name: str
    _open: Callable[[], CounterStore]
    persistent: bool
    opened: list[CounterStore] = field(default_factory=list)

    def open(self) -> CounterStore:
        store = self._open()
        self.opened.append(store)
        return store


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "memory":
        shared = MemoryCounterStore()
        made = Backend("memory", lambda: shared, persistent=False)
    elif request.param == "sqlite":
        path = tmp_path / "state" / "counters.sqlite3"
        made = Backend("sqlite", lambda: SqliteCounterStore(path), persistent=True)
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix = f"mcps-test:{secrets.token_hex(8)}:counter:"
        admin = redis.Redis.from_url(url)

        def cleanup() -> None:
            keys = list(admin.scan_iter(match=f"{prefix}*"))
            if keys:
                admin.delete(*keys)
            admin.close()

        made = Backend("redis", lambda: RedisCounterStore.from_url(url, prefix=prefix), persistent=True)
    try:
        yield made
    finally:
        for store in made.opened:
            await store.aclose()
        cleanup()


def bucket(key: str = "b", capacity: int = 3, per_second: float = 1.0, cost: int = 1) -> TokenBucket:
    return TokenBucket(key, capacity, per_second, cost)


def window(key: str = "w", limit: int = 100, amount: int = 10, seconds: int = DAY) -> WindowSum:
    return WindowSum(key, limit, seconds, amount)


# --- the contract, for every backend ----------------------------------------------------------------------------


async def test_bucket_allows_its_capacity_then_refuses(backend: Backend) -> None:
    store = backend.open()
    assert [await store.consume([bucket()], now=NOW) for _ in range(3)] == [None, None, None]
    assert await store.consume([bucket()], now=NOW) == 0


async def test_bucket_refills_at_its_rate(backend: Backend) -> None:
    store = backend.open()
    for _ in range(3):
        assert await store.consume([bucket(per_second=0.5)], now=NOW) is None
    assert await store.consume([bucket(per_second=0.5)], now=NOW + 1.9) == 0  # 0.95 tokens: not yet
    assert await store.consume([bucket(per_second=0.5)], now=NOW + 2.0) is None  # one token back
    assert await store.consume([bucket(per_second=0.5)], now=NOW + 2.0) == 0
    # A long idle time fills the bucket up to its capacity, never beyond.
    for _ in range(3):
        assert await store.consume([bucket(per_second=0.5)], now=NOW + 1000) is None
    assert await store.consume([bucket(per_second=0.5)], now=NOW + 1000) == 0


async def test_clock_behind_adds_no_tokens(backend: Backend) -> None:
    store = backend.open()
    for _ in range(3):
        assert await store.consume([bucket()], now=NOW + 10) is None
    assert await store.consume([bucket()], now=NOW) == 0  # a replica 10 s behind: nothing refilled


async def test_window_caps_the_sum_exactly_at_its_limit(backend: Backend) -> None:
    store = backend.open()
    assert await store.consume([window(amount=60)], now=NOW) is None
    assert await store.consume([window(amount=41)], now=NOW + 10) == 0  # 101 > 100
    assert await store.consume([window(amount=40)], now=NOW + 10) is None  # exactly 100
    assert await store.consume([window(amount=1)], now=NOW + DAY - 1) == 0
    assert await store.consume([window(amount=0)], now=NOW + DAY - 1) is None


async def test_window_starts_afresh_at_its_boundary(backend: Backend) -> None:
    store = backend.open()
    assert await store.consume([window(amount=100)], now=NOW + DAY - 0.001) is None
    assert await store.consume([window(amount=1)], now=NOW + DAY - 0.001) == 0
    assert await store.consume([window(amount=100)], now=NOW + DAY) is None  # next UTC day


async def test_refused_consume_takes_nothing_from_any_charge(backend: Backend) -> None:
    store = backend.open()
    assert await store.consume([window("small", limit=5, amount=5)], now=NOW) is None
    charges = [bucket("rate"), window("big", amount=50), window("small", limit=5, amount=1)]
    assert await store.consume(charges, now=NOW) == 2
    # Nothing was taken from the bucket nor from the big window.
    assert await store.consume([window("big", amount=100)], now=NOW) is None
    for _ in range(3):
        assert await store.consume([bucket("rate")], now=NOW) is None


async def test_dry_run_takes_nothing(backend: Backend) -> None:
    store = backend.open()
    for _ in range(5):
        assert await store.consume([bucket(), window(amount=100)], now=NOW, commit=False) is None
    assert await store.consume([bucket(), window(amount=101)], now=NOW, commit=False) == 1
    assert await store.consume([window(amount=100)], now=NOW) is None
    assert await store.consume([window(amount=1)], now=NOW, commit=False) == 0


async def test_a_key_charged_twice_in_one_call_counts_both(backend: Backend) -> None:
    store = backend.open()
    assert await store.consume([window(amount=60), window(amount=60)], now=NOW) == 1
    assert await store.consume([bucket(), bucket(), bucket(), bucket()], now=NOW) == 3
    assert await store.consume([window(amount=100), bucket(cost=3)], now=NOW) is None


async def test_keys_are_independent(backend: Backend) -> None:
    store = backend.open()
    assert await store.consume([bucket("a", capacity=1)], now=NOW) is None
    assert await store.consume([bucket("a", capacity=1)], now=NOW) == 0
    assert await store.consume([bucket("b", capacity=1)], now=NOW) is None


async def test_empty_charge_list_fits(backend: Backend) -> None:
    assert await backend.open().consume([], now=NOW) is None


async def test_concurrent_consumers_never_exceed_the_limit(backend: Backend) -> None:
    replicas = [backend.open(), backend.open()]
    charge = [bucket("hot", capacity=10, per_second=0.001)]
    results = await asyncio.gather(*(replicas[i % 2].consume(charge, now=NOW) for i in range(40)))
    assert results.count(None) == 10


async def test_counters_survive_a_restart(backend: Backend) -> None:
    if not backend.persistent:
        pytest.skip("the memory store lives and dies with its process")
    first = backend.open()
    assert await first.consume([window(amount=90), bucket(capacity=1, per_second=0.01)], now=NOW) is None
    await first.aclose()
    backend.opened.remove(first)
    second = backend.open()
    assert await second.consume([window(amount=11)], now=NOW + 5) == 0
    assert await second.consume([bucket(capacity=1, per_second=0.01)], now=NOW + 5) == 0
    assert await second.consume([window(amount=10)], now=NOW + 5) is None


# --- failures -----------------------------------------------------------------------------------------------------


def test_charges_are_validated() -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket("k", 0, 1.0)
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket("k", 1, float("inf"))
    with pytest.raises(ValueError, match="window"):
        WindowSum("k", 10, DAY, -1)


async def test_memory_store_full_of_live_counters_refuses() -> None:
    store = MemoryCounterStore(max_counters=2)
    assert await store.consume([bucket("a"), bucket("b")], now=NOW) is None
    with pytest.raises(McpsError) as caught:
        await store.consume([bucket("c")], now=NOW)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
    assert await store.consume([bucket("a")], now=NOW) is None  # existing counters still work
    assert await store.consume([bucket("c")], now=NOW + 100) is None  # full buckets were forgotten


async def test_sqlite_closed_store_refuses(tmp_path: Path) -> None:
    store = SqliteCounterStore(tmp_path / "counters.sqlite3")
    await store.aclose()
    with pytest.raises(McpsError) as caught:
        await store.consume([bucket()], now=NOW)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE


def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "counters.sqlite3"
    path.write_bytes(b"this is not an SQLite database, it is a test fixture." * 20)
    with pytest.raises(McpsError) as caught:
        SqliteCounterStore(path)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE


async def test_redis_unreachable_is_unavailable(free_tcp_port: int) -> None:
    store = RedisCounterStore.from_url(f"redis://127.0.0.1:{free_tcp_port}/0")
    try:
        with pytest.raises(McpsError) as caught:
            await store.consume([bucket()], now=NOW)
        assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
        assert str(free_tcp_port) not in caught.value.message
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_redis_keys_expire_when_no_longer_needed(redis_url: str) -> None:
    prefix = f"mcps-test:{secrets.token_hex(8)}:counter:"
    store = RedisCounterStore.from_url(redis_url, prefix=prefix)
    admin = redis.Redis.from_url(redis_url)
    try:
        # TTLs are computed on the caller's clock (now), relative: 30 s into a 60 s window, 4 tokens short of full.
        now = NOW + 30
        assert await store.consume([bucket(capacity=10, per_second=1.0, cost=4), window(seconds=60)], now=now) is None
        assert 4_000 <= admin.pttl(f"{prefix}b") <= 6_000  # full again 4 s later (+1 s margin)
        window_keys = list(admin.scan_iter(match=f"{prefix}w@*"))
        assert len(window_keys) == 1
        assert 29_000 <= admin.pttl(window_keys[0]) <= 30_000  # ends with its window
    finally:
        keys = list(admin.scan_iter(match=f"{prefix}*"))
        if keys:
            admin.delete(*keys)
        admin.close()
        await store.aclose()


# --- across processes ----------------------------------------------------------------------------------------------

_CHILD = """
import asyncio, sys
from mcps.stores.counters import TokenBucket
from mcps.stores.redis_counters import RedisCounterStore
from mcps.stores.sqlite_counters import SqliteCounterStore

async def main() -> None:
    kind, where, prefix, attempts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = SqliteCounterStore(where) if kind == "sqlite" else RedisCounterStore.from_url(where, prefix=prefix)
    print("ready", flush=True)
    sys.stdin.readline()
    charge = [TokenBucket("race", 25, 0.0001)]
    won = sum([await store.consume(charge, now=1000.0) is None for _ in range(attempts)])
    await store.aclose()
    print(won, flush=True)

asyncio.run(main())
"""


async def race(kind: str, where: str, prefix: str = "") -> list[int]:
    pipe = asyncio.subprocess.PIPE
    command = (sys.executable, "-c", _CHILD, kind, where, prefix, "40")
    children = [await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe) for _ in range(3)]
    async with asyncio.timeout(60):
        for child in children:
            assert child.stdout is not None
            assert await child.stdout.readline() == b"ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        wins = []
        for child in children:
            out, _ = await child.communicate()
            assert child.returncode == 0
            wins.append(int(out))
    return wins


async def test_sqlite_processes_sharing_a_file_never_exceed_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "counters.sqlite3"
    await SqliteCounterStore(path).aclose()
    assert sum(await race("sqlite", str(path))) == 25  # 3 × 40 attempts at a bucket of 25


@pytest.mark.redis
async def test_redis_processes_sharing_a_server_never_exceed_the_limit(redis_url: str) -> None:
    prefix = f"mcps-test:{secrets.token_hex(8)}:counter:"
    admin = redis.Redis.from_url(redis_url)
    try:
        assert sum(await race("redis", redis_url, prefix)) == 25
    finally:
        keys = list(admin.scan_iter(match=f"{prefix}*"))
        if keys:
            admin.delete(*keys)
        admin.close()
