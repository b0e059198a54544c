"""Signed MCP servers with the official SDK (``mcp`` 2.x): one call, the rest of the server unchanged.

::

    server = MCPServer("files")                      # or a low-level mcp.server.Server

    @server.tool()
    def read(path: str) -> str:
        caller = current_caller()                    # the verified sender of this call
        ...

    anyio.run(serve_stdio, server, ChannelSecurity(key=server_key, identity="urn:example:files",
                                                   trusted=PinnedKeys([agent_key]), nonces=MemoryNonceStore()))

Every inbound message is verified (strict parse, signature, time window, audience = ``security.identity``,
nonce) before the SDK parses it; every outbound message is signed — results and errors bound to their request,
notifications and server→client requests (sampling, elicitation) addressed to the connection's verified peer.
A refused request is answered with a signed JSON-RPC error carrying its id and MCPS code, and never reaches a
handler. See :mod:`mcps.bindings.channel` for the rules.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

from mcps.bindings._sdk import ReadStream, WriteStream, lowlevel_server
from mcps.bindings.channel import ChannelSecurity, SecureChannel
from mcps.bindings.streams import secure_frame_streams, secure_message_streams

__all__ = ["secure_server_streams", "serve_stdio", "signed_stdio_server"]

_CHUNK = 64 * 1024


@asynccontextmanager
async def signed_stdio_server(
    security: ChannelSecurity,
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """Like ``mcp.server.stdio.stdio_server()``, but it reads stdin lines itself: bounded, strictly parsed,
    verified; and it signs every line it writes to stdout. Tools must not print to stdout."""
    stdin = anyio.wrap_file(sys.stdin.buffer)
    stdout = anyio.wrap_file(sys.stdout.buffer)

    async def receive_chunk() -> bytes:
        return await stdin.read1(_CHUNK)

    async def send_frame(frame: bytes) -> None:
        await stdout.write(frame)
        await stdout.flush()

    channel = SecureChannel(security, peer=None)
    async with secure_frame_streams(channel, receive_chunk, send_frame) as streams:
        yield streams


@asynccontextmanager
async def secure_server_streams(
    read_stream: ReadStream[SessionMessage | Exception],
    write_stream: WriteStream[SessionMessage],
    security: ChannelSecurity,
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """Wrap the ``SessionMessage`` streams of any SDK transport. The transport has parsed the bytes already:
    put the strict parse in front of it (stdio: use :func:`signed_stdio_server` instead)."""
    async with secure_message_streams(SecureChannel(security, peer=None), read_stream, write_stream) as streams:
        yield streams


async def serve_stdio(server: Server[Any] | MCPServer, security: ChannelSecurity) -> None:
    """Run ``server`` over stdin/stdout with every message verified and signed, until stdin closes."""
    lowlevel = lowlevel_server(server)
    async with signed_stdio_server(security) as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
