"""Who an answer is addressed to (issue 15.2, SPEC.md §9.2), end to end with real processes and uvicorn: an agent
that carries a passport, talking to a server that knows it only by its pinned key, gets answers addressed to its
kid and accepts them; a server that pins some agents by key and trusts others by passport answers each by its own
name. All keys are test keys, made per run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, signed_stdio_client
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.identity.passports import issue_passport

from .http_harness import serving, signed_app
from .test_identity_end_to_end import AGENT_ID, Setup

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TIMEOUT = 20


def self_signed_passport(key: PrivateKey) -> str:
    return issue_passport(key, iss=AGENT_ID, sub=AGENT_ID, agent_key=key.public_key, level=0, now=time.time())


async def whoami_over_stdio(setup: Setup, security: ChannelSecurity, trust: str) -> str:
    env = {"MCPS_TEST_DIR": str(setup.state), "MCPS_TEST_TRUST": trust}
    params = StdioServerParameters(command=sys.executable, args=[str(HERE / "signed_server.py")], env=env)
    with anyio.fail_after(TIMEOUT):
        async with Client(signed_stdio_client(params, security, server_identity=SERVER_IDENTITY)) as client:
            await client.list_tools()
            result = await client.call_tool("whoami", {})
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.mark.parametrize("which", ["anchored", "self-signed"])
async def test_passport_agent_and_pinned_key_server_over_stdio(setup: Setup, which: str) -> None:
    """Regression: this connection failed with MCPS-011 on every answer."""
    token = setup.passport() if which == "anchored" else self_signed_passport(setup.agent_key)
    security = ChannelSecurity(
        key=setup.agent_key,
        passport=token,
        trusted=PinnedKeys([setup.server_key.public_key]),
        nonces=MemoryNonceStore(),
    )
    assert await whoami_over_stdio(setup, security, "key") == setup.agent_key.kid  # known by key, answered by kid
    assert setup.refusals() == ""


async def test_server_pinning_some_agents_by_key_and_others_by_passport_over_stdio(setup: Setup) -> None:
    keyed = ChannelSecurity(  # agent.jwk, pinned by the server; no passport
        key=setup.agent_key, trusted=PinnedKeys([setup.server_key.public_key]), nonces=MemoryNonceStore()
    )
    assert await whoami_over_stdio(setup, keyed, "mixed") == setup.agent_key.kid
    other = PrivateKey.generate()
    with_passport = ChannelSecurity(
        key=other,
        passport=_passport_for(setup, other),
        trusted=PinnedKeys([setup.server_key.public_key]),
        nonces=MemoryNonceStore(),
    )
    assert await whoami_over_stdio(setup, with_passport, "mixed") == AGENT_ID
    assert setup.refusals() == ""


def _passport_for(setup: Setup, key: PrivateKey) -> str:
    return issue_passport(
        setup.anchor_key,
        iss="urn:mcps:test:issuer",
        sub=AGENT_ID,
        agent_key=key.public_key,
        level=2,
        scopes=("tools:call",),
        now=time.time(),
        ttl=600,
    )


@pytest.mark.parametrize("era", [("legacy", False), ("2026-07-28", True)], ids=["2025-11-25-sse", "2026-07-28-json"])
async def test_passport_agent_and_pinned_key_server_over_http(era: tuple[str, bool]) -> None:
    mode, json_response = era
    agent_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    calls: list[dict[str, Any]] = []
    server_security = ChannelSecurity(
        key=server_key, identity=SERVER_IDENTITY, trusted=PinnedKeys([agent_key.public_key]), nonces=MemoryNonceStore()
    )
    agent_security = ChannelSecurity(
        key=agent_key,
        passport=self_signed_passport(agent_key),
        trusted=PinnedKeys([server_key.public_key]),
        nonces=MemoryNonceStore(),
    )
    with anyio.fail_after(TIMEOUT):
        async with serving(signed_app(server_security, calls, json_response=json_response)) as url:
            transport = signed_streamable_http_client(url + "/mcp", agent_security, server_identity=SERVER_IDENTITY)
            async with Client(transport, mode=mode) as client:
                await client.list_tools()
                result = await client.call_tool("safe", {"text": "hello"})
    assert result.content[0].text == "echo: hello"  # type: ignore[union-attr]
    assert calls == [{"tool": "safe", "caller": agent_key.kid, "text": "hello"}]
