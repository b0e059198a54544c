"""Test server (run as a subprocess): an MCPServer with two tools, wrapped with mcps over stdio.

Environment: MCPS_TEST_DIR holds server.pem (its key, a test key made per run) and agent.jwk (the one trusted
agent key). Every tool call is appended to calls.jsonl there, every mcps refusal to refusals.log, so a test
can check that an attack reached no tool and was refused with its code.

With MCPS_TEST_TRUST=passport the server trusts agents through passports instead: the trust anchors are
anchors.jwks (minimum level L2), and calls to rm_rf need a per-call grant from the gateway key gateway.jwk.
Each recorded call then also holds the caller's agent id, level, scopes and grant (all test keys, made per run).
With MCPS_TEST_TRUST=mixed it trusts both: agents with anchored passports, and the agent.jwk key pinned (as a
gateway that pins some agents by key and others by passport).

With MCPS_TEST_SERVER_REQUESTS=1 it also has a tool ``confirm`` that sends the agent a progress notification and
an elicitation request (a server→client request) while the call is in progress; with MCPS_TEST_EXTRA_TOOLS=1 a
tool ``number`` that records the repr of the number it received and returns it, and a tool ``meta_keys`` that
records the ``_meta`` keys its call reached it with.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, GrantRequirement, current_caller, serve_stdio
from mcps.core.envelope import KeyResolver
from mcps.core.keys import load_private_key, load_public_jwk
from mcps.identity.anchors import TrustAnchors
from mcps.identity.grants import GrantVerifier
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore

SERVER_IDENTITY = "urn:mcps:test:server"
state = Path(os.environ["MCPS_TEST_DIR"])
trust = os.environ.get("MCPS_TEST_TRUST", "key")
passports = trust in ("passport", "mixed")
server = MCPServer("mcps-test")


def record(tool: str, **arguments: str) -> None:
    caller = current_caller()
    entry = {"tool": tool, "caller": caller.kid, **arguments}
    if passports:
        grant = caller.grant
        entry["identity"] = caller.identity
        entry["level"] = caller.level
        entry["scopes"] = sorted(caller.scopes)
        entry["grant"] = None if grant is None else {"tool": grant.tool, "iss": grant.iss, "sub": grant.agent_id}
    with (state / "calls.jsonl").open("a", encoding="utf-8") as calls:
        calls.write(json.dumps(entry) + "\n")


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
    """The verified caller's identity: its agent id with a passport, else its key id."""
    record("whoami")
    return current_caller().identity


class Confirmation(BaseModel):
    ok: bool


async def confirm(text: str, ctx: Context) -> str:
    """Ask the agent to confirm the text (elicitation), telling it so first (progress notification)."""
    record("confirm", text=text)
    await ctx.report_progress(0.5, 1.0, f"asking to confirm {text!r}")
    answer = await ctx.elicit(f"Confirm {text!r}?", Confirmation)
    confirmed = answer.action == "accept" and answer.data is not None and answer.data.ok
    return "confirmed" if confirmed else "not confirmed"


if os.environ.get("MCPS_TEST_SERVER_REQUESTS") == "1":
    server.tool()(confirm)


def number(n: int | float) -> int | float:
    """Return the number, recording how it arrived (its Python repr: ``125`` or ``125.0``)."""
    record("number", n=repr(n))
    return n


def meta_keys(ctx: Context) -> list[str]:
    """The ``_meta`` keys of this call, as the SDK handed them to the tool."""
    keys = sorted((ctx.request_context.meta or {}).keys())
    record("meta_keys", meta=",".join(keys))
    return keys


if os.environ.get("MCPS_TEST_EXTRA_TOOLS") == "1":
    server.tool()(number)
    server.tool()(meta_keys)


def main() -> None:
    handler = logging.FileHandler(state / "refusals.log", encoding="utf-8")
    logging.getLogger("mcps.bindings").addHandler(handler)
    nonces = MemoryNonceStore()
    trusted: KeyResolver = PinnedKeys([load_public_jwk(state / "agent.jwk")])
    grants = None
    if passports:
        anchors = TrustAnchors.load(state / "anchors.jwks")
        trusted = PassportResolver(
            anchors=anchors,
            audience=SERVER_IDENTITY,
            revocations=MemoryRevocationStore(),
            pinned=trusted if trust == "mixed" else None,
        )
        gateway = GrantVerifier(
            issuers=[load_public_jwk(state / "gateway.jwk")], audience=SERVER_IDENTITY, nonces=nonces
        )
        grants = GrantRequirement(gateway, tools={"rm_rf"})
    security = ChannelSecurity(
        key=load_private_key(state / "server.pem"),
        identity=SERVER_IDENTITY,
        trusted=trusted,
        nonces=nonces,
        grants=grants,
    )
    anyio.run(serve_stdio, server, security)


if __name__ == "__main__":
    main()
