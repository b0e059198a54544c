"""Replay defence across replicas: a nonce store in Redis.

Every gateway replica points at the same Redis; a claim is one atomic command,

    SET <prefix><kid>:<nonce> 1 NX EX <ttl>

which succeeds on exactly one replica for a given pair while the key lives. ``kid`` (an RFC 7638 thumbprint) and
``nonce`` are base64url, so ``:`` cannot occur in either and keys are unambiguous.

What the deployment must provide (SPEC.md §5, step 9):

* Expiry runs on the Redis server's clock, from a TTL the replica computes as ``ceil(expires_at − now)`` on its
  own clock. Replica clocks must be synchronised (NTP) anyway for the time window.
* A Redis restart without persistence (``appendonly yes``), or a failover to a replica that had not yet received
  the write, forgets recent nonces: messages seen in the last lifetime + skew (≤ 330 s) could then be replayed
  once. Use persistence, and ``WAIT``-style replication guarantees if failover must not lose writes.
"""

from __future__ import annotations

import math
from typing import Any, Final

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId

__all__ = ["DEFAULT_PREFIX", "RedisNonceStore", "fail_fast_client"]

DEFAULT_PREFIX: Final = "mcps:nonce:"


def fail_fast_client(
    url: str,
    *,
    socket_timeout: float = 1.0,
    socket_connect_timeout: float = 1.0,
    retries: int = 1,
    **client_options: Any,
) -> redis.asyncio.Redis:
    """A client for ``url`` whose calls fail within about ``(retries + 1) × socket_timeout`` when Redis is down.

    redis-py's default (many retries with backoff) could stall each security check for seconds; mcps stores
    refuse quickly instead (MCPS-030). ``client_options`` go to :meth:`redis.asyncio.Redis.from_url`.
    """
    if retries < 0:
        raise ValueError("retries must not be negative")
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries),
        **client_options,
    )


class RedisNonceStore:
    """A :class:`~mcps.core.replay.NonceStore` shared by replicas through Redis.

    ``client`` is a :class:`redis.asyncio.Redis`; the store owns it and closes it in :meth:`aclose`. Use
    :meth:`from_url` for a client with short timeouts, so that a Redis that is down refuses calls quickly.

    Any Redis or socket error (connection refused, timeout, a server error) raises MCPS-030: the message is
    refused, never accepted in doubt. A claim whose response is lost after Redis applied it is refused as a
    replay if retried; that errs on the safe side.
    """

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._client = client
        self.prefix = prefix

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
    ) -> RedisNonceStore:
        """A store on a new client for ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        The defaults bound how long a claim can wait on a Redis that is down: about
        ``(retries + 1) × socket_timeout``. ``client_options`` are passed to :meth:`redis.asyncio.Redis.from_url`.
        """
        client = fail_fast_client(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, retries=retries,
            **client_options,
        )  # fmt: skip
        return cls(client, prefix=prefix)

    def key(self, kid: KeyId, nonce: str) -> str:
        """The Redis key that holds ``(kid, nonce)``."""
        return f"{self.prefix}{kid}:{nonce}"

    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        """``SET key 1 NX EX ttl``: True if the key was created, False if a live one holds the pair.

        When ``expires_at`` is at or before ``now`` nothing is stored and the claim succeeds: an entry that has
        already expired would not count anyway, and the verifier refuses such a message on its time window
        (``exp + skew``) before it asks the store.
        """
        if expires_at <= now:
            return True
        ttl = max(1, math.ceil(expires_at - now))
        try:
            created = await self._client.set(self.key(kid, nonce), b"1", nx=True, ex=ttl)
        except (RedisError, OSError) as exc:
            raise McpsError(
                ErrorCode.STORE_UNAVAILABLE, detail=f"redis nonce store: {type(exc).__name__}: {exc}"
            ) from exc
        return created is True

    async def ping(self) -> None:
        """Raise MCPS-030 unless Redis answers (readiness checks)."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise McpsError(
                ErrorCode.STORE_UNAVAILABLE, detail=f"redis nonce store: {type(exc).__name__}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
