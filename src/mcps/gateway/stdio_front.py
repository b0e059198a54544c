"""The gateway's stdio front: ``mcps gateway run --config FILE --stdio NAME`` for clients that start a command.

A desktop MCP client configured with a command starts the gateway as that command and speaks MCP over its stdin
and stdout. The front serves the whole gateway (every check of the HTTP front) on a loopback port of its own and
bridges the client's stdio to the upstream's endpoint there, with the SDK's Streamable HTTP client transport:

* each line from stdin is read bounded by the size limit and parsed strictly (SPEC.md §3) before anything else —
  a line that fails is answered on stdout with a JSON-RPC error carrying its MCPS code (its ``id`` when one can be
  echoed, else ``null``) and goes no further;
* each message the gateway answers is written to stdout as one compact line.

What the gateway checks and signs is the same as over HTTP: the bridge adds nothing and removes nothing.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, BinaryIO, Final

import anyio
import uvicorn
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from mcps.bindings.channel import echoable_id
from mcps.bindings.streams import OVERSIZE, LineReader, to_envelope
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import Limits, parse_message

__all__ = ["bridge_stdio", "serving_on_loopback"]

logger = logging.getLogger("mcps.gateway.stdio")

STARTUP_TIMEOUT: Final = 30.0


@asynccontextmanager
async def serving_on_loopback(app: Any) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port; TCP_NODELAY: a socket made with IPPROTO_TCP)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", ws="none"))
    with sock:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            with anyio.fail_after(STARTUP_TIMEOUT):
                while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                    await anyio.sleep(0.01)
            try:
                yield port
            finally:
                server.should_exit = True


async def bridge_stdio(
    url: str,
    limits: Limits,
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> None:
    """Bridge stdin/stdout to the MCP endpoint ``url`` until stdin ends."""
    source = anyio.wrap_file(stdin if stdin is not None else sys.stdin.buffer)
    sink = stdout if stdout is not None else sys.stdout.buffer
    lock = anyio.Lock()

    async def write(message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"
        async with lock:
            await anyio.to_thread.run_sync(_write_line, sink, line)

    async def receive_chunk() -> bytes:
        chunk: bytes = await source.read1(65536)
        return chunk

    reader = LineReader(receive_chunk, limits.max_bytes)
    async with streamable_http_client(url) as (read_stream, write_stream), anyio.create_task_group() as tasks:
        tasks.start_soon(_to_client, read_stream, write)
        await _from_client(reader, write_stream.send, write, limits)
        tasks.cancel_scope.cancel()


def _write_line(sink: BinaryIO, line: bytes) -> None:
    sink.write(line)
    sink.flush()


async def _from_client(
    reader: LineReader,
    send: Callable[[SessionMessage], Awaitable[None]],
    answer: Callable[[dict[str, Any]], Awaitable[None]],
    limits: Limits,
) -> None:
    while (line := await reader.read_line()) is not None:
        if line is OVERSIZE:
            logger.warning("mcps gateway refused a stdin line: %s", ErrorCode.MESSAGE_TOO_LARGE.mcps)
            continue
        if not isinstance(line, bytes) or not line.strip():
            continue
        try:
            message = parse_message(line, limits)
            envelope = to_envelope(message)
        except McpsError as error:
            await answer(_refusal(line, error))
            continue
        except Exception:  # noqa: BLE001 - not an MCP envelope: answered like any refusal, never raised
            await answer(_refusal(line, McpsError(ErrorCode.NOT_JSONRPC)))
            continue
        await send(SessionMessage(envelope))


async def _to_client(read_stream: Any, write: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    async for item in read_stream:
        if isinstance(item, Exception):  # the transport could not read an answer: nothing to hand on
            logger.warning("mcps gateway: an answer could not be read (%s)", type(item).__name__)
            continue
        await write(item.message.model_dump(by_alias=True, mode="json", exclude_unset=True))


def _refusal(line: bytes, error: McpsError) -> dict[str, Any]:
    """The JSON-RPC error for a refused line: its id only when it can be read and echoed (SPEC.md §9.1)."""
    logger.warning("mcps gateway refused a stdin line: %s", error.diagnostics())
    try:
        claimed = json.loads(line)
    except (ValueError, RecursionError):
        claimed = None
    request_id = echoable_id(claimed.get("id")) if isinstance(claimed, dict) and "method" in claimed else None
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_jsonrpc_error()}
