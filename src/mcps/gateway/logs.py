"""The gateway's logs: one JSON object per line (``--log-format json``) or plain text, with the request's context.

Each HTTP request the gateway serves gets a request id (the client's ``X-Request-Id`` when it is a short token,
else a new random one, echoed in the response) and, when the request carries one, its W3C trace context
(``traceparent`` header, or ``params._meta.traceparent`` in the message). While the request is served they are in
:data:`REQUEST` (a context variable, so concurrent requests never mix), and every log record made meanwhile
carries them::

    {"time": "2026-11-30T00:03:33.514Z", "level": "WARNING", "logger": "mcps.gateway",
     "message": "mcps gateway refused a request for 'payments': MCPS-009 …", "request_id": "6f1c…",
     "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "upstream": "payments",
     "rpc_id": "7"}

With OpenTelemetry in use, ``trace_id`` and ``span_id`` are those of the gateway's own span for the request.
Values from clients are checked before they are logged (a request id is at most 128 characters of
``[A-Za-z0-9._:-]``, a trace context must be well formed) and the JSON encoder escapes everything else.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

__all__ = [
    "REQUEST",
    "JsonFormatter",
    "RequestContext",
    "configure_logging",
    "parse_traceparent",
    "request_id_from",
    "update_request",
]

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT: Final = re.compile(r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}")
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the logs say about the request being served."""

    request_id: str
    trace_id: str | None = None
    span_id: str | None = None
    upstream: str | None = None
    rpc_id: str | None = None


REQUEST: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("mcps_gateway_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's request id when it is a short token, else a new one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


def parse_traceparent(value: object) -> tuple[str, str] | None:
    """``(trace_id, parent span id)`` of a well-formed W3C ``traceparent`` (not all zeros, not version ff)."""
    if not isinstance(value, str) or len(value) > 128:
        return None
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None or match["version"] == "ff" or set(match["trace"]) == {"0"} or set(match["span"]) == {"0"}:
        return None
    return match["trace"], match["span"]


def update_request(**changes: Any) -> None:
    """Add to the current request's context (no-op outside a request)."""
    current = REQUEST.get()
    if current is not None:
        REQUEST.set(replace(current, **changes))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, the request context, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = REQUEST.get()
        if context is not None:
            for name in ("request_id", "trace_id", "span_id", "upstream", "rpc_id"):
                value = getattr(context, name)
                if value is not None:
                    entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True, separators=(",", ":"))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = REQUEST.get()
        return text if context is None else f"{text} [request {context.request_id}]"


def configure_logging(log_format: Literal["json", "text"], *, level: int = logging.INFO) -> None:
    """Send every log record (the gateway's, uvicorn's, the libraries') to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else _TextFormatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own handlers would bypass the format
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
