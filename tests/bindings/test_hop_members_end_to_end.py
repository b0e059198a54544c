"""Hop members reach no application (issue 9 §1.6, SPEC.md §9.8): ``mcps/via`` and ``mcps/grant`` lie outside every
signature, so a relay can add them in transit without breaking one. A receiving binding removes them before the
SDK sees the message: not in a tool's request ``_meta``, not in the ``_meta`` of a result the agent receives. A
grant the server checked reaches the tool only as ``Caller.grant``. Over stdio (pinned keys and passports) and
Streamable HTTP (both eras). All keys are test keys, made per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SecureChannel, signed_stdio_client
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.keys import save_private_key

from .http_harness import FORGED_HOP_MEMBERS, Relay, serving, signed_app
from .test_identity_end_to_end import AGENT_ID
from .test_identity_end_to_end import Setup as PassportSetup

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20
HOP_MEMBERS = {"mcps/via", "mcps/grant"}


def calls_in(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def client_for(state: Path, relay_mode: str, security: ChannelSecurity, **env: str) -> Client:
    command = [str(HERE / "relay.py"), relay_mode, "--", sys.executable, str(HERE / "signed_server.py")]
    environment = {"MCPS_TEST_DIR": str(state), "MCPS_TEST_EXTRA_TOOLS": "1", **env}
    params = StdioServerParameters(command=sys.executable, args=command, env=environment, cwd=str(HERE))
    return Client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY), mode="legacy")


@pytest.mark.parametrize("relay_mode", ["pass", "inject-hop-members"])
async def test_hop_members_injected_in_transit_reach_neither_tool_nor_agent_over_stdio(
    tmp_path: Path, relay_mode: str
) -> None:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    save_private_key(server_key, tmp_path / "server.pem")
    (tmp_path / "agent.jwk").write_text(json.dumps(agent_key.public_key.to_jwk()))
    security = ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore())
    with anyio.fail_after(TIMEOUT):
        async with client_for(tmp_path, relay_mode, security) as client:
            await client.list_tools()
            result = await client.call_tool("meta_keys", {})
    seen_by_tool = set(calls_in(tmp_path)[0]["meta"].split(","))
    assert "mcps/sig" in seen_by_tool  # the positive control: the signed _meta does reach the tool
    assert not seen_by_tool & HOP_MEMBERS
    assert "mcps/sig" in (result.meta or {})
    assert not set(result.meta or {}) & HOP_MEMBERS


async def test_checked_grant_reaches_the_tool_as_caller_grant_never_in_meta(tmp_path: Path) -> None:
    setup = PassportSetup(tmp_path)
    security = ChannelSecurity(
        key=setup.agent_key,
        passport=setup.passport(),
        trusted=PinnedKeys([setup.server_key.public_key]),
        nonces=MemoryNonceStore(),
    )
    with anyio.fail_after(TIMEOUT):
        async with client_for(tmp_path, "grant", security, MCPS_TEST_TRUST="passport") as client:
            await client.list_tools()
            await client.call_tool("meta_keys", {})
    (call,) = setup.calls()
    assert call["grant"] == {"tool": "meta_keys", "iss": "urn:mcps:test:gateway", "sub": AGENT_ID}
    assert "mcps/passport" in call["meta"].split(",")
    assert not set(call["meta"].split(",")) & HOP_MEMBERS
    assert setup.refusals() == ""


@pytest.mark.parametrize("era", [("legacy", False), ("2026-07-28", True)], ids=["2025-11-25-sse", "2026-07-28-json"])
async def test_hop_members_injected_in_transit_reach_neither_tool_nor_agent_over_http(era: tuple[str, bool]) -> None:
    mode, json_response = era
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    calls: list[dict[str, Any]] = []
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    relay = Relay("", "inject-hop-members")
    with anyio.fail_after(TIMEOUT):
        async with (
            serving(signed_app(server_security, calls, json_response=json_response, extras=True)) as server_url,
            serving(relay, lifespan="off") as relay_url,
        ):
            relay.upstream = server_url
            transport = signed_streamable_http_client(
                relay_url + "/mcp", agent_security, server_identity=SERVER_IDENTITY
            )
            async with Client(transport, mode=mode) as client:
                await client.list_tools()
                result = await client.call_tool("meta_keys", {})
    seen_by_tool = set(calls[0]["text"].split(","))
    assert "mcps/sig" in seen_by_tool
    assert not seen_by_tool & HOP_MEMBERS
    assert "mcps/sig" in (result.meta or {})
    assert not set(result.meta or {}) & HOP_MEMBERS


async def test_hop_members_are_not_in_the_delivered_message_nor_in_the_caller() -> None:
    """In memory, every kind: request (with its caller), notification, result and error."""
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    agent = SecureChannel(
        ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()),
        peer=SERVER_IDENTITY,
    )
    server = SecureChannel(
        ChannelSecurity(
            key=server_key,
            identity=SERVER_IDENTITY,
            trusted=PinnedKeys([agent_key.public_key]),
            nonces=MemoryNonceStore(),
        ),
        peer=None,
    )

    def forged(message: dict[str, Any] | None, container: str) -> dict[str, Any]:
        assert message is not None
        copy = json.loads(json.dumps(message))
        holder = copy["error"]["data"] if container == "error" else copy[container]["_meta"]
        holder.update(FORGED_HOP_MEMBERS)
        return copy

    request = forged(agent.send({"jsonrpc": "2.0", "id": 1, "method": "ping"}), "params")
    inbound = await server.receive(request)
    assert inbound.deliver is not None
    assert inbound.caller is not None
    for message in (inbound.deliver, inbound.caller.message.message):
        assert "mcps/sig" in message["params"]["_meta"]
        assert not set(message["params"]["_meta"]) & HOP_MEMBERS
    note = forged(agent.send({"jsonrpc": "2.0", "method": "notifications/initialized"}), "params")
    delivered = (await server.receive(note)).deliver
    assert delivered is not None
    assert not set(delivered["params"]["_meta"]) & HOP_MEMBERS
    result = forged(server.send({"jsonrpc": "2.0", "id": 1, "result": {}}), "result")
    delivered = (await agent.receive(result)).deliver
    assert delivered is not None
    assert not set(delivered["result"]["_meta"]) & HOP_MEMBERS
    await server.receive(forged(agent.send({"jsonrpc": "2.0", "id": 3, "method": "ping"}), "params"))
    error = forged(server.send({"jsonrpc": "2.0", "id": 3, "error": {"code": 1, "message": "no"}}), "error")
    delivered = (await agent.receive(error)).deliver
    assert delivered is not None
    assert "mcps/sig" in delivered["error"]["data"]
    assert not set(delivered["error"]["data"]) & HOP_MEMBERS
