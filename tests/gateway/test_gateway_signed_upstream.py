"""End to end through the gateway when both ends sign (SPEC.md §12): the agent's signature reaches the upstream
intact, the upstream checks the gateway's hop record and grant, its answer reaches the agent intact with the
gateway's countersignature (and audit receipt), and a changed argument or a substituted gateway is caught."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from tests.gateway.harness import (
    LEDGER_ID,
    Agent,
    GatewayFiles,
    payments_over_http,
    running_gateway,
    signed_ledger,
    write_gateway,
)
from tests.gateway.test_gateway_end_to_end import _code, _error_code, _modern_call

from mcps.bindings import ChannelSecurity
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.envelope import PinnedKeys
from mcps.core.keys import Algorithm, PrivateKey, PublicKey
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import HopTrust

TRANSFER = {"amount": 50, "currency": "USD", "to": "acct-2", "counterparty": "Acme Supplies"}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[GatewayFiles, PublicKey]]:
    with payments_over_http(tmp_path) as payments:
        files = write_gateway(tmp_path, upstream_url=payments)
        with signed_ledger(files) as (_url, key):
            yield files, key.public_key


def _client(url: str, agent: Agent, upstream: PublicKey, gateway: PublicKey) -> Client:
    security = ChannelSecurity(
        key=agent.key,
        passport=agent.passport,
        trusted=PinnedKeys([upstream]),  # the upstream's own key: its answers are verified end to end
        gateways=HopTrust(PinnedKeys([gateway]), required=True),  # and every one must come through this gateway
        nonces=MemoryNonceStore(),
    )
    transport = signed_streamable_http_client(f"{url}/mcp/ledger", security, server_identity=LEDGER_ID)
    return Client(transport)


async def test_both_ends_verify_each_other_through_the_gateway(ledger: tuple[GatewayFiles, PublicKey]) -> None:
    files, upstream_key = ledger
    async with (
        running_gateway(files) as (url, _),
        _client(url, files.agents["payer"], upstream_key, files.gateway_key.public_key) as client,
    ):
        listed = await client.list_tools()  # filtered by policy, re-signed by the gateway, tools still the upstream's
        assert sorted(tool.name for tool in listed.tools) == ["get_balance", "read_file", "transfer_funds"]
        result = await client.call_tool("transfer_funds", TRANSFER)
        assert "transferred 50" in result.content[0].text  # type: ignore[union-attr]


async def test_a_listing_the_gateway_filtered_still_carries_the_upstreams_tool_signatures(
    ledger: tuple[GatewayFiles, PublicKey],
) -> None:
    files, upstream_key = ledger
    async with running_gateway(files) as (url, _):
        reader = files.agents["reader"]  # sees fewer tools: the gateway must re-sign the listing
        async with _client(url, reader, upstream_key, files.gateway_key.public_key) as client:
            listed = await client.list_tools()
            assert sorted(tool.name for tool in listed.tools) == ["get_balance", "read_file"]


async def test_a_substituted_gateway_is_caught_by_the_agent(ledger: tuple[GatewayFiles, PublicKey]) -> None:
    files, upstream_key = ledger
    impostor = PrivateKey.generate(Algorithm.EDDSA).public_key  # the agent pinned another gateway key
    async with running_gateway(files) as (url, _):
        with pytest.raises(BaseException) as refusal:
            async with _client(url, files.agents["payer"], upstream_key, impostor) as client:
                await client.list_tools()
    assert _code(refusal.value) == "MCPS-029"


async def test_the_upstream_refuses_a_call_that_skipped_the_gateway(ledger: tuple[GatewayFiles, PublicKey]) -> None:
    files, _ = ledger
    config = files.config.read_text(encoding="utf-8")
    ledger_url = config[config.index("[upstreams.ledger]") :].split('url = "')[1].split('"')[0]
    agent = files.agents["payer"]
    call = _modern_call(agent, audience=LEDGER_ID, tool="get_balance")
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            ledger_url,
            content=json.dumps(call),
            headers={
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2026-07-28",
                "mcp-method": "tools/call",
                "mcp-name": "get_balance",
            },
        )
    assert _error_code(response) == "MCPS-034"
