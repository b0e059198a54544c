"""Test server (run as a subprocess): an MCPServer behind the signed stdio binding, with a policy and an audit log.

Environment: MCPS_TEST_DIR holds server.pem (the server's key), anchors.jwks (the trust anchors agents' passports
chain to), policy.toml (the policy; its sdn.csv beside it) — all test material made per run. Every tool call that
runs is appended to calls.jsonl there, every refusal of the binding to refusals.log, and every decision to the
audit log audit.sqlite3.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

from mcps import MemoryNonceStore
from mcps.audit import SqliteAuditLog
from mcps.bindings import ChannelSecurity, current_caller, serve_stdio
from mcps.bindings.policy import PolicyGate
from mcps.core.keys import load_private_key
from mcps.identity.anchors import TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore
from mcps.policy import PolicyFile
from mcps.stores.counters import MemoryCounterStore

SERVER_IDENTITY = "urn:mcps:test:payments"
state = Path(os.environ["MCPS_TEST_DIR"])
server = MCPServer("mcps-policy-test")


def record(tool: str, **arguments: object) -> None:
    with (state / "calls.jsonl").open("a", encoding="utf-8") as calls:
        calls.write(json.dumps({"tool": tool, "agent": current_caller().identity, **arguments}) + "\n")


@server.tool()
def get_balance() -> str:
    """The account's balance."""
    record("get_balance")
    return "balance: 100 USD"


@server.tool()
def transfer_funds(amount: float, currency: str, counterparty: str) -> str:
    """Send money."""
    record("transfer_funds", amount=amount, currency=currency, counterparty=counterparty)
    return f"sent {amount} {currency}"


@server.tool()
def close_account() -> str:
    """Close the account (no rule allows it)."""
    record("close_account")
    return "closed"


async def main() -> None:
    logging.getLogger("mcps.bindings").addHandler(logging.FileHandler(state / "refusals.log", encoding="utf-8"))
    audit = SqliteAuditLog(state / "audit.sqlite3")
    anchors = TrustAnchors.load(state / "anchors.jwks")
    security = ChannelSecurity(
        key=load_private_key(state / "server.pem"),
        identity=SERVER_IDENTITY,
        trusted=PassportResolver(
            anchors=anchors, audience=SERVER_IDENTITY, revocations=MemoryRevocationStore(), min_level=TrustLevel.L0
        ),  # the policy decides levels per tool
        nonces=MemoryNonceStore(),
        policy=PolicyGate(PolicyFile.load(state / "policy.toml", counters=MemoryCounterStore()), audit=audit),
    )
    try:
        await serve_stdio(server, security)
    finally:
        await audit.aclose()


if __name__ == "__main__":
    anyio.run(main)
