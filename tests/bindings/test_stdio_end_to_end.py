"""End to end over stdio, real processes and the real SDK: an mcp.Client wrapped with mcps talks to an
MCPServer wrapped with mcps, through an attacker relay. Each attack is caught with its code and reaches no tool.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, signed_stdio_client
from mcps.core.keys import save_private_key

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20


class Setup:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.agent_key = PrivateKey.generate()
        self.server_key = PrivateKey.generate()
        save_private_key(self.server_key, state / "server.pem")
        (state / "agent.jwk").write_text(json.dumps(self.agent_key.public_key.to_jwk()))

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def refusals(self) -> str:
        path = self.state / "refusals.log"
        return path.read_text() if path.exists() else ""

    @asynccontextmanager
    async def client(self, relay_mode: str = "pass", *, server_key: PrivateKey | None = None) -> AsyncIterator[Client]:
        command = [str(HERE / "relay.py"), relay_mode, "--", sys.executable, str(HERE / "signed_server.py")]
        params = StdioServerParameters(
            command=sys.executable, args=command, env={"MCPS_TEST_DIR": str(self.state)}, cwd=str(HERE)
        )
        security = ChannelSecurity(
            key=self.agent_key,
            trusted=PinnedKeys([(server_key or self.server_key).public_key]),
            nonces=MemoryNonceStore(),
        )
        async with Client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY), mode="legacy") as c:
            await c.list_tools()  # as an agent must: a call to a tool it has not listed is refused locally (MCPS-008)
            yield c


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def text_of(result: Any) -> str:
    return str(result.content[0].text)


def refused_responses(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The codes of the responses the agent refused (and dropped), from its log."""
    return [line.split(": ")[1] for line in caplog.messages if line.startswith("mcps refused response id=")]


async def test_signed_call_reaches_the_tool_and_the_tool_sees_the_verified_caller(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client() as client:
            tools = await client.list_tools()
            assert {tool.name for tool in tools.tools} == {"safe", "rm_rf", "whoami"}
            assert text_of(await client.call_tool("safe", {"text": "hello"})) == "echo: hello"
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    assert setup.calls() == [
        {"tool": "safe", "caller": setup.agent_key.kid, "text": "hello"},
        {"tool": "whoami", "caller": setup.agent_key.kid},
    ]
    assert setup.refusals() == ""


async def test_default_connect_mode_negotiates_and_is_signed_too(setup: Setup) -> None:
    command = [str(HERE / "signed_server.py")]
    params = StdioServerParameters(command=sys.executable, args=command, env={"MCPS_TEST_DIR": str(setup.state)})
    security = ChannelSecurity(
        key=setup.agent_key, trusted=PinnedKeys([setup.server_key.public_key]), nonces=MemoryNonceStore()
    )
    with anyio.fail_after(TIMEOUT):
        async with Client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY)) as client:
            await client.list_tools()
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    assert setup.refusals() == ""


async def call_refused(client: Client, name: str = "safe") -> MCPError:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, {"text": "hello"})
    return caught.value


@pytest.mark.parametrize(
    ("mode", "server_code", "client_code"),
    [
        # The server refuses and answers with a signed error bound to the request the agent sent.
        ("modify-param", ErrorCode.BAD_SIGNATURE, ErrorCode.BAD_SIGNATURE),
        ("duplicate-key", ErrorCode.DUPLICATE_KEY, ErrorCode.DUPLICATE_KEY),
        # The server refuses; its answer is bound to what it received, which is not what the agent sent: the
        # agent reports an unverifiable refusal by the server (MCPS-012, SPEC §9.1), not the server's code.
        ("strip-signature", ErrorCode.SIGNATURE_MISSING, None),
        ("swap-key", ErrorCode.UNKNOWN_KEY, None),
    ],
)
async def test_tampered_request_reaches_no_tool(
    setup: Setup, mode: str, server_code: ErrorCode, client_code: ErrorCode | None
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(mode) as client:
            error = await call_refused(client)
            if client_code is None:
                assert error.error.message == "the server refused this request (unverifiable refusal)"
                assert error.error.data["mcps_unverifiable_refusal"] is True
                client_code = ErrorCode.TRANSCRIPT_MISMATCH
            else:
                assert "mcps_unverifiable_refusal" not in error.error.data
            assert error.error.code == client_code.jsonrpc
            assert error.error.data["mcps_code"] == client_code.mcps
    assert setup.calls() == []
    assert server_code.mcps in setup.refusals()


async def test_replayed_request_runs_the_tool_once(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("replay-request") as client:
            assert text_of(await client.call_tool("safe", {"text": "once"})) == "echo: once"
            # The next round trip proves the server has handled (and refused) the replayed copy by now.
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    assert [call["tool"] for call in setup.calls()] == ["safe", "whoami"]
    assert ErrorCode.REPLAY.mcps in setup.refusals()


async def test_response_replayed_to_another_request_is_dropped_and_the_genuine_answer_accepted(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer injected for a pending request ends nothing: only a verified answer does (SPEC §9.1)."""
    with anyio.fail_after(TIMEOUT):
        async with setup.client("replay-response") as client:
            assert text_of(await client.call_tool("safe", {"text": "first"})) == "echo: first"
            assert text_of(await client.call_tool("safe", {"text": "second"})) == "echo: second"
    assert refused_responses(caplog) == [ErrorCode.TRANSCRIPT_MISMATCH.mcps]


async def test_unsigned_response_is_dropped_and_the_genuine_answer_accepted(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("strip-response-signature") as client:
            assert text_of(await client.call_tool("safe", {"text": "hello"})) == "echo: hello"
    assert refused_responses(caplog) == [ErrorCode.SIGNATURE_MISSING.mcps]


async def test_server_with_another_key_is_refused(setup: Setup) -> None:
    impostor_pinned = PrivateKey.generate()  # the agent pins a key the server does not hold
    refused = pytest.RaisesExc(MCPError, check=lambda error: error.error.code == ErrorCode.UNKNOWN_KEY.jsonrpc)
    with anyio.fail_after(TIMEOUT), pytest.RaisesGroup(refused, flatten_subgroups=True):
        async with setup.client(server_key=impostor_pinned):
            pass
    assert setup.calls() == []
