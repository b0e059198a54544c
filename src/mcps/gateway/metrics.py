"""The gateway's Prometheus metrics (``GET /metrics``), on a registry of its own (never the process-wide one).

Every label takes values from a bounded set, so that no client can grow the number of series: upstream names come
from the configuration, methods from the MCP method names below (anything else is ``other``), tool names only from
the tools pinned in ``mcps.lock`` (anything else is ``unpinned``), codes from :class:`~mcps.core.errors.ErrorCode`,
stores from a fixed list, HTTP statuses are integers below 600.

========================================  =========  ===========================================================
metric                                    type       labels
========================================  =========  ===========================================================
``mcps_gateway_messages_total``           counter    ``upstream``, ``method``, ``tool``: client messages by kind
``mcps_gateway_decisions_total``          counter    ``upstream``, ``decision`` (allow/deny), ``code``
``mcps_gateway_upstream_latency_seconds`` histogram  ``upstream``: forwarded request → its answer (or failure)
``mcps_gateway_http_requests_total``      counter    ``route`` (an upstream, discovery, healthz, …), ``status``
``mcps_gateway_in_flight_requests``       gauge      HTTP requests being served
``mcps_gateway_audit_batch_size``         histogram  entries per committed audit batch
``mcps_gateway_audit_commit_seconds``     histogram  one batch's transaction
``mcps_gateway_audit_durability_seconds`` histogram  an append queued → committed (what a call waits for the log)
``mcps_gateway_store_errors_total``       counter    ``store``: nonce, revocation, counter, audit, session
``mcps_gateway_revocation_feed_up``       gauge      1 while the revocation mirror is current (Redis only)
``mcps_gateway_reloads_total``            counter    ``result``: applied or refused
``mcps_gateway_ready``                    gauge      1 when the last readiness check passed
========================================  =========  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mcps.core.errors import ErrorCode, McpsError

__all__ = ["CONTENT_TYPE", "KNOWN_METHODS", "STORES", "GatewayMetrics", "method_label"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
KNOWN_METHODS: Final = frozenset(
    {
        "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
        "resources/templates/list", "resources/subscribe", "resources/unsubscribe", "prompts/list", "prompts/get",
        "completion/complete", "logging/setLevel", "notifications/initialized", "notifications/cancelled",
        "notifications/progress", "notifications/roots/list_changed", "server/discover", "subscriptions/listen",
    }
)  # fmt: skip
STORES: Final = ("nonce", "revocation", "counter", "audit", "session")
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def method_label(message: object) -> str:
    """The ``method`` label of a client message: a known MCP method, ``response`` or ``other``."""
    if not isinstance(message, dict):
        return "other"
    method = message.get("method")
    if method is None:
        return "response" if "id" in message else "other"
    return method if isinstance(method, str) and method in KNOWN_METHODS else "other"


class GatewayMetrics:
    """The metrics of one gateway; ``upstreams`` are the configured names (other values become ``other``)."""

    def __init__(self, upstreams: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.upstreams = frozenset(upstreams)
        r = self.registry
        self.messages = Counter(
            "mcps_gateway_messages", "Client messages, by method and tool", ("upstream", "method", "tool"), registry=r
        )
        self.decisions = Counter(
            "mcps_gateway_decisions", "Decisions on client messages", ("upstream", "decision", "code"), registry=r
        )
        self.upstream_latency = Histogram(
            "mcps_gateway_upstream_latency_seconds",
            "Forwarded request to its answer",
            ("upstream",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.http = Counter("mcps_gateway_http_requests", "HTTP requests served", ("route", "status"), registry=r)
        self.in_flight = Gauge("mcps_gateway_in_flight_requests", "HTTP requests being served", registry=r)
        self.audit_batch = Histogram(
            "mcps_gateway_audit_batch_size", "Entries per committed audit batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.audit_commit = Histogram(
            "mcps_gateway_audit_commit_seconds", "One audit batch transaction", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.audit_durability = Histogram(
            "mcps_gateway_audit_durability_seconds",
            "An audit append queued to committed",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "mcps_gateway_store_errors", "Store operations that failed (MCPS-030)", ("store",), registry=r
        )
        self.revocation_feed_up = Gauge(
            "mcps_gateway_revocation_feed_up", "1 while the revocation mirror is current", registry=r
        )
        self.reloads = Counter("mcps_gateway_reloads", "SIGHUP reloads", ("result",), registry=r)
        self.ready = Gauge("mcps_gateway_ready", "1 when the last readiness check passed", registry=r)
        for store in STORES:
            self.store_errors.labels(store)
        for result in ("applied", "refused"):
            self.reloads.labels(result)

    def upstream(self, name: str) -> str:
        return name if name in self.upstreams else "other"

    def decision(self, upstream: str, error: McpsError | None) -> None:
        code = "none" if error is None else (error.code.mcps if isinstance(error.code, ErrorCode) else "other")
        self.decisions.labels(self.upstream(upstream), "allow" if error is None else "deny", code).inc()

    def store_error(self, store: str) -> None:
        self.store_errors.labels(store if store in STORES else "other").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
