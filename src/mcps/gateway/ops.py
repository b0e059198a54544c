"""Operating the gateway: health, readiness, metrics, request context and traces, and draining for shutdown.

:class:`OpsApp` is the ASGI app ``mcps gateway run`` serves. It wraps the :class:`~mcps.gateway.front.GatewayFront`
and adds, per HTTP request: a request id and the W3C trace context in the log context (:mod:`mcps.gateway.logs`),
an OpenTelemetry server span when ``opentelemetry-api`` is installed (the ``otel`` extra; the span's parent is
the request's ``traceparent``), the in-flight gauge and the request counter. It answers three paths itself,
after the same ``Host``/``Origin`` checks as every other path (SPEC.md §12.8):

* ``GET /healthz`` — 200 while the process serves (liveness);
* ``GET /readyz`` — 200 when the gateway can decide calls: its key is loaded, every store answers (nonces,
  revocations — for Redis, the revocation mirror is current —, counters, the audit log) and every upstream is
  reachable (a TCP connection to an HTTP upstream; a stdio upstream's command exists and is executable); else 503.
  The body is ``{"ready": …, "checks": {name: "ok" or a fixed problem}}``; details go to the log. Results are
  reused for one second, so probes cannot turn into load on the stores. While draining: 503 ``draining``;
* ``GET /metrics`` — Prometheus text format (:mod:`mcps.gateway.metrics`).

:class:`MeteredRelay` is the :class:`~mcps.gateway.relay.Relay` with the message-level metrics (messages by method
and tool, decisions by code, upstream latency) and a span per client message. The ``Counted…`` wrappers count store
failures by store.

Draining (:meth:`OpsApp.drain`, on SIGTERM): readiness turns 503 at once, and every open ``GET`` stream (a 2025
session's listen stream, which never ends by itself) is told its client left, so it ends and the client
reconnects elsewhere; POSTs — calls in flight — run to their end, within the server's shutdown bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from mcps.audit.entry import AuditEvent
from mcps.audit.log import AuditLog, Receipt, StoredEntry
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId
from mcps.gateway.config import UpstreamConfig
from mcps.gateway.front import DISCOVERY_PATH, PATH_PREFIX, GatewayFront
from mcps.gateway.logs import REQUEST, RequestContext, parse_traceparent, request_id_from, update_request
from mcps.gateway.metrics import CONTENT_TYPE, GatewayMetrics, method_label
from mcps.gateway.relay import ClientOutcome, Relay, Route, Session
from mcps.identity.revocation import RevocationKey, RevocationStore
from mcps.stores.counters import Charge, CounterStore
from mcps.stores.nonces import NonceStore

__all__ = [
    "CountedCounterStore",
    "CountedNonceStore",
    "CountedRevocationStore",
    "MeteredAuditLog",
    "MeteredRelay",
    "OpsApp",
    "Readiness",
    "ReadinessProbe",
    "tracer",
]

logger = logging.getLogger("mcps.gateway")

Scope = Mapping[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OPS_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
READINESS_TTL: Final = 1.0
CHECK_TIMEOUT: Final = 2.0


def tracer() -> Any | None:
    """The OpenTelemetry tracer ``mcps.gateway``, or ``None`` when ``opentelemetry-api`` is not installed."""
    try:
        from opentelemetry import trace  # noqa: PLC0415 - optional: the otel extra
    except ImportError:
        return None
    return trace.get_tracer("mcps.gateway")


@contextlib.contextmanager
def _span(name: str, *, traceparent: str | None, kind: str, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """A span from ``tracer()`` (parented by ``traceparent`` when given), or ``None`` without OpenTelemetry."""
    active = tracer()
    if active is None:
        yield None
        return
    from opentelemetry import propagate  # noqa: PLC0415
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    context = propagate.extract({"traceparent": traceparent}) if traceparent is not None else None
    span_kind = SpanKind.SERVER if kind == "server" else SpanKind.INTERNAL
    with active.start_as_current_span(name, context=context, kind=span_kind, attributes=dict(attributes)) as span:
        yield span


def _span_ids(span: Any) -> tuple[str, str] | None:
    if span is None:
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- readiness ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]

    def body(self) -> bytes:
        return json.dumps({"ready": self.ready, "checks": self.checks}, separators=(",", ":")).encode("ascii")


class ReadinessProbe:
    """Runs the readiness checks, at most once per :data:`READINESS_TTL`, sharing one run between callers."""

    def __init__(
        self,
        *,
        stores: Mapping[str, Any],
        upstreams: Callable[[], Mapping[str, UpstreamConfig]],
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stores = dict(stores)
        self._upstreams = upstreams
        self._metrics = metrics
        self._clock = clock
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Task[Readiness] | None = None

    async def check(self) -> Readiness:
        now = self._clock()
        if self._last is not None and now - self._last[0] < READINESS_TTL:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run())
        result = await asyncio.shield(self._running)
        self._last = (self._clock(), result)
        return result

    async def _run(self) -> Readiness:
        checks: dict[str, str] = {"keys": "ok"}  # the gateway and audit keys are loaded before it serves
        names: list[str] = []
        probes: list[Awaitable[str]] = []
        for name, store in self._stores.items():
            names.append(f"store:{name}")
            probes.append(_check_store(name, store))
        for name, upstream in self._upstreams().items():
            names.append(f"upstream:{name}")
            probes.append(_check_upstream(upstream))
        for name, outcome in zip(names, await asyncio.gather(*probes), strict=True):
            checks[name] = outcome
        ready = all(value == "ok" for value in checks.values())
        self._metrics.ready.set(1 if ready else 0)
        return Readiness(ready, checks)


async def _check_store(name: str, store: Any) -> str:
    inner = getattr(store, "inner", store)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            if name == "revocation" and hasattr(inner, "ready"):
                return "ok" if inner.ready else "revocation mirror not current"
            if name == "audit":
                await inner.checkpoint()
            elif hasattr(inner, "ping"):
                await inner.ping()
    except TimeoutError:
        logger.warning("mcps gateway readiness: store %s did not answer in %s s", name, CHECK_TIMEOUT)
        return "not answering"
    except McpsError as error:
        logger.warning("mcps gateway readiness: store %s: %s", name, error.diagnostics())
        return "not answering (MCPS-030)"
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never fails the request
        logger.warning("mcps gateway readiness: store %s: %s", name, type(exc).__name__)
        return "not answering"
    return "ok"


async def _check_upstream(upstream: UpstreamConfig) -> str:
    if upstream.url is not None:
        parts = urlsplit(upstream.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                _, writer = await asyncio.open_connection(parts.hostname, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            logger.warning("mcps gateway readiness: upstream %s unreachable: %s", upstream.name, type(exc).__name__)
            return "unreachable"
        return "ok"
    argv0 = (upstream.command or ("",))[0]
    found = shutil.which(argv0) if os.sep not in argv0 else (argv0 if os.access(argv0, os.X_OK) else None)
    if found is None and upstream.cwd is not None and os.access(upstream.cwd / argv0, os.X_OK):
        found = str(upstream.cwd / argv0)
    return "ok" if found else "command not found"


# --- the ASGI app ---------------------------------------------------------------------------------------------------


class OpsApp:
    """The served app: :class:`GatewayFront` plus the operations endpoints and per-request context (see module)."""

    def __init__(
        self,
        front: GatewayFront,
        *,
        metrics: GatewayMetrics,
        readiness: ReadinessProbe,
        upstream_names: Callable[[], Collection[str]],
    ) -> None:
        self.front = front
        self.metrics = metrics
        self.readiness = readiness
        self._upstream_names = upstream_names
        self._draining = asyncio.Event()
        self.in_flight = 0

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def drain(self) -> None:
        """Stop being ready and end every open GET stream (see the module docstring)."""
        if not self._draining.is_set():
            logger.info("mcps gateway: draining (%d requests in flight)", self.in_flight)
        self._draining.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.front(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        request_id = request_id_from(_text(headers.get(b"x-request-id")))
        traceparent_header = _text(headers.get(b"traceparent"))
        parsed = parse_traceparent(traceparent_header)
        token = REQUEST.set(RequestContext(request_id, *(parsed or (None, None))))
        route = self._route(path)
        status = [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        self.in_flight += 1
        self.metrics.in_flight.inc()
        attributes = {"http.request.method": str(scope.get("method", "")), "url.path": _bounded_path(route, path)}
        try:
            with _span(
                f"{scope.get('method', '')} {_bounded_path(route, path)}",
                traceparent=traceparent_header if parsed else None,
                kind="server",
                attributes=attributes,
            ) as span:
                ids = _span_ids(span)
                if ids is not None:
                    update_request(trace_id=ids[0], span_id=ids[1])
                if path in OPS_PATHS:
                    await self._ops(path, scope, send_with_id)
                elif scope.get("method") == "GET" and route in self._upstream_names():
                    await self.front(scope, self._leaving_on_drain(receive), send_with_id)
                else:
                    await self._cut_off_at_shutdown(scope, receive, send_with_id, started=lambda: status[0] != 0)
                if span is not None:
                    span.set_attribute("http.response.status_code", status[0])
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            self.metrics.http.labels(route, str(status[0] if 0 < status[0] < 600 else 0)).inc()
            REQUEST.reset(token)

    async def _cut_off_at_shutdown(
        self, scope: Scope, receive: Receive, send: Send, *, started: Callable[[], bool]
    ) -> None:
        """Serve through the front; a request the server cancels because it outlasted the shutdown bound is answered
        with MCPS-035 (HTTP 503) when nothing was sent yet, and ends quietly (no traceback in the log)."""
        try:
            await self.front(scope, receive, send)
        except asyncio.CancelledError:
            if not self.draining:
                raise
            logger.warning("mcps gateway: a request outlasted the shutdown bound and was cut off")
            if not started():
                error = McpsError(ErrorCode.UPSTREAM_UNAVAILABLE, "gateway is shutting down")
                refusal = {"jsonrpc": "2.0", "id": None, "error": error.to_jsonrpc_error()}
                with contextlib.suppress(Exception):
                    await _respond(send, 503, json.dumps(refusal).encode("ascii"), b"application/json")

    def _route(self, path: str) -> str:
        if path in OPS_PATHS:
            return path.lstrip("/")
        if path == DISCOVERY_PATH:
            return "discovery"
        if path.startswith(PATH_PREFIX):
            name = path[len(PATH_PREFIX) :].rstrip("/")
            if name in self._upstream_names():
                return name
        return "other"

    async def _ops(self, path: str, scope: Scope, send: Send) -> None:
        problem = self.front._front_problem(scope)  # the same Host/Origin checks as every other path
        if problem is not None:
            await _respond(send, problem[0], problem[1].encode("ascii"), b"text/plain; charset=utf-8")
            return
        if scope.get("method") != "GET":
            await _respond(send, 405, b"", b"text/plain", [(b"allow", b"GET")])
        elif path == "/healthz":
            await _respond(send, 200, b"ok\n", b"text/plain; charset=utf-8")
        elif path == "/metrics":
            await _respond(send, 200, self.metrics.render(), CONTENT_TYPE.encode("ascii"))
        elif self.draining:
            await _respond(send, 503, Readiness(False, {"gateway": "draining"}).body(), b"application/json")
        else:
            result = await self.readiness.check()
            await _respond(send, 200 if result.ready else 503, result.body(), b"application/json")

    def _leaving_on_drain(self, receive: Receive) -> Receive:
        draining = self._draining

        async def receive_or_leave() -> Message:
            if draining.is_set():
                return {"type": "http.disconnect"}
            message = asyncio.ensure_future(receive())
            stop = asyncio.ensure_future(draining.wait())
            try:
                await asyncio.wait({message, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if message.done():
                return message.result()
            message.cancel()
            return {"type": "http.disconnect"}

        return receive_or_leave


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _bounded_path(route: str, path: str) -> str:
    if path in OPS_PATHS or path == DISCOVERY_PATH:
        return path
    return f"{PATH_PREFIX}{route}" if route != "other" else "other"


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode("ascii")), *headers]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --- the relay with metrics -----------------------------------------------------------------------------------------


class MeteredRelay(Relay):
    """:class:`Relay` counting messages and decisions, timing upstream answers, and tracing each client message."""

    def __init__(self, *, metrics: GatewayMetrics, **relay: Any) -> None:
        super().__init__(**relay)
        self.metrics = metrics

    async def from_client(self, route: Route, session: Session, message: dict[str, Any]) -> ClientOutcome:
        rpc_id = message.get("id")
        method = method_label(message)
        tool = ""
        if method == "tools/call":
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            tool = name if route.tools.is_pinned(name) and isinstance(name, str) else "unpinned"
        context = REQUEST.get()
        update_request(upstream=route.name, rpc_id=str(rpc_id) if _short_id(rpc_id) else None)
        meta_parent = None
        if context is not None and context.trace_id is None:
            meta_parent = _meta_traceparent(message)
            parsed = parse_traceparent(meta_parent)
            if parsed is not None:
                update_request(trace_id=parsed[0], span_id=parsed[1])
            else:
                meta_parent = None
        attributes: dict[str, Any] = {"mcp.method.name": method, "mcps.upstream": route.name}
        if tool:
            attributes["gen_ai.tool.name"] = tool
        with _span(f"mcps.gateway {method}", traceparent=meta_parent, kind="internal", attributes=attributes) as span:
            outcome = await super().from_client(route, session, message)
            self.metrics.messages.labels(self.metrics.upstream(route.name), method, tool).inc()
            self.metrics.decision(route.name, outcome.error if outcome.reply is not None else None)
            if span is not None:
                span.set_attribute("mcps.decision", "deny" if outcome.reply is not None else "allow")
                if outcome.error is not None:
                    span.set_attribute("error.type", outcome.error.code.mcps)
        return outcome

    async def from_upstream(self, route: Route, session: Session, message: Any) -> dict[str, Any] | None:
        answer = isinstance(message, dict) and "method" not in message
        started = _started(session, message.get("id") if answer else None)
        released = await super().from_upstream(route, session, message)
        if started is not None:
            self._latency(route, started)
        return released

    async def answer_failed(
        self, route: Route, session: Session, request_id: object, error: McpsError
    ) -> dict[str, Any] | None:
        started = _started(session, request_id)
        refusal = await super().answer_failed(route, session, request_id, error)
        if started is not None:
            self._latency(route, started)
        return refusal

    def _latency(self, route: Route, started: float) -> None:
        self.metrics.upstream_latency.labels(self.metrics.upstream(route.name)).observe(time.monotonic() - started)


def _started(session: Session, request_id: object) -> float | None:
    if not isinstance(request_id, str | int):
        return None
    exchange = session.exchanges.get(request_id)
    return exchange.started if exchange is not None and exchange.started else None


def _short_id(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= 64) or (type(value) is int)


def _meta_traceparent(message: Mapping[str, Any]) -> str | None:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    value = meta.get("traceparent") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


# --- stores that count their failures --------------------------------------------------------------------------------


class _Counting:
    def __init__(self, inner: Any, metrics: GatewayMetrics, name: str) -> None:
        self.inner = inner
        self._metrics = metrics
        self._name = name

    def _failed(self, error: McpsError) -> None:
        if error.code is ErrorCode.STORE_UNAVAILABLE:
            self._metrics.store_error(self._name)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountedNonceStore(_Counting):
    def __init__(self, inner: NonceStore, metrics: GatewayMetrics) -> None:
        super().__init__(inner, metrics, "nonce")

    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        try:
            return bool(await self.inner.claim(kid, nonce, expires_at=expires_at, now=now))
        except McpsError as error:
            self._failed(error)
            raise


class CountedRevocationStore(_Counting):
    def __init__(self, inner: RevocationStore, metrics: GatewayMetrics) -> None:
        super().__init__(inner, metrics, "revocation")

    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        try:
            await self.inner.revoke(key, until=until, now=now)
        except McpsError as error:
            self._failed(error)
            raise

    async def is_revoked(self, keys: Collection[RevocationKey], *, now: float) -> bool:
        try:
            return bool(await self.inner.is_revoked(keys, now=now))
        except McpsError as error:
            self._failed(error)
            raise


class CountedCounterStore(_Counting):
    def __init__(self, inner: CounterStore, metrics: GatewayMetrics) -> None:
        super().__init__(inner, metrics, "counter")

    async def consume(self, charges: Sequence[Charge], *, now: float, commit: bool = True) -> int | None:
        try:
            refused: int | None = await self.inner.consume(charges, now=now, commit=commit)
        except McpsError as error:
            self._failed(error)
            raise
        return refused


class MeteredAuditLog(_Counting):
    """The audit log, timing each append (queued → committed: what a call waits for) and counting failures."""

    def __init__(self, inner: AuditLog, metrics: GatewayMetrics) -> None:
        super().__init__(inner, metrics, "audit")
        observe = getattr(inner, "observe_batches", None)
        if observe is not None:
            observe(self._batch)

    def _batch(self, size: int, seconds: float) -> None:
        self._metrics.audit_batch.observe(size)
        self._metrics.audit_commit.observe(seconds)

    @property
    def origin(self) -> str:
        return str(self.inner.origin)

    @property
    def public_key(self) -> Any:
        return self.inner.public_key

    async def append(self, event: AuditEvent) -> Receipt:
        started = time.perf_counter()
        try:
            receipt: Receipt = await self.inner.append(event)
        except McpsError as error:
            self._failed(error)
            raise
        self._metrics.audit_durability.observe(time.perf_counter() - started)
        return receipt

    async def checkpoint(self) -> Any:
        return await self.inner.checkpoint()

    async def entries(self, start: int, end: int) -> list[StoredEntry]:
        found: list[StoredEntry] = await self.inner.entries(start, end)
        return found

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        proof: list[bytes] = await self.inner.inclusion_proof(index, size)
        return proof

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        proof: list[bytes] = await self.inner.consistency_proof(old_size, new_size)
        return proof
