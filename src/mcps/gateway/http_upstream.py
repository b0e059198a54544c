"""The upstream app for an MCP server reached by URL: a lean reverse proxy for MCP Streamable HTTP, as ASGI.

::

    upstream = HttpUpstreamApp("http://10.0.0.5:8000/mcp", call_timeout=30)
    app = GatewayMiddleware(upstream, ...)      # the security layer: verifies, signs, audits every message
    ...
    await upstream.aclose()                     # or let an ASGI lifespan shutdown reach it

Every HTTP exchange the app receives (POST, GET, DELETE, OPTIONS; any path, any query: the app is mounted at the
one MCP endpoint) is sent to the upstream URL exactly as configured, over a bounded pool of keep-alive HTTP/1.1
connections (aiohttp; ``TCP_NODELAY`` on each). Other methods get 405 here.

Request headers are forwarded from an allowlist: what MCP needs (:data:`FORWARDED_REQUEST_HEADERS` and every
``Mcp-Param-*``) plus the names in ``forward_headers``. ``Host`` is the upstream's, ``Accept-Encoding`` is
``identity`` (the layer above must read every message), ``Content-Length`` is recomputed. ``Authorization``,
``Cookie``, ``Proxy-*`` and any other header are not forwarded unless named in ``forward_headers``: a credential
presented to the gateway authenticates the client to the gateway, and forwarding it would hand it to every
upstream behind the gateway, which could then replay it against the gateway or any other service that accepts
it. Hop-by-hop headers (RFC 9110 §7.6.1, and any named in ``Connection``) are never forwarded, either way.

Response headers are passed back except hop-by-hop ones, ``Content-Length`` (recomputed), ``Date`` and ``Server``
(the front server sets its own), ``Set-Cookie`` (unless ``cookie`` is forwarded: one pool serves every client),
``WWW-Authenticate`` (unless ``authorization`` is forwarded: the upstream's challenge is not the client's to
answer) and :data:`UPSTREAM_ERROR_HEADER` (only this app may say that). A ``text/event-stream`` body is relayed
chunk by chunk as it arrives (no event is held back); any other body is read whole, bounded by ``max_bytes``,
within ``call_timeout``, and sent as one ASGI message with its ``Content-Length``.

Failures are answered here, quickly, with no body and nothing of the exception's text (see
:class:`UpstreamFailure`); the contract with the layer above is :data:`UPSTREAM_ERROR_HEADER` on a response this
app produced itself, or :data:`UPSTREAM_ERROR_KEY` on the last body message of a relayed stream that was cut
short; :func:`failure_of` reads either. A client that disconnects cancels its upstream exchange and the
connection is closed, not returned to the pool. For that the app keeps calling ``receive`` after the request body,
so a layer above must pass ``receive`` on as ASGI servers provide it: after the body, it returns only when the
client has gone (``http.disconnect``); a ``receive`` that answered ``http.disconnect`` at once would cancel every
exchange.

Limits: one pool connection per exchange in flight, including each open SSE stream (a 2025-11-25 session's GET
stream holds one for its life), so ``max_connections`` bounds concurrent calls plus open streams, and a call
that waits for a free connection counts that wait in its ``call_timeout``. A POST is never retried (a call must
not run twice): a keep-alive connection the upstream closes just as a request is sent gives that request a 502
``unreachable`` (aiohttp retries GET, DELETE and OPTIONS once on a new connection); idle connections are dropped
after :data:`KEEPALIVE_SECONDS` to keep that race rare. A client
that stops reading holds its connection, while flow control stops reading from the upstream (memory stays
bounded); bounding slow readers is the front server's job. asyncio only (as uvicorn runs it).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Collection, Iterable
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

__all__ = [
    "FORWARDED_REQUEST_HEADERS",
    "KEEPALIVE_SECONDS",
    "UPSTREAM_ERROR_HEADER",
    "UPSTREAM_ERROR_KEY",
    "HttpUpstreamApp",
    "UpstreamFailure",
    "failure_of",
]

logger = logging.getLogger("mcps.gateway")

UPSTREAM_ERROR_HEADER: Final = b"x-mcps-upstream-error"
"""Response header on a 502/504 that this app produced itself, naming the :class:`UpstreamFailure`. The layer above
strips it and answers the client with a signed JSON-RPC error naming the failure. Never passed from the upstream."""

UPSTREAM_ERROR_KEY: Final = "mcps.upstream_error"
"""Key on the final ``http.response.body`` message (``more_body`` false) of a relayed stream that ended because of
a failure after its head was sent; value: the :class:`UpstreamFailure`. ASGI servers ignore unknown keys."""

FORWARDED_REQUEST_HEADERS: Final = frozenset(
    {
        "content-type",
        "accept",
        "mcp-session-id",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "last-event-id",
        "traceparent",
        "tracestate",
    }
)
"""Request headers forwarded to the upstream (with every ``mcp-param-*``); others only when named in
``forward_headers``."""

KEEPALIVE_SECONDS: Final = 4.0
"""Idle keep-alive connections are closed after this long: below uvicorn's default (5 s), so that a connection is
rarely reused just as the upstream closes it."""

_PARAM_PREFIX: Final = "mcp-param-"
_METHODS: Final = frozenset({"POST", "GET", "DELETE", "OPTIONS"})
_ALLOW: Final = b"POST, GET, DELETE, OPTIONS"
_HOP_BY_HOP: Final = frozenset(
    {"connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
_NEVER_FORWARDED: Final = _HOP_BY_HOP | {"host", "content-length", "accept-encoding", UPSTREAM_ERROR_HEADER.decode()}
_EVENT_STREAM: Final = "text/event-stream"
_NO_BODY: Final = frozenset({204, 304})
"""Statuses that carry no body and no ``Content-Length`` (RFC 9110 §8.6)."""
_READ_ERRORS: Final = (aiohttp.ClientError, OSError)
"""What aiohttp raises when the upstream fails (refused, reset, closed, bad HTTP, incomplete body). Classified here,
never shown to a peer."""


class UpstreamFailure(enum.StrEnum):
    """Why an exchange with the upstream failed, as named in :data:`UPSTREAM_ERROR_HEADER` and
    :data:`UPSTREAM_ERROR_KEY`. HTTP status of the response this app produces: 504 for ``timeout``, else 502."""

    UNREACHABLE = "unreachable"
    """Could not connect (refused, no route, ``connect_timeout``), or the connection was reset or closed before a
    response head arrived."""
    TIMEOUT = "timeout"
    """No response head (or, for a body that is not an event stream, not the whole body) within ``call_timeout``;
    on a relayed stream, nothing for ``read_timeout``."""
    TOO_LARGE = "too-large"
    """A body that is not an event stream over ``max_bytes`` (refused without reading more than that); on a
    relayed stream, more than ``max_bytes`` without a newline."""
    BROKEN = "broken"
    """The response is not usable HTTP (malformed, a content coding other than identity) or broke off mid-body."""


def failure_of(message: Message) -> UpstreamFailure | None:
    """The failure an ASGI message from :class:`HttpUpstreamApp` reports, or ``None``: for ``http.response.start``
    its :data:`UPSTREAM_ERROR_HEADER`, for ``http.response.body`` its :data:`UPSTREAM_ERROR_KEY`."""
    if message["type"] == "http.response.start":
        for name, value in message.get("headers", ()):
            if name.lower() == UPSTREAM_ERROR_HEADER:
                return UpstreamFailure(value.decode())
        return None
    value = message.get(UPSTREAM_ERROR_KEY)
    return None if value is None else UpstreamFailure(value)


class HttpUpstreamApp:
    """Forward MCP Streamable HTTP exchanges to the server at ``url`` (see the module docstring).

    ``connect_timeout``: seconds to open a TCP (and TLS) connection. ``call_timeout``: seconds for the whole
    exchange when the body is not an event stream, and for the response head when it is (including any wait for
    a free pooled connection). ``read_timeout``: seconds an event stream may stay silent (MCP servers send
    keep-alive pings). ``max_bytes``: bound on a request body, a response body that is not an event stream, and
    a run of event-stream bytes without a newline. ``max_connections``: pool size. ``forward_headers``: request
    header names forwarded besides :data:`FORWARDED_REQUEST_HEADERS` (e.g. ``authorization``, to pass a client's
    credential through deliberately); hop-by-hop and framing headers cannot be named.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        call_timeout: float = 60.0,
        read_timeout: float = 300.0,
        max_bytes: int = 4 * 1024 * 1024,
        max_connections: int = 100,
        forward_headers: Collection[str] = (),
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError("upstream url must be an absolute http(s) URL without a fragment")
        if parts.username is not None or parts.password is not None:
            raise ValueError("upstream url must not carry credentials")
        for name, value in (("connect_timeout", connect_timeout), ("call_timeout", call_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        if not read_timeout > 0 or max_bytes < 1 or max_connections < 1:
            raise ValueError("read_timeout, max_bytes and max_connections must be positive")
        extra = frozenset(name.strip().lower() for name in forward_headers)
        if extra & _NEVER_FORWARDED or not all(_is_token(name) for name in extra):
            raise ValueError("forward_headers must name end-to-end headers other than host and framing headers")
        self.url = url
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.read_timeout = read_timeout
        self.max_bytes = max_bytes
        self.max_connections = max_connections
        self._forwarded = FORWARDED_REQUEST_HEADERS | extra
        self._dropped_response = (_NEVER_FORWARDED - {"host", "accept-encoding"}) | {"date", "server"}
        if "cookie" not in extra:
            self._dropped_response |= {"set-cookie"}
        if "authorization" not in extra:
            self._dropped_response |= {"www-authenticate"}
        self._target = URL(url, encoded=True)
        self._host = parts.netloc
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # for logs: no query (it may hold secrets)
        self._client: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        """Close the pooled connections. The next exchange opens a new pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] not in _METHODS:
            await _respond(send, 405, [(b"allow", _ALLOW)])
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        headers = self._request_headers(scope["headers"])
        # A client that leaves cancels its exchange (for 2026-07-28 that is how a call is cancelled). Plain asyncio
        # rather than a task group: this runs for every message, and a task group costs about twice as much.
        exchange = asyncio.current_task()
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, exchange))
        try:
            await self._exchange(scope["method"], headers, body, send)
        except asyncio.CancelledError:
            left = watcher.done() and not watcher.cancelled() and watcher.exception() is None and watcher.result()
            if exchange is None or not left or exchange.uncancel() > 0:
                raise  # cancelled from outside, not (only) by the client leaving
            logger.debug("upstream %s: client left, exchange cancelled", self._where)
        finally:
            watcher.cancel()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The request body, or ``None`` when the client left or the body is over ``max_bytes`` (answered 413)."""
        declared = _content_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            await _respond(send, 413)
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _respond(send, 413)
                return None
            if not message.get("more_body", False):
                return bytes(body)

    def _request_headers(self, received: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
        pairs = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in received]
        named = _connection_tokens(value for name, value in pairs if name == "connection")
        headers = [("Host", self._host), ("Accept-Encoding", "identity")]
        for name, value in pairs:
            if (name in self._forwarded or name.startswith(_PARAM_PREFIX)) and name not in named:
                headers.append((name, value))
        return headers

    def _response_headers(self, received: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        pairs = [(name.lower(), value) for name, value in received]
        named = _connection_tokens(value.decode("latin-1") for name, value in pairs if name == b"connection")
        return [
            (name, value)
            for name, value in pairs
            if (text := name.decode("latin-1")) not in self._dropped_response and text not in named
        ]

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.closed or self._loop is not loop:
            self._loop = loop
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            )
            self._client = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # one pool serves every client: never share cookies
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
                trust_env=False,  # never route through a proxy named in the environment
            )
        return self._client

    async def _exchange(self, method: str, headers: list[tuple[str, str]], body: bytes, send: Send) -> None:
        response: aiohttp.ClientResponse | None = None
        try:
            outcome: bytes | UpstreamFailure | None
            try:
                async with asyncio.timeout(self.call_timeout):
                    opened = await self._open(method, headers, body)
                    if isinstance(opened, UpstreamFailure):
                        outcome = opened
                    else:
                        response = opened
                        outcome = await self._head_checked_body(response)
            except TimeoutError:
                outcome = UpstreamFailure.TIMEOUT
                logger.warning("upstream %s: no response within %s s", self._where, self.call_timeout)
            if isinstance(outcome, UpstreamFailure) or response is None:
                await _fail(send, outcome if isinstance(outcome, UpstreamFailure) else UpstreamFailure.BROKEN)
                return
            start: Message = {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._response_headers(response.raw_headers),
            }
            if outcome is not None:  # a whole body
                if response.status not in _NO_BODY:
                    start["headers"].append((b"content-length", str(len(outcome)).encode()))
                await send(start)
                await send({"type": "http.response.body", "body": outcome, "more_body": False})
                return
            await send(start)
            failure = await self._relay(response, send)
            final: Message = {"type": "http.response.body", "body": b"", "more_body": False}
            if failure is not None:
                final[UPSTREAM_ERROR_KEY] = failure.value
                logger.warning("upstream %s: event stream ended early (%s)", self._where, failure.value)
            await send(final)
        finally:
            if response is not None:
                response.close()  # no-op for a response read to its end: its connection is back in the pool

    async def _head_checked_body(self, response: aiohttp.ClientResponse) -> bytes | UpstreamFailure | None:
        """``None`` for an event stream (to relay), else the whole body, or why the response cannot be used."""
        if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
            logger.warning("upstream %s: content coding other than identity", self._where)
            return UpstreamFailure.BROKEN
        if response.content_type == _EVENT_STREAM:
            return None
        return await self._read_whole(response)

    async def _open(
        self, method: str, headers: list[tuple[str, str]], body: bytes
    ) -> aiohttp.ClientResponse | UpstreamFailure:
        try:
            return await self._session().request(
                method, self._target, headers=headers, data=body or None, allow_redirects=False
            )
        except _READ_ERRORS as error:
            failure = (
                UpstreamFailure.BROKEN
                if isinstance(error, aiohttp.ClientResponseError)
                else UpstreamFailure.UNREACHABLE
            )
            logger.warning("upstream %s: %s before a response (%s)", self._where, failure.value, type(error).__name__)
            return failure

    async def _read_whole(self, response: aiohttp.ClientResponse) -> bytes | UpstreamFailure:
        declared = response.content_length
        if declared is not None and declared > self.max_bytes:
            logger.warning("upstream %s: body of %d bytes declared, over %d", self._where, declared, self.max_bytes)
            return UpstreamFailure.TOO_LARGE
        body = bytearray()
        try:
            while chunk := await response.content.readany():
                body += chunk
                if len(body) > self.max_bytes:
                    logger.warning("upstream %s: body over %d bytes", self._where, self.max_bytes)
                    return UpstreamFailure.TOO_LARGE
        except _READ_ERRORS as error:
            logger.warning("upstream %s: body broke off (%s)", self._where, type(error).__name__)
            return UpstreamFailure.BROKEN
        return bytes(body)

    async def _relay(self, response: aiohttp.ClientResponse, send: Send) -> UpstreamFailure | None:
        """Send each chunk of an event stream as it arrives; the failure that ended it early, if any."""
        since_newline = 0
        while True:
            try:
                async with asyncio.timeout(self.read_timeout):
                    chunk = await response.content.readany()
            except TimeoutError:
                return UpstreamFailure.TIMEOUT
            except _READ_ERRORS as error:
                logger.warning("upstream %s: stream broke off (%s)", self._where, type(error).__name__)
                return UpstreamFailure.BROKEN
            if not chunk:
                return None
            last = chunk.rfind(b"\n")
            since_newline = since_newline + len(chunk) if last < 0 else len(chunk) - last - 1
            if since_newline > self.max_bytes:
                return UpstreamFailure.TOO_LARGE
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _cancel_on_disconnect(receive: Receive, exchange: asyncio.Task[object] | None) -> bool:
    """Wait for the client to leave, then cancel ``exchange``; ``True`` once it did."""
    while (await receive())["type"] != "http.disconnect":
        pass
    if exchange is not None:
        exchange.cancel()
    return True


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [*(headers or []), (b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _fail(send: Send, failure: UpstreamFailure) -> None:
    status = 504 if failure is UpstreamFailure.TIMEOUT else 502
    await _respond(send, status, [(UPSTREAM_ERROR_HEADER, failure.value.encode())])


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    return frozenset(token.strip().lower() for value in values for token in value.split(","))


def _is_token(name: str) -> bool:
    """An HTTP field name (RFC 9110 §5.1 token)."""
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)
