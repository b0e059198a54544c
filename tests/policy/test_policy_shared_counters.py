"""Replicas sharing one counter store never let more calls through than the limit (real processes, real Redis)."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

import pytest
import redis

POLICY = """\
mcps_policy = 1
[servers.payments]
[[servers.payments.tools]]
match = "transfer_funds"
rate = ["30/hour per agent"]
[servers.payments.tools.spend]
amount_arg = "amount"
per_level = { 2 = { per_day = 200 } }
"""

_CHILD = """
import asyncio, sys
from mcps.identity.levels import TrustLevel
from mcps.policy import CallContext, PolicyFile, Principal
from mcps.stores.redis_counters import RedisCounterStore
from mcps.stores.sqlite_counters import SqliteCounterStore

async def main() -> None:
    path, kind, where, prefix = sys.argv[1:5]
    store = RedisCounterStore.from_url(where, prefix=prefix) if kind == "redis" else SqliteCounterStore(where)
    policy = PolicyFile.load(path, counters=store)
    caller = Principal("agent-7", "kid", TrustLevel.L2)
    print("ready", flush=True)
    sys.stdin.readline()
    allowed = spent = 0
    for i in range(40):
        amount = 1 + i % 7
        call = CallContext(caller, "payments", "tools/call", "transfer_funds", {"amount": amount})
        decision = await policy.decide(call, now=1_763_690_000.0 + i * 0.001)
        if decision.allowed:
            allowed += 1
            spent += amount
    await store.aclose()
    print(allowed, spent, flush=True)

asyncio.run(main())
"""


async def race(policy: Path, kind: str, where: str, prefix: str = "") -> list[tuple[int, int]]:
    pipe = asyncio.subprocess.PIPE
    command = (sys.executable, "-c", _CHILD, str(policy), kind, where, prefix)
    children = [await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe) for _ in range(3)]
    async with asyncio.timeout(90):
        for child in children:
            assert child.stdout is not None
            assert await child.stdout.readline() == b"ready\n"
        for child in children:  # start together
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        results = []
        for child in children:
            out, _ = await child.communicate()
            assert child.returncode == 0
            allowed, spent = out.split()
            results.append((int(allowed), int(spent)))
    return results


def check(results: list[tuple[int, int]]) -> None:
    allowed = sum(count for count, _ in results)
    spent = sum(amount for _, amount in results)
    assert allowed <= 30  # the rate
    assert spent <= 200  # the daily spend cap
    assert allowed == 30 or spent > 200 - 7  # and a limit was reached: not refused wholesale


@pytest.mark.redis
async def test_processes_sharing_redis_never_exceed_rate_or_spend(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    prefix = f"mcps-test:{secrets.token_hex(8)}:counter:"
    admin = redis.Redis.from_url(redis_url)
    try:
        check(await race(path, "redis", redis_url, prefix))
    finally:
        keys = list(admin.scan_iter(match=f"{prefix}*"))
        if keys:
            admin.delete(*keys)
        admin.close()


async def test_processes_sharing_sqlite_never_exceed_rate_or_spend(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    check(await race(path, "sqlite", str(tmp_path / "counters.sqlite3")))
