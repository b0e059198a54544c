"""Server-sent events (WHATWG HTML §9.2) as Streamable HTTP uses them: one JSON-RPC message per event's data.

:class:`SseRewriter` sits on a byte stream of events, split at blank lines however the stream is chunked, and
hands each event's data to a function that returns the data to send instead (or ``None`` to drop the event).
Events without data (keep-alive comments, resumability priming events) pass unchanged. Each event is bounded
by ``max_bytes`` while reading: a longer one is discarded up to its end and reported (MCPS-018), never buffered
whole. Its data must be UTF-8: WHATWG decodes with replacement (an invalid byte becomes U+FFFD), which would hand
on a message other than the one sent, so an event whose data is not UTF-8 is reported instead (MCPS-019).

Both ends of the HTTP binding use it: the server signs each event's message, the client parses each strictly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mcps.core.errors import ErrorCode, McpsError

__all__ = ["SseRewriter"]

_EVENT_END: Final = b"\r\n"

Rewrite = Callable[[str | McpsError], str | None]
"""Called with an event's data, or with the refusal of an event that cannot be read (over the size limit:
MCPS-018; data not UTF-8: MCPS-019); returns the data to send instead, or ``None`` to drop the event."""


class SseRewriter:
    """Feed chunks in, get rewritten events out. Line ends on output are ``\\r\\n``."""

    def __init__(self, rewrite: Rewrite, *, max_bytes: int) -> None:
        self._rewrite = rewrite
        self._max = max_bytes
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._size = 0
        self._oversize = False

    def feed(self, chunk: bytes) -> bytes:
        """Rewritten bytes of every event completed by ``chunk``."""
        self._buffer += chunk
        out = bytearray()
        while (line := self._next_line(final=False)) is not None:
            out += self._take(line)
        if len(self._buffer) + self._size > self._max:  # an unfinished line already over the limit
            self._buffer.clear()
            self._oversize = True
        return bytes(out)

    def close(self) -> bytes:
        """Rewritten bytes of a last event that the stream ended without a blank line after."""
        out = bytearray()
        while (line := self._next_line(final=True)) is not None:
            out += self._take(line)
        if self._lines or self._oversize:
            out += self._take(b"")
        return bytes(out)

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

    def _take(self, line: bytes) -> bytes:
        if line:
            self._size += len(line) + 1
            if self._size > self._max:
                self._oversize = True
                self._lines.clear()
            elif not self._oversize:
                self._lines.append(line)
            return b""
        lines, oversize = self._lines, self._oversize
        self._lines, self._size, self._oversize = [], 0, False
        if oversize:
            data = self._rewrite(McpsError(ErrorCode.MESSAGE_TOO_LARGE, detail="SSE event over the size limit"))
            return b"" if data is None else _encode([], data)
        return self._event(lines)

    def _event(self, lines: list[bytes]) -> bytes:
        data_lines = [line for line in lines if line == b"data" or line.startswith(b"data:")]
        if not data_lines:
            return _EVENT_END.join(lines) + _EVENT_END * 2 if lines else b""
        others = [line for line in lines if not (line == b"data" or line.startswith(b"data:"))]
        try:  # strictly: a multi-byte sequence never holds a line end, so each line decodes on its own
            data = "\n".join(_field_value(line) for line in data_lines)
        except UnicodeDecodeError as exc:
            refused = McpsError(ErrorCode.MALFORMED_JSON, "message is not UTF-8", detail=f"SSE data: {exc.reason}")
            rewritten = self._rewrite(refused)
            return b"" if rewritten is None else _encode(others, rewritten)
        if not data:
            return _EVENT_END.join(lines) + _EVENT_END * 2
        rewritten = self._rewrite(data)
        if rewritten is None:
            return b""
        return _encode(others, rewritten)


def _field_value(line: bytes) -> str:
    _, _, value = line.partition(b":")
    return value.removeprefix(b" ").decode("utf-8")


def _encode(others: list[bytes], data: str) -> bytes:
    """An event: its non-data lines unchanged, then one ``data:`` line per line of ``data``."""
    lines = [*others, *(b"data: " + part.encode("utf-8") for part in data.split("\n"))]
    return _EVENT_END.join(lines) + _EVENT_END * 2
