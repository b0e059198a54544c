"""Replay defence: the in-memory :class:`~mcps.core.replay.NonceStore` backend (the protocol lives in
:mod:`mcps.core.replay` and is re-exported here).

A nonce store remembers ``(kid, nonce)`` pairs until a given expiry and answers one question atomically:
"was this pair new?". The verifier asks only after the signature has verified (SPEC.md §5 step 9), so
unauthenticated traffic cannot fill the store. A store that cannot answer raises MCPS-030 and the message is
refused: replay defence fails closed.

Backends: :class:`MemoryNonceStore` (one process), :class:`mcps.stores.sqlite_nonces.SqliteNonceStore` (processes
on one machine), :class:`mcps.stores.redis_nonces.RedisNonceStore` (replicas). All pass one contract suite,
``tests/contract/test_nonce_stores.py``.
"""

from __future__ import annotations

import heapq

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId
from mcps.core.replay import NonceStore

__all__ = ["DEFAULT_MAX_ENTRIES", "MemoryNonceStore", "NonceStore"]

DEFAULT_MAX_ENTRIES = 1_000_000


class MemoryNonceStore:
    """A bounded in-process store with TTL eviction.

    When ``max_entries`` unexpired nonces are held, a new claim is refused with MCPS-030 rather than evicting a
    live entry (which would re-open a replay window): size it for peak rate × (lifetime + skew).
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._expiry: dict[tuple[str, str], int] = {}
        self._heap: list[tuple[int, str, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        key = (kid, nonce)
        held_until = self._expiry.get(key)
        if held_until is not None and held_until > now:
            return False
        if len(self._expiry) >= self._max_entries:
            self._evict_expired(now)
            if len(self._expiry) >= self._max_entries:
                raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="in-memory nonce store is full")
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, kid, nonce))
        if len(self._heap) > 2 * len(self._expiry) + 1024 or (self._heap and self._heap[0][0] <= now):
            self._evict_expired(now)
        return True

    def _evict_expired(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires_at, kid, nonce = heapq.heappop(heap)
            if self._expiry.get((kid, nonce)) == expires_at:
                del self._expiry[(kid, nonce)]

    async def aclose(self) -> None:
        self._expiry.clear()
        self._heap.clear()
