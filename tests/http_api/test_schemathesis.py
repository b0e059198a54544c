"""schemathesis against the example service's own OpenAPI document (issue 14): for any input it generates — valid
and invalid parameters, bodies, headers — the service behind AgentTrustMiddleware never answers 5xx, whether the
request is unsigned, or signed by an agent (so every check and every handler is reached)."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from mcps.http_api import AgentTrustAuth
from mcps.identity import issue_passport

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(tmp: Path) -> ModuleType:
    saved = {name: os.environ.get(name) for name in ("MCPS_EXAMPLE_KEYS", "MCPS_EXAMPLE_PORT")}
    os.environ["MCPS_EXAMPLE_KEYS"] = str(tmp / "keys")
    os.environ["MCPS_EXAMPLE_PORT"] = "8000"
    sys.path.insert(0, str(EXAMPLES))
    try:
        for name in ("example_keys", "agent_trust_service"):
            sys.modules.pop(name, None)
        spec = importlib.util.spec_from_file_location("agent_trust_service", EXAMPLES / "agent_trust_service.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_STATE = Path(tempfile.mkdtemp(prefix="mcps-schemathesis-"))
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
SERVICE = _example(_STATE)  # the schema must exist when the tests are collected
schema = schemathesis.openapi.from_dict(SERVICE.app.openapi())


@pytest.fixture(scope="module")
def service() -> ModuleType:
    return SERVICE


def _signer(service: ModuleType) -> AgentTrustAuth:
    keys = sys.modules["example_keys"]
    agent_key = keys.private_key("api-agent", "ES256")
    passport = issue_passport(
        keys.private_key("issuer", "ES256"),
        iss="https://issuer.example",
        sub="agent-7",
        agent_key=agent_key.public_key,
        level=3,
        now=time.time(),
    )
    return AgentTrustAuth(agent_key, server_key=keys.public_key("api", "ES256"), passport=passport)


@pytest.fixture(scope="module")
def client(service: ModuleType) -> Any:
    with TestClient(service.app, base_url=service.IDENTITY, raise_server_exceptions=False) as client:
        yield client


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_service_answer_5xx(case: Any, service: ModuleType, client: TestClient) -> None:
    kwargs = case.as_transport_kwargs(base_url=service.IDENTITY)
    fields = {key: kwargs[key] for key in ("params", "headers", "json", "content") if key in kwargs}
    try:
        unsigned_request = client.build_request(kwargs["method"], kwargs["url"], **fields)
        signed_request = client.build_request(kwargs["method"], kwargs["url"], **fields)
    except (ValueError, TypeError, UnicodeEncodeError):
        return  # a generated header or value no HTTP request can carry (httpx refuses to build it)
    unsigned = client.send(unsigned_request)
    assert unsigned.status_code < 500, unsigned.text
    for name in ("signature", "signature-input", "agent-signature", "x-agent-signature", "x-agent-nonce"):
        signed_request.headers.pop(name, None)  # a generated header may not pose as the agent's signature
    auth = _signer(service)
    auth.sign(signed_request, auth.format)
    signed = client.send(signed_request)
    assert signed.status_code < 500, signed.text
