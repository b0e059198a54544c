"""A guarded FastAPI service on a real uvicorn server at 127.0.0.1 (free port), and the keys and credentials agents
use against it. TEST KEYS only, made per test."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from mcps import MemoryNonceStore, PrivateKey
from mcps.audit.log import AuditLog
from mcps.http_api import AgentTrustMiddleware, HttpApiSecurity
from mcps.identity import MemoryRevocationStore, TrustAnchor, TrustAnchors, TrustLevel, issue_passport
from mcps.identity.agentpass import CertificateAnchor, CertificateAnchors, issue_agent_certificate, issue_ca_certificate
from mcps.policy import Policy

SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Agent-Signature",
    "x-agent-trust": {"algorithm": "ES256", "trustLevels": ["L0", "L1", "L2", "L3", "L4"]},
}


class Payment(BaseModel):
    amount: float
    currency: str = "USD"


def service(security: HttpApiSecurity, *, policy: Policy | None = None, audit: AuditLog | None = None) -> FastAPI:
    """Operations ``level0``…``level4`` (GET /levels/{n}), ``pay`` (POST /payments, L2), ``rates`` (optional),
    ``health`` (not guarded). Every guarded handler records the caller it saw in ``app.state.calls``."""
    app = FastAPI()
    app.state.calls = []

    def record(request: Request, name: str) -> dict[str, Any]:
        caller = request.state.mcps_caller
        app.state.calls.append((name, caller.identity, int(caller.level), caller.credential))
        return {"op": name, "agent": caller.identity}

    for level in range(5):

        def handler(request: Request, level: int = level) -> dict[str, Any]:
            return record(request, f"level{level}")

        app.get(f"/levels/{level}", operation_id=f"level{level}", openapi_extra=_requires(level))(handler)

    @app.post("/payments", operation_id="pay", openapi_extra=_requires(2))
    def pay(payment: Payment, request: Request) -> dict[str, Any]:
        return {**record(request, "pay"), "amount": payment.amount}

    @app.get("/rates", operation_id="rates", openapi_extra={"security": [{}, {"AgentTrust": ["L0"]}]})
    def rates() -> dict[str, float]:
        return {"USD/EUR": 0.92}

    @app.get("/health", operation_id="health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title="test", version="1", routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"AgentTrust": SCHEME}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(AgentTrustMiddleware, security=security, openapi=app.openapi, policy=policy, audit=audit)
    return app


def _requires(level: int) -> dict[str, Any]:
    return {"security": [{"AgentTrust": [f"L{level}"]}]}


@dataclass
class World:
    """Keys and trust for one test: a passport issuer (anchor, cap L4), an AgentPass CA (cap L2), the service key."""

    now: float = field(default_factory=time.time)
    issuer: PrivateKey = field(default_factory=lambda: PrivateKey.generate("ES256"))
    ca_key: PrivateKey = field(default_factory=lambda: PrivateKey.generate("ES256"))
    service_key: PrivateKey = field(default_factory=lambda: PrivateKey.generate("ES256"))
    agent_key: PrivateKey = field(default_factory=lambda: PrivateKey.generate("ES256"))
    nonces: MemoryNonceStore = field(default_factory=MemoryNonceStore)
    revocations: MemoryRevocationStore = field(default_factory=MemoryRevocationStore)

    def __post_init__(self) -> None:
        self.ca = issue_ca_certificate(self.ca_key, "Test AgentPass CA", now=self.now)

    def security(self, identity: str, **overrides: Any) -> HttpApiSecurity:
        options: dict[str, Any] = {
            "identity": identity,
            "key": self.service_key,
            "nonces": self.nonces,
            "revocations": self.revocations,
            "anchors": TrustAnchors([TrustAnchor(self.issuer.public_key, TrustLevel.L4)]),
            "certificate_anchors": CertificateAnchors([CertificateAnchor(self.ca, TrustLevel.L2)]),
        }
        return HttpApiSecurity(**{**options, **overrides})

    def passport(self, level: int, *, sub: str = "agent-7", **options: Any) -> str:
        return issue_passport(
            self.issuer,
            iss="https://issuer.test",
            sub=sub,
            agent_key=self.agent_key.public_key,
            level=level,
            scopes=["payments:write"],
            now=options.pop("now", self.now),
            **options,
        )

    def certificate(self, level: int, *, ca_key: PrivateKey | None = None, ca: Any = None) -> str:
        return issue_agent_certificate(
            ca_key or self.ca_key,
            ca or self.ca,
            self.agent_key,
            agent_id="agent-cert-1",
            level=level,
            scopes=["sanctions:search"],
            issuer_id="dev-001",
            now=self.now,
        )


@asynccontextmanager
async def serving(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """Bind 127.0.0.1:0, build the app for its origin, serve it with uvicorn; yields the origin."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(make_app(origin), log_level="warning", lifespan="off", http="h11"))
    with sock:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            try:
                with anyio.fail_after(10):
                    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                        await anyio.sleep(0.01)
                yield origin
            finally:
                server.should_exit = True
