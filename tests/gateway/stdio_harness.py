"""Test harness for the gateway's upstream apps: a real uvicorn on 127.0.0.1 (free port), the test upstream
server (``stdio_server.py``) as the command, an injectable clock, and a raw HTTP client for wire-level checks."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.types import ASGIApp

from mcps.gateway.stdio_upstream import StdioUpstreamApp

STARTUP_TIMEOUT = 10
TIMEOUT = 30
SERVER = Path(__file__).with_name("stdio_server.py")
COMMAND = [sys.executable, str(SERVER)]
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw-test-client", "version": "0"},
}


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Run ``app`` (with its lifespan) on uvicorn at 127.0.0.1 on a free port; yields the MCP endpoint URL."""
    # IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted connections (no 40 ms Nagle stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", http="h11"))
    with sock:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            try:
                with anyio.fail_after(STARTUP_TIMEOUT):
                    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                        await anyio.sleep(0.01)
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                server.should_exit = True


@asynccontextmanager
async def upstream(*arguments: str, **options: Any) -> AsyncIterator[tuple[StdioUpstreamApp, str]]:
    """The test upstream server behind a :class:`StdioUpstreamApp` on uvicorn: yields the app and its URL."""
    app = StdioUpstreamApp([*COMMAND, *arguments], **options)
    async with serving(app) as url:
        yield app, url


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a response: its JSON body, or each SSE ``data:`` that is not empty."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return [response.json()] if response.content else []
    out = []
    for line in response.text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):  # SSE line ends only
        if line.startswith("data:") and line[5:].strip():
            out.append(json.loads(line[5:]))
    return out


class RawClient:
    """Hand-made HTTP requests, for what an SDK client never sends (and to look at the wire)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=TIMEOUT)
        self.session_id: str | None = None
        self.version = LEGACY

    async def aclose(self) -> None:
        await self.http.aclose()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = self.version
        return headers | (extra or {})

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(self.url, content=content, headers=self.headers(headers))

    async def initialize(self, version: str = LEGACY) -> dict[str, Any]:
        """Open a 2025-era session; returns the initialize result."""
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
        response = await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        self.version = version
        initialized = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert initialized.status_code == 202
        return messages(response)[-1]["result"]  # type: ignore[no-any-return]

    async def call(self, request_id: int, name: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
        """A session's tools/call; returns the final message of the answer."""
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        response = await self.post({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
        return messages(response)[-1]

    def modern_request(
        self, request_id: Any, method: str, params: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """Body and headers of a 2026-07-28 request: its envelope and routing headers (``headers`` override)."""
        params = {**params, "_meta": {**ENVELOPE, **params.get("_meta", {})}}
        routing = {"mcp-protocol-version": MODERN, "mcp-method": method}
        if "name" in params:
            routing["mcp-name"] = params["name"]
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        return json.dumps(body).encode(), self.headers(routing | (headers or {}))

    async def modern(
        self, request_id: Any, method: str, params: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """A 2026-07-28 request (see :meth:`modern_request`)."""
        content, all_headers = self.modern_request(request_id, method, params, headers)
        return await self.http.post(self.url, content=content, headers=all_headers)


def process_gone(pid: int) -> bool:
    """Whether ``pid`` no longer exists: ended *and reaped* (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def text(result: Any) -> str:
    """The text of a CallToolResult's first content block."""
    return result.content[0].text  # type: ignore[no-any-return]
