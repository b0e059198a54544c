"""One unsigned line stops nothing (issue 9 §1.1), over real transports: the stdio server (``serve_stdio`` in a
subprocess), the SDK's ``ClientSession`` over the signed stdio transport behind a relay that injects the lines
into both directions, the SDK's in-process streams, and Streamable HTTP under uvicorn on 127.0.0.1.

Each frame's ``id`` cannot be echoed (a lone surrogate, integers beyond I-JSON, a duplicated id): the refusal
carries ``id: null``, and the connection goes on. All keys are test keys, made per run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SignedTransport, secure_server_streams, signed_stdio_client
from mcps.bindings._sdk import lowlevel_server
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.encoding import b64u_decode
from mcps.core.envelope import sign_message, signing_input
from mcps.core.keys import save_private_key

from .http_harness import BAD_FRAME_CODES, BAD_FRAMES, Relay, serving, signed_app

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20
FRAMES = list(zip(BAD_FRAMES, BAD_FRAME_CODES, strict=True))
FRAME_IDS = ["id-lone-surrogate", "id-2^64+1", "id-twice", "id-overflowing-double"]


def assert_refusal(message: dict[str, Any], code: str, key: PrivateKey) -> None:
    assert message["id"] is None
    assert message["error"]["data"]["mcps_code"] == code
    key.public_key.verify(b64u_decode(message["error"]["data"]["mcps/sig"]["sig"]), signing_input(message))


class StdioState:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.agent_key, self.server_key = PrivateKey.generate(), PrivateKey.generate()
        save_private_key(self.server_key, state / "server.pem")
        (state / "agent.jwk").write_text(json.dumps(self.agent_key.public_key.to_jwk()))

    def refusals(self) -> str:
        path = self.state / "refusals.log"
        return path.read_text() if path.exists() else ""

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def signed(self, message: dict[str, Any]) -> bytes:
        signed = sign_message(message, self.agent_key, audience=SERVER_IDENTITY, now=time.time())
        return json.dumps(signed).encode() + b"\n"


@pytest.fixture
def stdio(tmp_path: Path) -> StdioState:
    return StdioState(tmp_path)


async def read_message(process: Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        line += await process.stdout.receive(1)
    parsed: dict[str, Any] = json.loads(line)
    return parsed


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.mark.parametrize(("frame", "code"), FRAMES, ids=FRAME_IDS)
async def test_frame_id_that_cannot_be_echoed_does_not_stop_the_stdio_server(
    stdio: StdioState, frame: bytes, code: str
) -> None:
    command = [sys.executable, str(HERE / "signed_server.py")]
    with anyio.fail_after(TIMEOUT):
        async with await anyio.open_process(command, env={"MCPS_TEST_DIR": str(stdio.state)}) as process:
            assert process.stdin is not None
            await process.stdin.send(frame + b"\n")
            assert_refusal(await read_message(process), code, stdio.server_key)
            await process.stdin.send(stdio.signed(INITIALIZE))  # the server still answers
            answer = await read_message(process)
            assert answer["id"] == 1
            assert "serverInfo" in answer["result"]
            await process.stdin.aclose()
            assert await process.wait() == 0
    assert code in stdio.refusals()


async def test_frame_ids_that_cannot_be_echoed_do_not_end_a_client_session_or_its_server(stdio: StdioState) -> None:
    """A relay sends both ends every bad frame before each call and before each call's response."""
    command = [str(HERE / "relay.py"), "inject-bad-frames", "--", sys.executable, str(HERE / "signed_server.py")]
    params = StdioServerParameters(command=sys.executable, args=command, env={"MCPS_TEST_DIR": str(stdio.state)})
    security = ChannelSecurity(
        key=stdio.agent_key, trusted=PinnedKeys([stdio.server_key.public_key]), nonces=MemoryNonceStore()
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            signed_stdio_client(params, security, server_identity=SERVER_IDENTITY) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.list_tools()
            for text in ("one", "two"):
                result = await session.call_tool("safe", {"text": text})
                assert result.content[0].text == f"echo: {text}"  # type: ignore[union-attr]
    assert [call["text"] for call in stdio.calls()] == ["one", "two"]
    for code in set(BAD_FRAME_CODES):
        assert code in stdio.refusals()


# --- the SDK's in-process streams -----------------------------------------------------------------------------------


def unechoable_requests() -> list[SessionMessage]:
    """What an SDK transport's own parser lets through: ids no signed message can carry."""
    return [
        SessionMessage(JSONRPCRequest(jsonrpc="2.0", id="\ud800", method="ping")),
        SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=2**64 + 1, method="ping")),
        SessionMessage(JSONRPCRequest(jsonrpc="2.0", id="x", method="ping", params={"n": float("nan")})),
    ]


async def test_frame_ids_that_cannot_be_echoed_do_not_stop_the_sdk_in_process_streams() -> None:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    server = MCPServer("totality")
    calls: list[str] = []

    @server.tool()
    def safe(text: str) -> str:
        """Echo the text back."""
        calls.append(text)
        return f"echo: {text}"

    to_server, server_in = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    to_client, client_in = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    lowlevel = lowlevel_server(server)

    async def serve() -> None:
        async with secure_server_streams(server_in, to_client, server_security) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())

    @asynccontextmanager
    async def client_streams() -> AsyncIterator[Any]:
        yield client_in, to_server

    injector_to_server, injector_to_client = to_server.clone(), to_client.clone()
    with anyio.fail_after(TIMEOUT):
        async with (
            to_server,
            server_in,
            to_client,
            client_in,
            injector_to_server,
            injector_to_client,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(serve)
            transport = SignedTransport(client_streams(), agent_security, server_identity=SERVER_IDENTITY)
            async with Client(transport, mode="legacy") as client:
                await client.list_tools()
                for bad in unechoable_requests():
                    await injector_to_server.send(bad)
                    await injector_to_client.send(bad)
                result = await client.call_tool("safe", {"text": "still here"})
                assert result.content[0].text == "echo: still here"  # type: ignore[union-attr]
            tasks.cancel_scope.cancel()
    assert calls == ["still here"]


# --- Streamable HTTP under uvicorn ----------------------------------------------------------------------------------

ERAS = [("legacy", False), ("2026-07-28", True)]
ERA_IDS = ["2025-11-25-sse", "2026-07-28-json"]


@asynccontextmanager
async def http_server(calls: list[dict[str, Any]]) -> AsyncIterator[tuple[str, PrivateKey, PrivateKey, bool]]:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    async with serving(signed_app(security, calls, json_response=True)) as url:
        yield url, agent_key, server_key, True


@pytest.mark.parametrize(("frame", "code"), FRAMES, ids=FRAME_IDS)
async def test_frame_id_that_cannot_be_echoed_is_a_signed_400_from_the_http_server(frame: bytes, code: str) -> None:
    calls: list[dict[str, Any]] = []
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    with anyio.fail_after(TIMEOUT):
        async with http_server(calls) as (url, agent_key, server_key, _), httpx2.AsyncClient() as http:
            response = await http.post(url + "/mcp", content=frame, headers=headers)
            assert response.status_code == 400
            assert_refusal(response.json(), code, server_key)
            security = ChannelSecurity(
                key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
            )
            transport = signed_streamable_http_client(url + "/mcp", security, server_identity=SERVER_IDENTITY)
            async with Client(transport, mode="2026-07-28") as client:  # the server goes on answering
                await client.list_tools()
                await client.call_tool("safe", {"text": "after"})
    assert [call["text"] for call in calls] == ["after"]


@pytest.mark.parametrize("era", ERAS, ids=ERA_IDS)
async def test_frame_ids_that_cannot_be_echoed_do_not_stop_http_server_or_client(era: tuple[str, bool]) -> None:
    mode, json_response = era
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    calls: list[dict[str, Any]] = []
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    relay = Relay("", "inject-bad-frames")
    with anyio.fail_after(TIMEOUT):
        async with (
            serving(signed_app(server_security, calls, json_response=json_response)) as server_url,
            serving(relay, lifespan="off") as relay_url,
        ):
            relay.upstream = server_url
            transport = signed_streamable_http_client(
                relay_url + "/mcp", agent_security, server_identity=SERVER_IDENTITY
            )
            async with Client(transport, mode=mode) as client:
                await client.list_tools()
                # The first call's response came after (SSE) or instead of (JSON) the bad frames: a frame on the
                # call's own response that cannot be read fails that call, locally, with its code (SPEC §9.5.5).
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("safe", {"text": "one"})
                assert refused.value.error.data["mcps_code"] == ErrorCode.INVALID_STRING.mcps
                result = await client.call_tool("safe", {"text": "two"})
                assert result.content[0].text == "echo: two"  # type: ignore[union-attr]
    assert [call["text"] for call in calls] == ["one", "two"]
    codes = [messages[0]["error"]["data"]["mcps_code"] for _status, messages in relay.injected]
    assert [status for status, _messages in relay.injected] == [400] * 2 * len(BAD_FRAMES)
    assert codes == BAD_FRAME_CODES * 2
    assert all(messages[0]["id"] is None for _status, messages in relay.injected)


@pytest.mark.parametrize("era", ERAS, ids=ERA_IDS)
async def test_result_that_cannot_be_signed_is_answered_with_a_signed_internal_error(era: tuple[str, bool]) -> None:
    """Regression: a tool returning a lone surrogate (an undecodable file name) left the call waiting forever.

    On 2025-11-25 over SSE the SDK's own event writer fails on it before mcps sees the result; the call then fails
    as the SDK's transport reports it (not signed, so refused) — either way the call ends and the session goes on.
    """
    mode, json_response = era
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    calls: list[dict[str, Any]] = []
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    with anyio.fail_after(TIMEOUT):
        async with serving(signed_app(server_security, calls, json_response=json_response, extras=True)) as url:
            transport = signed_streamable_http_client(url + "/mcp", agent_security, server_identity=SERVER_IDENTITY)
            async with Client(transport, mode=mode) as client:
                await client.list_tools()
                with pytest.raises(MCPError) as caught:
                    await client.call_tool("undecodable_name", {})
                if json_response:
                    assert (caught.value.error.code, caught.value.error.message) == (-32603, "Internal error")
                result = await client.call_tool("safe", {"text": "after"})  # the session goes on
                assert result.content[0].text == "echo: after"  # type: ignore[union-attr]


async def test_result_that_cannot_be_signed_is_answered_with_a_signed_internal_error_in_process() -> None:
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    server = MCPServer("unsignable")

    @server.tool()
    def undecodable_name() -> str:
        """A file name that is not UTF-8, as os.listdir returns it (surrogateescape)."""
        return "report-\udcff.txt"

    to_server, server_in = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    to_client, client_in = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore()
    )
    lowlevel = lowlevel_server(server)

    async def serve() -> None:
        async with secure_server_streams(server_in, to_client, server_security) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())

    @asynccontextmanager
    async def client_streams() -> AsyncIterator[Any]:
        yield client_in, to_server

    with anyio.fail_after(TIMEOUT):
        async with to_server, server_in, to_client, client_in, anyio.create_task_group() as tasks:
            tasks.start_soon(serve)
            transport = SignedTransport(client_streams(), agent_security, server_identity=SERVER_IDENTITY)
            async with Client(transport, mode="legacy") as client:
                await client.list_tools()
                for _ in range(2):  # answered each time: the session goes on
                    with pytest.raises(MCPError) as caught:
                        await client.call_tool("undecodable_name", {})
                    assert (caught.value.error.code, caught.value.error.message) == (-32603, "Internal error")
            tasks.cancel_scope.cancel()
