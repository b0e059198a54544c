"""The children behind the 2026-07-28 side of a stdio upstream, and how requests share them (SPEC.md §12.8).

Every request on a stdio connection needs an ``id``, and a progress token, that no other request on it has in
flight. Many HTTP clients use the same ids (SDK clients count from the same start, and use the id as the progress
token), so requests are relayed through *lanes*, each owning at most one child (a
:class:`~mcps.gateway.stdio_process.ChildSlot`):

* :class:`SharedLane` — unsigned requests, all on one child. Each request gets a fresh integer id on the child's
  stdin (and that id as its progress token), and everything the child sends for it is mapped back to the client's
  own: the answer's ``id``, ``progressToken`` in ``notifications/progress``, ``requestId`` in
  ``notifications/cancelled`` and ``io.modelcontextprotocol/subscriptionId``. Nothing covers those members, so
  rewriting them is harmless.
* :class:`SignerLane` — requests whose ``params._meta`` carries ``mcps/sig``: one child per signer (the block's
  ``kid``), and every message passes unchanged both ways. Rewriting would break the signature, which covers ``id``
  and ``progressToken`` (§4.3), and a verifying server pins its connection to its first signer (§9.2), so two
  signers cannot share a child either. A request whose id or progress token is in flight on its signer's child
  waits until that is free (the gateway signs for every unsigned client with one key, so such collisions are real).
  A request whose client went away (timeout, disconnect) keeps its id and token until the child answers it: the
  app cannot sign a ``notifications/cancelled`` for the signer, a verifying child refuses an unsigned one, and the
  child still has that id in flight. When a request has waited ``call_timeout`` for an id still held by such an
  abandoned request, the child is ended (deliberately: no backoff), since nothing else frees that id.
* :class:`SignerLanes` — the signers' lanes, at most ``max_lanes`` (children), least recently used first: a new
  signer ends the least recently used idle one, or waits (within ``call_timeout``) for one to become idle. A lane
  is idle when no HTTP request is using it; abandoned requests do not count.

A notification from a child with none of those links (``notifications/message``) goes to the one request in flight
on that child when there is exactly one, and is dropped otherwise; so is a request from a child (there are no
server→client requests at 2026-07-28).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcps.gateway._asgi import error_body
from mcps.gateway._sdk import INTERNAL_ERROR, RequestId
from mcps.gateway.stdio_legacy import SessionSettings, as_request_id, cancellation, progress_token
from mcps.gateway.stdio_process import ChildProcess, ChildSlot, Frame, Unreadable, UpstreamUnavailable

__all__ = ["SUBSCRIPTION_ID_META_KEY", "Exchange", "Lane", "SharedLane", "SignerInfo", "SignerLane", "SignerLanes"]

logger = logging.getLogger("mcps.gateway.stdio")

SUBSCRIPTION_ID_META_KEY: Final = "io.modelcontextprotocol/subscriptionId"
_EVENT_BUFFER: Final = 256
"""Notifications waiting for one slow HTTP client; beyond that its call ends (it never blocks the others)."""
_MAX_SCHEMAS: Final = 1024
"""Tool input schemas a signer's lane remembers from the listings it relayed (for ``Mcp-Param-*`` checks)."""


@dataclass(eq=False)
class Exchange:
    """One request relayed to a lane's child, and what the child has sent for it so far."""

    method: str
    client_id: RequestId | None
    client_token: RequestId | None
    child_id: RequestId
    """The id on the child's stdin: a fresh one on the shared child, the client's own on a signer's."""
    outbound: dict[str, Any]
    events: MemoryObjectReceiveStream[dict[str, Any]]
    sink: MemoryObjectSendStream[dict[str, Any]]
    final: dict[str, Any] | None = None
    child: ChildProcess | None = None
    sent: bool = False
    abandoned: bool = False
    """Its client went away before the child answered (signer lanes keep it until the child does)."""

    @classmethod
    def of(cls, request: Mapping[str, Any], child_id: RequestId, outbound: dict[str, Any]) -> Exchange:
        sink, events = anyio.create_memory_object_stream[dict[str, Any]](_EVENT_BUFFER)
        client_id = as_request_id(request.get("id"))
        return cls(str(request["method"]), client_id, progress_token(request), child_id, outbound, events, sink)

    def deliver(self, message: dict[str, Any]) -> None:
        try:
            self.sink.send_nowait(message)
        except anyio.WouldBlock:
            self.finish(error_body(INTERNAL_ERROR, "too many notifications for a slow client", self.client_id))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def finish(self, message: dict[str, Any]) -> None:
        if self.final is None:
            self.final = message
        self.sink.close()

    def close_streams(self) -> None:
        self.sink.close()
        self.events.close()


class Lane:
    """One child and the exchanges relayed to it. Subclasses say how requests are admitted and found again."""

    def __init__(self, settings: SessionSettings, name: str) -> None:
        self.settings = settings
        self.slot = ChildSlot(
            settings.command,
            name=name,
            max_bytes=settings.max_bytes,
            kill_timeout=settings.kill_timeout,
            restart=settings.restart,
            clock=settings.clock,
            write_timeout=settings.call_timeout,
            on_frame=self._from_child,
            on_exit=self._child_exited,
        )
        self.users = 0
        """HTTP requests using this lane (waiting ones included): a lane with any is busy."""
        self.last_used = settings.clock()
        self.on_idle: Callable[[], None] | None = None
        self._tasks: anyio.abc.TaskGroup | None = None

    def attach(self, tasks: anyio.abc.TaskGroup | None) -> None:
        """The task group the child runs in (the app's); ``None`` once the app is closing."""
        self._tasks = tasks

    @property
    def idle_since(self) -> float | None:
        """When the lane became idle (no HTTP request using it), or ``None`` while it is busy."""
        return self.last_used if self.users == 0 else None

    def enter(self) -> None:
        self.users += 1
        self.last_used = self.settings.clock()

    def leave(self) -> None:
        self.users -= 1
        self.last_used = self.settings.clock()
        if self.users == 0 and self.on_idle is not None:
            self.on_idle()

    async def stop(self, *, close: bool = True) -> None:
        """End the child (requests in flight get an error); reaped when this returns. ``close``: for good."""
        with anyio.CancelScope(shield=True):
            await self.slot.stop(close=close)

    async def send(self, exchange: Exchange) -> None:
        """Send an admitted exchange to the child, started if need be; on failure the exchange gets its error."""
        try:
            if self._tasks is None:
                raise UpstreamUnavailable("upstream is shutting down")
            exchange.child = await self.slot.ensure(self._tasks)
            await exchange.child.send(exchange.outbound)
            exchange.sent = True
        except UpstreamUnavailable as exc:
            self._forget(exchange)
            exchange.finish(error_body(INTERNAL_ERROR, str(exc), exchange.client_id))

    async def admit(self, request: dict[str, Any], deadline: float) -> Exchange | None:
        """Register ``request``; ``None`` when it could not be before ``deadline`` (anyio time)."""
        raise NotImplementedError

    def release(self, exchange: Exchange) -> None:
        """The HTTP request of ``exchange`` is over (answered, timed out or gone)."""
        raise NotImplementedError

    # what subclasses provide

    def _registered(self) -> list[Exchange]:
        raise NotImplementedError

    def _forget(self, exchange: Exchange) -> None:
        raise NotImplementedError

    def _answering(self, child_id: Any) -> Exchange | None:
        """The exchange the child's message with this ``id`` (or ``requestId``, subscription id) belongs to."""
        raise NotImplementedError

    def _progressing(self, token: Any) -> Exchange | None:
        raise NotImplementedError

    def _outgoing(self, message: dict[str, Any], exchange: Exchange, *, answer: bool) -> dict[str, Any]:
        """``message`` from the child as its client gets it."""
        return message

    def _answered(self, exchange: Exchange, answer: dict[str, Any]) -> None:
        """Seen an answer (before it is relayed)."""

    # the child

    def _only_live(self) -> Exchange | None:
        live = [exchange for exchange in self._registered() if not exchange.abandoned]
        return live[0] if len(live) == 1 else None

    async def _from_child(self, frame: Frame) -> None:
        if isinstance(frame, Unreadable):
            exchange = self._answering(frame.request_id) or self._only_live()
            if exchange is not None:
                self._forget(exchange)
                exchange.finish(error_body(INTERNAL_ERROR, "upstream sent an invalid message", exchange.client_id))
            return
        value = frame.value
        if "method" not in value:
            exchange = self._answering(value.get("id"))
            if exchange is None:
                logger.debug("upstream %s: dropped an answer to no waiting request", self.slot.name)
                return
            self._forget(exchange)
            self._answered(exchange, value)
            exchange.finish(self._outgoing(value, exchange, answer=True))
            return
        if "id" in value:
            logger.warning("upstream %s: dropped a server→client request (none at 2026-07-28)", self.slot.name)
            return
        exchange = self._related(value)
        if exchange is not None:
            exchange.deliver(self._outgoing(value, exchange, answer=False))

    def _related(self, notification: dict[str, Any]) -> Exchange | None:
        params = notification.get("params")
        if isinstance(params, Mapping):
            if notification.get("method") == "notifications/progress":
                return self._progressing(params.get("progressToken"))
            if notification.get("method") == "notifications/cancelled":
                return self._answering(params.get("requestId"))
            meta = params.get("_meta")
            if isinstance(meta, Mapping) and SUBSCRIPTION_ID_META_KEY in meta:
                return self._answering(meta[SUBSCRIPTION_ID_META_KEY])
        return self._only_live()

    async def _child_exited(self, child: ChildProcess) -> None:
        reason = "upstream session ended" if child.deliberate else "upstream server exited"
        for exchange in self._registered():
            if exchange.child is child:
                self._forget(exchange)
                exchange.finish(error_body(INTERNAL_ERROR, reason, exchange.client_id))


class SharedLane(Lane):
    """Unsigned requests, multiplexed onto one child by rewriting their ids and progress tokens."""

    def __init__(self, settings: SessionSettings) -> None:
        super().__init__(settings, f"{settings.name} [2026-07-28]")
        self._exchanges: dict[RequestId, Exchange] = {}
        self._next_id = 0

    async def admit(self, request: dict[str, Any], deadline: float) -> Exchange:
        return self.open(request)

    def open(self, request: dict[str, Any]) -> Exchange:
        """Register ``request`` under a fresh child-side id (never waits)."""
        self._next_id += 1
        child_id = self._next_id
        outbound = {**request, "id": child_id}
        if progress_token(request) is not None:
            params = request["params"]
            outbound["params"] = {**params, "_meta": {**params["_meta"], "progressToken": child_id}}
        exchange = Exchange.of(request, child_id, outbound)
        self._exchanges[child_id] = exchange
        return exchange

    def release(self, exchange: Exchange) -> None:
        if self._exchanges.get(exchange.child_id) is exchange:
            self._forget(exchange)
            if exchange.final is None and exchange.child is not None:
                exchange.child.send_nowait(cancellation(exchange.child_id, "the client went away or timed out"))
        exchange.close_streams()

    def _registered(self) -> list[Exchange]:
        return list(self._exchanges.values())

    def _forget(self, exchange: Exchange) -> None:
        if self._exchanges.get(exchange.child_id) is exchange:
            del self._exchanges[exchange.child_id]

    def _answering(self, child_id: Any) -> Exchange | None:
        if not isinstance(child_id, int) or isinstance(child_id, bool):
            return None
        return self._exchanges.get(child_id)

    def _progressing(self, token: Any) -> Exchange | None:
        exchange = self._answering(token)
        return exchange if exchange is not None and exchange.client_token is not None else None

    def _outgoing(self, message: dict[str, Any], exchange: Exchange, *, answer: bool) -> dict[str, Any]:
        """``message`` with the child-side ids of ``exchange`` replaced by the client's."""
        out = {**message, "id": exchange.client_id} if answer else dict(message)
        container = "result" if answer else "params"
        body = out.get(container)
        if not isinstance(body, dict):
            return out
        body = dict(body)
        method = message.get("method")
        if not answer and method == "notifications/progress":
            body["progressToken"] = exchange.client_token
        if not answer and method == "notifications/cancelled" and body.get("requestId") == exchange.child_id:
            body["requestId"] = exchange.client_id
        meta = body.get("_meta")
        if isinstance(meta, dict) and meta.get(SUBSCRIPTION_ID_META_KEY) == exchange.child_id:
            body["_meta"] = {**meta, SUBSCRIPTION_ID_META_KEY: exchange.client_id}
        out[container] = body
        return out


class SignerLane(Lane):
    """Signed requests of one signer, on a child of their own, relayed unchanged both ways."""

    def __init__(self, settings: SessionSettings, kid: str) -> None:
        super().__init__(settings, f"{settings.name} [2026-07-28 signer {kid[:8]}]")
        self.kid = kid
        self.schemas: dict[str, Any] = {}
        """Tool name → ``inputSchema``, from the ``tools/list`` answers relayed from this child."""
        self.waiting = 0
        """Requests waiting for an id or progress token in flight."""
        self._by_id: dict[RequestId, Exchange] = {}
        self._by_token: dict[RequestId, Exchange] = {}
        self._freed = anyio.Event()

    @property
    def calls(self) -> int:
        """Requests on the child whose client is waiting for the answer."""
        return sum(not exchange.abandoned for exchange in self._by_id.values())

    @property
    def abandoned(self) -> int:
        """Requests on the child whose client went away, not answered yet (their ids are still taken)."""
        return sum(exchange.abandoned for exchange in self._by_id.values())

    async def admit(self, request: dict[str, Any], deadline: float) -> Exchange | None:
        """Register ``request`` as it is, once its id and progress token are free on this child."""
        request_id, token = as_request_id(request.get("id")), progress_token(request)
        if request_id is None:
            raise ValueError("a signed request relayed to a child needs an id")
        blocker: Exchange | None = None
        self.waiting += 1
        try:
            with anyio.CancelScope(deadline=deadline):
                while (blocker := self._holder(request_id, token)) is not None:
                    await self._freed.wait()
        finally:
            self.waiting -= 1
        if blocker is None:
            exchange = Exchange.of(request, request_id, request)
            self._by_id[request_id] = exchange
            if token is not None:
                self._by_token[token] = exchange
            return exchange
        if blocker.abandoned and self._holder(request_id, token) is blocker:
            logger.warning(
                "upstream %s: request id %r held by a request nobody waits for; ending the child to free it",
                self.slot.name,
                request_id,
            )
            await self.stop(close=False)
        return None

    def release(self, exchange: Exchange) -> None:
        exchange.close_streams()
        if self._by_id.get(exchange.child_id) is not exchange:
            return  # answered, failed, or never admitted
        child = exchange.child
        if exchange.sent and child is not None and not child.exited.is_set():
            exchange.abandoned = True  # the child has it in flight: its id stays taken until it answers
            exchange.outbound = {}
            logger.info("upstream %s: request %r abandoned by its client", self.slot.name, exchange.client_id)
        else:
            self._forget(exchange)

    def _holder(self, request_id: RequestId, token: RequestId | None) -> Exchange | None:
        holder = self._by_id.get(request_id)
        if holder is None and token is not None:
            holder = self._by_token.get(token)
        return holder

    def _registered(self) -> list[Exchange]:
        return list(self._by_id.values())

    def _forget(self, exchange: Exchange) -> None:
        if self._by_id.get(exchange.child_id) is exchange:
            del self._by_id[exchange.child_id]
        token = exchange.client_token
        if token is not None and self._by_token.get(token) is exchange:
            del self._by_token[token]
        self._freed.set()
        self._freed = anyio.Event()

    def _answering(self, child_id: Any) -> Exchange | None:
        request_id = as_request_id(child_id)
        return None if request_id is None else self._by_id.get(request_id)

    def _progressing(self, token: Any) -> Exchange | None:
        request_id = as_request_id(token)
        return None if request_id is None else self._by_token.get(request_id)

    def _answered(self, exchange: Exchange, answer: dict[str, Any]) -> None:
        result = answer.get("result")
        tools = result.get("tools") if exchange.method == "tools/list" and isinstance(result, Mapping) else None
        if not isinstance(tools, list):
            return
        if len(self.schemas) + len(tools) > _MAX_SCHEMAS:
            self.schemas.clear()
        for tool in tools[:_MAX_SCHEMAS]:
            if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
                self.schemas[tool["name"]] = tool.get("inputSchema")


@dataclass(frozen=True)
class SignerInfo:
    """One signer's lane, for observation: its key id, its child's pid (``None`` while none runs), requests on
    the child whose client waits, requests waiting for an id or token in flight, abandoned requests the child has
    not answered, and whether any HTTP request is using it (a busy lane is never ended to make room)."""

    kid: str
    pid: int | None
    calls: int
    waiting: int
    abandoned: int
    busy: bool


class SignerLanes:
    """The signers' lanes of one upstream: at most ``max_lanes``, the least recently used idle one ended for a new
    signer."""

    def __init__(self, settings: SessionSettings, max_lanes: int) -> None:
        self.settings = settings
        self.max_lanes = max_lanes
        self._lanes: OrderedDict[str, SignerLane] = OrderedDict()
        self.waiting = 0
        """New signers' requests waiting for a child (every one busy)."""
        self._lock = anyio.Lock()
        self._idle = anyio.Event()
        self._tasks: anyio.abc.TaskGroup | None = None

    def attach(self, tasks: anyio.abc.TaskGroup | None) -> None:
        """The task group the children run in (the app's); ``None`` once the app is closing."""
        self._tasks = tasks
        for lane in self._lanes.values():
            lane.attach(tasks)

    def info(self) -> list[SignerInfo]:
        """The lanes, least recently used first."""
        return [
            SignerInfo(
                lane.kid,
                child.pid if (child := lane.slot.running) else None,
                lane.calls,
                lane.waiting,
                lane.abandoned,
                lane.users > 0,
            )
            for lane in self._lanes.values()
        ]

    def schema(self, kid: str, tool: str) -> Any:
        """The ``inputSchema`` of ``tool`` as ``kid``'s child last listed it; ``None`` when not seen."""
        lane = self._lanes.get(kid)
        return None if lane is None else lane.schemas.get(tool)

    async def acquire(self, kid: str, deadline: float) -> SignerLane | None:
        """``kid``'s lane, entered (:meth:`Lane.leave` it after use); ``None`` when none was free before
        ``deadline`` (anyio time)."""
        lane = self._lanes.get(kid)
        if lane is None:
            self.waiting += 1
            try:
                with anyio.CancelScope(deadline=deadline):
                    lane = await self._new_lane(kid)
            finally:
                self.waiting -= 1
            if lane is None:
                return None
        self._lanes.move_to_end(kid)
        lane.enter()
        return lane

    async def _new_lane(self, kid: str) -> SignerLane:
        async with self._lock:
            while (lane := self._lanes.get(kid)) is None:
                if len(self._lanes) < self.max_lanes:
                    lane = SignerLane(self.settings, kid)
                    lane.attach(self._tasks)
                    lane.on_idle = self._became_idle
                    self._lanes[kid] = lane
                    break
                victim = next((other for other in self._lanes.values() if other.users == 0), None)
                if victim is None:
                    await self._idle.wait()  # every lane is busy
                    continue
                del self._lanes[victim.kid]
                logger.info(
                    "upstream %s: ending the idle child of signer %s for a new one", self.settings.name, victim.kid[:8]
                )
                await victim.stop()  # reaped before its place is taken
            return lane

    def _became_idle(self) -> None:
        self._idle.set()
        self._idle = anyio.Event()

    async def reap_idle(self, now: float, idle_timeout: float) -> int:
        """End the children of lanes idle for ``idle_timeout``; how many were running."""
        ended = 0
        for kid, lane in list(self._lanes.items()):
            since = lane.idle_since
            if since is None or now - since < idle_timeout or self._lanes.get(kid) is not lane:
                continue
            del self._lanes[kid]
            ended += lane.slot.running is not None
            await lane.stop()
        return ended

    async def close(self) -> None:
        """End every child for good; all reaped when this returns."""
        lanes = list(self._lanes.values())
        self._lanes.clear()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as closing:
                for lane in lanes:
                    closing.start_soon(lane.stop)
