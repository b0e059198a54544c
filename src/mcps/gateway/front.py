"""The gateway's Streamable HTTP front: an ASGI app serving each upstream at ``/mcp/<name>`` (SPEC.md §12.2, §12.8).

For each request it checks ``Host`` and ``Origin`` first (the upstream can no longer check them: the gateway
rewrites ``Host``), then

* POST — reads the body bounded by the size limit, parses it strictly, hands it to the :class:`~mcps.gateway.
  relay.Relay` and either answers the refusal or forwards the relay's message to the upstream app, whose answer
  (a JSON body, or SSE events as they arrive) goes back through the relay message by message;
* GET (a session's stream) and DELETE — only for a session this front saw opened; the stream's events go through
  the relay like any other message from the upstream;
* OPTIONS passes; other methods get 405.

The upstream apps are ASGI apps that speak MCP Streamable HTTP for their upstream (a reverse proxy for a URL, an
adapter for a stdio command). Sessions, event ids and resumption are theirs; the front pins each session to its
first verified peer, and shares the pin with the other replicas (:mod:`mcps.gateway.sessions`) before the client
learns the session id. Also served: ``GET /.well-known/mcps-gateway`` (the signed discovery document) and
``GET /healthz``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.bindings.http import http_status
from mcps.bindings.sse import SseReader, encode_event
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import parse_message
from mcps.gateway.http_upstream import failure_of
from mcps.gateway.relay import Relay, Route, Session
from mcps.gateway.sessions import SessionPins

__all__ = ["DEFAULT_MAX_SESSIONS", "GatewayFront", "Upstream"]

logger = logging.getLogger("mcps.gateway")

Scope = Mapping[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_SESSIONS: Final = 10_000
SESSION_HEADER: Final = b"mcp-session-id"
UPSTREAM_ERROR_HEADER: Final = b"x-mcps-upstream-error"
PATH_PREFIX: Final = "/mcp/"
DISCOVERY_PATH: Final = "/.well-known/mcps-gateway"


@dataclass(frozen=True, slots=True)
class Upstream:
    """One route and the ASGI app that reaches its server."""

    route: Route
    app: ASGIApp


class GatewayFront:
    """The ASGI app of ``mcps gateway``. ``discovery`` returns the current signed discovery document."""

    def __init__(
        self,
        relay: Relay,
        upstreams: Mapping[str, Upstream],
        *,
        allowed_hosts: Collection[str],
        allowed_origins: Collection[str],
        discovery: Callable[[], str],
        on_lifespan: Callable[[str], Awaitable[None]] | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        pins: SessionPins | None = None,
    ) -> None:
        self._relay = relay
        self._upstreams = dict(upstreams)
        self._hosts = frozenset(host.lower() for host in allowed_hosts)
        self._origins = frozenset(origin.lower() for origin in allowed_origins)
        self._discovery = discovery
        self._on_lifespan = on_lifespan
        self._max_sessions = max_sessions
        self._sessions: dict[str, OrderedDict[str, Session]] = {name: OrderedDict() for name in upstreams}
        self._pins = pins or SessionPins()

    def reconfigure(self, upstreams: Mapping[str, Upstream], discovery: Callable[[], str]) -> None:
        """A reload (SIGHUP): requests from now on go to these upstreams; requests under way finish where they are.
        Session pins of upstreams that remain are kept (their app says whether a session still exists)."""
        self._upstreams = dict(upstreams)
        for name in upstreams:  # an upstream removed keeps its (unreachable) table: requests under way may use it
            self._sessions.setdefault(name, OrderedDict())
        self._discovery = discovery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        problem = self._front_problem(scope)
        if problem is not None:
            status, text = problem
            await _send_bytes(send, status, text.encode("ascii"), b"text/plain; charset=utf-8")
            return
        path: str = scope["path"]
        if path == DISCOVERY_PATH and scope["method"] == "GET":
            await _send_bytes(send, 200, self._discovery().encode("ascii"), b"application/jwt")
        elif path == "/healthz" and scope["method"] == "GET":
            await _send_bytes(send, 200, b"ok\n", b"text/plain; charset=utf-8")
        elif path.startswith(PATH_PREFIX) and path[len(PATH_PREFIX) :].rstrip("/") in self._upstreams:
            await self._mcp(self._upstreams[path[len(PATH_PREFIX) :].rstrip("/")], scope, receive, send)
        else:
            await _send_bytes(send, 404, b"not found\n", b"text/plain; charset=utf-8")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            try:
                if self._on_lifespan is not None:
                    await self._on_lifespan(kind)
            except Exception:
                logger.exception("mcps gateway: %s failed", kind)
                await send({"type": f"lifespan.{kind}.failed", "message": f"gateway {kind} failed (see the log)"})
                return
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    def _front_problem(self, scope: Scope) -> tuple[int, str] | None:
        """Refuse a ``Host`` or ``Origin`` this gateway does not answer for (DNS rebinding, SPEC.md §12.8)."""
        host = _header(scope, b"host")
        if host is None or _hostname(host) not in self._hosts:
            return 421, "misdirected request: this host is not served here\n"
        origin = _header(scope, b"origin")
        if (
            origin is not None
            and origin.lower().rstrip("/") not in self._origins
            and _without_port(origin) not in self._origins
        ):
            return 403, "origin not allowed\n"
        return None

    # --- MCP endpoint -------------------------------------------------------------------------------------------

    async def _mcp(self, upstream: Upstream, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        session_id = _header(scope, SESSION_HEADER)
        sessions = self._sessions[upstream.route.name]
        if method in ("POST", "GET", "DELETE") and session_id is not None and session_id not in sessions:
            try:  # opened through another replica? (SPEC.md §12.9)
                shared = await self._pins.get(upstream.route.name, session_id)
            except McpsError as error:
                await self._refuse(send, error)
                return
            if shared is not None:
                self._remember(upstream.route.name, session_id, shared)
        if method == "POST":
            session = Session() if session_id is None else sessions.get(session_id)
            if session is None:
                await self._unknown_session(send)
                return
            await self._post(upstream, session, session_id, scope, receive=receive, send=send)
        elif method in ("GET", "DELETE"):
            session = sessions.get(session_id) if session_id is not None else None
            if session is None:
                await self._unknown_session(send)
                return
            relaying = _RelayingSend(self._relay, upstream.route, session, send, request_id=None)
            await upstream.app(scope, receive, relaying)
            await relaying.finish()
            if method == "DELETE" and relaying.status is not None and relaying.status < 300:
                sessions.pop(session_id or "", None)
                await self._forget(upstream.route.name, session_id or "")
        elif method == "OPTIONS":
            await upstream.app(scope, receive, send)
        else:
            await _send_bytes(send, 405, b"", b"text/plain", [(b"allow", b"GET, POST, DELETE")])

    async def _post(
        self,
        upstream: Upstream,
        session: Session,
        session_id: str | None,
        scope: Scope,
        *,
        receive: Receive,
        send: Send,
    ) -> None:
        route = upstream.route
        body = await _read_body(receive, self._relay.limits.max_bytes)
        if body is None:
            await self._refuse(send, McpsError(ErrorCode.MESSAGE_TOO_LARGE))
            return
        try:
            message = parse_message(body, self._relay.limits)
        except McpsError as error:
            await self._refuse(send, error)
            return
        outcome = await self._relay.from_client(route, session, message)
        if outcome.reply is not None:
            await _send_json(send, http_status(outcome.reply), outcome.reply)
            return
        forward = outcome.forward or {}
        request_id = forward.get("id") if "method" in forward else None

        async def opened(status: int, headers: list[tuple[bytes, bytes]]) -> None:
            if session_id is not None:
                if status == 404:
                    self._sessions[route.name].pop(session_id, None)
                    await self._forget(route.name, session_id)
                return
            new_id = next((v.decode("latin-1") for k, v in headers if k.lower() == SESSION_HEADER), None)
            if new_id is not None and status < 300:
                self._remember(route.name, new_id, session)
                try:  # before the client learns the id, so another replica can find the pin
                    await self._pins.put(route.name, new_id, session)
                except McpsError as error:
                    logger.warning("mcps gateway: session pin not shared (this replica only): %s", error.diagnostics())

        encoded = _encode(forward)
        relaying = _RelayingSend(self._relay, route, session, send, request_id=request_id, on_start=opened)
        await upstream.app(_with_length(scope, len(encoded)), _Replay(encoded, receive), relaying)
        await relaying.finish()

    def _remember(self, name: str, session_id: str, session: Session) -> None:
        known = self._sessions[name]
        known[session_id] = session
        while len(known) > self._max_sessions:
            known.popitem(last=False)

    async def _forget(self, name: str, session_id: str) -> None:
        try:
            await self._pins.delete(name, session_id)
        except McpsError as error:
            logger.warning("mcps gateway: session pin not removed: %s", error.diagnostics())

    async def _refuse(self, send: Send, error: McpsError) -> None:
        logger.warning("mcps gateway refused a POST body: %s", error.diagnostics())
        refusal = {"jsonrpc": "2.0", "id": None, "error": error.to_jsonrpc_error()}
        await _send_json(send, http_status(refusal), refusal)

    async def _unknown_session(self, send: Send) -> None:
        error = McpsError(ErrorCode.TRANSCRIPT_MISMATCH, "session is unknown", detail="no session with this id")
        await _send_json(send, 404, {"jsonrpc": "2.0", "id": None, "error": error.to_jsonrpc_error()})


class _RelayingSend:
    """The ``send`` the upstream app writes to: each JSON body or SSE event goes through the relay."""

    def __init__(
        self,
        relay: Relay,
        route: Route,
        session: Session,
        send: Send,
        *,
        request_id: Any,
        on_start: Callable[[int, list[tuple[bytes, bytes]]], Awaitable[None] | None] | None = None,
    ) -> None:
        self._relay = relay
        self._route = route
        self._session = session
        self._send = send
        self._request_id = request_id
        self._on_start = on_start
        self._mode = "raw"
        self._start: Message | None = None
        self._buffer = bytearray()
        self._sse = SseReader(max_bytes=relay.limits.max_bytes)
        self._ended = False
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._started(message)
        elif message["type"] == "http.response.body" and self._mode == "json":
            self._buffer += message.get("body", b"")
            if len(self._buffer) > self._relay.limits.max_bytes:
                self._mode = "failed"
                await self._fail(McpsError(ErrorCode.MESSAGE_TOO_LARGE, detail="upstream answer over the limit"), 502)
            elif not message.get("more_body", False):
                await self._json_body()
        elif message["type"] == "http.response.body" and self._mode == "sse":
            more = message.get("more_body", False)
            events = self._sse.feed(message.get("body", b"")) + ([] if more else self._sse.close())
            out = b"".join([await self._event(event) for event in events])
            if not more:
                failure = failure_of(message)  # the proxy marks a stream it had to cut short
                if failure is not None:
                    broke = McpsError(ErrorCode.UPSTREAM_UNAVAILABLE, detail=f"upstream stream {failure.value}")
                    out += await self._unanswered_event(broke)
                self._ended = True  # a clean end may be resumed by the client (Last-Event-ID): nothing to answer
            await self._send({"type": "http.response.body", "body": out, "more_body": more})
        elif message["type"] == "http.response.body" and self._mode == "failed":
            return
        else:
            await self._send(message)

    async def _started(self, message: Message) -> None:
        self.status = int(message["status"])
        headers = [(bytes(key), bytes(value)) for key, value in message.get("headers", [])]
        if self._on_start is not None:
            started = self._on_start(self.status, headers)
            if inspect.isawaitable(started):
                await started
        upstream_error = next((v for k, v in headers if k.lower() == UPSTREAM_ERROR_HEADER), None)
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        media = content_type.split(b";")[0].strip().lower()
        if upstream_error is not None or (self.status >= 500 and media != b"application/json"):
            self._mode = "failed"
            timeout = upstream_error == b"timeout" or self.status == 504
            detail = upstream_error.decode("latin-1") if upstream_error else f"HTTP {self.status}"
            await self._fail(McpsError(ErrorCode.UPSTREAM_UNAVAILABLE, detail=detail), 504 if timeout else 502)
            return
        if media == b"application/json":
            self._mode, self._start = "json", message
            return
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        if media == b"text/event-stream":
            self._mode = "sse"
        await self._send({**message, "headers": headers} if media == b"text/event-stream" else message)

    async def _json_body(self) -> None:
        start, body = self._start or {}, bytes(self._buffer)
        self._buffer.clear()
        status, out = int(start.get("status", 200)), b""
        if body:
            released = await self._relay_raw(body)
            if released is None:
                status, out = 502, b""
            else:
                out = _encode(released)
        else:
            out = b""
        headers = [(k, v) for k, v in start.get("headers", []) if bytes(k).lower() != b"content-length"]
        headers.append((b"content-length", str(len(out)).encode("ascii")))
        await self._send({**start, "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": out, "more_body": False})
        self._ended = True

    async def _event(self, event: Any) -> bytes:
        if event.error is not None:  # over the size limit (MCPS-018) or not UTF-8 (MCPS-019)
            return await self._unanswered_event(event.error)
        if event.data is None:
            return bytes(event.raw)
        released = await self._relay_raw(event.data.encode("utf-8"))
        return b"" if released is None else encode_event(event.fields, _encode(released).decode("ascii"))

    async def _relay_raw(self, raw: bytes) -> dict[str, Any] | None:
        try:
            message = parse_message(raw, self._relay.limits)
        except McpsError as error:
            return await self._relay.answer_failed(self._route, self._session, self._request_id, error)
        return await self._relay.from_upstream(self._route, self._session, message)

    async def _unanswered_event(self, error: McpsError | None = None) -> bytes:
        """When the SSE stream ended (or an event was unreadable) with our request still unanswered."""
        if not self._relay.pending(self._session, self._request_id):
            return b""
        failure = error or McpsError(ErrorCode.UPSTREAM_UNAVAILABLE, detail="stream ended without an answer")
        refusal = await self._relay.answer_failed(self._route, self._session, self._request_id, failure)
        return b"" if refusal is None else encode_event((b"event: message",), _encode(refusal).decode("ascii"))

    async def _fail(self, error: McpsError, status: int) -> None:
        refusal = await self._relay.answer_failed(self._route, self._session, self._request_id, error)
        if refusal is None:
            await _send_bytes(self._send, status, b"", b"text/plain")
        else:
            await _send_json(self._send, status, refusal)
        self._ended = True

    async def finish(self) -> None:
        """After the upstream app returned: make sure the client got an answer."""
        if self._ended:
            return
        if self._mode == "json" and self._start is not None:
            await self._json_body()
        elif self.status is None:
            await self._fail(McpsError(ErrorCode.UPSTREAM_UNAVAILABLE, detail="no answer"), 502)


class _Replay:
    """A ``receive`` that yields ``body`` once, then defers to the real one (disconnects)."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def __call__(self) -> Message:
        if self._body is None:
            return await self._receive()
        body, self._body = self._body, None
        return {"type": "http.request", "body": body, "more_body": False}


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
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


def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")


def _with_length(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode("ascii"))]}


def _header(scope: Scope, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in scope["headers"] if key.lower() == name), None)


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _without_port(origin: str) -> str:
    scheme, _, rest = origin.lower().rstrip("/").partition("://")
    return f"{scheme}://{_hostname(rest)}"


async def _send_bytes(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode("ascii")),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send: Send, status: int, message: Mapping[str, Any]) -> None:
    await _send_bytes(send, status, _encode(message), b"application/json")
