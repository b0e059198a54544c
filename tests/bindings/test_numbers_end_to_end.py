"""A number respelled in transit reaches the application as the signed number (issue 9 §1.7), over stdio and
Streamable HTTP (both eras): a relay writes the signed ``125`` as ``1.25E2`` in a call and in its response. The
canonical form is the same, so every signature verifies; the tool must receive the integer 125 (not 125.0), and
the agent the integer 125 in the result. All keys are test keys, made per run.
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
from mcps.bindings import ChannelSecurity, signed_stdio_client
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.keys import save_private_key

from .http_harness import Relay, serving, signed_app

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20


async def test_number_respelled_in_transit_reaches_tool_and_agent_as_the_signed_integer_over_stdio(
    tmp_path: Path,
) -> None:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    save_private_key(server_key, tmp_path / "server.pem")
    (tmp_path / "agent.jwk").write_text(json.dumps(agent_key.public_key.to_jwk()))
    command = [str(HERE / "relay.py"), "respell-number", "--", sys.executable, str(HERE / "signed_server.py")]
    params = StdioServerParameters(
        command=sys.executable, args=command, env={"MCPS_TEST_DIR": str(tmp_path), "MCPS_TEST_EXTRA_TOOLS": "1"}
    )
    security = ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore())
    with anyio.fail_after(TIMEOUT):
        async with Client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY)) as client:
            await client.list_tools()
            result = await client.call_tool("number", {"n": 125})
    assert result.structured_content == {"result": 125}
    assert type(result.structured_content["result"]) is int
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [call["n"] for call in calls] == ["125"]  # the tool's repr: an int, not 125.0
    refusals = tmp_path / "refusals.log"
    assert not refusals.exists() or refusals.read_text() == ""


@pytest.mark.parametrize("era", [("legacy", False), ("2026-07-28", True)], ids=["2025-11-25-sse", "2026-07-28-json"])
async def test_number_respelled_in_transit_reaches_tool_and_agent_as_the_signed_integer_over_http(
    era: tuple[str, bool],
) -> None:
    mode, json_response = era
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    calls: list[dict[str, Any]] = []
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    relay = Relay("", "respell-number")
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
                result = await client.call_tool("number", {"n": 125})
    assert result.structured_content == {"result": 125}
    assert type(result.structured_content["result"]) is int
    assert [call["text"] for call in calls] == ["125"]
