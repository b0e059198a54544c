"""Stream plumbing between a transport and the SDK: the SDK sees ``SessionMessage`` streams, as from any transport.

Two shapes of transport are wrapped:

* **frames** (stdio): :func:`secure_frame_streams` reads bytes lines itself, bounded by ``limits.max_bytes``
  while reading, and parses each strictly (:func:`mcps.core.strict.parse_message`) before anything else, so a
  duplicate key, an oversize line or a non-I-JSON number never reaches the SDK's pydantic parser;
* **SDK streams** (any other transport, e.g. Streamable HTTP): :func:`secure_message_streams` sits between the
  transport's ``SessionMessage`` streams and the session. The transport has already parsed the bytes there, so
  the strict-parse guarantee must come from in front of it (an ASGI layer); signatures still hold, because they
  cover the canonical form (RFC 8785), not the bytes.

The read side pulls: each ``receive()`` reads the transport in the SDK's own reader task until one message is
verified, answering or dropping refused ones on the way. There is no relay task and no extra stream between the
transport and the SDK, so securing a session adds no scheduler round trips per message. The read side also exposes
``last_context`` (mcp 2.x's duck-typed hook): the dispatcher runs each request's handler in that context, which is
how :func:`mcps.bindings.caller.current_caller` works inside a tool.

Readers are total: whatever a peer sends, the read side raises nothing but the transport's own end of stream.
The channel's decisions are total (:mod:`mcps.bindings.channel`), and a verified message the SDK's envelope model
does not take is answered (a request) or failed locally (a response) instead of raising into the SDK's reader.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Final

import anyio
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from mcps.bindings._sdk import ReadStream, WriteStream
from mcps.bindings.caller import context_for
from mcps.bindings.channel import Inbound, SecureChannel, request_key
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import canonical_numbers

__all__ = ["LineReader", "SecureReadStream", "secure_frame_streams", "secure_message_streams"]

logger = logging.getLogger("mcps.bindings")

OVERSIZE: Final = object()
"""Returned by :meth:`LineReader.read_line` for a line longer than the limit (already discarded)."""

_Envelope = tuple[contextvars.Context, SessionMessage]
SendFrame = Callable[[bytes], Awaitable[None]]


class LineReader:
    """Newline-delimited frames from a chunk source, never holding more than ``max_bytes`` of one line."""

    def __init__(self, receive: Callable[[], Awaitable[bytes]], max_bytes: int) -> None:
        self._receive = receive
        self._max = max_bytes
        self._buffer = bytearray()
        self._scanned = 0
        self._discarding = False

    async def read_line(self) -> bytes | object | None:
        """The next line without its ``\\n`` (and ``\\r``), :data:`OVERSIZE`, or ``None`` at end of input."""
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._scanned = 0
                if self._discarding:
                    self._discarding = False
                    continue
                return line.removesuffix(b"\r")
            if len(self._buffer) > self._max:
                self._buffer.clear()
                self._scanned = 0
                if not self._discarding:
                    self._discarding = True
                    return OVERSIZE
            self._scanned = len(self._buffer)
            chunk = await self._receive()
            if not chunk:
                return None
            self._buffer += chunk


class SecureReadStream:
    """The SDK-facing read stream: verified messages only, each with the context its handler runs in.

    ``next_verified`` reads the transport until one message is verified and returns it with its context, or raises
    ``anyio.EndOfStream`` when the transport ends; it runs in the task that calls :meth:`receive` (the SDK's
    reader), one call at a time. ``on_close`` closes the transport's read side.
    """

    def __init__(
        self, next_verified: Callable[[], Awaitable[_Envelope]], on_close: Callable[[], Awaitable[None]]
    ) -> None:
        self._next_verified = next_verified
        self._on_close = on_close
        self._closed = False
        self._receiving = False
        self.last_context: contextvars.Context | None = None

    async def receive(self) -> SessionMessage:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._receiving:  # the transport is read in place: two readers would interleave its frames
            raise anyio.BusyResourceError("receiving from")
        self._receiving = True
        try:
            context, item = await self._next_verified()
        finally:
            self._receiving = False
        self.last_context = context
        return item

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._on_close()

    def __aiter__(self) -> SecureReadStream:
        return self

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> SecureReadStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _SignedWriteStream:
    """The SDK-facing write stream: signs every message, then hands it to ``forward``."""

    def __init__(
        self,
        channel: SecureChannel,
        forward: Callable[[dict[str, Any], SessionMessage], Awaitable[None]],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        self._channel = channel
        self._forward = forward
        self._on_close = on_close
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        message = item.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
        try:
            signed = self._channel.send(message)
        except McpsError as error:  # refused locally (e.g. a call to a blocked tool): the caller gets the code
            raise MCPError(**error.to_jsonrpc_error()) from None
        if signed is not None:
            await self._forward(signed, item)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._on_close()

    async def __aenter__(self) -> _SignedWriteStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def to_envelope(message: dict[str, Any]) -> JSONRPCMessage:
    """``message`` as the SDK's envelope model, exactly what ``jsonrpc_message_adapter`` makes of it.

    The adapter validates against every member of a union and keeps the best fit. A message with exactly one of
    ``method``, ``result`` and ``error`` fits one member best, known from its shape, so that member is validated
    directly (half the work). Any other shape, or a direct validation that fails, goes to the adapter, which decides
    as it always does and raises its own ``ValidationError`` for a message that fits no member.
    """
    has_method, has_result, has_error = "method" in message, "result" in message, "error" in message
    if has_method + has_result + has_error == 1:
        model: type[JSONRPCMessage]
        if has_method:
            model = JSONRPCRequest if "id" in message else JSONRPCNotification
        else:
            model = JSONRPCResponse if has_result else JSONRPCError
        try:
            return model.model_validate(message, by_name=False)
        except ValidationError:
            pass
    return jsonrpc_message_adapter.validate_python(message, by_name=False)


def encode_frame(message: dict[str, Any]) -> bytes:
    """One message as a newline-terminated JSON line (ASCII-only, so any string survives the pipe)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


async def _apply(
    decision: Inbound,
    channel: SecureChannel,
    reply: Callable[[dict[str, Any]], Awaitable[None]],
    base: contextvars.Context | None,
) -> _Envelope | None:
    """Carry out one inbound decision: write a refusal, and return a verified message for the SDK (or ``None``)."""
    if decision.reply is not None:
        await reply(decision.reply)
    if decision.deliver is None:
        return None
    try:
        parsed = to_envelope(decision.deliver)
    except Exception:  # noqa: BLE001 - ValidationError, or anything else the SDK's model raises: never into its reader
        # Verified but not a valid MCP envelope: answer a request (the SDK's own transports would leave it
        # hanging), fail a response's waiting request locally, drop a notification. Detail stays local: pydantic
        # text echoes input.
        logger.warning("mcps: verified message is not a valid MCP envelope; refused")
        request_id = decision.deliver.get("id")
        if "method" not in decision.deliver:
            request_id = request_key(request_id)
            if request_id is None:
                return None
            local = McpsError(ErrorCode.NOT_JSONRPC, "response is not a valid MCP message")
            parsed = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(**local.to_jsonrpc_error()))
            return base or contextvars.copy_context(), SessionMessage(parsed)
        if request_id is not None:
            error = {"code": INVALID_REQUEST, "message": "Invalid request"}
            try:
                signed = channel.send({"jsonrpc": "2.0", "id": request_id, "error": error})
            except McpsError:  # pragma: no cover - the channel admitted this request, so it can answer it
                signed = None
            if signed is not None:
                await reply(signed)
        return None
    context = (
        context_for(decision.caller, base) if decision.caller is not None else (base or contextvars.copy_context())
    )
    return context, SessionMessage(parsed)


@asynccontextmanager
async def secure_frame_streams(
    channel: SecureChannel, receive_chunk: Callable[[], Awaitable[bytes]], send_frame: SendFrame
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """SDK streams over a newline-delimited byte transport: strict parse, verify, sign, write."""
    lock = anyio.Lock()
    reader = LineReader(receive_chunk, channel.limits.max_bytes)

    async def write(message: dict[str, Any]) -> None:
        frame = encode_frame(message)
        async with lock:
            await send_frame(frame)

    async def forward(signed: dict[str, Any], _item: SessionMessage) -> None:
        await write(signed)

    async def next_verified() -> _Envelope:
        while (line := await reader.read_line()) is not None:
            if line is OVERSIZE:
                logger.warning("mcps refused a frame: %s", McpsError(ErrorCode.MESSAGE_TOO_LARGE).diagnostics())
                continue
            if isinstance(line, bytes) and line.strip():
                verified = await _apply(await channel.receive_raw(line), channel, write, None)
                if verified is not None:
                    return verified
        raise anyio.EndOfStream

    async def nothing_to_close() -> None:
        return None

    read_stream = SecureReadStream(next_verified, nothing_to_close)
    try:
        yield read_stream, _SignedWriteStream(channel, forward, nothing_to_close)
    finally:
        await read_stream.aclose()


@asynccontextmanager
async def secure_message_streams(
    channel: SecureChannel,
    read_stream: ReadStream[SessionMessage | Exception],
    write_stream: WriteStream[SessionMessage],
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """Wrap a transport's ``SessionMessage`` streams (already parsed by the transport): verify in, sign out."""

    async def reply(message: dict[str, Any]) -> None:
        await write_stream.send(SessionMessage(to_envelope(message)))

    async def forward(signed: dict[str, Any], item: SessionMessage) -> None:
        await write_stream.send(SessionMessage(to_envelope(signed), item.metadata))

    async def next_verified() -> _Envelope:
        while True:
            item = await read_stream.receive()  # anyio.EndOfStream at the transport's end reaches the SDK as is
            if isinstance(item, Exception):  # the transport could not parse it: nothing verifiable
                logger.warning("mcps refused a frame the transport could not parse: %s", type(item).__name__)
                continue
            base = getattr(read_stream, "last_context", None)
            try:
                # Numbers as the canonical form reads them (SPEC.md §3), whichever parser the transport used.
                message = canonical_numbers(item.message.model_dump(by_alias=True, mode="json", exclude_unset=True))
            except Exception:  # noqa: BLE001 - whatever the transport handed over, the reader goes on
                logger.warning("mcps refused a message the SDK could not serialize")
                continue
            verified = await _apply(await channel.receive(message), channel, reply, base)
            if verified is not None:
                return verified

    secured = SecureReadStream(next_verified, read_stream.aclose)
    try:
        yield secured, _SignedWriteStream(channel, forward, write_stream.aclose)
    finally:
        await secured.aclose()
