"""The MCP server every binding surface of the corpus attacks: an ``MCPServer`` with four tools, wrapped with mcps.

* ``echo(text)`` — returns ``"echo: " + text``;
* ``rm_rf(text)`` — a tool no attack may reach (it says so when it is);
* ``number(value)`` — returns the Python type and value the tool received (``"int:125"``), so a respelled number
  is seen as the tool sees it;
* ``meta()`` — returns the member names of the request's ``_meta`` as the tool sees them.

It trusts one agent key (:data:`~.pki.AGENT`), is ``SERVER_ID``, and its clock is fixed (``MCPS_ATTACKS_NOW``,
default :data:`~.pki.NOW`). Run as ``python -m attacks.frame_server`` (with ``tests`` on ``PYTHONPATH``) it serves
stdio with :func:`mcps.bindings.serve_stdio`; refusals are logged to stderr.
"""

from __future__ import annotations

import json
import logging
import os

import anyio
from mcp.server.mcpserver import Context, MCPServer

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, serve_stdio

from .pki import AGENT, NOW, SERVER, SERVER_ID


def build_server() -> MCPServer:
    server = MCPServer("mcps-attack-corpus")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return f"echo: {text}"

    @server.tool()
    def rm_rf(text: str) -> str:
        """A tool no attacker may reach."""
        return f"REACHED rm_rf: {text}"

    @server.tool()
    def number(value: int | float) -> str:
        """The type and value of the number received."""
        return f"{type(value).__name__}:{value!r}"

    @server.tool()
    def meta(ctx: Context) -> str:
        """The names of the request's _meta members, as the tool sees them."""
        members = ctx.request_context.meta
        return json.dumps(sorted(members) if isinstance(members, dict) else [])

    return server


def security(now: float = NOW) -> ChannelSecurity:
    return ChannelSecurity(
        key=SERVER,
        identity=SERVER_ID,
        trusted=PinnedKeys([AGENT.public_key]),
        nonces=MemoryNonceStore(),
        clock=lambda: now,
    )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    now = float(os.environ.get("MCPS_ATTACKS_NOW", NOW))
    anyio.run(serve_stdio, build_server(), security(now))


if __name__ == "__main__":
    main()
