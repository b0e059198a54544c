"""Runner for the tools table: an agent's :class:`SecureChannel` with a :class:`ToolGuard` receives the server's
signed listings; the control's call is signed and sent, the attack's is refused locally with MCPS-008."""

from __future__ import annotations

from typing import Any

import pytest

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, SecureChannel, ToolGuard
from mcps.core.errors import McpsError
from mcps.core.tools import ServerPins

from .cases_tools import CASES, ToolScenario
from .corpus import Case, assert_no_canary, case_params
from .pki import AGENT, NOW, SERVER, SERVER_ID, call, sig_of, sign


def agent(scenario: ToolScenario) -> SecureChannel:
    guard = (
        ToolGuard(ServerPins(scenario.lock_kid, scenario.lock))
        if scenario.lock is not None
        else ToolGuard.session_pins(SERVER_ID)
    )
    security = ChannelSecurity(
        key=AGENT, trusted=PinnedKeys([SERVER.public_key]), nonces=MemoryNonceStore(), clock=lambda: NOW
    )
    return SecureChannel(security, peer=SERVER_ID, tools=guard)


async def server_says(channel: SecureChannel, message: dict[str, Any], request_sig: str | None = None) -> None:
    signed = sign(message, SERVER, aud=AGENT.kid, in_reply_to=request_sig)
    decision = await channel.receive(signed)
    assert decision.deliver is not None
    assert "error" not in decision.deliver, decision.deliver


async def run(scenario: ToolScenario) -> dict[str, Any]:
    """Play the listings; return what the agent would send for the final call (raises McpsError when refused)."""
    channel = agent(scenario)
    cursor: str | None = None
    for number, page in enumerate(scenario.pages, start=1):
        if page.after_list_changed:
            await server_says(channel, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        params = {"cursor": cursor} if cursor and not page.restart else {}
        request = channel.send({"jsonrpc": "2.0", "id": f"list-{number}", "method": "tools/list", "params": params})
        assert request is not None
        result: dict[str, Any] = {"tools": list(page.tools)}
        if page.next_cursor is not None:
            result["nextCursor"] = page.next_cursor
        await server_says(channel, {"jsonrpc": "2.0", "id": f"list-{number}", "result": result}, sig_of(request))
        cursor = page.next_cursor
    if scenario.list_changed:
        await server_says(channel, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    sent = channel.send(call("call-1", name=scenario.call))
    assert sent is not None
    return sent


@pytest.mark.parametrize("case", case_params(CASES))
async def test_tool_attack(case: Case[ToolScenario]) -> None:
    sent = await run(case.build(False))
    assert sent["params"]["name"] == case.build(False).call
    with pytest.raises(McpsError) as refused:
        await run(case.build(True))
    assert refused.value.code is case.code, refused.value.diagnostics()
    assert_no_canary(refused.value)
