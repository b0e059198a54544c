"""Rate and spend counters shared by replicas, in Redis: one Lua script per ``consume``, so it is atomic.

Redis runs a script without interleaving any other command, so "read every counter, decide, write all or none" holds
across every replica sharing the server. Keys (``<prefix><counter key>``):

* a token bucket is a hash ``{t: tokens, s: stamp}`` that expires when the bucket is full again (a missing bucket
  is full);
* a window is a string holding the window's sum, ``<prefix><key>@<window index>``, that expires when the window
  ends (a TTL computed on the caller's clock, as for the nonce store).

Time is the caller's clock (``now``), as for the nonce store: replica clocks must be synchronised (NTP). A bucket
never runs backwards, so a replica whose clock is behind adds no tokens. Redis Cluster is not supported (the keys
of one call may live in different slots); use one primary, with replicas or Sentinel for failover. A Redis restart
without persistence (``appendonly yes``) forgets the counters: limits start afresh.

Any Redis or socket error raises MCPS-030: the call is refused, never allowed in doubt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio
from redis.exceptions import RedisError

from mcps.core.errors import ErrorCode, McpsError
from mcps.stores.counters import Charge, WindowSum, window_key
from mcps.stores.redis_nonces import fail_fast_client

__all__ = ["DEFAULT_PREFIX", "RedisCounterStore"]

DEFAULT_PREFIX: Final = "mcps:counter:"

# KEYS[i]: the counter key. ARGV[1]: now; ARGV[2]: "1" to commit; then 4 values per charge:
#   window: "w", amount, limit, milliseconds until the window ends;   bucket: "b", cost, capacity, refill per second.
# Returns 0 when every charge fits (and, with commit, all were taken), else the 1-based index of the first that
# does not fit (and nothing was taken).
_CONSUME: Final = """
local now = tonumber(ARGV[1])
local commit = ARGV[2] == '1'
local pending = {}
local order = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local base = 2 + (i - 1) * 4
  local kind, amount, limit, param = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
    tonumber(ARGV[base + 4])
  local held = pending[key]
  if kind == 'w' then
    local total
    if held then total = held.v else total = tonumber(redis.call('GET', key) or '0') end
    total = total + amount
    if total > limit then return i end
    if not held then table.insert(order, key) end
    pending[key] = {k = 'w', v = total, ends = param}
  else
    local tokens, stamp
    if held then
      tokens, stamp = held.v, held.s
    else
      local h = redis.call('HMGET', key, 't', 's')
      if h[1] and h[2] then tokens, stamp = tonumber(h[1]), tonumber(h[2]) end
      table.insert(order, key)
    end
    if tokens == nil then
      tokens, stamp = limit, now
    else
      local elapsed = now - stamp
      if elapsed < 0 then elapsed = 0 end
      tokens = math.min(limit, tokens + elapsed * param)
      if now > stamp then stamp = now end
    end
    if tokens < amount then return i end
    pending[key] = {k = 'b', v = tokens - amount, s = stamp, cap = limit, rate = param}
  end
end
if commit then
  for _, key in ipairs(order) do
    local p = pending[key]
    if p.k == 'w' then
      redis.call('SET', key, string.format('%.17g', p.v), 'PX', p.ends)
    else
      redis.call('HSET', key, 't', string.format('%.17g', p.v), 's', string.format('%.17g', p.s))
      local full = p.s + (p.cap - p.v) / p.rate
      local ms = math.ceil((full - now) * 1000) + 1000
      redis.call('PEXPIRE', key, ms)
    end
  end
end
return 0
"""


class RedisCounterStore:
    """A :class:`~mcps.stores.counters.CounterStore` shared by replicas through Redis.

    ``client`` is a :class:`redis.asyncio.Redis`; the store owns it and closes it in :meth:`aclose`. Use
    :meth:`from_url` for a client with short timeouts, so that a Redis that is down refuses calls quickly.
    """

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._client = client
        self.prefix = prefix
        self._script = client.register_script(_CONSUME)
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
    ) -> RedisCounterStore:
        """A store on a new client for ``url``; a call waits at most about ``(retries + 1) × socket_timeout``."""
        client = fail_fast_client(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, retries=retries,
            **client_options,
        )  # fmt: skip
        return cls(client, prefix=prefix)

    async def consume(self, charges: Sequence[Charge], *, now: float, commit: bool = True) -> int | None:
        if self._closed:  # a closed redis client would silently reconnect
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="redis counter store is closed")
        if not charges:
            return None
        keys: list[str] = []
        args: list[str | int | float] = [repr(float(now)), "1" if commit else "0"]
        for charge in charges:
            if isinstance(charge, WindowSum):
                key, ends = window_key(charge, now)
                keys.append(self.prefix + key)
                args += ["w", charge.amount, charge.limit, max(1, math.ceil((ends - now) * 1000))]
            else:
                keys.append(self.prefix + charge.key)
                args += ["b", charge.cost, charge.capacity, repr(charge.per_second)]
        try:
            refused = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise McpsError(
                ErrorCode.STORE_UNAVAILABLE, detail=f"redis counter store: {type(exc).__name__}: {exc}"
            ) from exc
        index = int(refused)
        return None if index == 0 else index - 1

    async def ping(self) -> None:
        """Raise MCPS-030 unless Redis answers (readiness checks)."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise McpsError(
                ErrorCode.STORE_UNAVAILABLE, detail=f"redis counter store: {type(exc).__name__}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()
