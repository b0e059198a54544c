"""The signed stdio transport under the SDK's lower-level ``ClientSession`` (not only ``mcp.Client``): the
streams it yields are what ``ClientSession`` takes, and every message on them is signed and verified.
All keys are test keys, made per run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, signed_stdio_client
from mcps.core.keys import save_private_key

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20


async def test_client_session_over_the_signed_stdio_transport(tmp_path: Path) -> None:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    save_private_key(server_key, tmp_path / "server.pem")
    (tmp_path / "agent.jwk").write_text(json.dumps(agent_key.public_key.to_jwk()))
    params = StdioServerParameters(
        command=sys.executable, args=[str(HERE / "signed_server.py")], env={"MCPS_TEST_DIR": str(tmp_path)}
    )
    security = ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore())
    with anyio.fail_after(TIMEOUT):
        async with (
            signed_stdio_client(params, security, server_identity=SERVER_IDENTITY) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} == {"safe", "rm_rf", "whoami"}
            result = await session.call_tool("whoami", {})
    assert result.content[0].text == agent_key.kid  # type: ignore[union-attr]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls == [{"tool": "whoami", "caller": agent_key.kid}]
