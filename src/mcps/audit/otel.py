"""OpenTelemetry export of audit entries, with the MCP semantic conventions.

Each entry becomes one span on the tracer provider the application configured (the global one by default; without
an OpenTelemetry SDK the API hands out no-op spans and nothing is recorded). Span name ``"{method} {tool}"`` (or the
method alone), as the MCP conventions name spans; attributes:

=========================  ==========================================================
attribute                  from the entry
=========================  ==========================================================
``mcp.method.name``        ``method``
``gen_ai.tool.name``       ``tool``
``gen_ai.operation.name``  ``execute_tool`` for ``tools/call``
``jsonrpc.request.id``     ``request_id`` (as a string)
``error.type``             ``code`` (the MCPS code of a refusal)
``mcps.audit.*``           ``index``, ``event``, ``decision``, ``agent``, ``kid``, ``trust_level``,
                           ``args_hash``, ``result_hash``, ``upstream``
=========================  ==========================================================

The span starts at the entry's ``time`` and lasts ``latency_ms``; a denial or a code sets status ERROR. Like the
SIEM formats, only hashes leave the box: never ``arguments``, ``result`` or ``data``.

Install with the ``otel`` extra (``opentelemetry-api``); configure an SDK and exporter in the application.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

__all__ = ["OpenTelemetryAuditExporter", "span_attributes"]

_PASSED_THROUGH: Final = ("event", "decision", "agent", "kid", "trust_level", "args_hash", "result_hash", "upstream")


def span_attributes(entry: Mapping[str, Any]) -> dict[str, str | int]:
    """The span attributes for one audit entry (see the module docstring)."""
    attributes: dict[str, str | int] = {}
    if isinstance(entry.get("method"), str):
        attributes["mcp.method.name"] = entry["method"]
        if entry["method"] == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
    if isinstance(entry.get("tool"), str):
        attributes["gen_ai.tool.name"] = entry["tool"]
    if isinstance(entry.get("request_id"), str) or type(entry.get("request_id")) is int:
        attributes["jsonrpc.request.id"] = str(entry["request_id"])
    if isinstance(entry.get("code"), str):
        attributes["error.type"] = entry["code"]
    if type(entry.get("index")) is int:
        attributes["mcps.audit.index"] = entry["index"]
    for name in _PASSED_THROUGH:
        value = entry.get(name)
        if isinstance(value, str) or type(value) is int:
            attributes[f"mcps.audit.{name}"] = value
    return attributes


class OpenTelemetryAuditExporter:
    """Emits one span per audit entry on ``tracer_provider`` (default: the global provider)."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("mcps.audit", tracer_provider=tracer_provider)

    def export(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Emit a span for each entry; return how many."""
        count = 0
        for entry in entries:
            self._emit(entry)
            count += 1
        return count

    def _emit(self, entry: Mapping[str, Any]) -> None:
        method, tool = entry.get("method"), entry.get("tool")
        name = " ".join(part for part in (method, tool) if isinstance(part, str)) or str(entry.get("event", "mcps"))
        start_ns = entry["time"] * 1_000_000 if type(entry.get("time")) is int else None
        span = self._tracer.start_span(
            name, kind=SpanKind.SERVER, attributes=span_attributes(entry), start_time=start_ns
        )
        if entry.get("decision") == "deny" or entry.get("event") == "deny" or "code" in entry:
            span.set_status(Status(StatusCode.ERROR, str(entry.get("code", "denied"))))
        latency = entry.get("latency_ms")
        end_ns = start_ns + latency * 1_000_000 if start_ns is not None and type(latency) is int else None
        span.end(end_time=end_ns)
