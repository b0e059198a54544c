"""Revocations across replicas: a :class:`~mcps.identity.revocation.RevocationStore` in Redis.

One key per entry, ``<prefix><scope>:<kind>:<value>`` (``scope`` is ``*`` or a base64url kid and ``kind`` is ``jti``
or ``sub``, neither contains ``:``, so keys are unambiguous). ``revoke`` is ``SET key 1`` (with ``EXAT until`` when
the entry expires; a permanent entry is never shortened); a lookup is one ``EXISTS k1 k2 …`` round trip on every
message, so a revocation written by any replica takes effect on the next message everywhere. Any Redis or socket
error raises MCPS-030: the message is refused, never accepted in doubt.

Revocations must survive a Redis restart: run Redis with persistence (``appendonly yes``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import redis.asyncio
from redis.exceptions import RedisError

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.revocation import RevocationKey
from mcps.stores.redis_nonces import fail_fast_client

__all__ = ["DEFAULT_PREFIX", "RedisRevocationStore"]

DEFAULT_PREFIX: Final = "mcps:revoked:"

# Keep the longer expiry: a permanent entry (no TTL) stays permanent.
_REVOKE_UNTIL: Final = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then return 0 end
local current = redis.call('PEXPIRETIME', KEYS[1])
local wanted = tonumber(ARGV[1]) * 1000
if current > wanted then return 0 end
redis.call('SET', KEYS[1], '1', 'PXAT', wanted)
return 1
"""


def _unavailable(exc: BaseException) -> McpsError:
    return McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"redis revocation store: {type(exc).__name__}: {exc}")


class RedisRevocationStore:
    """Revocations shared by replicas. The store owns ``client`` and closes it in :meth:`aclose`."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._client = client
        self.prefix = prefix
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        retries: int = 1,
        **client_options: Any,
    ) -> RedisRevocationStore:
        """A store on a new client with short timeouts, so a Redis that is down refuses calls quickly."""
        client = fail_fast_client(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, retries=retries,
            **client_options,
        )  # fmt: skip
        return cls(client, prefix=prefix)

    def key(self, entry: RevocationKey) -> str:
        return f"{self.prefix}{entry.scope}:{entry.kind.value}:{entry.value}"

    def _check_open(self) -> None:
        if self._closed:  # a closed redis client would silently reconnect
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="redis revocation store is closed")

    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        self._check_open()
        try:
            if until is None:
                await self._client.set(self.key(key), b"1")
            elif until > now:
                await self._client.eval(_REVOKE_UNTIL, 1, self.key(key), str(int(until)))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def is_revoked(self, keys: Collection[RevocationKey], *, now: float) -> bool:
        self._check_open()
        if not keys:
            return False
        try:
            count = await self._client.exists(*(self.key(key) for key in keys))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return int(count) > 0

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()
