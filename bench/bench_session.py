"""Session benchmark: ``tools/call`` round trips per second through a signed MCP session vs the same session unsigned.

``make bench`` runs this after bench_core.py. Each case runs ``--reps`` times (default 5), unsigned and signed
alternating, and reports medians; each ratio is the ratio of the two medians:

* **in memory** — an ``mcp.Client`` and an ``MCPServer`` joined by anyio memory streams of ``SessionMessage``
  (the SDK's own in-memory shape); signed = ``SignedTransport`` on the client streams and
  ``secure_server_streams`` on the server streams, so the same SDK code runs with and without mcps;
* **stdio** — a real server subprocess (``session_server.py``): the SDK's ``stdio_client`` / ``run_stdio_async``
  unsigned, ``signed_stdio_client`` / ``serve_stdio`` signed (these also parse every line strictly).

Each case: initialize, one ``tools/list``, warm-up calls, then sequential ``tools/call`` round trips with small
arguments (``{"text": "hello"}``) timed with ``time.perf_counter``. Ratio = signed time per call / unsigned time per
call.
Target: ≤ 1.25×, reported, never enforced.

The breakdown (in memory; ``--no-breakdown`` skips it) says where a signed round trip spends its time by taking
pieces away, each variant run as many times as the main cases, in the same order each time:

* **unsigned** — the SDK alone;
* **streams only** — the mcps streams with a pass-through channel (nothing signed, verified or parsed beyond what
  the streams do: model ↔ dict on each side);
* **no crypto** — the full signed path with only the Ed25519 primitives replaced by no-ops (canonical form,
  envelope, block checks, nonce, channel bookkeeping all run);
* **signed** — the full path.

Differences between consecutive rows are what each layer costs per round trip.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SignedTransport, secure_server_streams, signed_stdio_client
from mcps.bindings._sdk import lowlevel_server
from mcps.bindings.channel import Inbound, SecureChannel
from mcps.core.keys import PublicKey, save_private_key

HERE = Path(__file__).resolve().parent
SERVER_IDENTITY = "urn:mcps:bench:server"
WARMUP = 30
CALLS = {"memory": 1500, "stdio": 600}
REPS = 5
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
    lowlevel = lowlevel_server(make_server())

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
        await client.list_tools()  # a signed client calls only tools it has listed (and pinned)
        for _ in range(WARMUP):
            await client.call_tool("echo", {"text": "hello"})
        start = time.perf_counter()
        for _ in range(calls):
            result = await client.call_tool("echo", {"text": "hello"})
        elapsed = time.perf_counter() - start
        if result.content[0].text != "hello":  # type: ignore[union-attr]
            raise RuntimeError("unexpected tool result")
    return elapsed / calls


# --- breakdown: take pieces away ----------------------------------------------------------------------------------


@contextmanager
def streams_only() -> Iterator[None]:
    """The channel passes every message through: what is left of mcps is the streams (model ↔ dict)."""
    send, receive = SecureChannel.send, SecureChannel.receive

    def pass_out(self: SecureChannel, message: dict[str, Any]) -> dict[str, Any]:
        return message

    async def pass_in(self: SecureChannel, message: dict[str, Any]) -> Inbound:
        return Inbound(deliver=message)

    SecureChannel.send, SecureChannel.receive = pass_out, pass_in  # type: ignore[method-assign]
    try:
        yield
    finally:
        SecureChannel.send, SecureChannel.receive = send, receive  # type: ignore[method-assign]


@contextmanager
def no_crypto() -> Iterator[None]:
    """Ed25519 sign and verify become no-ops; everything else on the signed path runs."""
    sign, verify = PrivateKey.sign, PublicKey.verify
    zero = bytes(64)

    def fake_sign(self: PrivateKey, data: bytes) -> bytes:
        return zero

    def fake_verify(self: PublicKey, signature: bytes, data: bytes) -> None:
        return None

    PrivateKey.sign, PublicKey.verify = fake_sign, fake_verify  # type: ignore[method-assign]
    try:
        yield
    finally:
        PrivateKey.sign, PublicKey.verify = sign, verify  # type: ignore[method-assign]


@contextmanager
def unchanged() -> Iterator[None]:
    yield


async def breakdown(reps: int) -> list[tuple[str, float]]:
    """Median seconds per in-memory round trip of each variant (see the module docstring)."""
    variants = [
        ("unsigned", False, unchanged),
        ("streams only", True, streams_only),
        ("no crypto", True, no_crypto),
        ("signed", True, unchanged),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for _ in range(reps):
        for name, signed, patch in variants:
            with patch():
                times[name].append(await per_call(memory_session, signed, CALLS["memory"]))
    return [(name, statistics.median(times[name])) for name, _, _ in variants]


def print_breakdown(rows: list[tuple[str, float]]) -> None:
    layer = {
        "unsigned": "the SDK (client, server, memory streams)",
        "streams only": "mcps streams: model ↔ dict on each side",
        "no crypto": "mcps checks: canonical form, envelope, block, nonce, channel",
        "signed": "Ed25519: 2 signs + 2 verifies",
    }
    print("\nbreakdown, in memory (medians of the variants, µs per round trip)")
    print(f"{'variant':<13} {'µs/call':>8} {'+µs':>6}")
    previous = 0.0
    for name, seconds in rows:
        print(f"{name:<13} {seconds * 1e6:>8,.0f} {(seconds - previous) * 1e6:>+6,.0f}  {layer[name]}")
        previous = seconds


async def main(reps: int, with_breakdown: bool) -> None:
    print(f"mcps session benchmark: tools/call round trips, signed vs unsigned (medians of {reps} runs)")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    cases: list[tuple[str, Session]] = [("memory", memory_session), ("stdio", stdio_session)]
    rows = []
    for name, session in cases:
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(reps):
            for secured in (False, True):
                runs[secured].append(await per_call(session, secured, CALLS[name]))
        rows.append((name, runs[False], runs[True]))
    print(
        f"\n{'transport':<10} {'unsigned calls/s':>17} {'signed calls/s':>15} {'µs/call unsigned':>17} "
        f"{'µs/call signed':>15} {'ratio':>7}  target ≤ {TARGET}×"
    )
    for name, unsigned_runs, signed_runs in rows:
        unsigned, signed = statistics.median(unsigned_runs), statistics.median(signed_runs)
        ratio = signed / unsigned
        verdict = "met" if ratio <= TARGET else "missed"
        print(
            f"{name:<10} {1 / unsigned:>17,.0f} {1 / signed:>15,.0f} {unsigned * 1e6:>17,.0f} "
            f"{signed * 1e6:>15,.0f} {ratio:>6.2f}×  {verdict}"
        )
    for name, unsigned_runs, signed_runs in rows:
        pairs = zip(unsigned_runs, signed_runs, strict=True)
        spread = ", ".join(f"{plain * 1e6:,.0f}/{secured * 1e6:,.0f}" for plain, secured in pairs)
        print(f"  {name} runs, µs/call unsigned/signed: {spread}")
    if with_breakdown:
        print_breakdown(await breakdown(reps))
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def run(entry: Callable[[], Awaitable[None]]) -> None:
    anyio.run(entry)


if __name__ == "__main__":
    # Each signed client pins the server's tools for its session only and says so at WARNING; ~40 sessions here.
    logging.getLogger("mcps.bindings.tools").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=REPS, help=f"runs per case, medians reported (default {REPS})")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the in-memory breakdown")
    args = parser.parse_args()
    run(lambda: main(args.reps, not args.no_breakdown))
