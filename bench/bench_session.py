"""Session benchmark: ``tools/call`` round trips per second through a signed MCP session vs the same session unsigned.

``make bench`` runs this after bench_core.py. One run, every ratio from that run:

* **in memory** — an ``mcp.Client`` and an ``MCPServer`` joined by anyio memory streams of ``SessionMessage``
  (the SDK's own in-memory shape); signed = ``SignedTransport`` on the client streams and
  ``secure_server_streams`` on the server streams, so the same SDK code runs with and without mcps;
* **stdio** — a real server subprocess (``session_server.py``): the SDK's ``stdio_client`` / ``run_stdio_async``
  unsigned, ``signed_stdio_client`` / ``serve_stdio`` signed (these also parse every line strictly).

Each case: initialize, warm-up calls, then sequential ``tools/call`` round trips with small arguments
(``{"text": "hello"}``) timed with ``time.perf_counter``. Ratio = signed time per call / unsigned time per call.
Target: ≤ 1.25×, reported, never enforced.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SignedTransport, secure_server_streams, signed_stdio_client
from mcps.core.keys import save_private_key

HERE = Path(__file__).resolve().parent
SERVER_IDENTITY = "urn:mcps:bench:server"
WARMUP = 30
CALLS = {"memory": 1500, "stdio": 600}
TARGET = 1.25


def make_server() -> MCPServer:
    server = MCPServer("mcps-bench")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    return server


@asynccontextmanager
async def memory_session(signed: bool, agent: PrivateKey, server_key: PrivateKey) -> AsyncIterator[Client]:
    to_server, server_in = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    to_client, client_in = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    lowlevel = make_server()._lowlevel_server  # what MCPServer.run_stdio_async runs too

    @asynccontextmanager
    async def client_streams() -> AsyncIterator[Any]:
        yield client_in, to_server

    async def serve() -> None:
        options = lowlevel.create_initialization_options()
        if not signed:
            await lowlevel.run(server_in, to_client, options)
            return
        security = ChannelSecurity(
            key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent.public_key]), nonces=MemoryNonceStore()
        )
        async with secure_server_streams(server_in, to_client, security) as (read, write):
            await lowlevel.run(read, write, options)

    transport: AbstractAsyncContextManager[Any] = client_streams()
    if signed:
        security = ChannelSecurity(key=agent, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore())
        transport = SignedTransport(client_streams(), security, server_identity=SERVER_IDENTITY)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve)
        async with Client(transport, mode="legacy") as client:
            yield client
        tasks.cancel_scope.cancel()


@asynccontextmanager
async def stdio_session(signed: bool, agent: PrivateKey, server_key: PrivateKey) -> AsyncIterator[Client]:
    with tempfile.TemporaryDirectory() as state:
        save_private_key(server_key, Path(state) / "server.pem")
        (Path(state) / "agent.jwk").write_text(json.dumps(agent.public_key.to_jwk()))
        script = str(HERE / "session_server.py")
        args = [script, "signed", state] if signed else [script, "plain"]
        params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))
        if signed:
            security = ChannelSecurity(
                key=agent, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
            )
            transport: AbstractAsyncContextManager[Any] = signed_stdio_client(
                params, security, server_identity=SERVER_IDENTITY
            )
        else:
            transport = stdio_client(params)
        async with Client(transport, mode="legacy") as client:
            yield client


Session = Callable[[bool, PrivateKey, PrivateKey], AbstractAsyncContextManager[Client]]


async def per_call(session: Session, signed: bool, calls: int) -> float:
    """Seconds per tools/call round trip."""
    agent, server_key = PrivateKey.generate(), PrivateKey.generate()
    async with session(signed, agent, server_key) as client:
        for _ in range(WARMUP):
            await client.call_tool("echo", {"text": "hello"})
        start = time.perf_counter()
        for _ in range(calls):
            result = await client.call_tool("echo", {"text": "hello"})
        elapsed = time.perf_counter() - start
        if result.content[0].text != "hello":  # type: ignore[union-attr]
            raise RuntimeError("unexpected tool result")
    return elapsed / calls


async def main() -> None:
    print("mcps session benchmark: tools/call round trips, signed vs unsigned (one run)")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    cases: list[tuple[str, Session]] = [("memory", memory_session), ("stdio", stdio_session)]
    rows = []
    for name, session in cases:
        unsigned = await per_call(session, False, CALLS[name])
        signed = await per_call(session, True, CALLS[name])
        rows.append((name, unsigned, signed))
    print(
        f"\n{'transport':<10} {'unsigned calls/s':>17} {'signed calls/s':>15} {'µs/call unsigned':>17} "
        f"{'µs/call signed':>15} {'ratio':>7}  target ≤ {TARGET}×"
    )
    for name, unsigned, signed in rows:
        ratio = signed / unsigned
        verdict = "met" if ratio <= TARGET else "missed"
        print(
            f"{name:<10} {1 / unsigned:>17,.0f} {1 / signed:>15,.0f} {unsigned * 1e6:>17,.0f} "
            f"{signed * 1e6:>15,.0f} {ratio:>6.2f}×  {verdict}"
        )
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def run(entry: Callable[[], Awaitable[None]]) -> None:
    anyio.run(entry)


if __name__ == "__main__":
    run(main)
