"""Audit-log benchmark (``make bench-audit``): durable appends/s, full verification entries/s, proof times, and
PostgreSQL appends/s with 4 concurrent writer processes. Prints a Markdown table for BENCHMARKS.md.

Usage: python bench/bench_audit.py [--entries 1000000] [--appends 50000] [--pg-appends 5000] [--no-postgres]
       python bench/bench_audit.py --only-verify --db .bench/audit-1m.db [--entries 1000000]

``--only-verify`` times full verification alone, of the log at ``--db`` (built there with ``--entries`` entries when
it does not exist, and kept), so that two versions of the code can be timed on the same log one after the other
(``make bench-audit-verify``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import platform
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from mcps.audit.entry import AuditEvent, json_hash
from mcps.audit.merkle import verify_consistency, verify_inclusion
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.audit.verify import verify_log
from mcps.core.keys import PrivateKey

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
ARGS_HASH = json_hash({"city": "Paris"})


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        event="call",
        agent="agent://bench",
        kid="kid-bench",
        trust_level=2,
        method="tools/call",
        tool="get_weather",
        request_id=i,
        args_hash=ARGS_HASH,
        decision="allow",
        latency_ms=3,
    )


async def _append_many(log: SqliteAuditLog, start: int, count: int, concurrency: int = 8192) -> None:
    for chunk in range(start, start + count, concurrency):
        await asyncio.gather(*(log.append(_event(i)) for i in range(chunk, min(chunk + concurrency, start + count))))


def bench_sqlite_appends(directory: Path, count: int) -> float:
    log = SqliteAuditLog(directory / "appends.db", key=PrivateKey.generate())

    async def run() -> float:
        await _append_many(log, 0, 1000)  # warm-up
        t0 = time.perf_counter()
        await _append_many(log, 1000, count)
        elapsed = time.perf_counter() - t0
        await log.aclose()
        return count / elapsed

    return asyncio.run(run())


def build_large(directory: Path, entries: int) -> SqliteAuditLog:
    log = SqliteAuditLog(directory / "large.db", key=PrivateKey.generate(), max_batch=8192)
    asyncio.run(_append_many(log, 0, entries))
    return log


def only_verify(path: Path, entries: int) -> None:
    """Full verification of the log at ``path`` (built with ``entries`` entries first when missing), timed."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        log = SqliteAuditLog(path, key=PrivateKey.generate(), max_batch=8192)
        t0 = time.perf_counter()
        asyncio.run(_append_many(log, 0, entries))
        asyncio.run(log.aclose())
        print(f"built {entries:,} entries at {path} in {time.perf_counter() - t0:.1f} s")
    log = SqliteAuditLog(path, read_only=True)
    print(f"load average {os.getloadavg()[0]:.2f} before verifying")
    cpu = time.process_time()
    size, per_second = bench_verify(log)
    cpu = time.process_time() - cpu
    print(f"full verification: {size:,} entries, {per_second:,.0f} entries/s ({size / per_second:.2f} s wall)")
    print(f"  CPU time of this process: {cpu:.2f} s, {size / cpu:,.0f} entries per CPU second")
    asyncio.run(log.aclose())


def bench_verify(log: SqliteAuditLog) -> tuple[int, float]:
    t0 = time.perf_counter()
    verified = verify_log(log, log.public_key, log.origin)
    return verified.size, verified.size / (time.perf_counter() - t0)


def bench_proofs(log: SqliteAuditLog, rounds: int = 200) -> tuple[float, float]:
    rng = random.Random(7)  # noqa: S311 - reproducible sample of indexes
    checkpoint = log.latest_checkpoint()
    size = checkpoint.size
    inclusion, consistency = [], []
    for _ in range(rounds):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        proof = asyncio.run(log.inclusion_proof(index, size))
        inclusion.append(time.perf_counter() - t0)
        leaf = log.read_entries(index, index + 1)[0].leaf
        verify_inclusion(leaf, index, size, proof, checkpoint.root)
    sizes = [s for s, _ in log.raw_checkpoints() if 0 < s < size]
    for old in rng.sample(sizes, min(rounds, len(sizes))):
        t0 = time.perf_counter()
        proof = asyncio.run(log.consistency_proof(old, size))
        consistency.append(time.perf_counter() - t0)
        verify_consistency(old, size, _root_at(log, old), checkpoint.root, proof)
    return statistics.median(inclusion) * 1e3, statistics.median(consistency) * 1e3


def _root_at(log: SqliteAuditLog, size: int) -> bytes:
    from mcps.audit.checkpoint import open_checkpoint  # noqa: PLC0415

    note = dict(log.raw_checkpoints())[size]
    return open_checkpoint(note, log.public_key, log.origin).root


def _pg_writer(schema: str, key_pem: bytes, count: int, worker: int, start: multiprocessing.synchronize.Event) -> None:
    from mcps.audit.postgres_log import PostgresAuditLog  # noqa: PLC0415

    log = PostgresAuditLog(PG_DSN, key=PrivateKey.from_pem(key_pem), schema=schema)
    start.wait()

    async def run() -> None:
        await asyncio.gather(*(log.append(_event(worker * count + i)) for i in range(count)))
        await log.aclose()

    asyncio.run(run())


def bench_postgres(count_per_writer: int, writers: int = 4) -> tuple[float, int]:
    import psycopg  # noqa: PLC0415

    from mcps.audit.postgres_log import PostgresAuditLog  # noqa: PLC0415

    schema = f"bench_audit_{secrets.token_hex(4)}"
    key = PrivateKey.generate()
    creator = PostgresAuditLog(PG_DSN, key=key, schema=schema)
    start = multiprocessing.Event()
    procs = [
        multiprocessing.Process(target=_pg_writer, args=(schema, key.to_pem(), count_per_writer, w, start))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every writer connect before the clock starts
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    verified = verify_log(creator, creator.public_key, creator.origin)
    asyncio.run(creator.aclose())
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return writers * count_per_writer / elapsed, verified.size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the log for verify and proofs")
    parser.add_argument("--appends", type=int, default=50_000, help="durable appends measured on SQLite")
    parser.add_argument("--pg-appends", type=int, default=5_000, help="appends per PostgreSQL writer")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only-verify", action="store_true", help="time full verification of --db alone")
    parser.add_argument("--db", type=Path, default=Path(".bench/audit-1m.db"), help="the log --only-verify reads")
    args = parser.parse_args()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {python}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if args.only_verify:
        only_verify(args.db, args.entries)
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        appends = bench_sqlite_appends(directory, args.appends)
        print(f"sqlite durable appends/s (group commit, synchronous=FULL): {appends:,.0f}")
        t0 = time.perf_counter()
        log = build_large(directory, args.entries)
        print(f"built {args.entries:,} entries in {time.perf_counter() - t0:.1f} s")
        size, per_second = bench_verify(log)
        print(f"full verification: {size:,} entries, {per_second:,.0f} entries/s")
        inclusion_ms, consistency_ms = bench_proofs(log)
        print(f"inclusion proof at {size:,}: median {inclusion_ms:.2f} ms; consistency proof: {consistency_ms:.2f} ms")
        asyncio.run(log.aclose())
    if not args.no_postgres:
        rate, total = bench_postgres(args.pg_appends)
        print(f"postgresql appends/s, 4 writer processes: {rate:,.0f} ({total:,} entries, log verifies)")


if __name__ == "__main__":
    main()
