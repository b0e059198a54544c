"""Tool pinning end to end over stdio, real processes and the real SDK: an mcp.Client with a ToolGuard talks to a
signed MCPServer (tool_server.py) through the attacker relay. A rewritten, renamed or rug-pulled tool is removed
from what the application sees, refused with MCPS-008 when called, and never reached. Without a guard (no
``tools=``) the client pins the first listing for the session and applies the same rules from then on.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, ToolGuard, ToolReport, signed_stdio_client
from mcps.core.keys import save_private_key
from mcps.core.tools import PinHash, ServerPins, ToolFinding, ToolStatus

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20
ALL_TOOLS = {"safe", "rm_rf", "whoami", "rug_pull"}


class Setup:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.agent_key = PrivateKey.generate()
        self.server_key = PrivateKey.generate()
        save_private_key(self.server_key, state / "server.pem")
        (state / "agent.jwk").write_text(json.dumps(self.agent_key.public_key.to_jwk()))
        self.reports: list[ToolReport] = []

    def calls(self) -> list[str]:
        path = self.state / "calls.jsonl"
        return [json.loads(line)["tool"] for line in path.read_text().splitlines()] if path.exists() else []

    def guard(self, tools: Mapping[str, PinHash] | None, *, approve_all: bool = False) -> ToolGuard:
        pins = ServerPins(self.server_key.kid, tools) if tools is not None else None
        return ToolGuard(pins, approve=(lambda _finding: True) if approve_all else _hold, on_report=self.reports.append)

    @asynccontextmanager
    async def client(self, guard: ToolGuard | None, relay_mode: str = "pass") -> AsyncIterator[Client]:
        command = [str(HERE / "relay.py"), relay_mode, "--", sys.executable, str(HERE / "tool_server.py")]
        params = StdioServerParameters(
            command=sys.executable, args=command, env={"MCPS_TEST_DIR": str(self.state)}, cwd=str(HERE)
        )
        security = ChannelSecurity(
            key=self.agent_key, trusted=PinnedKeys([self.server_key.public_key]), nonces=MemoryNonceStore()
        )
        transport = signed_stdio_client(params, security, server_identity=SERVER_IDENTITY, tools=guard)
        async with Client(transport, mode="legacy") as client:
            yield client


def _hold(_finding: ToolFinding) -> bool:
    return False


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PinHash]:
    """What ``mcps pin`` records: the tools of a fresh server, each approved once."""
    setup = Setup(tmp_path_factory.mktemp("pin"))
    guard = setup.guard(None, approve_all=True)

    async def record() -> None:
        with anyio.fail_after(TIMEOUT):
            async with setup.client(guard) as client:
                listed = await client.list_tools()
                assert {tool.name for tool in listed.tools} == ALL_TOOLS

    anyio.run(record)
    report = setup.reports[-1]
    assert {decision.finding.status for decision in report.decisions} == {ToolStatus.NEW}
    return dict(guard.allowed)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def refused_locally(client: Client, name: str) -> None:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, {"text": "hello"})
    assert caught.value.error.code == ErrorCode.TOOL_CHANGED.jsonrpc
    assert caught.value.error.data == {"mcps_code": "MCPS-008"}


async def test_pinned_tools_are_listed_and_callable(setup: Setup, pinned: dict[str, PinHash]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned)) as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS
            assert all("mcps/tool-sig" in (tool.meta or {}) for tool in listed.tools)
            assert text_of(await client.call_tool("safe", {"text": "hi"})) == "echo: hi"
    assert setup.reports[-1].clean
    assert setup.calls() == ["safe"]


async def test_unpinned_tools_are_held_and_not_callable(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(None)) as client:
            assert (await client.list_tools()).tools == []
            await refused_locally(client, "safe")
    assert sorted(setup.reports[-1].names(ToolStatus.NEW)) == sorted(ALL_TOOLS)
    assert setup.calls() == []


async def test_call_before_listing_is_refused_locally(setup: Setup, pinned: dict[str, PinHash]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned)) as client:
            await refused_locally(client, "safe")
    assert setup.calls() == []


async def test_rewritten_description_breaks_the_message_signature(
    setup: Setup, pinned: dict[str, PinHash], caplog: pytest.LogCaptureFixture
) -> None:
    """A listing rewritten in transit, not re-signed, is refused (MCPS-004) and ends nothing: the genuine listing
    that follows is the one the application gets (SPEC §9.1)."""
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned), "rewrite-description") as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS
            assert "~/.ssh" not in json.dumps([tool.description for tool in listed.tools])
    assert setup.reports[-1].clean
    assert f"{ErrorCode.BAD_SIGNATURE.mcps}: signature does not verify" in caplog.text


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("rewrite-description-signed", ToolStatus.INVALID),  # the tool's own signature no longer verifies
        ("rewrite-description-resigned-tool", ToolStatus.CHANGED),  # validly signed, but not what was pinned
    ],
)
async def test_rewritten_description_is_blocked(
    setup: Setup, pinned: dict[str, PinHash], mode: str, status: ToolStatus
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned), mode) as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS - {"safe"}
            await refused_locally(client, "safe")
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    report = setup.reports[-1]
    assert report.names(status) == ["safe"]
    assert [decision.name for decision in report.refused] == ["safe"]
    assert setup.calls() == ["whoami"]


async def test_renamed_tool_is_reported_as_a_rename_and_held(setup: Setup, pinned: dict[str, PinHash]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned), "rename-tool-resigned-tool") as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS - {"safe"}
            await refused_locally(client, "safe_v2")
            await refused_locally(client, "safe")
    report = setup.reports[-1]
    (renamed,) = [decision.finding for decision in report.decisions if decision.finding.status is ToolStatus.RENAMED]
    assert (renamed.name, renamed.previous) == ("safe_v2", "safe")
    assert report.removed == ()  # accounted for as the rename
    assert setup.calls() == []


async def test_approved_rename_is_callable(setup: Setup, pinned: dict[str, PinHash]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned, approve_all=True), "rename-tool-resigned-tool") as client:
            listed = await client.list_tools()
            assert "safe_v2" in {tool.name for tool in listed.tools}
    assert setup.reports[-1].names(ToolStatus.RENAMED) == ["safe_v2"]


async def test_tool_changed_after_list_changed_is_blocked(setup: Setup, pinned: dict[str, PinHash]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(setup.guard(pinned)) as client:
            await client.list_tools()
            assert text_of(await client.call_tool("rug_pull", {})) == "changed"
            # The notification arrived before the result: every call waits for a fresh listing.
            await refused_locally(client, "whoami")
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS - {"safe"}
            await refused_locally(client, "safe")
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    assert setup.reports[-1].names(ToolStatus.CHANGED) == ["safe"]
    assert setup.calls() == ["rug_pull", "whoami"]


# --- no tools= : pinned for the session --------------------------------------------------------------------------

SESSION_ONLY = "pinned for this session only"


@pytest.mark.parametrize("mode", ["strip-tool-signature-signed", "rewrite-description-signed"])
async def test_default_client_blocks_an_unsigned_or_badly_signed_tool(
    setup: Setup, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    with anyio.fail_after(TIMEOUT):
        async with setup.client(None, mode) as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS - {"safe"}
            await refused_locally(client, "safe")
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    assert "blocked tool 'safe': invalid [MCPS-008]" in caplog.text
    assert caplog.text.count(SESSION_ONLY) == 1
    assert setup.calls() == ["whoami"]


async def test_default_client_pins_the_first_listing_and_blocks_a_change_after_list_changed(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    with anyio.fail_after(TIMEOUT):
        async with setup.client(None) as client:
            await refused_locally(client, "safe")  # nothing is callable before the first listing
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS  # the first listing is trusted
            assert text_of(await client.call_tool("rug_pull", {})) == "changed"
            await refused_locally(client, "whoami")  # list_changed: every call waits for a fresh listing
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == ALL_TOOLS - {"safe"}
            await refused_locally(client, "safe")
            assert text_of(await client.call_tool("whoami", {})) == setup.agent_key.kid
    assert "blocked tool 'safe': changed [MCPS-008]" in caplog.text
    assert caplog.text.count(SESSION_ONLY) == 1
    assert setup.calls() == ["rug_pull", "whoami"]
