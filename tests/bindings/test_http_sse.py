"""The SSE event rewriter both ends of the HTTP binding use: split however chunked, bounded per event."""

from __future__ import annotations

import pytest

from mcps.bindings.sse import SseRewriter

STREAM = b'event: message\r\nid: 1\r\ndata: {"a":1}\r\n\r\n: ping\r\n\r\nid: 2\r\ndata: \r\n\r\ndata: {"b":2}\n\n'


def rewrite_all(chunks: list[bytes], max_bytes: int = 1024) -> tuple[bytes, list[str | None]]:
    seen: list[str | None] = []

    def upper(data: str | None) -> str | None:
        seen.append(data)
        return None if data is None else data.upper()

    rewriter = SseRewriter(upper, max_bytes=max_bytes)
    out = b"".join(rewriter.feed(chunk) for chunk in chunks) + rewriter.close()
    return out, seen


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(STREAM)])
def test_events_are_rewritten_whatever_the_chunking(size: int) -> None:
    out, seen = rewrite_all([STREAM[i : i + size] for i in range(0, len(STREAM), size)])
    assert seen == ['{"a":1}', '{"b":2}']  # comments and empty-data (priming) events are not messages
    assert out == (
        b'event: message\r\nid: 1\r\ndata: {"A":1}\r\n\r\n: ping\r\n\r\nid: 2\r\ndata: \r\n\r\ndata: {"B":2}\r\n\r\n'
    )


def test_an_event_over_the_limit_is_reported_without_its_data_and_the_next_one_survives() -> None:
    out, seen = rewrite_all([b"data: " + b"x" * 100 + b"\n", b"data: more\n\n", b"data: ok\n\n"], max_bytes=50)
    assert seen == [None, "ok"]
    assert out == b"data: OK\r\n\r\n"


def test_multi_line_data_is_joined_and_a_dropped_event_leaves_nothing() -> None:
    rewriter = SseRewriter(lambda data: None if data == "drop" else data, max_bytes=100)
    assert rewriter.feed(b"data: a\ndata: b\n\ndata: drop\n\n") == b"data: a\r\ndata: b\r\n\r\n"
