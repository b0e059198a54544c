"""Tool pinning end to end over Streamable HTTP, real uvicorn and the real SDK, in both protocol eras: a relay
holding the server's own key rewrites or renames a tool in the ``tools/list`` result and re-signs the message
(and, in two modes, the tool). Each change is caught with its status, the tool is hidden from the application,
and a call to it is refused locally with MCPS-008 — it never reaches the server. All keys are test keys.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, ToolGuard, ToolReport
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.tools import ServerPins, ToolStatus

from .http_harness import Relay, serving, signed_app

SERVER_IDENTITY = "urn:mcps:test:http-server"
TIMEOUT = 20
ERAS = [("legacy", False), ("2026-07-28", True)]
ERA_IDS = ["2025-11-25-sse", "2026-07-28-json"]


class Setup:
    def __init__(self, era: tuple[str, bool]) -> None:
        self.mode, self.json_response = era
        self.agent_key, self.server_key = PrivateKey.generate(), PrivateKey.generate()
        self.calls: list[dict[str, Any]] = []

    @asynccontextmanager
    async def client(self, guard: ToolGuard, relay_mode: str) -> AsyncIterator[Client]:
        server_security = ChannelSecurity(
            key=self.server_key,
            identity=SERVER_IDENTITY,
            trusted=PinnedKeys([self.agent_key.public_key]),
            nonces=MemoryNonceStore(),
        )
        agent_security = ChannelSecurity(
            key=self.agent_key, trusted=PinnedKeys([self.server_key.public_key]), nonces=MemoryNonceStore()
        )
        app = signed_app(server_security, self.calls, json_response=self.json_response)
        relay = Relay("", relay_mode, server_key=self.server_key)
        async with serving(app) as server_url, serving(relay, lifespan="off") as relay_url:
            relay.upstream = server_url
            transport = signed_streamable_http_client(
                relay_url + "/mcp", agent_security, server_identity=SERVER_IDENTITY, tools=guard
            )
            async with Client(transport, mode=self.mode) as client:
                yield client

    async def pins(self) -> ServerPins:
        """What ``mcps pin`` would record from an honest listing."""
        guard = ToolGuard(None, approve=lambda _finding: True)
        async with self.client(guard, "pass") as client:
            await client.list_tools()
        return ServerPins(self.server_key.kid, guard.allowed)


@pytest.mark.parametrize("era", ERAS, ids=ERA_IDS)
@pytest.mark.parametrize(
    ("relay_mode", "status", "listed"),
    [
        ("rewrite-description-signed", ToolStatus.INVALID, "safe"),  # the tool's own signature no longer verifies
        ("rewrite-description-resigned-tool", ToolStatus.CHANGED, "safe"),  # validly signed, not what was pinned
        ("rename-tool-resigned-tool", ToolStatus.RENAMED, "safe_v2"),  # same definition under a new name
    ],
)
async def test_tool_changed_in_transit_is_hidden_and_its_call_never_sent(
    caplog: pytest.LogCaptureFixture, era: tuple[str, bool], relay_mode: str, status: ToolStatus, listed: str
) -> None:
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    setup = Setup(era)
    reports: list[ToolReport] = []
    with anyio.fail_after(TIMEOUT):
        pins = await setup.pins()
        assert set(pins.tools) == {"safe", "rm_rf"}
        async with setup.client(ToolGuard(pins, on_report=reports.append), relay_mode) as client:
            assert [tool.name for tool in (await client.list_tools()).tools] == ["rm_rf"]
            for name in {"safe", listed}:
                with pytest.raises(MCPError) as caught:
                    await client.call_tool(name, {"text": "hello"})
                assert caught.value.error.data == {"mcps_code": ErrorCode.TOOL_CHANGED.mcps}
    (refused,) = reports[-1].refused
    assert (refused.name, refused.finding.status) == (listed, status)
    if status is ToolStatus.RENAMED:
        assert refused.finding.previous == "safe"
    assert setup.calls == []
