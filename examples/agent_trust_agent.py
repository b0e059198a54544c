"""An agent calling the example payments API (agent_trust_service.py) through mcps.http_api.AgentTrustAuth.

Run:  python examples/agent_trust_service.py &  then  python examples/agent_trust_agent.py
It waits (up to 15 s) for the service, reads its OpenAPI document, and calls each operation with an L3 passport
from the example issuer, signing in the format the document asks for (Agent-Signature) and verifying every signed
response. It prints one line per call: status, and the MCPS code of a refusal.
"""

from __future__ import annotations

import os
import socket
import time

import httpx
from example_keys import private_key, public_key

from mcps.http_api import AgentTrustAuth
from mcps.identity import issue_passport

PORT = int(os.environ.get("MCPS_EXAMPLE_PORT", "8000"))
URL = f"http://127.0.0.1:{PORT}"
CALLS = [
    ("GET", "/health", None),
    ("GET", "/rates", None),
    ("GET", "/accounts/acct-1/balance", None),
    ("POST", "/payments", {"amount": 25, "currency": "USD", "to": "acct-2"}),
    ("POST", "/payments", {"amount": 25000, "currency": "USD", "to": "acct-2"}),
    ("POST", "/screenings", {"name": "Northwind Trading"}),
    ("DELETE", "/accounts/acct-1", None),
]


def wait_for_service(timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no service listening on 127.0.0.1:{PORT}") from None
            time.sleep(0.1)


def main() -> None:
    agent_key = private_key("api-agent", "ES256")
    passport = issue_passport(  # the example issuer vouches for this agent at L3
        private_key("issuer", "ES256"),
        iss="https://issuer.example",
        sub="agent-7",
        agent_key=agent_key.public_key,
        level=3,
        scopes=["payments:write"],
        now=time.time(),
    )
    document = httpx.get(f"{URL}/openapi.json").json()  # what each operation asks for
    auth = AgentTrustAuth(agent_key, server_key=public_key("api", "ES256"), passport=passport, openapi=document)
    with httpx.Client(base_url=URL, auth=auth) as client:
        for method, path, body in CALLS:
            response = client.request(method, path, json=body)  # raises McpsError if the response does not verify
            code = response.json().get("mcps_code", "") if response.status_code >= 400 else ""
            print(f"{method} {path} -> {response.status_code} {code}".rstrip())


if __name__ == "__main__":
    wait_for_service()
    main()
