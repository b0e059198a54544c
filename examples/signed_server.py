"""A signed MCP server: an ordinary MCPServer, run with mcps so every message in and out is signed.

The agent (examples/signed_agent.py) starts this server itself, over stdio. examples/signed_http_server.py serves
the same server over Streamable HTTP. Keys: examples/keys/ (test keys, made on first use by example_keys.py).
"""

import anyio
from example_keys import private_key, public_key
from mcp.server.mcpserver import MCPServer

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, current_caller, serve_stdio

server = MCPServer("notes")


@server.tool()
def add_note(text: str) -> str:
    """Store a note. Only a verified agent gets here; mcps tells us which one."""
    return f"noted for {current_caller().kid[:8]}…: {text}"


security = ChannelSecurity(
    key=private_key("server"),  # signs every response and notification
    identity="urn:example:notes",  # requests must be addressed to this server
    trusted=PinnedKeys([public_key("agent")]),  # the agents allowed in
    nonces=MemoryNonceStore(),  # replay defence
)

if __name__ == "__main__":
    anyio.run(serve_stdio, server, security)
