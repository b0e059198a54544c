"""Test server (run as a subprocess): an MCPServer with two tools, wrapped with mcps over stdio.

Environment: MCPS_TEST_DIR holds server.pem (its key, a test key made per run) and agent.jwk (the one trusted
agent key). Every tool call is appended to calls.jsonl there, every mcps refusal to refusals.log, so a test
can check that an attack reached no tool and was refused with its code.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, current_caller, serve_stdio
from mcps.core.keys import load_private_key, load_public_jwk

SERVER_IDENTITY = "urn:mcps:test:server"
state = Path(os.environ["MCPS_TEST_DIR"])
server = MCPServer("mcps-test")


def record(tool: str, **arguments: str) -> None:
    with (state / "calls.jsonl").open("a", encoding="utf-8") as calls:
        calls.write(json.dumps({"tool": tool, "caller": current_caller().kid, **arguments}) + "\n")


@server.tool()
def safe(text: str) -> str:
    """Echo the text back."""
    record("safe", text=text)
    return f"echo: {text}"


@server.tool()
def rm_rf(text: str) -> str:
    """A tool no attacker may reach."""
    record("rm_rf", text=text)
    return "deleted everything"


@server.tool()
def whoami() -> str:
    """The verified caller's key id."""
    record("whoami")
    return current_caller().kid


def main() -> None:
    handler = logging.FileHandler(state / "refusals.log", encoding="utf-8")
    logging.getLogger("mcps.bindings").addHandler(handler)
    security = ChannelSecurity(
        key=load_private_key(state / "server.pem"),
        identity=SERVER_IDENTITY,
        trusted=PinnedKeys([load_public_jwk(state / "agent.jwk")]),
        nonces=MemoryNonceStore(),
    )
    anyio.run(serve_stdio, server, security)


if __name__ == "__main__":
    main()
