"""An ``httpx.Auth`` for agents calling ``x-agent-trust`` services (SPEC.md §13): signs each request in the format
the service's OpenAPI document asks for, and verifies the signed response (bound to that request) before the
caller sees it. The same object works with ``httpx.Client`` and ``httpx.AsyncClient``.

::

    auth = AgentTrustAuth(agent_key, server_key=service_public_key, passport=token, openapi=document)
    with httpx.Client(base_url="https://payments.example", auth=auth) as client:
        client.post("/payments", json={"amount": 25})     # McpsError if the response does not verify

Without ``openapi`` every request is signed in ``format`` (RFC 9421 by default). With it, an operation the document
does not guard is sent unsigned (and its response is not checked); a guarded one is signed in its scheme's format,
with a key of the scheme's algorithm (``ValueError`` otherwise, before anything is sent).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import http_sf
import httpx

from mcps.core.envelope import DEFAULT_SKEW
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.http_fields import Component, MessageView, check_content_digest, content_digest
from mcps.core.httpsig import (
    AGENT_SIGNATURE,
    ATTP_SIGNATURE,
    DEFAULT_HTTP_LIFETIME,
    MAX_LIFETIME,
    SIGNATURE,
    SignatureFormat,
    parse_response_signature,
    sign_request,
)
from mcps.core.keys import PrivateKey, PublicKey
from mcps.http_api.openapi import OperationTable

__all__ = ["AgentTrustAuth"]

_LABEL = "sig1"


class AgentTrustAuth(httpx.Auth):
    """Signs requests with ``key`` and one credential — a ``passport`` (and its ``chain``), an AgentPass
    ``certificate`` (the ``X-AgentPass-Certificate`` value), or a ``signature_agent`` (a directory URL, e.g. the
    ``data:`` form) — and verifies responses signed by ``server_key``."""

    requires_request_body = True
    requires_response_body = True

    def __init__(
        self,
        key: PrivateKey,
        *,
        server_key: PublicKey,
        passport: str | None = None,
        chain: Sequence[str] = (),
        certificate: str | None = None,
        signature_agent: str | None = None,
        openapi: Mapping[str, Any] | None = None,
        format: SignatureFormat = SignatureFormat.RFC9421,
        tag: str | None = None,
        lifetime: int = DEFAULT_HTTP_LIFETIME,
        skew: int = DEFAULT_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sum(x is not None for x in (passport, certificate)) > 1:
            raise ValueError("give a passport or a certificate, not both")
        self.key = key
        self.server_key = server_key
        self.passport = passport
        self.chain = tuple(chain)
        self.certificate = certificate
        self.signature_agent = signature_agent
        self.operations = OperationTable.from_openapi(openapi) if openapi is not None else None
        self.format = SignatureFormat(format)
        self.tag = tag
        self.lifetime = lifetime
        self.skew = skew
        self.clock = clock

    def _format_for(self, request: httpx.Request) -> SignatureFormat | None:
        if self.operations is None:
            return self.format
        operation = self.operations.match(request.method, request.url.path)
        if operation is None or not operation.guarded:
            return None
        algorithms = operation.algorithms
        if algorithms and self.key.alg not in algorithms:
            raise ValueError(f"{operation.tool} asks for {sorted(algorithms)}; this key is {self.key.alg}")
        return operation.schemes[0].format if operation.schemes else self.format

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        fmt = self._format_for(request)
        if fmt is None:
            yield request
            return
        binding = self.sign(request, fmt)
        response = yield request
        self.verify_response(request, response, binding)

    def sign(self, request: httpx.Request, fmt: SignatureFormat) -> Component:
        """Add the credential, ``Content-Digest`` and signature headers to ``request``; return what the response
        must be bound to."""
        headers = request.headers
        headers["accept-encoding"] = "identity"  # the digest is over the bytes as sent
        headers["content-digest"] = content_digest(hashlib.sha256(request.content).digest())
        if fmt is SignatureFormat.ATTP:
            if self.passport is None:
                raise ValueError("ATTP sends the agent's passport in X-Agent-Trust")
            headers["x-agent-trust"] = self.passport
        elif self.passport is not None:
            headers["mcps-passport"] = http_sf.ser([self.passport, *self.chain])
        if self.certificate is not None:
            headers["x-agentpass-certificate"] = self.certificate
        if self.signature_agent is not None:
            headers["signature-agent"] = http_sf.ser(self.signature_agent)
        view = _request_view(request)
        extra = ["content-type"] if "content-type" in headers else []
        signed = sign_request(
            fmt, self.key, view, now=self.clock(), lifetime=self.lifetime, tag=self.tag, extra_components=extra
        )
        headers.update(signed)
        if fmt is SignatureFormat.RFC9421:
            return (SIGNATURE, {"req": True, "key": _LABEL})
        return (AGENT_SIGNATURE if fmt is SignatureFormat.AGENT_SIGNATURE else ATTP_SIGNATURE, {"req": True})

    def verify_response(self, request: httpx.Request, response: httpx.Response, binding: Component) -> None:
        """MCPS-026/027 (unsigned, malformed), 012 (bound to another request), 029 (another key), 006 (window),
        036 (body), 004 (signature): the response is not handed to the caller as if it were the service's."""
        headers = {name: response.headers.get_list(name) for name in response.headers}
        signature = parse_response_signature(headers, binding)
        if signature.kid != self.server_key.kid:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "response is not signed by the service's key")
        now = self.clock()
        if not 0 < signature.expires - signature.created <= MAX_LIFETIME or not (
            signature.created <= now + self.skew and signature.expires >= now - self.skew
        ):
            raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, detail="response signature outside its window")
        digests = headers.get("content-digest") or []
        check_content_digest(", ".join(digests) if digests else None, hashlib.sha256(response.content).digest())
        view = MessageView(status=response.status_code, headers=headers, request=_request_view(request))
        self.server_key.verify(signature.signature, signature.base(view))


def _request_view(request: httpx.Request) -> MessageView:
    url = request.url
    target = f"{url.scheme}://{url.netloc.decode('ascii')}{url.raw_path.decode('ascii')}"
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    return MessageView(request.method, target, headers)
