"""The ASGI middleware for Starlette/FastAPI services that declare ``x-agent-trust`` (SPEC.md §13.6).

::

    app = FastAPI(openapi_extra=...)                              # x-agent-trust schemes, security per operation
    app.add_middleware(AgentTrustMiddleware, security=HttpApiSecurity(...), openapi=app.openapi, policy=policy)

For a request to an operation the document guards, before any application code runs, in this order:

1. the operation (method and path against the document; not guarded, or not in it: passed on untouched);
2. the signature headers, of any of the three formats (MCPS-026 when there are none, unless agent trust is optional);
3. ``Content-Length`` against ``max_body`` (MCPS-018, 413);
4–8. window, audience (``Host``), the key through the credential, the scheme's algorithm, the signature
   (:meth:`~mcps.http_api.verifier.RequestVerifier.authenticate`);
9. the body, read while hashing and bounded by ``max_body``, against ``Content-Digest`` (MCPS-036; 413);
10–11. nonce, revocation; 12. the operation's minimum level (MCPS-009); 13. a JSON body parsed strictly (§3);
14. the policy (server = the service's identity, tool = the ``operationId``); 15. the audit log.

A refusal is an RFC 9457 ``application/problem+json`` body naming the MCPS code (nothing of the request in it), with
401, 403, 413, 429 or 503 (:data:`STATUS`), signed and bound to the request when the request's signature could be
read. Every response of a guarded operation is signed the same way (status, ``Content-Digest``, the request's
method, target and signature); the application's response is held until it is complete to do so, up to
``max_response_body``. The verified caller is ``scope["state"]["mcps_caller"]`` (``request.state.mcps_caller``)
and :func:`current_http_caller`.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from mcps.audit.entry import AuditEvent, json_hash
from mcps.audit.log import AuditLog
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.http_fields import Component, MessageView, check_content_digest, content_digest
from mcps.core.httpsig import CONTENT_DIGEST, parse_request_signature, sign_response
from mcps.core.strict import Limits, parse_message
from mcps.http_api.openapi import OperationRequirement, OperationTable
from mcps.http_api.verifier import HttpApiSecurity, HttpCaller, RequestVerifier
from mcps.policy.model import CallContext, Decision, Policy

__all__ = ["STATUS", "AgentTrustMiddleware", "current_http_caller"]

logger = logging.getLogger("mcps.http_api")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.REVOKED: 403,
    ErrorCode.INSUFFICIENT_TRUST: 403,
    ErrorCode.POLICY_DENIED: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.MALFORMED_JSON: 400,
    ErrorCode.DUPLICATE_KEY: 400,
    ErrorCode.NUMBER_NOT_IJSON: 400,
    ErrorCode.INVALID_STRING: 400,
    ErrorCode.TOO_DEEP: 400,
    ErrorCode.TRUST_AUTHORITY_UNREACHABLE: 503,
    ErrorCode.STORE_UNAVAILABLE: 503,
}
"""HTTP status of a refusal by its code; every other code is 401 (the request is not authenticated)."""
ACCEPT_SIGNATURE: Final = 'sig1=("@method" "@target-uri" "content-digest");created;nonce;keyid;tag'
_STRIPPED: Final = frozenset({b"content-digest", b"signature", b"signature-input"})
_caller: contextvars.ContextVar[HttpCaller | None] = contextvars.ContextVar("mcps_http_caller", default=None)


def current_http_caller() -> HttpCaller:
    """The verified agent of the request being handled; ``LookupError`` outside a guarded operation."""
    caller = _caller.get()
    if caller is None:
        raise LookupError("no verified agent: this request did not pass through a guarded operation")
    return caller


def _headers(scope: Scope) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers") or ():
        headers.setdefault(bytes(name).decode("latin-1").lower(), []).append(bytes(value).decode("latin-1"))
    return headers


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = bytes(raw).decode("latin-1") if isinstance(raw, bytes | bytearray) else str(scope.get("path", "/"))
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    return f"{path}?{query}" if query else path


class _Refusal(Exception):
    def __init__(self, error: McpsError) -> None:
        self.error = error


class AgentTrustMiddleware:
    """Pure ASGI middleware. ``openapi`` is the document (a mapping, or a callable returning one, such as FastAPI's
    ``app.openapi``); by default the wrapped app's own ``openapi()``. ``policy`` and ``audit`` are optional."""

    def __init__(
        self,
        app: Any,
        *,
        security: HttpApiSecurity,
        openapi: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        policy: Policy | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.app = app
        self.security = security
        self.verifier = RequestVerifier(security)
        self.policy = policy
        self.audit = audit
        source = openapi if openapi is not None else getattr(app, "openapi", None)
        if source is None:
            raise ValueError("AgentTrustMiddleware needs the OpenAPI document (openapi=...)")
        self._source = source
        self._table: OperationTable | None = None

    @property
    def operations(self) -> OperationTable:
        if self._table is None:
            document = self._source() if callable(self._source) else self._source
            self._table = OperationTable.from_openapi(document)
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        operation = self.operations.match(str(scope.get("method", "GET")), str(scope.get("path", "/")))
        if operation is None or not operation.guarded:
            await self.app(scope, receive, send)
            return
        await self._guarded(operation, scope, receive, send)

    async def _guarded(self, operation: OperationRequirement, scope: Scope, receive: Receive, send: Send) -> None:
        security = self.security
        now = security.clock()
        headers = _headers(scope)
        view = MessageView(str(scope["method"]), self.verifier.target_uri(_raw_path(scope)), headers)
        binding: Component | None = None
        caller: HttpCaller | None = None
        try:
            try:
                signature = parse_request_signature(headers)
            except McpsError as error:
                raise _Refusal(error) from None
            if signature is None:
                if operation.optional:
                    await self.app(scope, receive, send)
                    return
                raise _Refusal(McpsError(ErrorCode.SIGNATURE_MISSING, "request is not signed"))
            binding = signature.binding
            declared = headers.get("content-length", ["0"])[0]
            if declared.isdigit() and int(declared) > security.max_body:
                raise _Refusal(McpsError(ErrorCode.MESSAGE_TOO_LARGE, "request body is too large"))
            host = headers.get("host", [None])[0]
            try:
                authenticated = self.verifier._authenticate(
                    signature, view, host=host, algorithms=operation.algorithms, now=now
                )
                body = await self._read_body(receive)
                check_content_digest(headers.get(CONTENT_DIGEST, [None])[0], hashlib.sha256(body).digest())
                caller = await self.verifier.admit(authenticated, now=now)
            except McpsError as error:
                raise _Refusal(error) from None
            assert operation.min_level is not None  # noqa: S101 - guarded() says so; for the type checker
            if caller.level < operation.min_level:
                raise _Refusal(
                    McpsError(ErrorCode.INSUFFICIENT_TRUST, detail=f"{caller.level} < {operation.min_level}")
                )
            arguments = _arguments(headers, body)
            decision = await self._decide(operation, caller, arguments, now)
            await self._record(
                operation, scope=scope, caller=caller, arguments=arguments, decision=decision, error=None
            )
        except _Refusal as refusal:
            await self._record(
                operation, scope=scope, caller=caller, arguments=None, decision=None, error=refusal.error
            )
            await self._refuse(send, refusal.error, view, binding, now)
            return
        await self._run(scope=scope, receive=receive, send=send, body=body, caller=caller, view=view, binding=binding)

    async def _read_body(self, receive: Receive) -> bytes:
        body = bytearray()
        limit = self.security.max_body
        while True:
            message = await receive()
            if message.get("type") != "http.request":
                raise McpsError(ErrorCode.MESSAGE_TOO_LARGE, "request body was not received", detail="disconnected")
            body += message.get("body", b"")
            if len(body) > limit:
                raise McpsError(ErrorCode.MESSAGE_TOO_LARGE, "request body is too large")
            if not message.get("more_body", False):
                return bytes(body)

    async def _decide(
        self, operation: OperationRequirement, caller: HttpCaller, arguments: dict[str, Any], now: float
    ) -> Decision | None:
        if self.policy is None:
            return None
        call = CallContext(caller.principal, self.security.identity, "tools/call", operation.tool, arguments)
        decision = await self.policy.decide(call, now=now)
        if not decision.allowed:
            raise _Refusal(decision.error())
        return decision

    async def _record(
        self,
        operation: OperationRequirement,
        *,
        scope: Scope,
        caller: HttpCaller | None,
        arguments: dict[str, Any] | None,
        decision: Decision | None,
        error: McpsError | None,
    ) -> None:
        if self.audit is None:
            return
        data: dict[str, Any] = {"path": operation.path}
        if decision is not None:
            data |= {"rules": list(decision.rules), "reason": decision.reason}
        elif error is not None:
            data["reason"] = error.message
        event = AuditEvent(
            event="deny" if error is not None else "call",
            agent=caller.identity[:1024] if caller is not None else None,
            kid=caller.kid if caller is not None else None,
            trust_level=int(caller.level) if caller is not None else None,
            method=f"{scope.get('method', '')} {operation.path}"[:1024],
            tool=operation.tool[:1024],
            args_hash=json_hash(arguments) if arguments is not None else None,
            decision="deny" if error is not None else "allow",
            code=error.code.mcps if error is not None else None,
            upstream=self.security.identity[:1024],
            data=data,
        )
        try:
            await self.audit.append(event)
        except McpsError as failure:
            if error is None:  # an allowed request must be in the log before it runs
                raise _Refusal(McpsError(ErrorCode.STORE_UNAVAILABLE, detail=failure.diagnostics())) from None
            logger.error("mcps: a refused request could not be audited: %s", failure.diagnostics())  # noqa: TRY400

    async def _refuse(
        self, send: Send, error: McpsError, request: MessageView, binding: Component | None, now: float
    ) -> None:
        status = STATUS.get(error.code, 401)
        logger.info("mcps: refused %s %s: %s", request.method, request.target_uri, error.diagnostics())
        problem = {"type": f"urn:mcps:{error.code.mcps}", "title": error.message, "status": status}
        body = json.dumps({**problem, "mcps_code": error.code.mcps}, separators=(",", ":")).encode("ascii")
        extra = [(b"content-type", b"application/problem+json"), (b"cache-control", b"no-store")]
        if status == 401:
            extra += [(b"www-authenticate", b"AgentTrust"), (b"accept-signature", ACCEPT_SIGNATURE.encode())]
        await self._send_signed(
            send, status=status, headers=extra, body=body, request=request, binding=binding, now=now
        )

    async def _run(
        self,
        *,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes,
        caller: HttpCaller,
        view: MessageView,
        binding: Component | None,
    ) -> None:
        scope.setdefault("state", {})["mcps_caller"] = caller
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()
            return message

        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        size = 0
        overflow = False

        async def hold(message: dict[str, Any]) -> None:
            nonlocal start, size, overflow
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None or overflow:
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.security.max_response_body:
                overflow = True
                logger.error("mcps: response larger than %d bytes cannot be signed", self.security.max_response_body)
                await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                kept = [(k, v) for k, v in start.get("headers", []) if bytes(k).lower() not in _STRIPPED]
                status, body = int(start["status"]), b"".join(chunks)
                await self._send_signed(
                    send, status=status, headers=kept, body=body, request=view, binding=binding, now=None
                )

        token = _caller.set(caller)
        try:
            await self.app(scope, replay, hold)
        finally:
            _caller.reset(token)

    async def _send_signed(
        self,
        send: Send,
        *,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        request: MessageView,
        binding: Component | None,
        now: float | None,
    ) -> None:
        digest = content_digest(hashlib.sha256(body).digest())
        out = [(k, v) for k, v in headers if bytes(k).lower() not in (b"content-length", *_STRIPPED)]
        out += [(b"content-length", str(len(body)).encode()), (b"content-digest", digest.encode())]
        if binding is not None:
            response = MessageView(status=status, headers={CONTENT_DIGEST: [digest]}, request=request)
            at = self.security.clock() if now is None else now
            try:
                signed = sign_response(self.security.key, response, binding, now=at)
            except McpsError as error:  # a request field the base cannot hold: answer unsigned, the client refuses
                logger.warning("mcps: response could not be signed: %s", error.diagnostics())
                signed = {}
            out += [(name.lower().encode(), value.encode("latin-1")) for name, value in signed.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})


def _arguments(headers: Mapping[str, list[str]], body: bytes) -> dict[str, Any]:
    """A JSON body parsed strictly (SPEC.md §3: duplicate keys, I-JSON numbers, surrogates, depth), as the policy's
    arguments when it is an object. Other bodies give no arguments."""
    content_type = headers.get("content-type", [""])[0].split(";")[0].strip().lower()
    if not body or not (content_type == "application/json" or content_type.endswith("+json")):
        return {}
    try:
        return parse_message(body, Limits(max_bytes=len(body)))
    except McpsError as error:
        if error.code in (ErrorCode.BATCH_REJECTED, ErrorCode.NOT_JSONRPC):  # strict JSON, just not an object
            return {}
        raise _Refusal(error) from None
