"""The replay-defence protocol: ``NonceStore``, a store of single-use values (SPEC.md §5.1).

A nonce store remembers ``(kid, nonce)`` pairs until a given expiry and answers one question atomically: "was this
pair new?". The message verifier asks it after a signature verifies (SPEC.md §5 step 9), and the grant verifier
records each grant's ``jti`` in it (§7.6). The protocol lives here, in the lowest layer, because both the identity
layer (grants) and the recipes above it use it; the backends — memory, SQLite, Redis — live in
:mod:`mcps.stores` and pass one contract suite, ``tests/contract/test_nonce_stores.py``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mcps.core.keys import KeyId

__all__ = ["NonceStore"]


@runtime_checkable
class NonceStore(Protocol):
    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        """Record ``(kid, nonce)`` until ``expires_at``. True if it was new; False if already held (a replay).

        An entry whose expiry is at or before ``now`` no longer counts. Raises MCPS-030 when the store cannot
        answer; never returns True in doubt.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. The store may not be used afterwards."""
        ...
