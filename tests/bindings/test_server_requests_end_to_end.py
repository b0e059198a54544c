"""Server→client traffic end to end, real SDK: during a tool call the server sends the agent a progress notification
and an elicitation request; both are signed by the server and verified by the agent, and the agent's answer to
the elicitation is signed by the agent and verified bound to the server's request. Over stdio (a subprocess) and
over Streamable HTTP (2025-11-25, on the call's SSE stream). All keys are test keys, made per run.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types
from mcp.client.stdio import StdioServerParameters

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, signed_stdio_client
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.keys import save_private_key

from .http_harness import serving, signed_app

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20


class Agent:
    """The agent's side: answers elicitations with ``ok`` and records what the server sent it."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.asked: list[str] = []
        self.logs: list[Any] = []

    async def elicit(self, _context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"ok": self.ok})

    async def progress(self, _progress: float, _total: float | None, message: str | None) -> None:
        self.logs.append(message)

    def client(self, transport: Any) -> Client:
        return Client(transport, mode="legacy", elicitation_callback=self.elicit)


def text_of(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.parametrize("ok", [True, False])
async def test_stdio_elicitation_and_notification_are_signed_both_ways(tmp_path: Path, ok: bool) -> None:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    save_private_key(server_key, tmp_path / "server.pem")
    (tmp_path / "agent.jwk").write_text(json.dumps(agent_key.public_key.to_jwk()))
    env = {"MCPS_TEST_DIR": str(tmp_path), "MCPS_TEST_SERVER_REQUESTS": "1"}
    params = StdioServerParameters(command=sys.executable, args=[str(HERE / "signed_server.py")], env=env)
    security = ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore())
    agent = Agent(ok)
    with anyio.fail_after(TIMEOUT):
        async with agent.client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY)) as client:
            await client.list_tools()
            result = await client.call_tool("confirm", {"text": "pay 10 EUR"}, progress_callback=agent.progress)
    assert text_of(result) == ("confirmed" if ok else "not confirmed")
    assert agent.asked == ["Confirm 'pay 10 EUR'?"]
    assert agent.logs == ["asking to confirm 'pay 10 EUR'"]
    refusals = tmp_path / "refusals.log"
    assert not refusals.exists() or refusals.read_text() == ""


async def test_http_elicitation_and_notification_are_signed_both_ways(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    calls: list[dict[str, Any]] = []
    agent = Agent()
    app = signed_app(server_security, calls, json_response=False, server_requests=True)
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as url:
            transport = signed_streamable_http_client(url + "/mcp", agent_security, server_identity=SERVER_IDENTITY)
            async with agent.client(transport) as client:
                await client.list_tools()
                result = await client.call_tool("confirm", {"text": "pay 10 EUR"}, progress_callback=agent.progress)
    assert text_of(result) == "confirmed"
    assert agent.asked == ["Confirm 'pay 10 EUR'?"]
    assert agent.logs == ["asking to confirm 'pay 10 EUR'"]
    assert [call["tool"] for call in calls] == ["confirm"]
    assert [r.getMessage() for r in caplog.records if r.name == "mcps.bindings" and "refused" in r.getMessage()] == []


class SessionRecorder:
    """An ASGI wrapper that remembers the session id and protocol version the agent's requests carry."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers: dict[str, str] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key.lower() in (b"mcp-session-id", b"mcp-protocol-version"):
                    self.headers[key.decode().lower()] = value.decode()
        await self.app(scope, receive, send)


async def test_forged_answer_posted_by_a_third_party_does_not_end_the_server_s_pending_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever knows a session id can POST to it: a forged answer to the server's pending elicitation (same id,
    unsigned) is refused (HTTP 400, signed error) and ends nothing; the agent's genuine answer is still taken."""
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    app = SessionRecorder(signed_app(server_security, [], json_response=False, server_requests=True))
    injected: list[tuple[int, dict[str, Any]]] = []

    class Injecting(Agent):
        async def elicit(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            forged = {"jsonrpc": "2.0", "id": context.request_id, "result": {"action": "decline"}}
            headers = {
                **app.headers,
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
            }
            async with httpx2.AsyncClient() as http:
                response = await http.post(url + "/mcp", json=forged, headers=headers)
            injected.append((response.status_code, response.json()))
            return await super().elicit(context, params)

    agent = Injecting()
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as url:
            transport = signed_streamable_http_client(url + "/mcp", agent_security, server_identity=SERVER_IDENTITY)
            async with agent.client(transport) as client:
                await client.list_tools()
                result = await client.call_tool("confirm", {"text": "pay 10 EUR"})
    assert text_of(result) == "confirmed"  # the genuine answer (accept), not the forged decline
    [(status, refusal)] = injected
    assert status == 400
    assert refusal["error"]["data"]["mcps_code"] == "MCPS-026"
    assert "mcps/sig" in refusal["error"]["data"]
