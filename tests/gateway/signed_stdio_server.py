"""Test upstream (run as a subprocess): the plain test server (``stdio_server.py``) wrapped with the mcps server
binding, ``mcps.bindings.serve_stdio``: every message it reads is verified (and its connection pinned to the first
signer), every message it writes is signed. Written by us for the tests of signed traffic through the stdio adapter.

Environment: MCPS_TEST_DIR holds server.pem (its key) and agent-*.jwk (the agent keys it trusts), test keys made per
run. Every mcps refusal is appended to refusals.log there.

Two tools besides the plain server's: ``seen`` answers with what this process saw of the call (its JSON-RPC id,
progress token, verified caller) and its pid, after a progress notification when the call has a token; ``gate``
records that it started (started.jsonl, with its id) and answers once a file of that name exists in MCPS_TEST_DIR.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anyio
import stdio_server  # the plain test server, next to this file; importing it does not run it
from mcp.server.mcpserver import Context

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, current_caller, serve_stdio
from mcps.core.keys import load_private_key, load_public_jwk

SERVER_IDENTITY = "urn:mcps:test:stdio-upstream"
state = Path(os.environ["MCPS_TEST_DIR"])
server = stdio_server.server


@server.tool()
async def seen(ctx: Context) -> str:
    """What this process saw of this call, and its pid."""
    meta = ctx.request_context.meta or {}
    token = meta.get("progress_token", meta.get("progressToken"))  # as the SDK's model names it
    if token is not None:
        await ctx.report_progress(1, 1, "seen")
    caller = current_caller().kid
    return json.dumps({"id": ctx.request_context.request_id, "token": token, "caller": caller, "pid": os.getpid()})


@server.tool()
async def gate(name: str, ctx: Context) -> str:
    """Record that it started, then answer once ``MCPS_TEST_DIR/<name>`` exists."""
    with (state / "started.jsonl").open("a", encoding="utf-8") as started:
        started.write(json.dumps({"gate": name, "id": ctx.request_context.request_id}) + "\n")
    while not (state / name).exists():  # noqa: ASYNC110 - a file is the test's only way in
        await anyio.sleep(0.02)
    return f"opened {name}"


def main() -> None:
    os.dup2(stdio_server.WIRE_OUT, 1)  # the plain server moved fd 1 aside; serve_stdio writes to sys.stdout
    logging.getLogger("mcps.bindings").addHandler(logging.FileHandler(state / "refusals.log", encoding="utf-8"))
    agents = [load_public_jwk(path) for path in sorted(state.glob("agent-*.jwk"))]
    security = ChannelSecurity(
        key=load_private_key(state / "server.pem"),
        identity=SERVER_IDENTITY,
        trusted=PinnedKeys(agents),
        nonces=MemoryNonceStore(),
    )
    anyio.run(serve_stdio, server, security)


if __name__ == "__main__":
    main()
