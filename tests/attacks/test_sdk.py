"""Runners for the binding tables in process, under the SDK: the frame table against the frame server run by the
SDK's low-level ``Server.run`` over :func:`mcps.bindings.streams.secure_frame_streams` (one server per case), and
the client table: the SDK's ``ClientSession`` over the same streams, against a fake server that answers the agent's
``tools/call`` as the case says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, SecureChannel
from mcps.bindings._sdk import lowlevel_server
from mcps.bindings.streams import secure_frame_streams
from mcps.core.tools import sign_tool

from .binding_harness import TIMEOUT, awaited_ids, check_answered, check_attack, liveness, parse_line
from .cases_bindings import CLIENT_CASES, FRAME_CASES, Answer, Frames, frame
from .cases_tools import tool
from .corpus import CANARY, Case, assert_no_canary, case_params
from .frame_server import build_server, security
from .pki import AGENT, NOW, SERVER, SERVER_ID, sign


class Pipe:
    """One direction of an in-memory byte stream, read in chunks the way a transport hands them over."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](1000)

    async def write(self, data: bytes) -> None:
        await self._send.send(data)

    async def read_chunk(self) -> bytes:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            return b""

    def close(self) -> None:
        """End of input for the reader."""
        self._send.close()

    def dispose(self) -> None:
        self._send.close()
        self._receive.close()


class Lines:
    """Frames written by one side, split into parsed lines."""

    def __init__(self, pipe: Pipe) -> None:
        self._pipe = pipe
        self._buffer = b""

    async def next(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = await self._pipe.read_chunk()
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return parse_line(line)

    async def until_answered(self, *request_ids: str) -> list[dict[str, Any]]:
        seen, waiting = [], set(request_ids)
        with anyio.fail_after(TIMEOUT):
            while True:
                line = await self.next()
                seen.append(line)
                if "method" not in line and line.get("id") in waiting:
                    waiting.discard(line["id"])
                    if not waiting:
                        return seen


@asynccontextmanager
async def sdk_server() -> AsyncIterator[tuple[Pipe, Lines]]:
    """The frame server under the SDK in this process; yields (its stdin, its stdout lines)."""
    to_server, from_server = Pipe(), Pipe()
    lowlevel = lowlevel_server(build_server())
    channel = SecureChannel(security(), peer=None)

    async def serve() -> None:
        async with secure_frame_streams(channel, to_server.read_chunk, from_server.write) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(serve)
            yield to_server, Lines(from_server)
            to_server.close()
            tasks.cancel_scope.cancel()
    finally:
        to_server.dispose()
        from_server.dispose()


@pytest.mark.parametrize("case", case_params(FRAME_CASES, surface="sdk"))
async def test_sdk_server_attack(case: Case[Frames]) -> None:
    async with sdk_server() as (stdin, stdout):
        control = case.build(False)
        for raw in control.frames:
            await stdin.write(raw + b"\n")
        check_answered(await stdout.until_answered(control.call_id), control.call_id)

        attack = case.build(True)
        *before, last = attack.frames
        for raw in before:
            await stdin.write(raw + b"\n")
            if attack.call_id:
                await stdout.until_answered(attack.call_id)
        live_id, live = liveness()
        await stdin.write(last + b"\n" + live + b"\n")
        replies = await stdout.until_answered(*awaited_ids(case, "sdk", attack, live_id))
        check_attack(case, "sdk", attack, replies, live_id)


# --- the agent side ------------------------------------------------------------------------------------------

CALL_TIMEOUT = 1.0
"""Seconds the agent waits for its call's answer: a refusal arrives at once, so only a dropped answer waits."""
INITIALIZED = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {}},
    "serverInfo": {"name": "fake-" + CANARY, "version": "1"},
}


async def fake_server(stdin: Lines, stdout: Pipe, answer: Answer, sent_to_server: list[dict[str, Any]]) -> None:
    """Answers initialize and tools/list honestly, and tools/call as the case says; records everything it reads."""
    while True:
        try:
            message = await stdin.next()
        except EOFError:
            return
        sent_to_server.append(message)
        method = message.get("method")
        if "id" not in message or method is None:
            continue
        if method == "tools/call":
            for raw in answer.respond(message):
                await stdout.write(raw + b"\n")
            continue
        result: dict[str, Any] = {}
        if method == "initialize":
            result = INITIALIZED
        elif method == "tools/list":
            result = {"tools": [sign_tool(tool("echo", "Echo the text back."), SERVER, now=NOW)]}
        signed = sign(
            {"jsonrpc": "2.0", "id": message["id"], "result": result},
            SERVER,
            aud=AGENT.kid,
            in_reply_to=message["params"]["_meta"]["mcps/sig"]["sig"],
        )
        await stdout.write(frame(signed) + b"\n")


async def agent_call(answer: Answer) -> tuple[Any, list[dict[str, Any]]]:
    """An agent (ClientSession over the signed frame streams) calls echo; returns (result or MCPError, what the
    fake server received)."""
    to_server, from_server = Pipe(), Pipe()
    agent = SecureChannel(
        ChannelSecurity(
            key=AGENT, trusted=PinnedKeys([SERVER.public_key]), nonces=MemoryNonceStore(), clock=lambda: NOW
        ),
        peer=SERVER_ID,
    )
    received: list[dict[str, Any]] = []
    outcome: Any = None
    try:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(fake_server, Lines(to_server), from_server, answer, received)
                async with (
                    secure_frame_streams(agent, from_server.read_chunk, to_server.write) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    await session.list_tools()
                    try:
                        outcome = await session.call_tool("echo", {"text": CANARY}, read_timeout_seconds=CALL_TIMEOUT)
                    except MCPError as error:
                        outcome = error
                to_server.close()
                from_server.close()
    finally:
        to_server.dispose()
        from_server.dispose()
    return outcome, received


def refusals(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for message in received if "error" in message]


@pytest.mark.parametrize("case", case_params(CLIENT_CASES))
async def test_sdk_client_attack(case: Case[Answer], caplog: pytest.LogCaptureFixture) -> None:
    result, received = await agent_call(case.build(False))
    assert not isinstance(result, MCPError), result
    assert result.content[0].text == f"echo: {CANARY}"
    assert refusals(received) == []

    attack = case.build(True)
    caplog.clear()
    result, received = await agent_call(attack)
    assert case.code is not None
    # The stray frame came before the genuine answer, which is still the call's result: nothing was accepted from
    # the attack and nothing it sent ended the call (a forged answer ends nothing, SPEC.md §9.1).
    assert not isinstance(result, MCPError), f"the attack ended the call: {result}"
    assert result.content[0].text == f"echo: {CANARY}"
    if attack.answer:
        assert refusals(received) == []  # a refused answer is answered to nobody
        refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mcps refused response id=")]
        assert [line.split(": ")[1] for line in refused] == [case.code.mcps], refused
        return
    [refusal] = refusals(received)
    assert refusal["error"]["data"]["mcps_code"] == case.code.mcps
    assert_no_canary(refusal)
