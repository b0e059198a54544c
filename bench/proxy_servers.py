"""Servers for bench_proxy.py, each run as its own process: the plain-SDK upstream, or a forwarder in front of it.

Usage::

    proxy_servers.py upstream
    proxy_servers.py proxy NAME UPSTREAM_URL     (NAME: mcps, httpx, httpcore, aiohttp, h11)

Each binds 127.0.0.1 on a free port (a socket made with ``IPPROTO_TCP``, so that asyncio sets ``TCP_NODELAY`` on
every accepted connection: see the Nagle pitfall in BENCHMARKS.md), prints ``PORT <n>`` and serves with uvicorn
until terminated.

``mcps`` is :class:`mcps.gateway.http_upstream.HttpUpstreamApp`. The others are the smallest pass-through forwarders
each HTTP client allows (the same header filtering, the response streamed chunk by chunk, keep-alive pool), written
only to compare the clients' cost; they have none of the product's limits or error handling.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
_DROP_REQUEST = _HOP | {b"host", b"content-length", b"accept-encoding", b"authorization", b"cookie"}
_DROP_RESPONSE = _HOP | {b"content-length"}
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def make_upstream() -> ASGIApp:
    server = MCPServer("mcps-bench-upstream", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    return server.streamable_http_app()


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


def request_headers(scope: Scope, host: bytes) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in scope["headers"] if k not in _DROP_REQUEST]
    return [(b"host", host), *kept]


def response_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(bytes(k).lower(), bytes(v)) for k, v in headers if bytes(k).lower() not in _DROP_RESPONSE]


class HttpxForwarder:
    def __init__(self, url: str) -> None:
        import httpx  # noqa: PLC0415 - only this candidate needs it

        self.url = url
        self.host = urlsplit(url).netloc.encode()
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=NODELAY)
        self.client = httpx.AsyncClient(transport=transport, timeout=30)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        request = self.client.build_request(
            scope["method"], self.url, headers=request_headers(scope, self.host), content=body
        )
        response = await self.client.send(request, stream=True)
        try:
            headers = response_headers(response.headers.raw)
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


class HttpcoreForwarder:
    def __init__(self, url: str) -> None:
        import httpcore  # noqa: PLC0415 - only this candidate needs it

        self.url = url
        self.host = urlsplit(url).netloc.encode()
        self.pool = httpcore.AsyncConnectionPool(max_connections=100, socket_options=NODELAY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        headers = request_headers(scope, self.host)
        headers.append((b"content-length", str(len(body)).encode()))
        async with self.pool.stream(scope["method"], self.url, headers=headers, content=body) as response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers(response.headers),
                }
            )
            async for chunk in response.aiter_stream():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class AiohttpForwarder:
    def __init__(self, url: str) -> None:
        self.url = url
        self.host = urlsplit(url).netloc.encode()
        self.session: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import aiohttp  # noqa: PLC0415 - only this candidate needs it

        if self.session is None:
            connector = aiohttp.TCPConnector(limit=100)
            self.session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
            )
        body = await read_body(receive)
        headers = [(k.decode(), v.decode()) for k, v in request_headers(scope, self.host)]
        async with self.session.request(scope["method"], self.url, headers=headers, data=body) as response:
            raw = response.raw_headers
            await send({"type": "http.response.start", "status": response.status, "headers": response_headers(raw)})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class H11Forwarder:
    """A keep-alive pool of asyncio streams driven by h11: the least a correct HTTP/1.1 client does."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.target = (parts.path or "/").encode()
        self.host = parts.netloc.encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]]:
        import h11  # noqa: PLC0415 - only this candidate needs it

        while self.idle and self.idle[-1][0].at_eof():  # closed by the upstream while idle
            self.idle.pop()[1].close()
        if self.idle:
            conn = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(*self.address)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = (reader, writer, h11.Connection(h11.CLIENT))
        try:
            yield conn
        except BaseException:
            conn[1].close()
            raise
        state = conn[2]
        if state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            self.idle.append(conn)
        else:
            conn[1].close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import h11  # noqa: PLC0415 - only this candidate needs it

        body = await read_body(receive)
        headers = request_headers(scope, self.host)
        headers.append((b"content-length", str(len(body)).encode()))
        async with self.connection() as (reader, writer, conn):
            request = h11.Request(method=scope["method"], target=self.target, headers=headers)
            writer.write(conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                    continue
                if isinstance(event, h11.Response):
                    headers = response_headers(event.headers.raw_items())
                    await send({"type": "http.response.start", "status": event.status_code, "headers": headers})
                elif isinstance(event, h11.Data):
                    await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
                elif isinstance(event, h11.EndOfMessage):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return


def make_proxy(name: str, url: str) -> ASGIApp:
    if name == "mcps":
        from mcps.gateway.http_upstream import HttpUpstreamApp  # noqa: PLC0415 - only this candidate needs it

        return HttpUpstreamApp(url)
    forwarders: dict[str, Any] = {
        "httpx": HttpxForwarder,
        "httpcore": HttpcoreForwarder,
        "aiohttp": AiohttpForwarder,
        "h11": H11Forwarder,
    }
    app: ASGIApp = forwarders[name](url)
    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    if sys.argv[1] == "upstream":
        app, lifespan = make_upstream(), "on"
    else:
        app, lifespan = make_proxy(sys.argv[2], sys.argv[3]), "off"
    print("PORT", sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, http="h11", ws="none", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
