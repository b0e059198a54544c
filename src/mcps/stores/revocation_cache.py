"""Revocation without a store round trip per message: a local mirror of a Redis revocation store, kept current by
the store's change feed, that fails closed when it cannot be sure it is current.

:class:`CachedRevocationStore` wraps a :class:`~mcps.stores.revocation_redis.RedisRevocationStore` and is itself a
:class:`~mcps.identity.revocation.RevocationStore`. It holds every entry in memory, so :meth:`is_revoked` is a few
dictionary lookups. A background task keeps the mirror current:

1. subscribe to the store's channel (``<prefix>~changes``) on a connection of its own, and wait for the
   confirmation;
2. read a snapshot (the epoch, then every entry, :meth:`RedisRevocationStore.snapshot`): a change committed after
   the subscription is announced on it, a change before it is in the snapshot, so nothing falls between;
3. apply every announcement (``<epoch> <until> <entry>``) as it arrives. The epoch counts changes: an
   announcement that skips one (or one that cannot be read, or a second subscription confirmation, which means
   the client reconnected and may have missed some) makes the mirror unusable until a new snapshot is read;
4. every ``heartbeat`` seconds send ``PING`` on the subscribed connection. Redis answers commands and delivers
   messages on one connection in order, so when the answer to a ``PING`` sent at time *t* arrives, every change
   committed before *t* has been applied. That *t* is the mirror's freshness.

**Fail closed.** :meth:`is_revoked` raises MCPS-030 while the mirror is not built, after the subscription is lost
(a connection error, a reconnection, a gap) until it has been re-established and the snapshot read again, and
whenever its freshness is older than ``max_staleness`` (default one second: a connection that silently stopped
delivering is caught within it). So an answer from this store reflects every revocation committed in Redis at
least ``max_staleness`` before the question — in practice a few milliseconds — or there is no answer.

Writes go to Redis (which announces them) and are applied to this mirror at once. An entry deleted from Redis by hand
(an un-revocation, which mcps never does) stays revoked in a mirror until it rebuilds (a reconnection or a restart).
Writers must use :class:`RedisRevocationStore` (``mcps revoke --store redis://…``): a key set by other means is not
announced, and is seen only at the next rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Final

from redis.exceptions import RedisError

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.revocation import RevocationKey
from mcps.stores.revocation_redis import RedisRevocationStore, RevocationChange

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_MAX_STALENESS", "CachedRevocationStore"]

logger = logging.getLogger("mcps.stores")

DEFAULT_MAX_STALENESS: Final = 1.0
DEFAULT_HEARTBEAT: Final = 0.2
_RETRY_FIRST: Final = 0.05
_RETRY_MAX: Final = 2.0
_PRUNE_EVERY: Final = 60.0


class _Lost(Exception):
    """The change feed can no longer be trusted: rebuild."""


class CachedRevocationStore:
    """A :class:`~mcps.identity.revocation.RevocationStore` answered from a mirror of ``store`` (see the module).

    ``max_staleness``: seconds; older than that, the mirror refuses (MCPS-030). ``heartbeat``: seconds between
    ``PING``\\ s on the subscription (at most half of ``max_staleness``). ``clock``: monotonic seconds (tests inject
    one); ``wall``: the clock expired entries are pruned by. Call :meth:`start` (or use ``async with``) inside the
    event loop that will use it; the store owns ``store`` and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        store: RedisRevocationStore,
        *,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        heartbeat: float = DEFAULT_HEARTBEAT,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < heartbeat <= max_staleness / 2:
            raise ValueError("heartbeat must be positive and at most half of max_staleness")
        self.store = store
        self.max_staleness = max_staleness
        self.heartbeat = heartbeat
        self._clock = clock
        self._wall = wall
        self._entries: dict[RevocationKey, float | None] = {}
        self._epoch = 0
        self._live = False
        self._fresh_as_of = float("-inf")
        self._pings: dict[str, float] = {}
        self._seq = itertools.count(1)
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._pruned = 0.0
        self.rebuilds = 0
        """How many times the mirror was (re)built from a snapshot."""
        self.on_state: Callable[[bool], None] | None = None
        """Called with ``True`` when the mirror becomes usable and ``False`` when it stops being (metrics)."""

    # --- RevocationStore -------------------------------------------------------------------------------------

    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        await self.store.revoke(key, until=until, now=now)
        if until is None or until > now:
            self._apply(key, None if until is None else float(until))

    async def is_revoked(self, keys: Collection[RevocationKey], *, now: float) -> bool:
        if self._closed:
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="cached revocation store is closed")
        if not self._live:
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="revocation change feed is not established")
        age = self._clock() - self._fresh_as_of
        if age > self.max_staleness:
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"revocation mirror is {age:.2f} s old")
        entries = self._entries
        for key in keys:
            if key in entries:
                until = entries[key]
                if until is None or until > now:
                    return True
        return False

    async def aclose(self) -> None:
        self._closed = True
        self._set_live(False)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(McpsError(ErrorCode.STORE_UNAVAILABLE, detail="cached revocation store closed"))
        self._waiters.clear()
        await self.store.aclose()

    # --- life cycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following the change feed (idempotent). Returns at once; :attr:`ready` says when it is usable."""
        if self._closed:
            raise RuntimeError("CachedRevocationStore is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="mcps revocation feed")

    async def __aenter__(self) -> CachedRevocationStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def ready(self) -> bool:
        """Whether :meth:`is_revoked` would answer now (built, subscribed and fresh)."""
        return self._live and self._clock() - self._fresh_as_of <= self.max_staleness

    @property
    def epoch(self) -> int:
        """The number of changes announced that this mirror has applied."""
        return self._epoch

    def __len__(self) -> int:
        return len(self._entries)

    async def sync(self, within: float = 5.0) -> None:
        """Return once every change committed in Redis before this call is in the mirror (MCPS-030 on timeout).

        It waits for the answer to a ``PING`` sent after this call; the tests use it instead of sleeping.
        """
        asked = self._clock()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((asked, waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), within)
        except TimeoutError:
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="revocation mirror did not catch up") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove((asked, waiter))

    # --- the follower task -----------------------------------------------------------------------------------

    async def _follow(self) -> None:
        delay = _RETRY_FIRST
        while not self._closed:
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=False)
            try:
                await self._run(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, McpsError, _Lost) as exc:
                was_live = self._live
                self._set_live(False)
                log = logger.warning if was_live else logger.debug
                log("mcps revocation feed lost (%s); refusing until it is rebuilt", type(exc).__name__)
            except Exception:
                self._set_live(False)
                logger.exception("mcps revocation feed failed; refusing until it is rebuilt")
            else:
                delay = _RETRY_FIRST
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def _run(self, pubsub: Any) -> None:
        await pubsub.subscribe(self.store.channel)
        subscribed = False
        next_ping = 0.0
        asked = self._clock()
        while not self._closed:
            now = self._clock()
            if not subscribed and now - asked > 2 * self.max_staleness:
                raise _Lost("no subscription confirmation")
            if subscribed and now >= next_ping:
                token = str(next(self._seq))
                self._pings[token] = now
                await pubsub.ping(token)
                next_ping = now + self.heartbeat
                if self._pings and now - min(self._pings.values()) > 2 * self.max_staleness:
                    raise _Lost("no answer to PING")
            timeout = max(0.0, min(self.heartbeat, next_ping - now)) if subscribed else self.heartbeat
            message = await pubsub.get_message(timeout=timeout)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "subscribe":
                if subscribed:  # the client reconnected underneath: announcements may have been lost
                    raise _Lost("resubscribed")
                subscribed = True
                await self._rebuild()
                next_ping = 0.0
            elif kind == "message":
                self._announced(message.get("data"))
            elif kind == "pong":
                self._ponged(message.get("data"))

    async def _rebuild(self) -> None:
        self._set_live(False)
        self._pings.clear()
        epoch, entries = await self.store.snapshot()
        self._entries, self._epoch = entries, epoch
        self.rebuilds += 1
        self._pruned = self._wall()
        logger.info("mcps revocation mirror built: %d entries at epoch %d", len(entries), epoch)

    def _announced(self, data: object) -> None:
        change = RevocationChange.parse(data)
        if change is None:
            raise _Lost("an announcement that cannot be read")
        if change.epoch > self._epoch + 1:
            raise _Lost(f"announcements {self._epoch + 1}..{change.epoch - 1} missing")
        self._apply(change.entry, change.until)
        self._epoch = max(self._epoch, change.epoch)

    def _ponged(self, data: object) -> None:
        token = data.decode("ascii", "replace") if isinstance(data, bytes) else str(data)
        sent = self._pings.pop(token, None)
        if sent is None:
            return
        for older in [t for t, at in self._pings.items() if at <= sent]:
            del self._pings[older]  # answers come in order: an earlier PING's answer was lost with nothing after it
        self._fresh_as_of = max(self._fresh_as_of, sent)
        self._set_live(True)
        for asked, waiter in list(self._waiters):
            if asked <= sent and not waiter.done():
                waiter.set_result(None)
        if self._wall() - self._pruned > _PRUNE_EVERY:
            self._prune()

    def _apply(self, key: RevocationKey, until: float | None) -> None:
        if key in self._entries:
            held = self._entries[key]
            until = None if held is None or until is None else max(held, until)
        self._entries[key] = until

    def _prune(self) -> None:
        now = self._wall()
        self._pruned = now
        expired = [key for key, until in self._entries.items() if until is not None and until <= now]
        for key in expired:
            del self._entries[key]

    def _set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            if self.on_state is not None:
                self.on_state(live)
