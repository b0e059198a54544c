"""A FastAPI payments API that declares x-agent-trust in its OpenAPI document, guarded by AgentTrustMiddleware.

Run:  python examples/agent_trust_service.py     (http://127.0.0.1:8000; MCPS_EXAMPLE_PORT picks another port)
Then: python examples/agent_trust_agent.py

Operations and the level each asks for (the `security` of each operation in /openapi.json):
  GET /health (none) · GET /rates (optional) · GET /accounts/{account}/balance (L1) · POST /payments (L2)
  POST /screenings (L3) · DELETE /accounts/{account} (L4)
Agents prove themselves with passports from the example issuer (trusted up to L3) or AgentPass certificates from
the example CA (trusted up to L2); the issuer's keys are served at /.well-known/agent-trust-keys. The policy caps
payments per trust level. Every response of a guarded operation is signed with the API's key.
Keys: examples/keys/ (test keys, made on first use).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import uvicorn
from example_keys import KEYS, private_key, public_key
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from mcps import MemoryNonceStore
from mcps.http_api import AgentTrustMiddleware, HttpApiSecurity, agent_trust_keys_app
from mcps.identity import MemoryRevocationStore, TrustAnchor, TrustAnchors, TrustLevel
from mcps.identity.agentpass import CertificateAnchors, issue_ca_certificate
from mcps.policy import PolicyFile
from mcps.stores.counters import MemoryCounterStore

PORT = int(os.environ.get("MCPS_EXAMPLE_PORT", "8000"))
IDENTITY = f"http://127.0.0.1:{PORT}"  # an HTTP API's identity is its origin
AGENT_TRUST = {
    "type": "apiKey",
    "in": "header",
    "name": "Agent-Signature",
    "description": "Signed agent requests (x-agent-trust); scopes name the minimum trust level.",
    "x-agent-trust": {
        "algorithm": "ES256",
        "trustLevels": ["L0", "L1", "L2", "L3", "L4"],
        "issuerKeysUrl": "/.well-known/agent-trust-keys",
    },
}
POLICY = """
mcps_policy = 1
[servers."{identity}"]
default = "allow"
[[servers."{identity}".tools]]
match = "create_payment"
rate = ["30/minute per agent"]
[servers."{identity}".tools.spend]
amount_arg = "amount"
currency_arg = "currency"
currency = "USD"
per_level = {{ 2 = {{ per_call = 100 }}, 3 = {{ per_call = 10000 }} }}
"""


def requires(level: str) -> dict[str, Any]:
    return {"security": [{"AgentTrust": [level]}]}


class Payment(BaseModel):
    amount: float = Field(ge=0)
    currency: str = Field(max_length=3)
    to: str = Field(max_length=64)


class Screening(BaseModel):
    name: str = Field(max_length=200)


app = FastAPI(title="Example payments API", version="1.0.0")


@app.get("/health", operation_id="health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/rates", operation_id="get_rates", openapi_extra={"security": [{}, {"AgentTrust": ["L0"]}]})
def rates() -> dict[str, float]:
    return {"USD/EUR": 0.92}


@app.get("/accounts/{account}/balance", operation_id="get_balance", openapi_extra=requires("L1"))
def balance(account: str, request: Request) -> dict[str, Any]:
    caller = request.state.mcps_caller  # the verified agent (mcps.http_api.HttpCaller)
    return {"account": account, "balance": 1250.0, "seen_by": caller.identity}


@app.post("/payments", operation_id="create_payment", openapi_extra=requires("L2"))
def pay(payment: Payment, request: Request) -> dict[str, Any]:
    return {"paid": payment.amount, "to": payment.to, "by": request.state.mcps_caller.identity}


@app.post("/screenings", operation_id="screen_name", openapi_extra=requires("L3"))
def screen(screening: Screening) -> dict[str, Any]:
    return {"name": screening.name, "match": False}


@app.delete("/accounts/{account}", operation_id="close_account", openapi_extra=requires("L4"))
def close(account: str) -> dict[str, str]:
    return {"closed": account}


def openapi() -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {"AgentTrust": AGENT_TRUST}
        app.openapi_schema = schema
    return app.openapi_schema


app.openapi = openapi  # type: ignore[method-assign]


def certificate_anchors() -> CertificateAnchors:
    """The example AgentPass CA (examples/keys/agentpass-ca.pem), trusted up to L2."""
    path = Path(KEYS) / "agentpass-ca.cert.pem"
    if not path.exists():
        from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

        ca = issue_ca_certificate(private_key("agentpass-ca", "ES256"), "Example AgentPass CA", now=1_700_000_000)
        path.write_bytes(ca.public_bytes(Encoding.PEM))
    return CertificateAnchors.load(path, max_level=TrustLevel.L2)


issuer_anchors = TrustAnchors([TrustAnchor(public_key("issuer", "ES256"), TrustLevel.L3)])
app.mount("/.well-known/agent-trust-keys", agent_trust_keys_app(issuer_anchors))
security = HttpApiSecurity(
    identity=IDENTITY,
    key=private_key("api", "ES256"),  # signs every response of a guarded operation
    nonces=MemoryNonceStore(),  # replay defence (SqliteNonceStore / RedisNonceStore for several processes)
    revocations=MemoryRevocationStore(),
    anchors=issuer_anchors,  # passports from the example issuer, up to L3
    certificate_anchors=certificate_anchors(),  # AgentPass certificates, up to L2
)
policy = PolicyFile.loads(POLICY.format(identity=IDENTITY), counters=MemoryCounterStore())
app.add_middleware(AgentTrustMiddleware, security=security, openapi=app.openapi, policy=policy)

if __name__ == "__main__":
    print(f"serving {IDENTITY} (OpenAPI at {IDENTITY}/openapi.json)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
