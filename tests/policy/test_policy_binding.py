"""The policy in the signed server binding, end to end over stdio: a real server process, the real SDK client.

A denied call is answered with a signed JSON-RPC error carrying the policy's code and never reaches the tool;
``tools/list`` is filtered per caller; every decision is in the audit log with the rule that decided. All keys and
passports are test keys, made per run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.audit import SqliteAuditLog
from mcps.bindings import ChannelSecurity, SecureChannel, signed_stdio_client
from mcps.core.keys import save_private_key
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:payments"
TIMEOUT = 30

POLICY = """\
mcps_policy = 1

[servers."urn:mcps:test:payments"]
min_level = 1

[[servers."urn:mcps:test:payments".tools]]
match = "get_balance"

[[servers."urn:mcps:test:payments".tools]]
match = "transfer_*"
min_level = 2
scopes_all = ["payments:write"]
rate = ["2/hour per agent"]
hooks = [{ hook = "mcps.policy.sanctions:SanctionsScreen", args = ["counterparty"], list = "sdn.csv" }]

[servers."urn:mcps:test:payments".tools.spend]
amount_arg = "amount"
currency_arg = "currency"
currency = "USD"
per_level = { 2 = { per_call = 100, per_day = 150 } }
"""
SDN = '901,"NORTHWIND TRADING COMPANY",-0- ,"TESTPROG",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n'


class Setup:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.server_key, self.anchor_key = PrivateKey.generate(), PrivateKey.generate()
        save_private_key(self.server_key, state / "server.pem")
        anchors = TrustAnchors([TrustAnchor(self.anchor_key.public_key, TrustLevel.L3)])
        (state / "anchors.jwks").write_text(json.dumps(anchors.to_jwks()))
        (state / "policy.toml").write_text(POLICY, encoding="utf-8")
        (state / "sdn.csv").write_text(SDN, encoding="utf-8")

    @asynccontextmanager
    async def client(self, agent_id: str, level: int, scopes: tuple[str, ...]) -> AsyncIterator[Client]:
        agent_key = PrivateKey.generate()
        passport = issue_passport(
            self.anchor_key, iss="urn:mcps:test:issuer", sub=agent_id, agent_key=agent_key.public_key,
            level=level, scopes=scopes, now=time.time(), ttl=600,
        )  # fmt: skip
        security = ChannelSecurity(
            key=agent_key,
            passport=passport,
            trusted=PinnedKeys([self.server_key.public_key]),
            nonces=MemoryNonceStore(),
        )
        params = StdioServerParameters(
            command=sys.executable, args=[str(HERE / "policy_server.py")], env={"MCPS_TEST_DIR": str(self.state)}
        )
        transport = signed_stdio_client(params, security, server_identity=SERVER_IDENTITY)
        async with Client(transport, mode="legacy") as client:
            yield client

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    async def audit(self) -> list[dict[str, Any]]:
        log = SqliteAuditLog(self.state / "audit.sqlite3", read_only=True)
        try:
            size = (await log.checkpoint()).size
            return [json.loads(entry.data) for entry in await log.entries(0, size)]
        finally:
            await log.aclose()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(tool, arguments)
    return str(caught.value.error.data["mcps_code"]), caught.value.error.message


def transfer(amount: float, counterparty: str = "Alice Smith") -> dict[str, Any]:
    return {"amount": amount, "currency": "USD", "counterparty": counterparty}


async def test_tools_list_is_filtered_per_caller(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("agent-writer", 2, ("payments:write",)) as client:
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
            assert names == ["get_balance", "transfer_funds"]
        async with setup.client("agent-reader", 1, ()) as client:
            assert [tool.name for tool in (await client.list_tools()).tools] == ["get_balance"]


async def test_denied_calls_never_reach_the_tool(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("agent-writer", 2, ("payments:write",)) as client:
            await client.list_tools()
            assert (await client.call_tool("transfer_funds", transfer(100))).content[0].text == "sent 100.0 USD"
            assert await refusal(client, "transfer_funds", transfer(100.5)) == (
                "MCPS-016", "per-call spend cap exceeded (L2 tier)",
            )  # fmt: skip
            assert await refusal(client, "transfer_funds", transfer(60)) == (
                "MCPS-016",
                "daily spend cap exceeded (L2 tier)",
            )
            assert await refusal(client, "transfer_funds", transfer(5, "Northwind Trading Company")) == (
                "MCPS-016", "refused by compliance screening",
            )  # fmt: skip
            assert (await client.call_tool("transfer_funds", transfer(50))).content[0].text == "sent 50.0 USD"
            assert await refusal(client, "transfer_funds", transfer(0)) == ("MCPS-010", "rate limit exceeded")
        async with setup.client("agent-reader", 1, ("payments:write",)) as client:
            await client.list_tools()  # transfer_funds is not listed, so the client will not even send it:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("transfer_funds", transfer(1))
            assert caught.value.error.data["mcps_code"] == "MCPS-008"
            assert (await client.call_tool("get_balance", {})).content[0].text == "balance: 100 USD"
    assert [(call["tool"], call.get("amount")) for call in setup.calls()] == [
        ("transfer_funds", 100.0), ("transfer_funds", 50.0), ("get_balance", None),
    ]  # fmt: skip


async def test_every_decision_is_audited_with_its_rule(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("agent-writer", 2, ("payments:write",)) as client:
            await client.list_tools()
            await client.call_tool("transfer_funds", transfer(10))
            await refusal(client, "transfer_funds", transfer(1000))
    audit = await setup.audit()
    calls = [entry for entry in audit if entry.get("method") == "tools/call"]
    assert [(e["event"], e["decision"], e.get("code"), e["data"]["rules"][-1]) for e in calls] == [
        ("call", "allow", None, f"{SERVER_IDENTITY}/transfer_*#hooks[0]"),
        ("deny", "deny", "MCPS-016", f"{SERVER_IDENTITY}/transfer_*#spend.L2.per_call"),
    ]
    assert all(entry["agent"] == "agent-writer" and entry["trust_level"] == 2 for entry in calls)
    assert "1000" not in json.dumps(calls)  # arguments are hashed, not logged
    listing = [entry for entry in audit if entry.get("method") == "tools/list"]
    assert [entry["decision"] for entry in listing] == ["allow"]


async def test_a_guessed_tool_name_is_refused_by_the_server(setup: Setup) -> None:
    """An agent that skips tools/list and sends tools/call for a tool it was not shown gets the policy's code from
    the server itself (no client-side tool guard involved), and the tool never runs."""
    agent_key = PrivateKey.generate()
    passport = issue_passport(
        setup.anchor_key, iss="urn:mcps:test:issuer", sub="agent-guess", agent_key=agent_key.public_key,
        level=1, scopes=("payments:write",), now=time.time(), ttl=600,
    )  # fmt: skip
    security = ChannelSecurity(
        key=agent_key, passport=passport, trusted=PinnedKeys([setup.server_key.public_key]), nonces=MemoryNonceStore()
    )
    channel = SecureChannel(security, peer=SERVER_IDENTITY)
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "policy_server.py"), env={**os.environ, "MCPS_TEST_DIR": str(setup.state)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdin is not None
    assert server.stdout is not None
    answers = []
    try:
        async with asyncio.timeout(TIMEOUT):
            for request_id, tool in enumerate(("transfer_funds", "close_account"), start=1):
                params = {"name": tool, "arguments": transfer(1) if tool == "transfer_funds" else {}}
                signed = channel.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
                assert signed is not None
                server.stdin.write(json.dumps(signed).encode() + b"\n")
                await server.stdin.drain()
                inbound = await channel.receive_raw(await server.stdout.readline())
                assert inbound.deliver is not None
                answers.append(inbound.deliver["error"])
    finally:
        server.stdin.close()
        await server.wait()
    assert [(error["data"]["mcps_code"], error["message"]) for error in answers] == [
        ("MCPS-009", "trust level is insufficient"),
        ("MCPS-016", "tool is not allowed by policy"),
    ]
    assert setup.calls() == []
