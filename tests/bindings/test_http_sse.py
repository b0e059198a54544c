"""The SSE event rewriter both ends of the HTTP binding use: split however chunked, bounded per event."""

from __future__ import annotations

import pytest

from mcps.bindings.sse import SseRewriter
from mcps.core.errors import ErrorCode, McpsError

STREAM = b'event: message\r\nid: 1\r\ndata: {"a":1}\r\n\r\n: ping\r\n\r\nid: 2\r\ndata: \r\n\r\ndata: {"b":2}\n\n'


def rewrite_all(chunks: list[bytes], max_bytes: int = 1024) -> tuple[bytes, list[str | ErrorCode]]:
    seen: list[str | ErrorCode] = []

    def upper(data: str | McpsError) -> str | None:
        seen.append(data.code if isinstance(data, McpsError) else data)
        return None if isinstance(data, McpsError) else data.upper()

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
    assert seen == [ErrorCode.MESSAGE_TOO_LARGE, "ok"]
    assert out == b"data: OK\r\n\r\n"


def test_multi_line_data_is_joined_and_a_dropped_event_leaves_nothing() -> None:
    rewriter = SseRewriter(lambda data: None if data == "drop" else data, max_bytes=100)
    assert rewriter.feed(b"data: a\ndata: b\n\ndata: drop\n\n") == b"data: a\r\ndata: b\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [b"\xe9", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b'{"a":"\xff"}', b"\xef\xbb\xbf{}"[:2]],
    ids=["latin-1", "overlong", "encoded-surrogate", "truncated", "in-a-string", "half-a-bom"],
)
def test_event_data_that_is_not_utf8_is_refused_with_mcps_019_not_replaced(data: bytes) -> None:
    """Regression: data was decoded with errors="replace", so an invalid byte reached the parser as U+FFFD — a
    message other than the one sent — instead of being refused (SPEC §3 rule 2)."""
    out, seen = rewrite_all([b"id: 1\ndata: " + data + b"\n\n", b'data: {"ok":1}\n\n'])
    assert seen == [ErrorCode.MALFORMED_JSON, '{"ok":1}']  # the next event survives
    assert out == b'data: {"OK":1}\r\n\r\n'
    assert "\ufffd" not in out.decode("utf-8")


def test_a_refused_event_can_be_replaced_keeping_its_other_fields() -> None:
    rewriter = SseRewriter(lambda data: "local" if isinstance(data, McpsError) else data, max_bytes=100)
    assert rewriter.feed(b"id: 9\ndata: \xff\n\n") == b"id: 9\r\ndata: local\r\n\r\n"
