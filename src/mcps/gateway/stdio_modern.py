"""2026-07-28 (stateless) Streamable HTTP requests, relayed to the stdio children of one upstream.

Each POST is self-contained: one request carrying its own ``_meta`` envelope (protocol version, client
capabilities and info), no ``initialize``, no session. A stdio connection serves one protocol era, decided by its
first request (``serve_dual_era_loop`` in the SDK): the children here only ever see enveloped requests, so each is
a 2026 connection for good.

Which child a request goes to (:mod:`mcps.gateway.stdio_lanes`, SPEC.md §12.8):

* **unsigned** (no ``mcps/sig`` in ``params._meta``): the one shared child of the upstream, its ``id`` and
  ``progressToken`` rewritten so that concurrent clients' requests cannot collide, and mapped back on the way out;
* **signed**: the child of its signer (the block's ``kid``), started on demand, at most ``max_signers`` of them;
  the message is relayed unchanged both ways, because the signature covers ``id`` and ``progressToken`` and a
  verifying child verifies it end to end, and pins its connection to one signer. A request whose id or progress
  token is in flight on that child waits for it to be free, within ``call_timeout``.

HTTP, as the SDK's modern entry answers (``mcp.server._streamable_http_modern``): the same checks in the same
order (405, 406, 413, parse error, body shape, duplicated routing headers, the envelope/header ladder of
``mcp.shared.inbound``, ``Mcp-Param-*`` against the tool's ``inputSchema``: for an unsigned request from the shared
child's own ``tools/list``, for a signed one from the last listing its signer's child answered, since the app
cannot sign a listing of its own); a JSON body when the answer comes before any notification for the request (HTTP
status from the SDK's error-code table), else ``text/event-stream`` (also after 15 s of silence, with keepalive
comments). A client notification, signed or not, is acknowledged with 202 and dropped, as the SDK does. The
client closing its response cancels the call: an unsigned one is cancelled on the shared child
(``notifications/cancelled``); a signed one cannot be (the app cannot sign for its signer), so its id stays taken
on the signer's child until the child answers. ``subscriptions/listen`` has no ``call_timeout`` (only its wait for a
child and a free id has).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

import anyio
import anyio.abc
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from mcps.core.envelope import SIG_KEY
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
from mcps.gateway.stdio_lanes import Lane, SharedLane, SignerInfo, SignerLanes
from mcps.gateway.stdio_legacy import SessionSettings, as_request_id

__all__ = ["ModernUpstream", "signer_of"]

logger = logging.getLogger("mcps.gateway.stdio")

_SSE_PING_INTERVAL: Final = 15.0
_LIST_PAGE_CAP: Final = 100
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_INVALID_BODY: Final = "Body must be a single JSON-RPC request or notification object"
_PARAM_PREFIX: Final = MCP_PARAM_HEADER_PREFIX.lower()
_JSON: Final = "application/json"


def signer_of(message: Mapping[str, Any]) -> str | None:
    """The signer a message is routed by: ``None`` when its ``params._meta`` carries no ``mcps/sig`` (unsigned), else
    the block's ``kid`` — or ``""`` for a block without a string ``kid``, which no verifier accepts (such messages
    share one child, where they are refused, and are never rewritten either)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping) or SIG_KEY not in meta:
        return None
    block = meta[SIG_KEY]
    kid = block.get("kid") if isinstance(block, Mapping) else None
    return kid if isinstance(kid, str) else ""


class _Response:
    """The HTTP response of one request: JSON when only the final message comes, else SSE from the first event."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._streaming = False

    async def event(self, message: dict[str, Any] | None) -> None:
        """One notification (``None``: a keepalive comment); commits the response to SSE."""
        if not self._streaming:
            await self._send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            self._streaming = True
        body = b": ping\r\n\r\n" if message is None else _sse_event(message)
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def end(self, final: dict[str, Any]) -> None:
        if self._streaming:
            await self._send({"type": "http.response.body", "body": _sse_event(final), "more_body": False})
        else:
            await send_json(self._send, _status(final), final)


class ModernUpstream:
    """The 2026-07-28 side of one stdio upstream: a shared child for unsigned requests, one per signer for signed
    ones, many concurrent HTTP requests."""

    def __init__(self, settings: SessionSettings, *, max_signers: int) -> None:
        self.settings = settings
        self.shared = SharedLane(settings)
        self.signers = SignerLanes(settings, max_signers)
        self._limits = Limits(max_bytes=settings.max_bytes)

    def attach(self, tasks: anyio.abc.TaskGroup | None) -> None:
        """The task group the children run in (the app's); ``None`` once the app is closing."""
        self.shared.attach(tasks)
        self.signers.attach(tasks)

    def signer_info(self) -> list[SignerInfo]:
        """The signers' children, least recently used first."""
        return self.signers.info()

    async def close(self) -> None:
        """End every child for good (requests in flight get an error); all reaped when this returns."""
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as closing:
                closing.start_soon(self.shared.stop)
                closing.start_soon(self.signers.close)

    async def reap_idle(self, now: float, idle_timeout: float) -> int:
        """End the children nothing has used for ``idle_timeout`` (the next request starts them again); how many."""
        ended = await self.signers.reap_idle(now, idle_timeout)
        since = self.shared.idle_since
        if since is not None and self.shared.slot.running is not None and now - since >= idle_timeout:
            await self.shared.stop(close=False)
            ended += 1
        return ended

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
        signer = signer_of(decoded)
        if (rejection := await self._param_rejection(request, decoded, verdict, signer)) is not None:
            await _reject(send, rejection, request_id)
            return
        await self._answer(decoded, signer, receive, send)

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

    async def _answer(self, request: dict[str, Any], signer: str | None, receive: Receive, send: Send) -> None:
        response = _Response(send)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
            final = await self._relay(request, signer, response)
            if final is None:
                logger.warning("upstream %s: call %r timed out", self.settings.name, request["id"])
                final = error_body(INTERNAL_ERROR, "upstream call timed out", request["id"])
            await response.end(final)
            tasks.cancel_scope.cancel()

    async def _relay(self, request: dict[str, Any], signer: str | None, response: _Response) -> dict[str, Any] | None:
        """Relay ``request`` to its child, its notifications to ``response``; its final message, or ``None`` when it
        was not answered (or, for a listen stream, not admitted) within ``call_timeout``."""
        deadline = anyio.current_time() + self.settings.call_timeout
        lane: Lane | None
        if signer is None:
            lane = self.shared
            lane.enter()
        else:
            lane = await self.signers.acquire(signer, deadline)
            if lane is None:
                return None
        exchange = None
        try:
            exchange = await lane.admit(request, deadline)
            if exchange is None:
                return None
            listen = request["method"] == "subscriptions/listen"
            with anyio.CancelScope(deadline=math.inf if listen else deadline):
                await lane.send(exchange)
                while True:
                    event: dict[str, Any] | None = None
                    with anyio.move_on_after(_SSE_PING_INTERVAL):
                        try:
                            event = await exchange.events.receive()
                        except anyio.EndOfStream:
                            break
                    await response.event(event)
            return exchange.final
        finally:
            if exchange is not None:
                lane.release(exchange)
            lane.leave()

    async def _param_rejection(
        self, request: Request, decoded: dict[str, Any], verdict: InboundModernRoute, signer: str | None
    ) -> InboundLadderRejection | None:
        """``Mcp-Param-*`` headers against the tool's ``inputSchema``, as the SDK checks them: only for ``tools/call``
        with arguments or such headers; skipped when the schema is not known."""
        params = decoded.get("params")
        if decoded["method"] != "tools/call" or not isinstance(params, Mapping):
            return None
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or (arguments is not None and not isinstance(arguments, Mapping)):
            return None
        arguments = arguments or {}
        if not arguments and not any(key.startswith(_PARAM_PREFIX) for key in request.headers):
            return None
        if signer is None:
            schema = await self._input_schema(name, verdict)
        else:
            schema = self.signers.schema(signer, name)
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
        """A request of the app's own to the shared child; its result, or ``None``."""
        lane = self.shared
        lane.enter()
        exchange = lane.open({"jsonrpc": "2.0", "id": None, "method": method, "params": params})
        try:
            with anyio.move_on_after(self.settings.call_timeout):
                await lane.send(exchange)
                async for _ in exchange.events:
                    pass
            result = (exchange.final or {}).get("result")
            return result if isinstance(result, dict) else None
        finally:
            lane.release(exchange)
            lane.leave()


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
