"""End to end over Streamable HTTP, real uvicorn and the real SDK: an mcp.Client with the mcps HTTP transport
talks to an MCPServer behind McpsHttpMiddleware, through an attacker relay, in both protocol eras
(2025-11-25 sessions with SSE responses, 2026-07-28 stateless requests with JSON responses). Each attack is
caught with its code and none reaches a tool."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.strict import Limits

from .http_harness import Relay, serving, signed_app

SERVER_IDENTITY = "urn:mcps:test:http-server"
TIMEOUT = 20
ERAS = [
    pytest.param(("legacy", False), id="2025-11-25-sse"),
    pytest.param(("2026-07-28", True), id="2026-07-28-json"),
]


class Setup:
    def __init__(self, caplog: pytest.LogCaptureFixture, mode: str, json_response: bool) -> None:
        self.caplog = caplog
        self.mode = mode
        self.json_response = json_response
        self.agent_key = PrivateKey.generate()
        self.server_key = PrivateKey.generate()
        self.calls: list[dict[str, Any]] = []
        self.relay: Relay | None = None

    def refusals(self) -> str:
        return "\n".join(r.getMessage() for r in self.caplog.records if r.name == "mcps.bindings")

    @asynccontextmanager
    async def client(
        self, relay_mode: str | None = "pass", *, pinned: PrivateKey | None = None
    ) -> AsyncIterator[Client]:
        server_security = ChannelSecurity(
            key=self.server_key,
            identity=SERVER_IDENTITY,
            trusted=PinnedKeys([self.agent_key.public_key]),
            nonces=MemoryNonceStore(),
        )
        agent_security = ChannelSecurity(
            key=self.agent_key, trusted=PinnedKeys([(pinned or self.server_key).public_key]), nonces=MemoryNonceStore()
        )
        app = signed_app(server_security, self.calls, json_response=self.json_response)
        async with serving(app) as server_url:
            if relay_mode is None:
                url = server_url
                async with self._connect(url + "/mcp", agent_security) as client:
                    yield client
                return
            self.relay = Relay(server_url, relay_mode)
            async with (
                serving(self.relay, lifespan="off") as relay_url,
                self._connect(relay_url + "/mcp", agent_security) as client,
            ):
                yield client

    @asynccontextmanager
    async def _connect(self, url: str, security: ChannelSecurity) -> AsyncIterator[Client]:
        transport = signed_streamable_http_client(url, security, server_identity=SERVER_IDENTITY)
        async with Client(transport, mode=self.mode) as client:
            await client.list_tools()  # as an agent must: a call to a tool it has not listed is refused locally
            yield client


@pytest.fixture(params=ERAS)
def setup(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Setup:
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    mode, json_response = request.param
    return Setup(caplog, mode, json_response)


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def call_refused(client: Client, name: str = "safe") -> MCPError:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, {"text": "hello"})
    return caught.value


async def test_signed_call_round_trip_reaches_the_tool_with_the_verified_caller(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client(None) as client:
            tools = await client.list_tools()
            assert {tool.name for tool in tools.tools} == {"safe", "rm_rf"}
            assert text_of(await client.call_tool("safe", {"text": "hello"})) == "echo: hello"
            assert text_of(await client.call_tool("safe", {"text": "again"})) == "echo: again"
    assert setup.calls == [
        {"tool": "safe", "caller": setup.agent_key.kid, "text": "hello"},
        {"tool": "safe", "caller": setup.agent_key.kid, "text": "again"},
    ]
    assert setup.refusals() == ""


async def test_round_trip_through_an_honest_relay(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("pass") as client:
            assert text_of(await client.call_tool("safe", {"text": "via relay"})) == "echo: via relay"
    assert [call["text"] for call in setup.calls] == ["via relay"]


@pytest.mark.parametrize(
    ("mode", "server_code", "client_code"),
    [
        ("modify-param", ErrorCode.BAD_SIGNATURE, ErrorCode.BAD_SIGNATURE),
        ("duplicate-key", ErrorCode.DUPLICATE_KEY, ErrorCode.DUPLICATE_KEY),
        # The server's refusal is bound to what it received, not to what the agent sent, and (without a session,
        # 2026-07-28) addressed to the claimed kid (the attacker's) or to nobody: the agent reports an unverifiable
        # refusal by the server (MCPS-012, SPEC §9.1), never the server's code, which it cannot bind to its request.
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
    assert setup.calls == []
    assert "refused request id=" in setup.refusals()
    assert server_code.mcps in setup.refusals()


async def test_replayed_request_runs_the_tool_once_and_is_answered_mcps_005(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("replay-request") as client:
            assert text_of(await client.call_tool("safe", {"text": "once"})) == "echo: once"
    assert [call["text"] for call in setup.calls] == ["once"]
    assert setup.relay is not None
    [(status, messages)] = setup.relay.replayed
    assert status == 200
    [refusal] = messages
    assert refusal["error"]["data"]["mcps_code"] == ErrorCode.REPLAY.mcps
    assert refusal["error"]["data"]["mcps/sig"]["aud"] == setup.agent_key.kid


async def test_response_replayed_to_another_request_is_refused_by_the_client(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("replay-response") as client:
            assert text_of(await client.call_tool("safe", {"text": "first"})) == "echo: first"
            error = await call_refused(client)
    assert error.error.code == ErrorCode.TRANSCRIPT_MISMATCH.jsonrpc


async def test_unsigned_response_is_refused_by_the_client(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("strip-response-signature") as client:
            error = await call_refused(client)
    assert error.error.code == ErrorCode.SIGNATURE_MISSING.jsonrpc


async def test_server_with_another_key_is_refused(setup: Setup) -> None:
    refused = pytest.RaisesExc(MCPError, check=lambda error: error.error.code == ErrorCode.UNKNOWN_KEY.jsonrpc)
    with anyio.fail_after(TIMEOUT), pytest.RaisesGroup(refused, flatten_subgroups=True, allow_unwrapped=True):
        async with setup.client(None, pinned=PrivateKey.generate()) as client:
            await client.call_tool("safe", {"text": "hello"})
    # 2025-11-25: the agent refuses the server's answer to initialize. 2026-07-28 has no handshake: the agent
    # refuses the server's answer to tools/list. Either way it never calls a tool.
    assert setup.calls == []


async def test_duplicate_key_in_a_response_is_refused_before_the_sdk_parses_it(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("duplicate-key-response") as client:
            error = await call_refused(client)
    assert error.error.code == ErrorCode.DUPLICATE_KEY.jsonrpc
    assert ErrorCode.DUPLICATE_KEY.mcps in setup.refusals()


async def test_http_refusals_are_signed_errors_with_their_status(setup: Setup) -> None:
    """Straight to the server, no SDK client: an oversize body, a duplicate key, an unknown session."""
    async with setup.client(None) as client:
        assert text_of(await client.call_tool("safe", {"text": "warm"})) == "echo: warm"
    security = ChannelSecurity(
        key=setup.server_key,
        identity=SERVER_IDENTITY,
        trusted=PinnedKeys([setup.agent_key.public_key]),
        nonces=MemoryNonceStore(),
        limits=Limits(max_bytes=1024),
    )
    calls: list[dict[str, Any]] = []
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    call = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"safe","name":"rm_rf","arguments":{}}}'
    with anyio.fail_after(TIMEOUT):
        async with serving(signed_app(security, calls, json_response=True)) as url, httpx2.AsyncClient() as http:
            too_large = await http.post(url + "/mcp", content=b" " * 2048, headers=headers)
            duplicate = await http.post(url + "/mcp", content=call, headers=headers)
            unknown = await http.post(url + "/mcp", content=call, headers={**headers, "mcp-session-id": "nope"})
    assert (too_large.status_code, too_large.json()["error"]["data"]["mcps_code"]) == (413, "MCPS-018")
    assert (duplicate.status_code, duplicate.json()["error"]["data"]["mcps_code"]) == (400, "MCPS-020")
    assert duplicate.json()["id"] == 7
    assert unknown.status_code == 404
    for response in (too_large, duplicate, unknown):
        assert response.json()["error"]["data"]["mcps/sig"]["kid"] == setup.server_key.kid
    assert calls == []
