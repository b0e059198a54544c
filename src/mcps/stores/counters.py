"""Rate and spend counters: the ``CounterStore`` protocol, the two kinds of charge, and the in-memory backend.

A policy limits calls with counters (SPEC.md §11.6). One call may be subject to several limits at once — a rate per
agent, a rate per tool, a daily spend cap — and it is allowed only when **all** of them have room. So a store
answers one question atomically for a whole list of charges: "does every one fit? then take them all", and a
refused call consumes nothing:

* :class:`TokenBucket` — a rate limit with a burst: ``capacity`` tokens, refilled continuously at ``per_second``;
  a charge takes ``cost`` tokens (a bucket never seen, or idle long enough, is full);
* :class:`WindowSum` — a cap on the sum of amounts within fixed windows of ``seconds`` aligned to the Unix epoch
  (``86400``: UTC calendar days); a charge adds ``amount``.

``consume(charges, now=..., commit=False)`` is a dry run: it answers without taking anything (the policy checks
limits before its compliance hooks run, and takes them only once the call is allowed).

Backends: :class:`MemoryCounterStore` (one process), :class:`mcps.stores.sqlite_counters.SqliteCounterStore`
(processes on one machine; survives restarts), :class:`mcps.stores.redis_counters.RedisCounterStore` (replicas).
All pass one contract suite, ``tests/contract/test_counter_stores.py``. A store that cannot answer raises
MCPS-030, and the call is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from mcps.core.errors import ErrorCode, McpsError

__all__ = [
    "DEFAULT_MAX_COUNTERS",
    "Charge",
    "CounterStore",
    "MemoryCounterStore",
    "TokenBucket",
    "WindowSum",
    "bucket_after",
    "window_key",
]

DEFAULT_MAX_COUNTERS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """Take ``cost`` tokens from the bucket ``key`` holding at most ``capacity``, refilled at ``per_second``."""

    key: str
    capacity: int
    per_second: float
    cost: int = 1

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.cost < 0 or not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValueError("a token bucket needs capacity >= 1, cost >= 0 and a positive finite refill rate")


@dataclass(frozen=True, slots=True)
class WindowSum:
    """Add ``amount`` to ``key`` in the current window of ``seconds``; refused if the sum would exceed ``limit``."""

    key: str
    limit: int
    seconds: int
    amount: int

    def __post_init__(self) -> None:
        if self.limit < 0 or self.amount < 0 or self.seconds < 1:
            raise ValueError("a window sum needs limit >= 0, amount >= 0 and seconds >= 1")


Charge = TokenBucket | WindowSum


@runtime_checkable
class CounterStore(Protocol):
    async def consume(self, charges: Sequence[Charge], *, now: float, commit: bool = True) -> int | None:
        """All or nothing. ``None`` when every charge fits — and, with ``commit``, every charge was taken —
        else the index of the first charge that does not fit, and nothing was taken.

        Raises MCPS-030 when the store cannot answer; never says "fits" in doubt.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. The store may not be used afterwards."""
        ...


def window_key(charge: WindowSum, now: float) -> tuple[str, float]:
    """The key of the window ``now`` falls in, and the time that window ends."""
    index = math.floor(now / charge.seconds)
    return f"{charge.key}@{index}", float((index + 1) * charge.seconds)


def bucket_after(charge: TokenBucket, held: Sequence[float] | None, now: float) -> tuple[float, float]:
    """The tokens available at ``now`` in a bucket whose state is ``held`` = ``(tokens, stamp, …)`` (``None``: full),
    and the stamp to keep (time never runs backwards for a bucket: a replica whose clock is behind adds nothing)."""
    if held is None:
        return float(charge.capacity), now
    tokens, stamp = held[0], held[1]
    elapsed = max(0.0, now - stamp)
    return min(float(charge.capacity), tokens + elapsed * charge.per_second), max(stamp, now)


def full_again_at(charge: TokenBucket, tokens: float, stamp: float) -> float:
    """When a bucket left with ``tokens`` at ``stamp`` is full again: its state can be forgotten from then on."""
    return stamp + (charge.capacity - tokens) / charge.per_second


class MemoryCounterStore:
    """Counters in this process (tests, a single server). Atomic within one event loop: ``consume`` never awaits.

    Bounded: when ``max_counters`` live counters are held, a charge that needs a new one raises MCPS-030 rather
    than forgetting a live counter (which would hand out its limit again).
    """

    def __init__(self, max_counters: int = DEFAULT_MAX_COUNTERS) -> None:
        if max_counters < 1:
            raise ValueError("max_counters must be positive")
        self._max = max_counters
        # key -> (value, stamp, expires_at): tokens and last update for buckets, the sum for windows
        self._state: dict[str, tuple[float, float, float]] = {}

    def __len__(self) -> int:
        return len(self._state)

    async def consume(self, charges: Sequence[Charge], *, now: float, commit: bool = True) -> int | None:
        state = self._state
        updates: dict[str, tuple[float, float, float]] = {}  # a key charged twice sees its first charge
        for index, charge in enumerate(charges):
            if isinstance(charge, WindowSum):
                key, ends = window_key(charge, now)
                held = updates.get(key) or state.get(key)
                total = (held[0] if held is not None and held[2] > now else 0.0) + charge.amount
                if total > charge.limit:
                    return index
                updates[key] = (total, now, ends)
            else:
                key = charge.key
                held = updates.get(key) or state.get(key)
                tokens, stamp = bucket_after(charge, held, now)
                if tokens < charge.cost:
                    return index
                tokens -= charge.cost
                updates[key] = (tokens, stamp, full_again_at(charge, tokens, stamp))
        if commit:
            new = sum(1 for key in updates if key not in state)
            if new and len(state) + new > self._max:
                self._evict(now)
                if len(state) + new > self._max:
                    raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="in-memory counter store is full")
            state.update(updates)
        return None

    def _evict(self, now: float) -> None:
        for key in [key for key, (_, _, expires_at) in self._state.items() if expires_at <= now]:
            del self._state[key]

    async def aclose(self) -> None:
        self._state.clear()
