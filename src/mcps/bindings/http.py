"""Signed MCP over Streamable HTTP, server side: a pure-ASGI middleware in front of the SDK's app.

::

    app = McpsHttpMiddleware(server.streamable_http_app(), security=ChannelSecurity(...))
    # or: app = signed_streamable_http_app(server, security)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Protocol 2026-07-28 over Streamable HTTP never hands the session a pair of streams (each POST is served on its
own), so the binding sits where both protocol eras pass: the HTTP exchange. For every POST it

1. reads the body, bounded by ``security.limits.max_bytes`` while reading (MCPS-018, HTTP 413);
2. parses it strictly (duplicate keys, I-JSON, depth, batches) before the SDK parses anything;
3. verifies it: signature, time window, audience = ``security.identity``, nonce, and the session's pinned peer
   (a 2025-11-25 session is pinned to the key that signed its ``initialize``; a 2026-07-28 request stands alone);
4. hands the SDK the strictly parsed message, re-serialized, with the verified caller bound for the handler
   (:func:`mcps.bindings.current_caller`);
5. signs what the SDK answers: a JSON body, or each SSE event's ``data``; results and errors are bound to the
   request (``irt``), notifications and server→client requests are addressed to the verified peer.

A refused message is answered with a signed JSON-RPC error (the request's ``id``, else ``null``) carrying the
MCPS code, and never reaches the SDK. HTTP status, as MCP maps JSON-RPC errors: 413 for a body over the limit,
400 for malformed input and for a refused notification or response, otherwise 200 with the error in the body
(401/403 belong to the transport's OAuth and would send clients into an authorization flow). See
``docs/spec-sections/http.md``.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any, Final

from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcps.bindings.caller import bound_caller
from mcps.bindings.channel import ChannelSecurity, Inbound, SecureChannel, request_key
from mcps.bindings.sse import SseRewriter
from mcps.core.envelope import message_kind
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.fastpath import parse

__all__ = ["McpsHttpMiddleware", "signed_streamable_http_app"]

logger = logging.getLogger("mcps.bindings")

DEFAULT_MAX_SESSIONS: Final = 10_000
"""Sessions (2025-11-25) whose pinned peer is remembered; the oldest is forgotten first (its requests are then
refused as for an unknown session, and its client must initialize again)."""

SESSION_HEADER: Final = b"mcp-session-id"
_MALFORMED: Final = frozenset(
    {
        ErrorCode.MALFORMED_JSON,
        ErrorCode.DUPLICATE_KEY,
        ErrorCode.NUMBER_NOT_IJSON,
        ErrorCode.INVALID_STRING,
        ErrorCode.TOO_DEEP,
        ErrorCode.BATCH_REJECTED,
        ErrorCode.NOT_JSONRPC,
    }
)
_StartHook = Callable[[int, list[tuple[bytes, bytes]]], None]
"""Told each response's status and headers: how sessions are learnt (and forgotten)."""
_REFUSED_MESSAGE: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("mcps_refused_message")


def http_status(refusal: dict[str, Any]) -> int:
    """The HTTP status of a signed refusal (see the module docstring)."""
    code = ErrorCode(-33000 - refusal["error"]["code"])
    if code is ErrorCode.MESSAGE_TOO_LARGE:
        return 413
    if code in _MALFORMED or refusal.get("id") is None:
        return 400
    return 200


class _HttpChannel(SecureChannel):
    """A :class:`SecureChannel` that answers every refusal: on HTTP each message has its own response, so a
    replayed request gets MCPS-005, a refused notification or response a ``null``-id error, instead of nothing."""

    def __init__(self, security: ChannelSecurity) -> None:
        super().__init__(security, peer=None)

    async def receive_raw(self, raw: bytes) -> Inbound:
        _REFUSED_MESSAGE.set({})
        return await super().receive_raw(raw)

    async def receive(self, message: dict[str, Any]) -> Inbound:
        _REFUSED_MESSAGE.set(message)  # per ASGI task: what a refusal from `_drop` answers
        return await super().receive(message)

    def _drop(self, error: McpsError, what: str = "message", request_id: object = None) -> Inbound:
        message = _REFUSED_MESSAGE.get({})
        if "method" not in message or "id" not in message:  # answer with id null, addressed as the sender claims
            message = {key: value for key, value in message.items() if key != "id"}
        return self._refuse_request(message, error)

    def refusal(self, error: McpsError, message: dict[str, Any] | None = None) -> dict[str, Any]:
        """A signed JSON-RPC error for ``message`` (its id when it is a request, else ``null``)."""
        reply = self._refuse_request(message or {}, error).reply
        if reply is None:  # pragma: no cover - _refuse_request always replies
            raise RuntimeError("no refusal")
        return reply


class McpsHttpMiddleware:
    """Verify every JSON-RPC message posted to ``app`` (an MCP Streamable HTTP app) and sign every one it sends.

    ``paths``: the request paths carrying MCP (default: every path). On those paths only POST (messages), GET
    (a session's server→client stream) and DELETE (end of session) are let through, GET and DELETE only for a
    session this middleware saw opened, plus OPTIONS (CORS preflight, no message). Other paths pass untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        security: ChannelSecurity,
        paths: Collection[str] | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be positive")
        self.app = app
        self._security = security
        self._paths = frozenset(paths) if paths is not None else None
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, _HttpChannel] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self._paths is not None and scope["path"] not in self._paths):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        session_id = _header(scope, SESSION_HEADER)
        if method == "POST":
            await self._post(scope, receive, send, session_id)
        elif method in ("GET", "DELETE"):
            await self._session_request(scope, receive, send, session_id)
        elif method == "OPTIONS":
            await self.app(scope, receive, send)
        else:
            await _send_bytes(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])

    # --- inbound ------------------------------------------------------------------------------------------------

    async def _post(self, scope: Scope, receive: Receive, send: Send, session_id: str | None) -> None:
        channel = _HttpChannel(self._security) if session_id is None else self._sessions.get(session_id)
        if channel is None:
            await self._unknown_session(send)
            return
        body = await _read_body(receive, self._security.limits.max_bytes)
        if body is None:
            refusal = channel.refusal(McpsError(ErrorCode.MESSAGE_TOO_LARGE))
            logger.warning("mcps refused a POST body: %s", ErrorCode.MESSAGE_TOO_LARGE.mcps)
            await _send_json(send, http_status(refusal), refusal)
            return
        try:
            message = parse(body, self._security.limits)  # the strict parse (its fast path when it applies)
        except McpsError:
            decision = await channel.receive_raw(body)  # refuses it, reading id and sig leniently to address it
        else:
            decision = await channel.receive(message)
        if decision.deliver is None:
            if decision.reply is not None:
                await _send_json(send, http_status(decision.reply), decision.reply)
            else:  # the channel hit a defect of its own (logged): nothing was delivered, nothing can be signed
                await _send_bytes(send, 500, b"", [])
            return
        delivered = _replaying(decision.deliver, receive)
        if decision.local:
            # One of our requests ends refused (an unverifiable refusal): the SDK gets the local error (its waiting
            # request fails instead of hanging), the client gets the signed refusal.
            await self.app(_with_length(scope, delivered.length), delivered, _discard)
            await _send_json(send, 400, channel.refusal(_local_error(decision.deliver)))
            return
        signing = _SigningSend(send, channel, decision.deliver.get("id"), self._on_start(channel, session_id))
        if decision.caller is None:
            await self.app(_with_length(scope, delivered.length), delivered, signing)
        else:
            with bound_caller(decision.caller):
                await self.app(_with_length(scope, delivered.length), delivered, signing)
        await signing.finish()

    async def _session_request(self, scope: Scope, receive: Receive, send: Send, session_id: str | None) -> None:
        channel = self._sessions.get(session_id) if session_id is not None else None
        if channel is None:
            await self._unknown_session(send)
            return
        signing = _SigningSend(send, channel, None, self._on_start(channel, session_id))
        await self.app(scope, receive, signing)
        await signing.finish()
        if scope["method"] == "DELETE" and signing.status is not None and signing.status < 300:
            self._sessions.pop(session_id or "", None)

    async def _unknown_session(self, send: Send) -> None:
        refusal = _HttpChannel(self._security).refusal(
            McpsError(ErrorCode.TRANSCRIPT_MISMATCH, "session is unknown", detail="no session with this id")
        )
        await _send_json(send, 404, refusal)

    def _on_start(self, channel: _HttpChannel, session_id: str | None) -> _StartHook:
        def started(status: int, headers: list[tuple[bytes, bytes]]) -> None:
            if session_id is not None:
                if status == 404:  # the SDK no longer knows it either
                    self._sessions.pop(session_id, None)
                return
            opened = next((value.decode("latin-1") for key, value in headers if key.lower() == SESSION_HEADER), None)
            if opened is not None and status < 300:
                self._sessions[opened] = channel
                while len(self._sessions) > self._max_sessions:
                    self._sessions.popitem(last=False)

        return started


# --- outbound ---------------------------------------------------------------------------------------------------


class _SigningSend:
    """The ``send`` the SDK's app writes to: JSON bodies and SSE events signed, anything else unchanged."""

    def __init__(self, send: Send, channel: SecureChannel, request_id: Any, on_start: _StartHook) -> None:
        self._send = send
        self._channel = channel
        self._request_id = request_key(request_id)  # never a bool: `true` is not request 1
        self._on_start = on_start
        self._start: Message | None = None
        self._mode = "raw"
        self._buffer = bytearray()
        self._sse = SseRewriter(self._sign_data, max_bytes=channel.limits.max_bytes)
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._started(message)
        elif message["type"] == "http.response.body" and self._mode == "json":
            self._buffer += message.get("body", b"")
            if not message.get("more_body", False):
                await self._send_json_body()
        elif message["type"] == "http.response.body" and self._mode == "sse":
            more = message.get("more_body", False)
            out = self._sse.feed(message.get("body", b"")) + (b"" if more else self._sse.close())
            await self._send({"type": "http.response.body", "body": out, "more_body": more})
        else:
            await self._send(message)

    async def _started(self, message: Message) -> None:
        self.status = int(message["status"])
        headers = [(bytes(key), bytes(value)) for key, value in message.get("headers", [])]
        self._on_start(self.status, headers)
        content_type = next((value for key, value in headers if key.lower() == b"content-type"), b"")
        media = content_type.split(b";")[0].strip().lower()
        if media == b"application/json":
            self._mode, self._start = "json", message
            return
        if media == b"text/event-stream":
            self._mode = "sse"
            message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != b"content-length"]}
        await self._send(message)

    async def _send_json_body(self) -> None:
        start, body = self._start, bytes(self._buffer)
        self._start, self._buffer = None, bytearray()
        if start is None:  # pragma: no cover - body before start is an ASGI violation
            return
        status, out = int(start["status"]), b""
        if body:
            signed = self._sign(_json_or_none(body))
            if signed is None:
                status = 500
            else:
                out = _encode(signed)
        headers = [(k, v) for k, v in start.get("headers", []) if bytes(k).lower() != b"content-length"]
        headers.append((b"content-length", str(len(out)).encode("ascii")))
        await self._send({**start, "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": out, "more_body": False})

    def _sign(self, message: Any) -> dict[str, Any] | None:
        if not isinstance(message, dict):
            logger.error("mcps: the MCP app sent a body that is not one JSON-RPC message; not sent")
            return None
        if "error" in message and message.get("id") is None and self._request_id is not None:
            message = {**message, "id": self._request_id}  # an SDK rejection of the request we let through
        try:
            message_kind(message)
            return self._channel.send(message)
        except McpsError as error:
            logger.error("mcps: not sending a message the MCP app produced: %s", error.diagnostics())  # noqa: TRY400
            return None

    def _sign_data(self, data: str | McpsError) -> str | None:
        if isinstance(data, McpsError):  # over the size limit, or not UTF-8: nothing that could be signed as sent
            logger.error("mcps: not sending an SSE event the MCP app wrote: %s", data.diagnostics())
            return None
        signed = self._sign(_json_or_none(data))
        return None if signed is None else _encode(signed).decode("ascii")

    async def finish(self) -> None:
        """Flush a JSON response the app started but never ended (it raised): send what can be signed."""
        if self._start is not None:
            await self._send_json_body()


# --- helpers ----------------------------------------------------------------------------------------------------


class _Replay:
    """A ``receive`` that yields ``body`` once, then defers to the real one (disconnects)."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive
        self.length = len(body)

    async def __call__(self) -> Message:
        if self._body is None:
            return await self._receive()
        body, self._body = self._body, None
        return {"type": "http.request", "body": body, "more_body": False}


def _replaying(message: dict[str, Any], receive: Receive) -> _Replay:
    return _Replay(_encode(message), receive)


def _json_or_none(text: bytes | str) -> Any:
    """What the MCP app wrote, parsed; ``None`` (then refused as not one message) when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")


def _with_length(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode("ascii"))]}


def _header(scope: Scope, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in scope["headers"] if key.lower() == name), None)


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``max_bytes`` (the rest is never buffered)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > max_bytes:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _local_error(local: dict[str, Any]) -> McpsError:
    try:
        return McpsError(ErrorCode.from_mcps(local["error"]["data"]["mcps_code"]))
    except (KeyError, TypeError, ValueError):  # pragma: no cover - the channel always sets it
        return McpsError(ErrorCode.TRANSCRIPT_MISMATCH)


async def _discard(message: Message) -> None:
    return None


async def _send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    all_headers = [*headers, (b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send: Send, status: int, message: dict[str, Any]) -> None:
    await _send_bytes(send, status, _encode(message), [(b"content-type", b"application/json")])


def signed_streamable_http_app(
    server: Server[Any] | MCPServer,
    security: ChannelSecurity,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    **app_options: Any,
) -> ASGIApp:
    """``server.streamable_http_app(**app_options)`` behind :class:`McpsHttpMiddleware` (every path secured)."""
    return McpsHttpMiddleware(server.streamable_http_app(**app_options), security=security, max_sessions=max_sessions)
