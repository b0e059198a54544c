"""Test upstream (run as a subprocess by the gateway): a plain MCP SDK server over stdio with a tool that takes the
time it is asked for — calls in flight during a shutdown or a reload. Written by us for the operations tests."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("slow")


@server.tool()
async def slow(seconds: float) -> str:
    """Answer after ``seconds``."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def quick() -> str:
    """Answer at once."""
    return "quick"


if __name__ == "__main__":
    server.run("stdio")
