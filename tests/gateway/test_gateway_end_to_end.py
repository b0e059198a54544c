"""``mcps gateway`` in front of an ordinary (plain SDK, unsigned) MCP server run as a stdio command.

Real processes and sockets: the gateway on uvicorn at 127.0.0.1, the example payments server as its stdio upstream,
signed agents using the mcps client binding and an unsigned client using the plain SDK. Every decision must be in
the audit log, which must verify.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from tests.gateway.harness import (
    GATEWAY_ID,
    PAYMENTS_ID,
    Agent,
    GatewayFiles,
    payments_over_http,
    running_gateway,
    write_gateway,
)

from mcps.audit import SqliteAuditLog, verify_log
from mcps.bindings import ChannelSecurity
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.envelope import PinnedKeys, sign_message
from mcps.core.errors import ErrorCode
from mcps.identity.resolver import attach_passport
from mcps.identity.revocation import RevocationKey
from mcps.stores.nonces import MemoryNonceStore


@pytest.fixture(params=["stdio", "http"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayFiles]:
    """A gateway in front of the payments server, run as a stdio command or reached over Streamable HTTP."""
    if request.param == "stdio":
        yield write_gateway(tmp_path)
        return
    with payments_over_http(tmp_path) as url:
        yield write_gateway(tmp_path, upstream_url=url)


def _client(url: str, files: GatewayFiles, agent: Agent) -> Client:
    security = ChannelSecurity(
        key=agent.key,
        passport=agent.passport,
        trusted=PinnedKeys([files.gateway_key.public_key]),  # an unsigned upstream: the gateway answers for it
        nonces=MemoryNonceStore(),
    )
    return Client(signed_streamable_http_client(f"{url}/mcp/payments", security, server_identity=PAYMENTS_ID))


def _code(error: BaseException) -> str | None:
    leaves = [error]
    while leaves:
        leaf = leaves.pop()
        if isinstance(leaf, BaseExceptionGroup):
            leaves.extend(leaf.exceptions)
        elif isinstance(leaf, MCPError) and isinstance(leaf.error.data, dict):
            return str(leaf.error.data.get("mcps_code"))
    return None


async def test_a_signed_agent_lists_and_calls_through_the_gateway(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, running):
        async with _client(url, files, files.agents["payer"]) as client:
            listed = await client.list_tools()
            assert sorted(tool.name for tool in listed.tools) == ["get_balance", "read_file", "transfer_funds"]
            result = await client.call_tool(
                "transfer_funds", {"amount": 50, "currency": "USD", "to": "acct-2", "counterparty": "Acme Supplies"}
            )
            assert "transferred 50" in result.content[0].text  # type: ignore[union-attr]
        log = SqliteAuditLog(files.directory / "state" / "audit.db", read_only=True)
        try:
            verified = verify_log(log, log.public_key, log.origin)
            entries = [json.loads(entry.data) for entry in await log.entries(0, verified.size)]
        finally:
            await log.aclose()
        calls = [entry for entry in entries if entry.get("tool") == "transfer_funds"]
        assert [(entry["event"], entry.get("decision")) for entry in calls] == [("call", "allow"), ("result", None)]
        assert calls[0]["agent"] == "agent-payer"
        assert calls[0]["trust_level"] == 2
        del running


@pytest.mark.parametrize(
    ("agent", "tool", "arguments", "code"),
    [
        ("reader", "transfer_funds", {"amount": 5, "currency": "USD", "to": "a", "counterparty": "x"}, "MCPS-009"),
        ("nobody", "transfer_funds", {"amount": 5, "currency": "USD", "to": "a", "counterparty": "x"}, "MCPS-016"),
        ("payer", "transfer_funds", {"amount": 500, "currency": "USD", "to": "a", "counterparty": "x"}, "MCPS-016"),
        (
            "payer",
            "transfer_funds",
            {"amount": 5, "currency": "USD", "to": "a", "counterparty": "Evil Corp Holdings Ltd."},
            "MCPS-016",
        ),
        ("nobody", "read_file", {"path": "hello.txt"}, "MCPS-016"),
    ],
    ids=["insufficient-trust", "scope-missing", "over-spend-cap", "sanctioned-counterparty", "read-without-scope"],
)
async def test_policy_refusals_reach_the_agent_with_their_code(
    files: GatewayFiles, agent: str, tool: str, arguments: dict[str, Any], code: str
) -> None:
    """Sent as the agent would if it guessed a hidden tool's name: the gateway refuses, the upstream never hears."""
    async with running_gateway(files) as (url, _):
        refused = await _post(url, _modern_call(files.agents[agent], tool=tool, arguments=arguments))
        assert _error_code(refused) == code
        allowed = await _post(url, _modern_call(files.agents["payer"], tool="get_balance"))
        assert "balance" in allowed.text


async def test_a_hidden_tool_is_refused_by_the_client_before_sending(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, _):
        async with _client(url, files, files.agents["reader"]) as client:
            listed = await client.list_tools()
            assert sorted(tool.name for tool in listed.tools) == ["get_balance", "read_file"]
            with pytest.raises(BaseException) as refusal:
                await client.call_tool(
                    "transfer_funds", {"amount": 1, "currency": "USD", "to": "a", "counterparty": "x"}
                )
        assert _code(refusal.value) == "MCPS-008"


async def test_an_unsigned_client_is_admitted_only_as_l0(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, _):
        async with Client(f"{url}/mcp/payments") as client:
            listed = await client.list_tools()
            assert [tool.name for tool in listed.tools] == ["get_balance"]  # what an L0 caller may call
            balance = await client.call_tool("get_balance", {})
            assert "balance" in balance.content[0].text  # type: ignore[union-attr]
            with pytest.raises(BaseException) as refusal:
                await client.call_tool(
                    "transfer_funds", {"amount": 1, "currency": "USD", "to": "a", "counterparty": "x"}
                )
        assert _code(refusal.value) == "MCPS-009"


async def _post(url: str, message: dict[str, Any], **headers: str) -> httpx2.Response:
    routing = {"mcp-method": message["method"]}
    if "name" in message.get("params", {}):
        routing["mcp-name"] = message["params"]["name"]
    headers = {**routing, **headers}
    async with httpx2.AsyncClient() as http:
        return await http.post(
            f"{url}/mcp/payments",
            content=json.dumps(message),
            headers={
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2026-07-28",
                **headers,
            },
        )


def _modern_call(
    agent: Agent, *, audience: str = PAYMENTS_ID, tool: str = "get_balance", arguments: dict[str, Any] | None = None
) -> dict[str, Any]:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments or {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    return sign_message(
        attach_passport(call, agent.passport), agent.key, audience=audience, now=__import__("time").time()
    )


def _error_code(response: httpx2.Response) -> str:
    body = response.text
    if body.startswith("{"):
        return str(json.loads(body)["error"]["data"]["mcps_code"])
    data = next(line[5:] for line in body.splitlines() if line.startswith("data:") and line[5:].strip())
    return str(json.loads(data)["error"]["data"]["mcps_code"])


async def test_a_replayed_request_is_refused(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, _):
        message = _modern_call(files.agents["payer"])
        first = await _post(url, message)
        assert first.status_code == 200
        assert "balance" in first.text
        again = await _post(url, message)
        assert _error_code(again) == ErrorCode.REPLAY.mcps


async def test_a_message_for_another_server_is_refused(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, _):
        response = await _post(url, _modern_call(files.agents["payer"], audience="urn:example:other"))
        assert _error_code(response) == ErrorCode.AUDIENCE_MISMATCH.mcps


async def test_a_revoked_agent_is_refused_at_once(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, running):
        assert (await _post(url, _modern_call(files.agents["payer"]))).status_code == 200
        await running.relay._revocations.revoke(
            RevocationKey.local("sub", "agent-payer"), now=__import__("time").time()
        )
        assert _error_code(await _post(url, _modern_call(files.agents["payer"]))) == ErrorCode.REVOKED.mcps


async def test_a_foreign_host_header_is_refused(files: GatewayFiles) -> None:
    async with running_gateway(files) as (url, _):
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{url}/mcp/payments", content=b"{}", headers={"host": "evil.example"})
        assert response.status_code == 421


async def test_the_discovery_document_names_each_upstream(files: GatewayFiles) -> None:
    from mcps.gateway.discovery import read_discovery  # noqa: PLC0415

    async with running_gateway(files) as (url, _):
        async with httpx2.AsyncClient() as http:
            token = (await http.get(f"{url}/.well-known/mcps-gateway")).text
        issuer, upstreams = read_discovery(token, files.gateway_key.public_key, now=__import__("time").time())
        assert issuer == GATEWAY_ID
        assert [(u.name, u.path, u.identity, u.signed) for u in upstreams] == [
            ("payments", "/mcp/payments", PAYMENTS_ID, False)
        ]
