"""State stores, one small protocol per kind of state, each with an embedded and a distributed backend.

* Replay defence (``NonceStore``): :class:`MemoryNonceStore` (one process), :class:`SqliteNonceStore` (the
  processes of one machine), :class:`RedisNonceStore` (replicas).
* Revocation (``RevocationStore``, the kill switch): :class:`SqliteRevocationStore`, :class:`RedisRevocationStore`,
  and :class:`CachedRevocationStore` (a local mirror of a Redis store kept current by its change feed: no round
  trip per message, MCPS-030 when it cannot be sure it is current); the in-memory one is
  :class:`mcps.identity.MemoryRevocationStore`.

A store that cannot answer raises MCPS-030 and the message is refused. Backends are imported on first use
(PEP 562): ``import mcps.stores`` does not import redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcps.core._exports import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from mcps.stores.nonces import MemoryNonceStore, NonceStore
    from mcps.stores.redis_nonces import RedisNonceStore
    from mcps.stores.revocation_cache import CachedRevocationStore
    from mcps.stores.revocation_redis import RedisRevocationStore
    from mcps.stores.revocation_sqlite import SqliteRevocationStore
    from mcps.stores.sqlite_nonces import SqliteNonceStore

__all__ = [
    "CachedRevocationStore",
    "MemoryNonceStore",
    "NonceStore",
    "RedisNonceStore",
    "RedisRevocationStore",
    "SqliteNonceStore",
    "SqliteRevocationStore",
]

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is still an error there
    __getattr__, __dir__ = _lazy_exports(
        __name__,
        {
            "CachedRevocationStore": "mcps.stores.revocation_cache",
            "MemoryNonceStore": "mcps.stores.nonces",
            "NonceStore": "mcps.stores.nonces",
            "RedisNonceStore": "mcps.stores.redis_nonces",
            "RedisRevocationStore": "mcps.stores.revocation_redis",
            "SqliteNonceStore": "mcps.stores.sqlite_nonces",
            "SqliteRevocationStore": "mcps.stores.revocation_sqlite",
        },
    )
