"""Policy benchmark: what one decision costs (SPEC.md §11), against the verification of one signed message.

The policy has 100 tool rules on one server — 90 exact names and 10 globs (matched in file order, so the call to
the last glob scans all ten) — each with a minimum level, required scopes, a CEL condition on the arguments and the
caller, two rates (per agent, per tool) and a spend limit with per-level tiers (per call and per day); the server
has a level floor and a per-agent rate of its own. One decision for a ``tools/call`` therefore runs: server and
rule identity checks, the rule lookup, one CEL evaluation, the spend tier, and an atomic take of four counters
(three token buckets and one daily window). Limits are set so that no call is refused (every decision is the
full allow path).

Rows: counters in memory, in SQLite (a file in a temporary directory) and in Redis (127.0.0.1, one round trip per
decision: the Lua script); the same decision without limits (CEL only); the static check ``tools/list`` uses per
tool; and the baseline, ``MessageVerifier.verify`` of a ~1 KiB signed ``tools/call`` request (EdDSA, pinned key).

Method: batches of decisions with increasing ``now`` (so buckets refill and the window stays in one UTC day), the
median over several batches of the per-decision time (spread min..max). Run: ``.venv/bin/python
bench/bench_policy.py``. Targets (reported, never enforced): a decision with in-memory counters < 20 µs and < 5 %
of a full signed call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from mcps import MemoryNonceStore, MessageVerifier, PinnedKeys, PrivateKey
from mcps.core.envelope import sign_message
from mcps.identity.levels import TrustLevel
from mcps.policy import CallContext, PolicyFile, Principal
from mcps.stores.counters import CounterStore, MemoryCounterStore
from mcps.stores.sqlite_counters import SqliteCounterStore

NOW = 1_763_690_000.0
REPS = 7
BATCH = 2000
TARGET_US = 20.0
TARGET_SHARE = 0.05
REDIS_URL = "redis://127.0.0.1:6379/0"


def policy_text(*, limits: bool = True) -> str:
    """100 tool rules: tool_000 … tool_089 (exact) and group_0_* … group_9_* (globs)."""
    lines = ["mcps_policy = 1", "", "[servers.payments]", "min_level = 1"]
    if limits:
        lines.append('rate = ["100000/second per agent"]')
    names = [f"tool_{n:03d}" for n in range(90)] + [f"group_{n}_*" for n in range(10)]
    for name in names:
        lines += [
            "",
            "[[servers.payments.tools]]",
            f'match = "{name}"',
            "min_level = 2",
            'scopes_all = ["payments:write"]',
            "when = \"args.amount <= 1000 || caller.level >= 3 && 'payments:large' in caller.scopes\"",
        ]
        if limits:
            lines += [
                'rate = ["100000/second per agent", "100000/second per tool"]',
                'spend = { amount_arg = "amount", currency_arg = "currency", currency = "USD", per_level = { '
                '"1" = { per_call = 10, per_day = 50 }, "2" = { per_call = 1000, per_day = 1000000000 } } }',
            ]
    return "\n".join(lines) + "\n"


def _key() -> PrivateKey:
    """BENCHMARK TEST KEY derived from a public seed: never use it for anything else."""
    seed = hashlib.sha256(b"mcps bench policy key").digest()
    return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


CALLER = Principal("agent-7", "kid-agent-7", TrustLevel.L2, frozenset({"payments:write", "tools:call"}), "issuer")
ARGUMENTS = {"amount": 250, "currency": "USD", "counterparty": "Alice Smith", "memo": "invoice 2025-117"}


def _median(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def _fmt(timing: tuple[float, float, float]) -> str:
    median, low, high = timing
    return f"{median * 1e6:8.2f} µs  ({low * 1e6:.2f}..{high * 1e6:.2f})"


async def _timed(step: Callable[[int], Awaitable[object]], count: int) -> tuple[float, float, float]:
    out = []
    for rep in range(REPS + 1):
        start = time.perf_counter()
        for n in range(count):
            await step(rep * count + n)
        out.append((time.perf_counter() - start) / count)
    return _median(out[1:])  # the first batch warms up


async def decision_timing(policy: PolicyFile, tool: str, count: int = BATCH) -> tuple[float, float, float]:
    call = CallContext(CALLER, "payments", "tools/call", tool, ARGUMENTS)

    async def step(n: int) -> object:
        decision = await policy.decide(call, now=NOW + n * 0.001)
        if not decision.allowed:
            raise SystemExit(f"benchmark bug: the decision was a deny: {decision}")
        return decision

    return await _timed(step, count)


def load(text: str, counters: CounterStore) -> PolicyFile:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.toml"
        path.write_text(text, encoding="utf-8")
        return PolicyFile.load(path, counters=counters)


async def verify_timing() -> tuple[float, float, float]:
    key = _key()
    request = {
        "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "tool_042", "arguments": {**ARGUMENTS, "note": "x" * 700}},
    }  # fmt: skip
    messages = [
        json.dumps(sign_message(request, key, audience="payments", now=int(NOW))).encode() for _ in range(BATCH // 4)
    ]
    print(f"signed request for the baseline: {len(messages[0])} bytes")
    holder: dict[str, MessageVerifier] = {}

    async def step(n: int) -> object:
        index = n % len(messages)
        if index == 0:
            holder["v"] = MessageVerifier(
                audience="payments", keys=PinnedKeys([key.public_key]), nonces=MemoryNonceStore()
            )
        return await holder["v"].verify(messages[index], now=int(NOW))

    return await _timed(step, len(messages))


async def run() -> int:
    from importlib.metadata import version  # noqa: PLC0415

    print(f"# mcps policy benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"python {platform.python_version()}, {platform.machine()}, cel-expr-python {version('cel-expr-python')}")
    memory = load(policy_text(), MemoryCounterStore())
    rules = memory.servers["payments"].tools
    print(f"policy: {len(rules)} tool rules ({sum(r.is_glob for r in rules)} globs), each with CEL, 2 rates, spend")

    print("\n## one decision (tools/call, allowed; median per decision, spread)")
    exact = await decision_timing(memory, "tool_042")
    print(f"exact-name rule, counters in memory      {_fmt(exact)}")
    last_glob = await decision_timing(memory, "group_9_transfer")
    print(f"last glob rule,  counters in memory      {_fmt(last_glob)}")
    no_limits = await decision_timing(load(policy_text(limits=False), MemoryCounterStore()), "tool_042")
    print(f"exact-name rule, no limits (CEL only)    {_fmt(no_limits)}")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteCounterStore(Path(tmp) / "counters.sqlite3")
        sqlite = await decision_timing(load(policy_text(), store), "tool_042", BATCH // 4)
        print(f"exact-name rule, counters in SQLite      {_fmt(sqlite)}")
        await store.aclose()
    try:
        import redis  # noqa: PLC0415

        redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping()
    except Exception as exc:  # noqa: BLE001 - any failure only means "skip the Redis line"
        print(f"exact-name rule, counters in Redis       skipped ({type(exc).__name__})")
    else:
        from mcps.stores.redis_counters import RedisCounterStore  # noqa: PLC0415

        prefix = f"mcps-bench:{secrets.token_hex(6)}:counter:"
        redis_policy = load(policy_text(), RedisCounterStore.from_url(REDIS_URL, prefix=prefix))
        redis_timing = await decision_timing(redis_policy, "tool_042", BATCH // 4)
        print(f"exact-name rule, counters in Redis       {_fmt(redis_timing)}")
        admin = redis.Redis.from_url(REDIS_URL)
        keys = list(admin.scan_iter(match=f"{prefix}*"))
        if keys:
            admin.delete(*keys)
        admin.close()
        await redis_policy.counters.aclose()

    tools = [f"tool_{n:03d}" for n in range(90)] + [f"group_{n}_x" for n in range(10)]

    def static() -> float:
        start = time.perf_counter()
        for name in tools:
            memory.could_allow(CALLER, "payments", name)
        return (time.perf_counter() - start) / len(tools)

    print(f"static check per listed tool (tools/list) {_fmt(_median([static() for _ in range(REPS)]))}")

    print("\n## baseline")
    verify = await verify_timing()
    print(f"MessageVerifier.verify, ~1 KiB, EdDSA    {_fmt(verify)}")
    share = exact[0] / verify[0]
    print(
        f"\ndecision in memory: {exact[0] * 1e6:.2f} µs (target < {TARGET_US:.0f} µs: "
        f"{'met' if exact[0] * 1e6 < TARGET_US else 'missed'}); {share:.1%} of one verify"
    )
    return 0


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
