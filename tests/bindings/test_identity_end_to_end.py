"""Passports and per-call grants end to end over stdio and Streamable HTTP, real processes and the real SDK.

An mcp.Client signs with the agent's key and passport; the server (tests/bindings/signed_server.py with
MCPS_TEST_TRUST=passport) trusts agents through a trust anchor, hands each tool the verified agent id, level,
scopes and grant, and requires a gateway's grant for ``rm_rf``. The relay between them plays the gateway
(``grant``), a gateway that approved other arguments (``grant-other-arguments``), or an honest pipe (``pass``).
All keys are test keys, made per run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, GrantRequirement, signed_stdio_client
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.keys import save_private_key
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.grants import GrantVerifier
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore

from .http_harness import Relay, serving, signed_app

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
AGENT_ID = "urn:mcps:test:agent:billing"
TIMEOUT = 20


class Setup:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.agent_key, self.server_key = PrivateKey.generate(), PrivateKey.generate()
        self.anchor_key, self.gateway_key = PrivateKey.generate(), PrivateKey.generate()
        save_private_key(self.server_key, state / "server.pem")
        save_private_key(self.gateway_key, state / "gateway.pem")
        (state / "agent.jwk").write_text(json.dumps(self.agent_key.public_key.to_jwk()))
        (state / "gateway.jwk").write_text(json.dumps(self.gateway_key.public_key.to_jwk()))
        anchors = TrustAnchors([TrustAnchor(self.anchor_key.public_key, TrustLevel.L3)])
        (state / "anchors.jwks").write_text(json.dumps(anchors.to_jwks()))

    def passport(self, *, level: int = 2, issuer: PrivateKey | None = None) -> str:
        return issue_passport(
            issuer or self.anchor_key,
            iss="urn:mcps:test:issuer",
            sub=AGENT_ID,
            agent_key=self.agent_key.public_key,
            level=level,
            scopes=("billing:read", "tools:call"),
            now=time.time(),
            ttl=600,
        )

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def refusals(self) -> str:
        path = self.state / "refusals.log"
        return path.read_text() if path.exists() else ""

    @asynccontextmanager
    async def client(self, relay_mode: str = "pass", *, passport: str | None = None) -> AsyncIterator[Client]:
        command = [str(HERE / "relay.py"), relay_mode, "--", sys.executable, str(HERE / "signed_server.py")]
        env = {"MCPS_TEST_DIR": str(self.state), "MCPS_TEST_TRUST": "passport"}
        params = StdioServerParameters(command=sys.executable, args=command, env=env, cwd=str(HERE))
        security = ChannelSecurity(
            key=self.agent_key,
            passport=passport or self.passport(),
            trusted=PinnedKeys([self.server_key.public_key]),
            nonces=MemoryNonceStore(),
        )
        async with Client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY), mode="legacy") as c:
            await c.list_tools()  # the client calls only tools it has seen listed and signed
            yield c


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def refused(client: Client, name: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, {"text": "hello"})
    return str(caught.value.error.data["mcps_code"])


async def test_tool_sees_the_agent_of_the_passport_and_the_gateway_grant(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("grant") as client:
            assert text_of(await client.call_tool("whoami", {})) == AGENT_ID
            assert text_of(await client.call_tool("rm_rf", {"text": "granted"})) == "deleted everything"
    whoami, rm_rf = setup.calls()
    assert whoami["identity"] == rm_rf["identity"] == AGENT_ID
    assert whoami["caller"] == setup.agent_key.kid
    assert (whoami["level"], whoami["scopes"]) == (2, ["billing:read", "tools:call"])
    assert whoami["grant"] == {"tool": "whoami", "iss": "urn:mcps:test:gateway", "sub": AGENT_ID}  # sent, checked
    assert rm_rf["grant"] == {"tool": "rm_rf", "iss": "urn:mcps:test:gateway", "sub": AGENT_ID}
    assert setup.refusals() == ""


async def test_call_that_needs_a_grant_is_refused_without_one(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("pass") as client:
            assert text_of(await client.call_tool("safe", {"text": "no grant needed"})) == "echo: no grant needed"
            assert await refused(client, "rm_rf") == ErrorCode.GRANT_INVALID.mcps
    assert [call["tool"] for call in setup.calls()] == ["safe"]
    assert setup.calls()[0]["grant"] is None


async def test_grant_for_other_arguments_reaches_no_tool(setup: Setup) -> None:
    with anyio.fail_after(TIMEOUT):
        async with setup.client("grant-other-arguments") as client:
            assert await refused(client, "rm_rf") == ErrorCode.GRANT_MISMATCH.mcps
    assert setup.calls() == []


@pytest.mark.parametrize(
    ("passport", "code"),
    [
        pytest.param({"level": 1}, ErrorCode.INSUFFICIENT_TRUST, id="level-below-minimum"),
        pytest.param({"issuer": PrivateKey.generate()}, ErrorCode.UNKNOWN_KEY, id="unknown-issuer"),
    ],
)
async def test_agent_without_a_good_enough_passport_is_refused_from_the_first_message(
    setup: Setup, passport: dict[str, Any], code: ErrorCode
) -> None:
    refusal = pytest.RaisesExc(MCPError, check=lambda error: error.error.data["mcps_code"] == code.mcps)
    with anyio.fail_after(TIMEOUT), pytest.RaisesGroup(refusal, flatten_subgroups=True):
        async with setup.client("pass", passport=setup.passport(**passport)):
            pass
    assert setup.calls() == []
    assert code.mcps in setup.refusals()


# --- Streamable HTTP, both protocol eras ------------------------------------------------------------------------


@asynccontextmanager
async def http_client(setup: Setup, era: tuple[str, bool], calls: list[dict[str, Any]]) -> AsyncIterator[Client]:
    """Agent → gateway relay (adds grants) → MCPServer behind McpsHttpMiddleware, each on uvicorn at 127.0.0.1."""
    mode, json_response = era
    nonces = MemoryNonceStore()
    anchors = TrustAnchors([TrustAnchor(setup.anchor_key.public_key, TrustLevel.L3)])
    gateway = GrantVerifier(issuers=[setup.gateway_key.public_key], audience=SERVER_IDENTITY, nonces=nonces)
    server_security = ChannelSecurity(
        key=setup.server_key,
        identity=SERVER_IDENTITY,
        trusted=PassportResolver(anchors=anchors, audience=SERVER_IDENTITY, revocations=MemoryRevocationStore()),
        nonces=nonces,
        grants=GrantRequirement(gateway, tools={"rm_rf"}),
    )
    agent_security = ChannelSecurity(
        key=setup.agent_key,
        passport=setup.passport(),
        trusted=PinnedKeys([setup.server_key.public_key]),
        nonces=MemoryNonceStore(),
    )
    app = signed_app(server_security, calls, json_response=json_response, identities=True)
    async with (
        serving(app) as server_url,
        serving(Relay(server_url, "grant", gateway=setup.gateway_key), lifespan="off") as relay_url,
    ):
        transport = signed_streamable_http_client(relay_url + "/mcp", agent_security, server_identity=SERVER_IDENTITY)
        async with Client(transport, mode=mode) as client:
            await client.list_tools()
            yield client


@pytest.mark.parametrize("era", [("legacy", False), ("2026-07-28", True)], ids=["2025-11-25-sse", "2026-07-28-json"])
async def test_http_tool_sees_the_passport_identity_and_the_grant(setup: Setup, era: tuple[str, bool]) -> None:
    calls: list[dict[str, Any]] = []
    with anyio.fail_after(TIMEOUT):
        async with http_client(setup, era, calls) as client:
            assert text_of(await client.call_tool("rm_rf", {"text": "granted"})) == "deleted everything"
    assert calls == [
        {
            "tool": "rm_rf",
            "caller": setup.agent_key.kid,
            "text": "granted",
            "identity": AGENT_ID,
            "level": 2,
            "scopes": ["billing:read", "tools:call"],
            "grant": {"tool": "rm_rf", "sub": AGENT_ID},
        }
    ]
