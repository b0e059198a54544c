"""Audit entries become OpenTelemetry spans with the MCP semantic conventions; hashes leave the box, values don't."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from mcps.audit.otel import OpenTelemetryAuditExporter

CALL = {
    "v": 1,
    "index": 7,
    "prev": "x",
    "time": 1_763_683_200_123,
    "event": "call",
    "agent": "agent-7",
    "kid": "kid-1",
    "trust_level": 2,
    "method": "tools/call",
    "tool": "transfer_funds",
    "request_id": 42,
    "args_hash": "aGFzaA",
    "decision": "allow",
    "latency_ms": 15,
    "arguments": {"secret": "do not export"},
}
DENY = {"v": 1, "index": 8, "time": 1_763_683_201_000, "event": "deny", "method": "tools/call", "tool": "rm_rf",
        "decision": "deny", "code": "MCPS-016"}  # fmt: skip


def spans_for(*entries: dict[str, object]) -> list:  # type: ignore[type-arg]
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    assert OpenTelemetryAuditExporter(provider).export(entries) == len(entries)
    return list(memory.get_finished_spans())


def test_call_span_carries_mcp_semantic_conventions_and_times() -> None:
    (span,) = spans_for(CALL)
    assert span.name == "tools/call transfer_funds"
    attributes = dict(span.attributes)
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "transfer_funds"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["jsonrpc.request.id"] == "42"
    assert attributes["mcps.audit.index"] == 7
    assert attributes["mcps.audit.trust_level"] == 2
    assert attributes["mcps.audit.args_hash"] == "aGFzaA"
    assert span.start_time == 1_763_683_200_123_000_000
    assert span.end_time - span.start_time == 15_000_000
    assert span.status.status_code is not StatusCode.ERROR
    assert "do not export" not in repr(attributes)


def test_denial_is_an_error_span_with_its_code() -> None:
    (span,) = spans_for(DENY)
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes)["error.type"] == "MCPS-016"


def test_hostile_types_from_a_hand_edited_row_are_skipped_not_fatal() -> None:
    (span,) = spans_for({"index": "7", "time": "soon", "method": ["x"], "tool": None, "request_id": {"a": 1}})
    assert span.name == "mcps"
    assert "mcps.audit.index" not in dict(span.attributes)
