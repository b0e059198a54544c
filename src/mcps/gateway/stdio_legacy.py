"""One 2025-era (handshake) Streamable HTTP session in front of one stdio child: a stdio server is one session.

The HTTP side is the SDK's own ``StreamableHTTPServerTransport`` (SSE framing, priming events and event ids,
``Last-Event-ID`` resumption from a bounded :class:`ReplayBuffer`, the standalone GET stream, session-id checks,
DELETE). It hands us the client's messages on a read stream and takes ours on a write stream, where
``ServerMessageMetadata.related_request_id`` puts a message on the SSE stream of the POST it belongs to. This
module bridges those two streams to the child's stdin and stdout:

* client → child: every message as received (ids unchanged: one session, one child). A request is tracked until
  its answer, with a timer (``call_timeout``): on expiry the client gets a JSON-RPC error (-32603) and the child a
  ``notifications/cancelled``. A request the client cancels is answered -32800 (as the SDK's transport does), so
  that its stream ends.
* child → client: a response goes to its request's stream (the transport routes by id); an answer to a request
  no longer waiting is dropped. A notification or a server→client request (sampling, elicitation, roots/list,
  ping) goes to the stream of the request it relates to: ``notifications/progress`` by its ``progressToken``;
  anything else to the one call in flight when there is exactly one (stdio carries no other link to a request);
  otherwise to the session's standalone GET stream.
* the child exits mid-call: every call sent to it gets a JSON-RPC error at once. The next request restarts it
  (:class:`~mcps.gateway.stdio_process.ChildSlot`, with backoff) and replays the client's ``initialize`` and
  ``notifications/initialized`` to it first, so the session goes on; state the old child held is gone.

The messages relayed are the SDK's parse of them, re-serialized: every member of ``params``, ``result``,
``error`` and their ``_meta`` (``mcps/sig`` included) is kept with its value; unknown top-level members are
dropped, as the SDK itself does.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import anyio
import anyio.abc
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from mcps.gateway._sdk import (
    INTERNAL_ERROR,
    ErrorData,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    ServerMessageMetadata,
    SessionMessage,
    StreamableHTTPServerTransport,
    StreamId,
    jsonrpc_message_adapter,
)
from mcps.gateway.stdio_process import (
    ChildProcess,
    ChildSlot,
    Clock,
    Frame,
    RestartPolicy,
    StdioCommand,
    Unreadable,
    UpstreamUnavailable,
)

__all__ = [
    "LegacySession",
    "ReplayBuffer",
    "SessionSettings",
    "as_request_id",
    "cancellation",
    "progress_token",
    "validated_message",
]

logger = logging.getLogger("mcps.gateway.stdio")

_REINITIALIZE_PREFIX: Final = "mcps-gateway-reinitialize-"
REQUEST_CANCELLED: Final = -32800
"""What the SDK's 2025 transport answers a request the client cancelled (the server itself stays silent)."""


def as_request_id(value: Any) -> RequestId | None:
    """``value`` when it is a valid JSON-RPC id (an integer or a string, never a boolean or a float)."""
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def progress_token(message: Mapping[str, Any]) -> RequestId | None:
    """The ``params._meta.progressToken`` of a request (or ``params.progressToken`` of a progress notification)."""
    params = message.get("params")
    if not isinstance(params, Mapping):
        return None
    if message.get("method") == "notifications/progress":
        return as_request_id(params.get("progressToken"))
    meta = params.get("_meta")
    return as_request_id(meta.get("progressToken")) if isinstance(meta, Mapping) else None


def cancellation(request_id: RequestId, reason: str) -> dict[str, Any]:
    """``notifications/cancelled`` for ``request_id``."""
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": reason},
    }


class ReplayBuffer(EventStore):
    """The latest SSE events of one session, at most about ``max_bytes`` of them, for ``Last-Event-ID`` resumption.

    Event ids are a per-session counter. The oldest events are forgotten first; a resumption from a forgotten
    event replays nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._events: deque[tuple[EventId, StreamId, str | None]] = deque()
        self._size = 0
        self._next = 0

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        self._next += 1
        event_id = str(self._next)
        data = None if message is None else message.model_dump_json(by_alias=True, exclude_unset=True)
        self._events.append((event_id, stream_id, data))
        self._size += len(data or "")
        while self._size > self._max_bytes and len(self._events) > 1:
            self._size -= len(self._events.popleft()[2] or "")
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        events = list(self._events)
        for index, (event_id, stream_id, _) in enumerate(events):
            if event_id == last_event_id:
                for later_id, later_stream, data in events[index + 1 :]:
                    if later_stream == stream_id and data is not None:
                        message = jsonrpc_message_adapter.validate_json(data, by_name=False)
                        await send_callback(EventMessage(message, later_id))
                return stream_id
        return None


class _Sink(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


@dataclass
class _Call:
    """A client request waiting for the child's answer."""

    token: RequestId | None
    timer: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    child: ChildProcess | None = None


@dataclass(frozen=True)
class SessionSettings:
    """What every session of one upstream shares."""

    command: StdioCommand
    name: str
    max_bytes: int
    call_timeout: float
    kill_timeout: float
    restart: RestartPolicy
    replay_bytes: int
    clock: Clock


class LegacySession:
    """A 2025-era session: the SDK transport in front (:meth:`handle`), one stdio child behind (:meth:`run`)."""

    def __init__(self, session_id: str, settings: SessionSettings) -> None:
        self.id = session_id
        self.settings = settings
        self.transport = StreamableHTTPServerTransport(
            session_id, event_store=ReplayBuffer(settings.replay_bytes) if settings.replay_bytes > 0 else None
        )
        self.slot = ChildSlot(
            settings.command,
            name=f"{settings.name} [session {session_id[:8]}]",
            max_bytes=settings.max_bytes,
            kill_timeout=settings.kill_timeout,
            restart=settings.restart,
            clock=settings.clock,
            write_timeout=settings.call_timeout,
            on_frame=self._from_child,
            on_exit=self._child_exited,
            on_restart=self._reinitialize,
        )
        self.active = 0
        """HTTP requests being served (an open GET stream counts): a session with any is not idle."""
        self.last_seen = settings.clock()
        self.ended = anyio.Event()
        self._pending: dict[RequestId, _Call] = {}
        self._tokens: dict[RequestId, RequestId] = {}
        self._initialize: dict[str, Any] | None = None
        self._initialized: dict[str, Any] | None = None
        self._reinit: tuple[str, anyio.Event, list[bool]] | None = None
        self._sink: _Sink | None = None
        self._tasks: anyio.abc.TaskGroup | None = None

    @property
    def calls(self) -> int:
        """Requests sent to the child and not answered yet."""
        return len(self._pending)

    @property
    def idle_since(self) -> float | None:
        """When the session became idle (nothing served, nothing pending), or ``None`` while it is busy."""
        return self.last_seen if self.active == 0 and not self._pending else None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Start the child (``started`` once it runs; :class:`UpstreamUnavailable` before, if it cannot), then relay
        until the transport is terminated. The child is ended, and reaped, before this returns."""
        failure: UpstreamUnavailable | None = None
        try:
            async with self.transport.connect() as (read_stream, write_stream), anyio.create_task_group() as tasks:
                self._sink, self._tasks = write_stream, tasks
                try:
                    await self.slot.ensure(tasks)
                except UpstreamUnavailable as exc:
                    failure = exc  # raised below, outside the task groups (which would wrap it in a group)
                    await self.transport.terminate()
                else:
                    task_status.started()
                    with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                        async for item in read_stream:
                            if isinstance(item, SessionMessage):
                                await self._to_child(item.message)
                await self.slot.stop()
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.slot.stop()
                if not self.transport.is_terminated:
                    await self.transport.terminate()
            self.ended.set()
        if failure is not None:
            raise failure

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request of this session (the SDK transport answers it)."""
        self.active += 1
        try:
            await self.transport.handle_request(scope, receive, send)
        finally:
            self.active -= 1
            self.last_seen = self.settings.clock()

    async def end_child(self) -> None:
        """End the child for good (calls in flight get an error); reaped when this returns."""
        with anyio.CancelScope(shield=True):
            await self.slot.stop()

    async def close(self) -> None:
        """End the session: its child first (reaped when this returns), then its transport."""
        with anyio.CancelScope(shield=True):
            await self.slot.stop()
            if not self.transport.is_terminated:
                await self.transport.terminate()

    # client → child

    async def _to_child(self, message: JSONRPCMessage) -> None:
        value = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if isinstance(message, JSONRPCRequest):
            if message.method == "initialize" and self._initialize is None:
                self._initialize = value
            call = self._track(message.id, value)
            try:
                call.child = await self.slot.ensure(self._require_tasks())
                await call.child.send(value)
            except UpstreamUnavailable as exc:
                if self._forget(message.id) is call:
                    await self._answer_error(message.id, str(exc))
            return
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/initialized":
            self._initialized = value
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            cancelled = as_request_id((message.params or {}).get("requestId"))
            if cancelled is not None and self._forget(cancelled) is not None:
                # The child will not answer a cancelled request; end its stream as the SDK's transport does.
                error = ErrorData(code=REQUEST_CANCELLED, message="Request cancelled")
                await self._to_client(JSONRPCError(jsonrpc="2.0", id=cancelled, error=error), None)
        if (child := self.slot.running) is not None:  # notifications and answers never restart a child
            with suppress(UpstreamUnavailable):
                await child.send(value)

    def _track(self, request_id: RequestId, value: Mapping[str, Any]) -> _Call:
        if self._forget(request_id) is not None:
            logger.debug("session %s: request id %r reused while in flight", self.id[:8], request_id)
        call = _Call(progress_token(value))
        self._pending[request_id] = call
        if call.token is not None:
            self._tokens[call.token] = request_id
        self._require_tasks().start_soon(self._expire, request_id, call)
        return call

    def _forget(self, request_id: RequestId) -> _Call | None:
        call = self._pending.pop(request_id, None)
        if call is not None:
            call.timer.cancel()
            if call.token is not None and self._tokens.get(call.token) == request_id:
                del self._tokens[call.token]
        return call

    async def _expire(self, request_id: RequestId, call: _Call) -> None:
        with call.timer:
            await anyio.sleep(self.settings.call_timeout)
        if call.timer.cancel_called or self._pending.get(request_id) is not call:
            return
        self._forget(request_id)
        self.slot.send_nowait(cancellation(request_id, "timed out at the gateway"))
        logger.warning("session %s: call %r timed out", self.id[:8], request_id)
        await self._answer_error(request_id, "upstream call timed out")

    # child → client

    async def _from_child(self, frame: Frame) -> None:
        if isinstance(frame, Unreadable):
            request_id = frame.request_id if frame.request_id in self._pending else self._only_pending()
            if request_id is not None and self._forget(request_id) is not None:
                await self._answer_error(request_id, "upstream sent an invalid message")
            return
        value = frame.value
        if "method" not in value:
            await self._response_from_child(value)
            return
        message = validated_message(value)
        if message is None or not isinstance(message, JSONRPCRequest | JSONRPCNotification):
            logger.warning("session %s: dropped a malformed message from the upstream", self.id[:8])
            return
        token = progress_token(value) if message.method == "notifications/progress" else None
        related = self._tokens.get(token) if token is not None else None
        await self._to_client(message, related if related is not None else self._only_pending())

    async def _response_from_child(self, value: dict[str, Any]) -> None:
        request_id = as_request_id(value.get("id"))
        if self._reinit is not None and request_id == self._reinit[0]:
            self._reinit[2].append("result" in value)
            self._reinit[1].set()
            return
        if request_id is None or self._forget(request_id) is None:
            logger.debug("session %s: dropped an answer to no waiting request", self.id[:8])
            return
        message = validated_message(value)
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            await self._to_client(message, None)
        else:
            await self._answer_error(request_id, "upstream sent an invalid message")

    async def _child_exited(self, child: ChildProcess) -> None:
        if self._reinit is not None:
            self._reinit[1].set()
        reason = "upstream session ended" if child.deliberate else "upstream server exited"
        for request_id, call in list(self._pending.items()):
            if call.child is child and self._forget(request_id) is not None:
                await self._answer_error(request_id, reason)

    async def _reinitialize(self, child: ChildProcess) -> None:
        """Replay the client's handshake to a restarted child, so that the session can go on."""
        if self._initialize is None:
            return
        request_id = _REINITIALIZE_PREFIX + uuid.uuid4().hex
        outcome: list[bool] = []
        self._reinit = (request_id, anyio.Event(), outcome)
        try:
            await child.send({**self._initialize, "id": request_id})
            with anyio.move_on_after(self.settings.call_timeout):
                await self._reinit[1].wait()
            if outcome != [True]:
                raise UpstreamUnavailable("upstream server did not initialize")
            if self._initialized is not None:
                await child.send(self._initialized)
        finally:
            self._reinit = None
        logger.info("session %s: upstream restarted and initialized again", self.id[:8])

    def _only_pending(self) -> RequestId | None:
        return next(iter(self._pending)) if len(self._pending) == 1 else None

    async def _answer_error(self, request_id: RequestId, message: str) -> None:
        error = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INTERNAL_ERROR, message=message))
        await self._to_client(error, None)

    async def _to_client(self, message: JSONRPCMessage, related: RequestId | None) -> None:
        if self._sink is None:
            return
        metadata = None if related is None else ServerMessageMetadata(related_request_id=related)
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._sink.send(SessionMessage(message, metadata=metadata))

    def _require_tasks(self) -> anyio.abc.TaskGroup:
        if self._tasks is None:  # pragma: no cover - set before the first message can arrive
            raise UpstreamUnavailable("upstream session is not running")
        return self._tasks


def validated_message(value: Mapping[str, Any]) -> JSONRPCMessage | None:
    """``value`` as the SDK's message model, or ``None`` when it is not a JSON-RPC message the SDK accepts."""
    try:
        return jsonrpc_message_adapter.validate_python(value, by_name=False)
    except ValidationError:
        return None
