"""Server-sent events (WHATWG HTML §9.2) as Streamable HTTP uses them: one JSON-RPC message per event's data.

:class:`SseReader` splits a byte stream into events at blank lines however the stream is chunked. Each event is
bounded by ``max_bytes`` while reading: a longer one is discarded up to its end and reported (MCPS-018), never
buffered whole. Its data must be UTF-8: WHATWG decodes with replacement (an invalid byte becomes U+FFFD), which
would hand on a message other than the one sent, so an event whose data is not UTF-8 is reported instead
(MCPS-019). Events without data (keep-alive comments, resumability priming events) pass unchanged.
:func:`encode_event` writes an event back with new data; :class:`SseRewriter` joins the two for a synchronous
rewrite, handing each event's data (or its refusal) to a function that returns the data to send instead (or
``None`` to drop the event).

Both ends of the HTTP binding use it (the server signs each event's message, the client parses each strictly),
and so does the gateway, which rewrites events asynchronously through :class:`SseReader` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mcps.core.errors import ErrorCode, McpsError

__all__ = ["SseEvent", "SseReader", "SseRewriter", "encode_event"]

_EVENT_END: Final = b"\r\n"

Rewrite = Callable[[str | McpsError], str | None]
"""Called with an event's data, or with the refusal of an event that cannot be read (over the size limit:
MCPS-018; data not UTF-8: MCPS-019); returns the data to send instead, or ``None`` to drop the event."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event: its lines other than ``data`` (``event:``, ``id:``, ``retry:``, comments) and its data.

    ``data`` is ``None`` for an event with no data (or empty data): it carries no message and passes as it came
    (``raw``). ``error`` is set, and ``data`` is ``None``, for an event that cannot be read: over the size limit
    (MCPS-018, no fields kept) or with data that is not UTF-8 (MCPS-019).
    """

    fields: tuple[bytes, ...]
    data: str | None
    raw: bytes = b""
    error: McpsError | None = None


class SseReader:
    """Feed chunks in, get complete events out."""

    def __init__(self, *, max_bytes: int) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._size = 0
        self._oversize = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Every event completed by ``chunk``."""
        self._buffer += chunk
        events: list[SseEvent] = []
        while (line := self._next_line(final=False)) is not None:
            self._take(line, events)
        if len(self._buffer) + self._size > self._max:  # an unfinished line already over the limit
            self._buffer.clear()
            self._oversize = True
        return events

    def close(self) -> list[SseEvent]:
        """A last event that the stream ended without a blank line after."""
        events: list[SseEvent] = []
        while (line := self._next_line(final=True)) is not None:
            self._take(line, events)
        if self._lines or self._oversize:
            self._take(b"", events)
        return events

    def _next_line(self, *, final: bool) -> bytes | None:
        """The next complete line (``\\r\\n``, ``\\n`` or ``\\r`` ended), without its end."""
        ends = [index for index in (self._buffer.find(b"\n"), self._buffer.find(b"\r")) if index >= 0]
        if ends:
            index = min(ends)
            skip = 1
            if self._buffer[index] == 0x0D:
                if index + 1 == len(self._buffer) and not final:
                    return None  # maybe half of "\r\n": wait for the next chunk
                if index + 1 < len(self._buffer) and self._buffer[index + 1] == 0x0A:
                    skip = 2
            line = bytes(self._buffer[:index])
            del self._buffer[: index + skip]
            return line
        if final and self._buffer:
            line = bytes(self._buffer)
            self._buffer.clear()
            return line
        return None

    def _take(self, line: bytes, events: list[SseEvent]) -> None:
        if line:
            self._size += len(line) + 1
            if self._size > self._max:
                self._oversize = True
                self._lines.clear()
            elif not self._oversize:
                self._lines.append(line)
            return
        lines, oversize = self._lines, self._oversize
        self._lines, self._size, self._oversize = [], 0, False
        if oversize:
            too_large = McpsError(ErrorCode.MESSAGE_TOO_LARGE, detail="SSE event over the size limit")
            events.append(SseEvent((), None, error=too_large))
        elif lines:
            events.append(_event(lines))


def _event(lines: list[bytes]) -> SseEvent:
    data_lines = [line for line in lines if line == b"data" or line.startswith(b"data:")]
    raw = _EVENT_END.join(lines) + _EVENT_END * 2
    others = tuple(line for line in lines if not (line == b"data" or line.startswith(b"data:")))
    if not data_lines:
        return SseEvent(others, None, raw)
    try:  # strictly: a multi-byte sequence never holds a line end, so each line decodes on its own
        data = "\n".join(_field_value(line) for line in data_lines)
    except UnicodeDecodeError as exc:
        refused = McpsError(ErrorCode.MALFORMED_JSON, "message is not UTF-8", detail=f"SSE data: {exc.reason}")
        return SseEvent(others, None, raw, error=refused)
    return SseEvent(others, data or None, raw)


def _field_value(line: bytes) -> str:
    _, _, value = line.partition(b":")
    return value.removeprefix(b" ").decode("utf-8")


def encode_event(fields: tuple[bytes, ...], data: str) -> bytes:
    """An event: its non-data lines unchanged, then one ``data:`` line per line of ``data``."""
    lines = [*fields, *(b"data: " + part.encode("utf-8") for part in data.split("\n"))]
    return _EVENT_END.join(lines) + _EVENT_END * 2


class SseRewriter:
    """Feed chunks in, get rewritten events out. Line ends on output are ``\\r\\n``."""

    def __init__(self, rewrite: Rewrite, *, max_bytes: int) -> None:
        self._rewrite = rewrite
        self._reader = SseReader(max_bytes=max_bytes)

    def feed(self, chunk: bytes) -> bytes:
        """Rewritten bytes of every event completed by ``chunk``."""
        return b"".join(self._out(event) for event in self._reader.feed(chunk))

    def close(self) -> bytes:
        """Rewritten bytes of a last event that the stream ended without a blank line after."""
        return b"".join(self._out(event) for event in self._reader.close())

    def _out(self, event: SseEvent) -> bytes:
        if event.error is not None:
            rewritten = self._rewrite(event.error)
            return b"" if rewritten is None else encode_event(event.fields, rewritten)
        if event.data is None:
            return event.raw
        rewritten = self._rewrite(event.data)
        return b"" if rewritten is None else encode_event(event.fields, rewritten)
