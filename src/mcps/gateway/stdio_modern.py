"""2026-07-28 (stateless) Streamable HTTP requests, multiplexed onto one shared stdio child per upstream.

Each POST is self-contained: one request carrying its own ``_meta`` envelope (protocol version, client
capabilities and info), no ``initialize``, no session. A stdio connection serves one protocol era, decided by its
first request (``serve_dual_era_loop`` in the SDK): every 2026 request of an upstream goes to one shared child,
which only ever sees enveloped requests, so it is a 2026 connection for good.

Multiplexing rewrites what would collide between clients, and maps it back on the way out:

* the request ``id``: each request gets a fresh integer id on the child's stdin; the child's answer is mapped
  back to the client's id and goes to that HTTP response only (one client never sees another's answer);
* ``params._meta.progressToken`` (SDK clients use their request id, which collides across clients): replaced by
  the child-side id, and mapped back in ``notifications/progress``;
* ``io.modelcontextprotocol/subscriptionId`` (a ``subscriptions/listen`` stream's frames and result carry the
  listen request's id) and ``requestId`` of a ``notifications/cancelled`` from the child: mapped back.

A notification with no such link (``notifications/message``) goes to the one request in flight when there is
exactly one, and is dropped otherwise. Every other member, ``_meta`` included (``mcps/sig``), is relayed as is.
Note that a rewritten ``id`` or ``progressToken`` is not what a signer signed: an upstream that verifies mcps
signatures end to end cannot be shared this way (see the gateway's design notes).

HTTP, as the SDK's modern entry answers (``mcp.server._streamable_http_modern``): the same checks in the same
order (405, 406, 413, parse error, body shape, duplicated routing headers, the envelope/header ladder of
``mcp.shared.inbound``, ``Mcp-Param-*`` against the tool's ``inputSchema`` from the child's own ``tools/list``);
a JSON body when the answer comes before any notification for the request (HTTP status from the SDK's
error-code table), else ``text/event-stream`` (also after 15 s of silence, with keepalive comments). A client
notification is acknowledged with 202 and dropped, as the SDK does. The client closing its response cancels the
call (``notifications/cancelled`` to the child). ``subscriptions/listen`` has no ``call_timeout``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import Limits, parse_message
from mcps.gateway._asgi import error_body, read_body, send_error, send_json
from mcps.gateway._sdk import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    ERROR_CODE_HTTP_STATUS,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    MCP_PARAM_HEADER_PREFIX,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    InboundLadderRejection,
    InboundModernRoute,
    JSONRPCNotification,
    JSONRPCRequest,
    RequestId,
    check_accept_headers,
    classify_inbound_request,
    find_duplicated_routing_header,
    unsupported_protocol_version_rejection,
    validate_mcp_param_headers,
)
from mcps.gateway.stdio_legacy import SessionSettings, as_request_id, cancellation, progress_token
from mcps.gateway.stdio_process import ChildProcess, ChildSlot, Frame, Unreadable, UpstreamUnavailable

__all__ = ["SharedUpstream"]

logger = logging.getLogger("mcps.gateway.stdio")

SUBSCRIPTION_ID_META_KEY: Final = "io.modelcontextprotocol/subscriptionId"
_SSE_PING_INTERVAL: Final = 15.0
_EVENT_BUFFER: Final = 256
"""Notifications waiting for one slow HTTP client; beyond that its call ends (it never blocks the others)."""
_LIST_PAGE_CAP: Final = 100
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_INVALID_BODY: Final = "Body must be a single JSON-RPC request or notification object"
_PARAM_PREFIX: Final = MCP_PARAM_HEADER_PREFIX.lower()
_JSON: Final = "application/json"


@dataclass
class _Exchange:
    """One request relayed to the shared child, and what the child has sent for it so far."""

    child_id: int
    client_id: RequestId | None
    client_token: RequestId | None
    outbound: dict[str, Any]
    events: MemoryObjectReceiveStream[dict[str, Any]]
    sink: MemoryObjectSendStream[dict[str, Any]]
    final: dict[str, Any] | None = None
    child: ChildProcess | None = None

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


class SharedUpstream:
    """The 2026-07-28 side of one stdio upstream: one shared child, many concurrent HTTP requests."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.slot = ChildSlot(
            settings.command,
            name=f"{settings.name} [2026-07-28]",
            max_bytes=settings.max_bytes,
            kill_timeout=settings.kill_timeout,
            restart=settings.restart,
            clock=settings.clock,
            write_timeout=settings.call_timeout,
            on_frame=self._from_child,
            on_exit=self._child_exited,
        )
        self.last_used = settings.clock()
        self._limits = Limits(max_bytes=settings.max_bytes)
        self._exchanges: dict[int, _Exchange] = {}
        self._next_id = 0
        self._tasks: anyio.abc.TaskGroup | None = None

    def attach(self, tasks: anyio.abc.TaskGroup | None) -> None:
        """The task group the shared child runs in (the app's); ``None`` once the app is closing."""
        self._tasks = tasks

    async def close(self) -> None:
        """End the shared child for good (requests in flight get an error); reaped when this returns."""
        with anyio.CancelScope(shield=True):
            await self.slot.stop()

    async def reap_idle(self, now: float, idle_timeout: float) -> bool:
        """End the child if nothing has used it for ``idle_timeout`` (the next request starts a new one)."""
        if self._exchanges or self.slot.running is None or now - self.last_used < idle_timeout:
            return False
        with anyio.CancelScope(shield=True):
            await self.slot.stop(close=False)
        return True

    # HTTP

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one 2026-07-28 HTTP request as an SDK server would."""
        request = Request(scope)
        if request.method == "POST" and not request.headers.get("content-type", "").lower().startswith(_JSON):
            await send_error(send, 400, INVALID_REQUEST, "Invalid Content-Type header")
            return
        if request.method != "POST":
            await send_json(send, 405, None, [(b"allow", b"POST")])
            return
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse):
            await send_json(send, 406, None)
            return
        body = await read_body(scope, receive, self.settings.max_bytes)
        if body is None:
            await send_error(send, 413, INVALID_REQUEST, "Request body too large")
            return
        try:
            decoded = parse_message(body, self._limits)
        except McpsError as error:
            if error.code in (ErrorCode.BATCH_REJECTED, ErrorCode.NOT_JSONRPC):
                await send_error(send, 400, INVALID_REQUEST, _INVALID_BODY)
            else:
                await send_error(send, 400, PARSE_ERROR, "Parse error")
            return
        if "id" not in decoded:
            await self._acknowledge(decoded, request, send)
            return
        request_id = as_request_id(decoded["id"])
        try:
            JSONRPCRequest.model_validate(decoded)
        except ValidationError:
            request_id = None
        if request_id is None:  # pydantic would take 1.0 or true for an id: they are not ids
            await send_error(send, 400, INVALID_REQUEST, _INVALID_BODY)
            return
        if (duplicated := find_duplicated_routing_header(request.headers.items())) is not None:
            await _reject(
                send, InboundLadderRejection(HEADER_MISMATCH, f"{duplicated} header appears more than once"), request_id
            )
            return
        verdict = classify_inbound_request(decoded, headers=dict(request.headers))
        if isinstance(verdict, InboundLadderRejection):
            await _reject(send, verdict, request_id)
            return
        if (rejection := await self._param_rejection(request, decoded, verdict)) is not None:
            await _reject(send, rejection, request_id)
            return
        exchange = self._open(decoded)
        listen = decoded["method"] == "subscriptions/listen"
        try:
            await self._answer(exchange, receive, send, None if listen else self.settings.call_timeout)
        finally:
            self._close(exchange)

    async def _acknowledge(self, decoded: dict[str, Any], request: Request, send: Send) -> None:
        try:
            JSONRPCNotification.model_validate(decoded)
        except ValidationError:
            await send_error(send, 400, INVALID_REQUEST, _INVALID_BODY)
            return
        requested = request.headers.get("mcp-protocol-version", "")
        if (unsupported := unsupported_protocol_version_rejection(requested)) is not None:
            await _reject(send, unsupported, None)
            return
        await send_json(send, 202, None)

    async def _answer(self, exchange: _Exchange, receive: Receive, send: Send, time_limit: float | None) -> None:
        committed = False
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
            with anyio.move_on_after(math.inf if time_limit is None else time_limit):
                await self._send(exchange)
                while True:
                    event: dict[str, Any] | None = None
                    with anyio.move_on_after(_SSE_PING_INTERVAL):
                        try:
                            event = await exchange.events.receive()
                        except anyio.EndOfStream:
                            break
                    if not committed:
                        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                        committed = True
                    body = b": ping\r\n\r\n" if event is None else _sse_event(event)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            final = exchange.final
            if final is None:
                logger.warning("upstream %s: call %r timed out", self.settings.name, exchange.client_id)
                final = error_body(INTERNAL_ERROR, "upstream call timed out", exchange.client_id)
            if committed:
                await send({"type": "http.response.body", "body": _sse_event(final), "more_body": False})
            else:
                await send_json(send, _status(final), final)
            tasks.cancel_scope.cancel()

    async def _send(self, exchange: _Exchange) -> None:
        try:
            if self._tasks is None:
                raise UpstreamUnavailable("upstream is shutting down")
            exchange.child = await self.slot.ensure(self._tasks)
            await exchange.child.send(exchange.outbound)
        except UpstreamUnavailable as exc:
            exchange.finish(error_body(INTERNAL_ERROR, str(exc), exchange.client_id))

    async def _param_rejection(
        self, request: Request, decoded: dict[str, Any], verdict: InboundModernRoute
    ) -> InboundLadderRejection | None:
        """``Mcp-Param-*`` headers against the tool's ``inputSchema`` (from the child's ``tools/list``), as the SDK
        checks them: only for ``tools/call`` with arguments or such headers; skipped when the schema is not found."""
        params = decoded.get("params")
        if decoded["method"] != "tools/call" or not isinstance(params, Mapping):
            return None
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or (arguments is not None and not isinstance(arguments, Mapping)):
            return None
        arguments = arguments or {}
        if not arguments and not any(key.startswith(_PARAM_PREFIX) for key in request.headers):
            return None
        schema = await self._input_schema(name, verdict)
        return None if schema is None else validate_mcp_param_headers(schema, arguments, request.headers)

    async def _input_schema(self, name: str, verdict: InboundModernRoute) -> Any:
        meta: dict[str, Any] = {
            PROTOCOL_VERSION_META_KEY: verdict.protocol_version,
            CLIENT_CAPABILITIES_META_KEY: verdict.client_capabilities,
        }
        if verdict.client_info is not None:
            meta[CLIENT_INFO_META_KEY] = verdict.client_info
        params: dict[str, Any] = {"_meta": meta}
        seen: set[str] = set()
        for _ in range(_LIST_PAGE_CAP):
            result = await self._internal_call("tools/list", params)
            tools = result.get("tools") if result is not None else None
            if not isinstance(tools, list):
                return None
            for tool in tools:
                if isinstance(tool, Mapping) and tool.get("name") == name:
                    return tool.get("inputSchema")
            cursor = result.get("nextCursor") if result is not None else None
            if not isinstance(cursor, str) or cursor in seen:
                return None
            seen.add(cursor)
            params = {"_meta": meta, "cursor": cursor}
        return None

    async def _internal_call(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        exchange = self._open({"jsonrpc": "2.0", "id": None, "method": method, "params": params})
        try:
            with anyio.move_on_after(self.settings.call_timeout):
                await self._send(exchange)
                async for _ in exchange.events:
                    pass
            result = (exchange.final or {}).get("result")
            return result if isinstance(result, dict) else None
        finally:
            self._close(exchange)

    # the child

    def _open(self, request: dict[str, Any]) -> _Exchange:
        self._next_id += 1
        child_id = self._next_id
        client_token = progress_token(request)
        outbound = {**request, "id": child_id}
        if client_token is not None:
            params = request["params"]
            outbound["params"] = {**params, "_meta": {**params["_meta"], "progressToken": child_id}}
        sink, events = anyio.create_memory_object_stream[dict[str, Any]](_EVENT_BUFFER)
        exchange = _Exchange(child_id, as_request_id(request.get("id")), client_token, outbound, events, sink)
        self._exchanges[child_id] = exchange
        self.last_used = self.settings.clock()
        return exchange

    def _close(self, exchange: _Exchange) -> None:
        if self._exchanges.get(exchange.child_id) is exchange:
            del self._exchanges[exchange.child_id]
            if exchange.final is None and exchange.child is not None:
                exchange.child.send_nowait(cancellation(exchange.child_id, "the client went away or timed out"))
        exchange.sink.close()
        exchange.events.close()
        self.last_used = self.settings.clock()

    async def _from_child(self, frame: Frame) -> None:
        if isinstance(frame, Unreadable):
            exchange = self._exchange(frame.request_id) or self._only_exchange()
            if exchange is not None:
                self._exchanges.pop(exchange.child_id, None)
                exchange.finish(error_body(INTERNAL_ERROR, "upstream sent an invalid message", exchange.client_id))
            return
        value = frame.value
        if "method" not in value:
            exchange = self._exchange(value.get("id"))
            if exchange is None:
                logger.debug("upstream %s: dropped an answer to no waiting request", self.settings.name)
                return
            del self._exchanges[exchange.child_id]
            exchange.finish(_mapped(value, exchange, answer=True))
            return
        if "id" in value:
            logger.warning("upstream %s: dropped a server→client request (none at 2026-07-28)", self.settings.name)
            return
        exchange = self._related(value)
        if exchange is not None:
            exchange.deliver(_mapped(value, exchange, answer=False))

    def _related(self, notification: dict[str, Any]) -> _Exchange | None:
        params = notification.get("params")
        if isinstance(params, Mapping):
            if notification.get("method") == "notifications/progress":
                exchange = self._exchange(params.get("progressToken"))
                return exchange if exchange is not None and exchange.client_token is not None else None
            if notification.get("method") == "notifications/cancelled":
                return self._exchange(params.get("requestId"))
            meta = params.get("_meta")
            if isinstance(meta, Mapping) and SUBSCRIPTION_ID_META_KEY in meta:
                return self._exchange(meta[SUBSCRIPTION_ID_META_KEY])
        return self._only_exchange()

    def _exchange(self, child_id: Any) -> _Exchange | None:
        if not isinstance(child_id, int) or isinstance(child_id, bool):
            return None
        return self._exchanges.get(child_id)

    def _only_exchange(self) -> _Exchange | None:
        return next(iter(self._exchanges.values())) if len(self._exchanges) == 1 else None

    async def _child_exited(self, child: ChildProcess) -> None:
        reason = "upstream session ended" if child.deliberate else "upstream server exited"
        for child_id, exchange in list(self._exchanges.items()):
            if exchange.child is child:
                del self._exchanges[child_id]
                exchange.finish(error_body(INTERNAL_ERROR, reason, exchange.client_id))


def _mapped(message: dict[str, Any], exchange: _Exchange, *, answer: bool) -> dict[str, Any]:
    """``message`` from the child with the child-side ids of ``exchange`` replaced by the client's."""
    out = {**message, "id": exchange.client_id} if answer else dict(message)
    container = "result" if answer else "params"
    body = out.get(container)
    if not isinstance(body, dict):
        return out
    body = dict(body)
    if not answer and message.get("method") == "notifications/progress":
        body["progressToken"] = exchange.client_token
    if not answer and message.get("method") == "notifications/cancelled" and body.get("requestId") == exchange.child_id:
        body["requestId"] = exchange.client_id
    meta = body.get("_meta")
    if isinstance(meta, dict) and meta.get(SUBSCRIPTION_ID_META_KEY) == exchange.child_id:
        body["_meta"] = {**meta, SUBSCRIPTION_ID_META_KEY: exchange.client_id}
    out[container] = body
    return out


def _status(message: Mapping[str, Any]) -> int:
    error = message.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    if isinstance(code, int) and not isinstance(code, bool):
        return ERROR_CODE_HTTP_STATUS.get(code, 200)
    return 200


def _sse_event(message: Mapping[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return f"event: message\r\ndata: {data}\r\n\r\n".encode()


async def _reject(send: Send, rejection: InboundLadderRejection, request_id: RequestId | None) -> None:
    body = error_body(rejection.code, rejection.message, request_id, rejection.data)
    await send_json(send, _status(body), body)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` when the client goes away (closing the response stream is how a 2026 client cancels)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
