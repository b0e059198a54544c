"""Harness for the HTTP upstream proxy tests: real uvicorn servers and raw TCP servers on 127.0.0.1, a plain-SDK
upstream, and an in-process ASGI driver that records every message the proxy sends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STARTUP_TIMEOUT = 10


@asynccontextmanager
async def serving(app: ASGIApp, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Run ``app`` on uvicorn at 127.0.0.1 on a free port; yields ``http://127.0.0.1:PORT``.

    The listening socket is made with ``IPPROTO_TCP`` so that asyncio sets ``TCP_NODELAY`` on each accepted
    connection (with protocol 0 it does not, and responses written in pieces stall on delayed ACKs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, ws="none", http="h11", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    with sock:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            try:
                with anyio.fail_after(STARTUP_TIMEOUT):
                    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                        await anyio.sleep(0.01)
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True


@asynccontextmanager
async def raw_tcp(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 whose connections ``handler`` serves byte by byte; yields its ``http://`` URL."""

    open_writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            open_writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.close()
        for writer in open_writers:
            writer.close()
        await server.wait_closed()


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mcp"


@dataclass
class Gates:
    """Events through which a test holds the upstream's tools at chosen points."""

    finish_steps: anyio.Event = field(default_factory=anyio.Event)
    release_hold: anyio.Event = field(default_factory=anyio.Event)
    hold_started: anyio.Event = field(default_factory=anyio.Event)


def sdk_upstream(gates: Gates) -> ASGIApp:
    """A fresh plain-SDK MCP server (no mcps), default SSE responses, as a Streamable HTTP app at ``/mcp``.

    Tools: ``echo``; ``steps`` sends a progress notification then waits for ``gates.finish_steps`` (so a test
    proves the notification arrived while the call was still running); ``hold`` waits for ``gates.release_hold``.
    """
    server = MCPServer("proxy-test-upstream", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    async def steps(ctx: Context) -> str:
        """Report progress, then finish when the test says so."""
        await ctx.report_progress(1, 2, "first step")
        await gates.finish_steps.wait()
        await ctx.report_progress(2, 2, "second step")
        return "done"

    @server.tool()
    async def hold() -> str:
        """Wait until released."""
        gates.hold_started.set()
        await gates.release_hold.wait()
        return "released"

    return server.streamable_http_app()


class Recorder:
    """ASGI wrapper that records each request's method, headers and response status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.exchanges: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange: dict[str, Any] = {"method": scope["method"], "headers": dict(scope["headers"]), "status": None}
        self.exchanges.append(exchange)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, recording_send)


@dataclass
class Driven:
    """What the proxy sent for one in-process exchange."""

    messages: list[Message]

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


async def drive(
    app: ASGIApp,
    method: str = "POST",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"{}",
    disconnect_after: int | None = None,
    leave: anyio.Event | None = None,
) -> Driven:
    """Run one exchange through ``app`` in process. The client disconnects once ``disconnect_after`` body
    messages have been sent, or when ``leave`` is set."""
    sent: list[Message] = []
    disconnected = leave or anyio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        bodies = sum(1 for m in sent if m["type"] == "http.response.body")
        if disconnect_after is not None and bodies >= disconnect_after:
            disconnected.set()

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": headers or [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return Driven(sent)
