"""One contract for every NonceStore backend: memory, SQLite (a file under tmp_path) and Redis (the real server).

The contract (src/mcps/stores/nonces.py): a claim is atomic; a pair is accepted once while its entry lives; an
expired entry no longer counts; a store that cannot answer raises MCPS-030 and never says "new" in doubt.
"Another replica" is a second store instance on the same state: the same object for memory (one process), a
second connection to the same file for SQLite, a second client for Redis.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from mcps.core.envelope import PinnedKeys
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey
from mcps.stores.nonces import MemoryNonceStore, NonceStore
from mcps.stores.redis_nonces import RedisNonceStore
from mcps.stores.sqlite_nonces import SqliteNonceStore
from mcps.verifier import MessageSigner, MessageVerifier, VerifiedMessage

KID = KeyId("test-kid-A")
OTHER_KID = KeyId("test-kid-B")
NOW = 1_763_683_200


async def _no_op_expire(kid: KeyId, nonce: str) -> None:
    return None


@dataclass
class Backend:
    """Opens stores on one shared state; ``expire`` lets the backend's own clock pass an entry's expiry."""

    name: str
    _open: Callable[[], NonceStore]
    expire: Callable[[KeyId, str], Awaitable[None]] = _no_op_expire
    opened: list[NonceStore] = field(default_factory=list)

    def open(self) -> NonceStore:
        store = self._open()
        self.opened.append(store)
        return store


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "memory":
        shared = MemoryNonceStore()
        made = Backend("memory", lambda: shared)
    elif request.param == "sqlite":
        path = tmp_path / "state" / "nonces.sqlite3"
        made = Backend("sqlite", lambda: SqliteNonceStore(path))
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix = f"mcps-test:{secrets.token_hex(8)}:nonce:"
        admin = redis.Redis.from_url(url)

        async def expire(kid: KeyId, nonce: str) -> None:
            # EXPIREAT in the past: Redis's own clock has passed the entry's expiry, so Redis deletes it.
            admin.expireat(f"{prefix}{kid}:{nonce}", 1)

        def cleanup() -> None:
            keys = list(admin.scan_iter(match=f"{prefix}*"))
            if keys:
                admin.delete(*keys)
            admin.close()

        made = Backend("redis", lambda: RedisNonceStore.from_url(url, prefix=prefix), expire)
    try:
        yield made
    finally:
        for store in made.opened:
            await store.aclose()
        cleanup()


# --- the contract, for every backend ----------------------------------------------------------------------------


async def test_new_pair_is_accepted_once(backend: Backend) -> None:
    store = backend.open()
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 90, now=NOW) is True
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 90, now=NOW) is False
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 90, now=NOW + 89) is False


async def test_same_nonce_under_another_kid_is_a_new_pair(backend: Backend) -> None:
    store = backend.open()
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 90, now=NOW) is True
    assert await store.claim(OTHER_KID, "nonce-1", expires_at=NOW + 90, now=NOW) is True
    assert await store.claim(OTHER_KID, "nonce-1", expires_at=NOW + 90, now=NOW) is False


async def test_expired_entry_can_be_claimed_again(backend: Backend) -> None:
    store = backend.open()
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 10, now=NOW) is True
    await backend.expire(KID, "nonce-1")
    # At expires_at the entry no longer counts; the new claim holds the pair again, until its own expiry.
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 70, now=NOW + 10) is True
    assert await store.claim(KID, "nonce-1", expires_at=NOW + 70, now=NOW + 11) is False


async def test_claim_that_is_already_expired_holds_nothing(backend: Backend) -> None:
    store = backend.open()
    assert await store.claim(KID, "stale", expires_at=NOW, now=NOW) is True
    assert await store.claim(KID, "stale", expires_at=NOW, now=NOW) is True


async def test_concurrent_claims_of_one_pair_have_one_winner(backend: Backend) -> None:
    replicas = [backend.open(), backend.open()]
    results = await asyncio.gather(
        *(replicas[i % 2].claim(KID, "contended", expires_at=NOW + 90, now=NOW) for i in range(16))
    )
    assert results.count(True) == 1


async def test_concurrent_claims_of_many_pairs_have_one_winner_each(backend: Backend) -> None:
    replicas = [backend.open(), backend.open()]
    nonces = [f"n{i}" for i in range(50)]
    claims = [replica.claim(KID, nonce, expires_at=NOW + 90, now=NOW) for nonce in nonces for replica in replicas]
    results = await asyncio.gather(*claims)
    per_nonce = [results[2 * i : 2 * i + 2] for i in range(len(nonces))]
    assert all(pair.count(True) == 1 for pair in per_nonce)


# --- end to end through MessageVerifier -------------------------------------------------------------------------


def _signed_request(key: PrivateKey, *, audience: str) -> bytes:
    signer = MessageSigner(key, clock=lambda: NOW)
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    return json.dumps(signer.sign(message, audience=audience)).encode()


async def test_replicas_accept_a_signed_message_exactly_once(backend: Backend) -> None:
    key = PrivateKey.generate()
    verifiers = [
        MessageVerifier(
            audience="server-a", keys=PinnedKeys([key.public_key]), nonces=backend.open(), clock=lambda: NOW
        )
        for _ in range(2)
    ]
    raw = _signed_request(key, audience="server-a")
    outcomes = await asyncio.gather(*(verifier.verify(raw) for verifier in verifiers), return_exceptions=True)
    accepted = [o for o in outcomes if isinstance(o, VerifiedMessage)]
    refused = [o for o in outcomes if isinstance(o, McpsError)]
    assert len(accepted) == 1
    assert accepted[0].kid == key.kid
    assert [error.code for error in refused] == [ErrorCode.REPLAY]


# --- memory ------------------------------------------------------------------------------------------------------


async def test_memory_store_full_of_live_entries_refuses_without_evicting() -> None:
    store = MemoryNonceStore(max_entries=3)
    for nonce in ("a", "b", "c"):
        assert await store.claim(KID, nonce, expires_at=NOW + 60, now=NOW) is True
    with pytest.raises(McpsError) as caught:
        await store.claim(KID, "d", expires_at=NOW + 60, now=NOW)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
    for nonce in ("a", "b", "c"):  # the live entries are still held: no replay window was opened
        assert await store.claim(KID, nonce, expires_at=NOW + 60, now=NOW + 1) is False
    assert await store.claim(KID, "d", expires_at=NOW + 120, now=NOW + 60) is True  # expired entries make room


# --- SQLite ------------------------------------------------------------------------------------------------------

_CHILD = """
import asyncio, random, sys
from mcps.stores.sqlite_nonces import SqliteNonceStore

async def main() -> None:
    path, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    order = random.Random(seed).sample(range(count), count)
    store = SqliteNonceStore(path)
    print("ready", flush=True)
    sys.stdin.readline()
    won = [str(i) for i in order if await store.claim("kid", f"n{i}", expires_at=2000, now=1000)]
    await store.aclose()
    print(" ".join(won), flush=True)

asyncio.run(main())
"""


async def test_sqlite_claims_are_atomic_across_processes(tmp_path: Path) -> None:
    # Three processes claim the same nonces, each in its own order, so that they meet on the same pairs.
    path = tmp_path / "nonces.sqlite3"
    await SqliteNonceStore(path).aclose()  # create the schema once, before the race
    count = 1000
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            str(path),
            str(count),
            str(seed),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for seed in range(3)
    ]
    for child in children:
        assert child.stdout is not None
        assert await child.stdout.readline() == b"ready\n"
    for child in children:  # the start line
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    winners: list[int] = []
    for child in children:
        out, _ = await child.communicate()
        assert child.returncode == 0
        winners += [int(i) for i in out.split()]
    assert sorted(winners) == list(range(count))  # every nonce claimed, none twice


async def test_sqlite_creates_private_files_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nonces.sqlite3"
    store = SqliteNonceStore(path)
    await store.claim(KID, "n", expires_at=NOW + 60, now=NOW)
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    await store.aclose()


async def test_sqlite_purges_expired_rows_every_n_claims(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite3"
    store = SqliteNonceStore(path, purge_every=2)
    await store.claim(KID, "old-1", expires_at=NOW + 10, now=NOW)
    await store.claim(KID, "old-2", expires_at=NOW + 10, now=NOW)  # purge at NOW: nothing has expired
    await store.claim(KID, "new-1", expires_at=NOW + 80, now=NOW + 20)
    await store.claim(KID, "new-2", expires_at=NOW + 80, now=NOW + 20)  # purge at NOW + 20: old-* go
    with sqlite3.connect(path) as check:
        rows = sorted(nonce for (nonce,) in check.execute("SELECT nonce FROM nonces"))
    assert rows == ["new-1", "new-2"]
    await store.aclose()


def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite3"
    path.write_bytes(b"this is not an SQLite database, it is a test fixture." * 20)
    with pytest.raises(McpsError) as caught:
        SqliteNonceStore(path)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE


def test_sqlite_path_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(McpsError) as caught:
        SqliteNonceStore(tmp_path / "a-file" / "nonces.sqlite3")
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE


async def test_sqlite_closed_store_refuses(tmp_path: Path) -> None:
    store = SqliteNonceStore(tmp_path / "nonces.sqlite3")
    await store.aclose()
    with pytest.raises(McpsError) as caught:
        await store.claim(KID, "n", expires_at=NOW + 60, now=NOW)
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE


# --- Redis -------------------------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_key_lives_until_expires_at(redis_url: str) -> None:
    prefix = f"mcps-test:{secrets.token_hex(8)}:nonce:"
    store = RedisNonceStore.from_url(redis_url, prefix=prefix)
    admin = redis.Redis.from_url(redis_url)
    try:
        assert await store.claim(KID, "n", expires_at=NOW + 11, now=NOW + 0.5) is True
        assert admin.get(f"{prefix}{KID}:n") == b"1"
        assert 10 <= admin.ttl(f"{prefix}{KID}:n") <= 11  # ceil(expires_at - now) = 11 s
        assert await store.claim(KID, "gone", expires_at=NOW, now=NOW) is True
        assert admin.exists(f"{prefix}{KID}:gone") == 0  # already expired: nothing stored
    finally:
        admin.delete(f"{prefix}{KID}:n")
        admin.close()
        await store.aclose()


async def test_redis_unreachable_is_unavailable(free_tcp_port: int) -> None:
    store = RedisNonceStore.from_url(f"redis://127.0.0.1:{free_tcp_port}/0")
    try:
        with pytest.raises(McpsError) as caught:
            await store.claim(KID, "n", expires_at=NOW + 60, now=NOW)
        assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
        assert caught.value.detail is not None
        assert str(free_tcp_port) not in caught.value.message  # the peer-safe message names no address
    finally:
        await store.aclose()


async def test_verifier_refuses_correctly_signed_message_when_redis_is_down(free_tcp_port: int) -> None:
    key = PrivateKey.generate()
    store = RedisNonceStore.from_url(f"redis://127.0.0.1:{free_tcp_port}/0")
    verifier = MessageVerifier(audience="server-a", keys=PinnedKeys([key.public_key]), nonces=store, clock=lambda: NOW)
    try:
        with pytest.raises(McpsError) as caught:
            await verifier.verify(_signed_request(key, audience="server-a"))
        assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
        assert caught.value.code.mcps == "MCPS-030"
    finally:
        await store.aclose()
