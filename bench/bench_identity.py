"""Identity benchmark: what a passport costs on the verify path.

1. ``MessageVerifier.verify`` of a ~1 KiB ``tools/call`` request that carries a passport (depth 1), resolved
   (a) through a pinned key — the baseline — and (b) through ``PassportResolver`` with a warm verification cache
   and an in-memory revocation store holding 1,000 unrelated entries. Same bytes, same nonce store; target
   (b)/(a) ≤ 1.2×. Also (c) and (d): (b) with the revocation lookup in SQLite and in Redis (when reachable), the
   price of a kill switch shared across processes; and (e): (b) with the Redis store behind its local mirror
   (``CachedRevocationStore``: the same kill switch, no round trip per message).
2. Cold chain verification (``verify_chain``: parse, time, audience, signatures) of depth 1 and 3, per path.

Method: batches of distinct pre-signed messages (fresh nonces) with a fixed ``now``, a new ``MemoryNonceStore``
per batch, the median over several batches of the per-operation time (spread = min..max). Run:
``.venv/bin/python bench/bench_identity.py``. Targets are reported, never enforced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mcps import MemoryNonceStore, MessageVerifier, PinnedKeys, PrivateKey
from mcps.core.envelope import sign_message
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.chains import _verify_chain as verify_chain  # the private primitive on its own
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import PassportResolver, attach_passport
from mcps.identity.revocation import MemoryRevocationStore, RevocationKey, RevocationStore

NOW = 1_763_683_200
AUDIENCE = "https://tools.example.com/mcp"
TARGET_RATIO = 1.2
REPS = 7
BATCH = 400


def _key(name: str) -> PrivateKey:
    """BENCHMARK TEST KEY derived from a public seed: never use it for anything else."""
    seed = hashlib.sha256(f"mcps bench identity key: {name}".encode()).digest()
    return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


ANCHOR, AGENT = _key("anchor"), _key("agent")
ANCHORS = TrustAnchors([TrustAnchor(ANCHOR.public_key, TrustLevel.L3)])


def _path(depth: int) -> tuple[str, list[str]]:
    issuer, iss, tokens = ANCHOR, "https://issuer.example", []
    for n in range(depth - 1, 0, -1):
        middle = _key(f"intermediate {n}")
        tokens.append(
            issue_passport(
                issuer,
                iss=iss,
                sub=f"issuer-{n}",
                agent_key=middle.public_key,
                level=2,
                scopes=["tools:call"],
                now=NOW,
                issuer=True,
            )
        )
        issuer, iss = middle, f"issuer-{n}"
    leaf = issue_passport(
        issuer, iss=iss, sub="agent-1", agent_key=AGENT.public_key, level=2, scopes=["tools:call"], now=NOW
    )
    return leaf, list(reversed(tokens))


def _request(passport: str) -> dict[str, Any]:
    message = {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "search_documents",
            "arguments": {"query": "quarterly revenue by region", "limit": 20, "filters": {"year": 2025}},
            "_meta": {
                "progressToken": "tok-1",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
        },
    }
    return attach_passport(message, passport)


def _messages(passport: str, count: int) -> list[bytes]:
    return [
        json.dumps(sign_message(_request(passport), AGENT, audience=AUDIENCE, now=NOW)).encode() for _ in range(count)
    ]


def _median(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def _verify_timing(make_verifier: Callable[[], MessageVerifier], messages: list[bytes]) -> tuple[float, float, float]:
    async def batch() -> float:
        verifier = make_verifier()
        await verifier.verify(messages[0], now=NOW)  # warms the cache; not timed
        start = time.perf_counter()
        for raw in messages[1:]:
            await verifier.verify(raw, now=NOW)
        return (time.perf_counter() - start) / (len(messages) - 1)

    samples = [asyncio.run(batch()) for _ in range(REPS + 1)][1:]
    return _median(samples)


def _mirror_timing(
    with_store: Callable[[RevocationStore], Callable[[], MessageVerifier]], messages: list[bytes]
) -> tuple[float, float, float]:
    """Verify through a CachedRevocationStore mirroring a Redis store of 1,000 entries (built before timing)."""
    from mcps.stores.revocation_cache import CachedRevocationStore  # noqa: PLC0415
    from mcps.stores.revocation_redis import RedisRevocationStore  # noqa: PLC0415

    async def batch() -> float:
        inner = RedisRevocationStore.from_url("redis://127.0.0.1:6379/0", prefix="mcps-bench:revoked:")
        async with CachedRevocationStore(inner) as mirror:
            await mirror.sync()
            verifier = with_store(mirror)()
            await verifier.verify(messages[0], now=NOW)
            start = time.perf_counter()
            for raw in messages[1:]:
                await verifier.verify(raw, now=NOW)
            return (time.perf_counter() - start) / (len(messages) - 1)

    samples = [asyncio.run(batch()) for _ in range(REPS + 1)][1:]
    return _median(samples)


async def _filled(store: RevocationStore) -> RevocationStore:
    for n in range(1000):
        await store.revoke(RevocationKey.local("sub", f"someone-else-{n}"), now=NOW)
    return store


def _fmt(timing: tuple[float, float, float]) -> str:
    median, low, high = timing
    return f"{median * 1e6:8.1f} µs  ({low * 1e6:.1f}..{high * 1e6:.1f})"


def main() -> int:
    import cryptography  # noqa: PLC0415

    print(f"# mcps identity benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, {platform.machine()}")
    leaf, _ = _path(1)
    messages = [_messages(leaf, BATCH) for _ in range(REPS + 1)]
    print(f"request size: {len(messages[0][0])} bytes (passport {len(leaf)} bytes)")

    def pinned() -> MessageVerifier:
        return MessageVerifier(audience=AUDIENCE, keys=PinnedKeys([AGENT.public_key]), nonces=MemoryNonceStore())

    def with_store(store: RevocationStore) -> Callable[[], MessageVerifier]:
        def make() -> MessageVerifier:
            resolver = PassportResolver(anchors=ANCHORS, audience=AUDIENCE, revocations=store)
            return MessageVerifier(audience=AUDIENCE, keys=resolver, nonces=MemoryNonceStore())

        return make

    memory = asyncio.run(_filled(MemoryRevocationStore()))
    base = _verify_timing(pinned, messages[0])
    warm = _verify_timing(with_store(memory), messages[0])
    ratio = warm[0] / base[0]
    print("\n## verify, 1 KiB request carrying a passport (median per message, spread)")
    print(f"pinned key                          {_fmt(base)}")
    print(f"passport, warm cache, memory store  {_fmt(warm)}   ratio {ratio:.2f}× (target ≤ {TARGET_RATIO}×)")

    from mcps.stores.revocation_sqlite import SqliteRevocationStore  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        sqlite_store = asyncio.run(_filled(SqliteRevocationStore(Path(tmp) / "r.sqlite3")))
        sqlite_timing = _verify_timing(with_store(sqlite_store), messages[0])
        print(f"passport, warm cache, SQLite store  {_fmt(sqlite_timing)}   ratio {sqlite_timing[0] / base[0]:.2f}×")
        asyncio.run(sqlite_store.aclose())
    try:
        import redis  # noqa: PLC0415

        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=0.5).ping()
    except Exception as exc:  # noqa: BLE001 - any failure only means "skip the Redis line"
        print(f"passport, warm cache, Redis store   skipped ({type(exc).__name__})")
    else:
        from mcps.stores.revocation_redis import RedisRevocationStore  # noqa: PLC0415

        async def fill_redis() -> None:
            store = RedisRevocationStore.from_url("redis://127.0.0.1:6379/0", prefix="mcps-bench:revoked:")
            await (await _filled(store)).aclose()

        asyncio.run(fill_redis())

        def redis_verifier() -> MessageVerifier:
            return with_store(RedisRevocationStore.from_url("redis://127.0.0.1:6379/0", prefix="mcps-bench:revoked:"))()

        redis_timing = _verify_timing(redis_verifier, messages[0][:200])
        print(f"passport, warm cache, Redis store   {_fmt(redis_timing)}   ratio {redis_timing[0] / base[0]:.2f}×")
        mirror_timing = _mirror_timing(with_store, messages[0])
        print(f"passport, warm cache, Redis mirror  {_fmt(mirror_timing)}   ratio {mirror_timing[0] / base[0]:.2f}×")

    print("\n## cold chain verification (verify_chain, per path)")
    for depth in (1, 3):
        path = _path(depth)

        def cold(path: tuple[str, list[str]] = path) -> float:
            start = time.perf_counter()
            for _ in range(200):
                verify_chain(path[0], path[1] or None, anchors=ANCHORS, audience=AUDIENCE, now=NOW, skew=30)
            return (time.perf_counter() - start) / 200

        print(f"depth {depth}                             {_fmt(_median([cold() for _ in range(REPS)]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
