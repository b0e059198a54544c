"""Rug pulls inside one session (issue 15.5), over Streamable HTTP under uvicorn, in both protocol eras.

The server lets clients cache ``tools/list`` for a minute (a 2026-07-28 cache hint) and rewrites the description of
``safe`` mid-session: announced (``notifications/tools/list_changed``, through the ``subscriptions/listen`` stream on
2026-07-28) or silently. The SDK's ``Client`` caches listings by default when a server hints so; mcps hands the SDK
every listing with ``ttlMs: 0``, so each listing the application asks for is fetched and checked, and after
``list_changed`` calls are held until one is. Either way the changed tool is caught (``changed``), hidden and its
calls refused locally (MCPS-008). All keys are test keys, made per run.
"""

from __future__ import annotations

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
from mcps.core.tools import ToolStatus

from .http_harness import serving, signed_app

SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20
ERAS = [("legacy", False), ("2026-07-28", True)]
ERA_IDS = ["2025-11-25", "2026-07-28"]


class Session:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.reports: list[ToolReport] = []
        self.guard = ToolGuard.session_pins(SERVER_IDENTITY, on_report=self.reports.append)

    @asynccontextmanager
    async def client(self, era: tuple[str, bool]) -> AsyncIterator[Client]:
        mode, json_response = era
        agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
        server_security = ChannelSecurity(
            key=server_key,
            identity=SERVER_IDENTITY,
            trusted=PinnedKeys([agent_key.public_key]),
            nonces=MemoryNonceStore(),
        )
        agent_security = ChannelSecurity(
            key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
        )
        app = signed_app(server_security, self.calls, json_response=json_response, extras=True, list_ttl_ms=60_000)
        async with serving(app) as url:
            transport = signed_streamable_http_client(
                url + "/mcp", agent_security, server_identity=SERVER_IDENTITY, tools=self.guard
            )
            async with Client(transport, mode=mode) as client:
                yield client

    def last_status(self, name: str) -> ToolStatus:
        return {decision.name: decision.finding.status for decision in self.reports[-1].decisions}[name]


def names(listing: Any) -> set[str]:
    return {tool.name for tool in listing.tools}


async def refused(client: Client, name: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, {"text": "hi"})
    assert caught.value.error.data["mcps_code"] == ErrorCode.TOOL_CHANGED.mcps
    return caught.value.error.message


@pytest.mark.parametrize("era", ERAS, ids=ERA_IDS)
async def test_rug_pull_announced_mid_session_is_caught_at_the_next_listing(era: tuple[str, bool]) -> None:
    session = Session()
    with anyio.fail_after(TIMEOUT):
        async with session.client(era) as client:
            assert "safe" in names(await client.list_tools())
            if era[1]:  # 2026-07-28: the change arrives through the listen stream (the event is not consumed here)
                async with client.listen(tools_list_changed=True):
                    await client.call_tool("rug_pull", {})
                    while not session.guard.stale:  # noqa: ASYNC110 - waits for the notification, bounded above
                        await anyio.sleep(0.01)
            else:
                await client.call_tool("rug_pull", {})
            assert session.guard.stale
            assert await refused(client, "safe") == "tool list changed: list tools again before calling"
            listing = await client.list_tools()  # re-checked, whatever the SDK's cache holds
            assert "safe" not in names(listing)
            assert session.last_status("safe") is ToolStatus.CHANGED
            assert await refused(client, "safe") == "tool is not pinned or approved"
    assert [call["tool"] for call in session.calls] == ["rug_pull"]


@pytest.mark.parametrize("era", ERAS, ids=ERA_IDS)
async def test_silent_rug_pull_is_caught_by_the_next_listing_despite_the_sdk_cache(era: tuple[str, bool]) -> None:
    """Regression: on 2026-07-28 the second listing was served from the SDK's cache, so the change went unseen."""
    session = Session()
    with anyio.fail_after(TIMEOUT):
        async with session.client(era) as client:
            assert "safe" in names(await client.list_tools())
            assert len(session.reports) == 1
            await client.call_tool("silent_rug_pull", {})
            assert "safe" not in names(await client.list_tools())
            assert len(session.reports) == 2  # the listing went to the server, through the guard
            assert session.last_status("safe") is ToolStatus.CHANGED
            assert await refused(client, "safe") == "tool is not pinned or approved"
    assert [call["tool"] for call in session.calls] == ["silent_rug_pull"]
