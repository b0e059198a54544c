"""Benchmark server (run as a subprocess by bench_session.py): one echo tool over stdio, signed or not.

Usage: session_server.py plain | session_server.py signed STATE_DIR  (STATE_DIR holds server.pem and agent.jwk,
throwaway keys made by the benchmark for this run).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, serve_stdio
from mcps.core.keys import load_private_key, load_public_jwk

SERVER_IDENTITY = "urn:mcps:bench:server"
server = MCPServer("mcps-bench")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


def main() -> None:
    if sys.argv[1] == "plain":
        anyio.run(server.run_stdio_async)
        return
    state = Path(sys.argv[2])
    security = ChannelSecurity(
        key=load_private_key(state / "server.pem"),
        identity=SERVER_IDENTITY,
        trusted=PinnedKeys([load_public_jwk(state / "agent.jwk")]),
        nonces=MemoryNonceStore(),
    )
    anyio.run(serve_stdio, server, security)


if __name__ == "__main__":
    main()
