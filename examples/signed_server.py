"""A signed MCP server: an ordinary MCPServer, run with mcps so every message in and out is signed.

Keys (once):  mcps keygen --out server.pem   and   mcps keygen --out agent.pem
The agent (examples/signed_agent.py) starts this server itself, over stdio.
"""

from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, current_caller, serve_stdio
from mcps.core.keys import load_private_key, load_public_jwk

KEYS = Path(__file__).parent
server = MCPServer("notes")


@server.tool()
def add_note(text: str) -> str:
    """Store a note. Only a verified agent gets here; mcps tells us which one."""
    return f"noted for {current_caller().kid[:8]}…: {text}"


security = ChannelSecurity(
    key=load_private_key(KEYS / "server.pem"),  # signs every response and notification
    identity="urn:example:notes",  # requests must be addressed to this server
    trusted=PinnedKeys([load_public_jwk(KEYS / "agent.pem.pub.jwk")]),  # the agents allowed in
    nonces=MemoryNonceStore(),  # replay defence
)

if __name__ == "__main__":
    anyio.run(serve_stdio, server, security)
