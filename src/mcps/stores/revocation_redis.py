"""Revocations across replicas: a :class:`~mcps.identity.revocation.RevocationStore` in Redis.

One key per entry, ``<prefix><scope>:<kind>:<value>`` (``scope`` is ``*`` or a base64url kid and ``kind`` is ``jti``
or ``sub``, neither contains ``:``, so keys are unambiguous). ``revoke`` is one script: ``SET key 1`` (with ``PXAT
until`` when the entry expires; a permanent entry is never shortened, an expiry never brought forward), then
``INCR <prefix>~epoch`` and ``PUBLISH <prefix>~changes "<epoch> <until or -> <scope>:<kind>:<value>"`` — the change
feed that :class:`~mcps.stores.revocation_cache.CachedRevocationStore` mirrors. The epoch key and the channel have no
``:`` after the prefix, so they never collide with an entry. A lookup here is one ``EXISTS k1 k2 …`` round trip on
every message, so a revocation written by any replica takes effect on the next message everywhere. Any Redis or
socket error raises MCPS-030: the message is refused, never accepted in doubt.

Revocations must survive a Redis restart: run Redis with persistence (``appendonly yes``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any, Final

import redis.asyncio
from redis.exceptions import RedisError

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.revocation import RevocationKey, RevocationKind
from mcps.stores.redis_nonces import fail_fast_client

__all__ = ["DEFAULT_PREFIX", "RedisRevocationStore", "RevocationChange"]

logger = logging.getLogger("mcps.stores")

DEFAULT_PREFIX: Final = "mcps:revoked:"
_SCAN_COUNT: Final = 1000

# KEYS[1]: the entry, KEYS[2]: the epoch. ARGV[1]: until in seconds, or "-" for ever; ARGV[2]: the channel;
# ARGV[3]: the entry without the prefix. Keep the longer expiry: a permanent entry (no TTL) stays permanent.
# Then count the change and announce it, in the same script: no change is written without its announcement.
_REVOKE: Final = """
local ttl = redis.call('PTTL', KEYS[1])
if ARGV[1] == '-' then
  if ttl ~= -1 then redis.call('SET', KEYS[1], '1') end
elseif ttl ~= -1 then
  local wanted = tonumber(ARGV[1]) * 1000
  if redis.call('PEXPIRETIME', KEYS[1]) < wanted then redis.call('SET', KEYS[1], '1', 'PXAT', wanted) end
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], epoch .. ' ' .. ARGV[1] .. ' ' .. ARGV[3])
return epoch
"""


class RevocationChange:
    """One announcement on the change feed: ``epoch`` (the count of changes so far), the entry and its ``until``."""

    __slots__ = ("entry", "epoch", "until")

    def __init__(self, epoch: int, entry: RevocationKey, until: float | None) -> None:
        self.epoch, self.entry, self.until = epoch, entry, until

    @classmethod
    def parse(cls, data: object) -> RevocationChange | None:
        """The change announced by ``data``, or ``None`` when it is not one (anyone who can publish may send it)."""
        if not isinstance(data, bytes) or len(data) > 4096:
            return None
        try:
            epoch_text, until_text, rest = data.decode("utf-8").split(" ", 2)
            epoch = int(epoch_text)
            until = None if until_text == "-" else float(int(until_text))
            entry = _entry(rest)
        except ValueError:
            return None
        return None if entry is None or epoch < 1 else cls(epoch, entry, until)


def _entry(rest: str) -> RevocationKey | None:
    """The entry named by a key without its prefix (``scope:kind:value``), or ``None``."""
    parts = rest.split(":", 2)
    if len(parts) != 3 or parts[1] not in ("jti", "sub"):
        return None
    try:
        return RevocationKey(parts[0], RevocationKind(parts[1]), parts[2])
    except ValueError:
        return None


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

    @property
    def epoch_key(self) -> str:
        """The count of changes announced so far."""
        return f"{self.prefix}~epoch"

    @property
    def channel(self) -> str:
        """The pub/sub channel on which every change is announced."""
        return f"{self.prefix}~changes"

    @property
    def client(self) -> redis.asyncio.Redis:
        """The client (a :class:`~mcps.stores.revocation_cache.CachedRevocationStore` subscribes through it)."""
        return self._client

    async def snapshot(self) -> tuple[int, dict[RevocationKey, float | None]]:
        """The epoch, then every entry with its expiry (seconds; ``None``: for ever), read with ``SCAN``.

        Read the epoch first: a change after it is announced with a later epoch, so a mirror that subscribed before
        calling this and applies every later announcement misses nothing. Raises MCPS-030 when Redis cannot answer.
        """
        self._check_open()
        entries: dict[RevocationKey, float | None] = {}
        pattern = _glob_escape(self.prefix) + "*"
        try:
            epoch = int(await self._client.get(self.epoch_key) or 0)
            names: list[str] = []
            async for name in self._client.scan_iter(match=pattern, count=_SCAN_COUNT):
                names.append(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name))
            for start in range(0, len(names), _SCAN_COUNT):
                chunk = names[start : start + _SCAN_COUNT]
                pipe = self._client.pipeline(transaction=False)
                for name in chunk:
                    pipe.pexpiretime(name)
                expiries = await pipe.execute()
                for name, expiry in zip(chunk, expiries, strict=True):
                    entry = _entry(name[len(self.prefix) :])
                    if entry is None:
                        continue  # the epoch key, or a key this store did not write
                    if expiry == -1:
                        entries[entry] = None
                    elif isinstance(expiry, int) and expiry >= 0:
                        entries[entry] = expiry / 1000
        except (RedisError, OSError, ValueError) as exc:
            raise _unavailable(exc) from exc
        return epoch, entries

    def _check_open(self) -> None:
        if self._closed:  # a closed redis client would silently reconnect
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="redis revocation store is closed")

    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        self._check_open()
        if until is not None and until <= now:
            return
        suffix = self.key(key)[len(self.prefix) :]
        try:
            until_text = "-" if until is None else str(int(until))
            await self._client.eval(_REVOKE, 2, self.key(key), self.epoch_key, until_text, self.channel, suffix)
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

    async def ping(self) -> None:
        """Raise MCPS-030 unless Redis answers (readiness checks)."""
        self._check_open()
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
