"""Two ``mcps gateway run`` processes sharing one Redis and one PostgreSQL log, in front of one HTTP upstream.

Real processes and the machine's real servers, isolated by a random Redis prefix and PostgreSQL schema: a nonce
claimed through one replica is refused by the other; rate and spend limits hold exactly when calls race through
both; ``mcps revoke`` on the shared store is enforced by the other replica within one second; a 2025-11-25 session
opened through one replica works through the other, pinned to the same peer; and the combined audit log verifies.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import redis
from tests.conftest import POSTGRES_DSN, REDIS_URL, _postgres_problem, _redis_problem, _service_missing
from tests.gateway.harness import PAYMENTS_ID, Agent, GatewayFiles, payments_over_http
from tests.gateway.process_harness import (
    GatewayProcess,
    add_agents,
    free_port,
    mcps_cli,
    modern_call,
    outcome,
    post,
    share_state,
    write_replicated,
)

from mcps.core.keys import PrivateKey

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

POLICY = """\
mcps_policy = 1

[servers.payments]
default = "deny"
min_level = 0

[[servers.payments.tools]]
match = "get_balance"
min_level = 0
rate = ["10/hour per agent"]

[[servers.payments.tools]]
match = "transfer_funds"
min_level = 2
scopes_all = ["payments:write"]
spend.amount_arg = "amount"
spend.currency_arg = "currency"
spend.currency = "USD"
spend.per_level."2" = { per_call = 100, per_day = 500 }
"""


@dataclass
class Deployment:
    files: GatewayFiles
    agents: dict[str, Agent]
    replicas: tuple[GatewayProcess, GatewayProcess]
    tag: str
    audit_key: PrivateKey


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    for problem in (_redis_problem(REDIS_URL), _postgres_problem(POSTGRES_DSN)):
        if problem is not None:
            _service_missing(problem)
    directory = tmp_path_factory.mktemp("replicas")
    tag = f"mcps_t{secrets.token_hex(6)}"
    with payments_over_http(directory) as upstream:
        files = write_replicated(directory, upstream)
        (directory / "policy.toml").write_text(POLICY, encoding="utf-8")
        agents = add_agents(
            files,
            {
                "nonce": (1, []),
                "rate": (1, []),
                "spend": (2, ["payments:write"]),
                "session": (1, []),
                "other": (1, []),
                "revoked": (1, []),
            },
        )
        audit_key = share_state(files, redis_url=REDIS_URL, postgres_dsn=POSTGRES_DSN, tag=tag)
        pinned = mcps_cli("gateway", "pin", "--config", str(files.config), cwd=directory)
        assert pinned.returncode == 0, pinned.stderr
        replicas = tuple(
            GatewayProcess(files.config, free_port(), directory / f"replica-{n}.log").start() for n in "ab"
        )
        try:
            for replica in replicas:
                replica.wait_ready()
            yield Deployment(files, agents, (replicas[0], replicas[1]), tag, audit_key)
        finally:
            codes = [replica.stop() for replica in replicas]
            _drop(tag)
        assert codes == [0, 0], [replica.log_text()[-3000:] for replica in replicas]


def _drop(tag: str) -> None:
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(admin.scan_iter(match=f"{tag}:*"))
        if keys:
            admin.delete(*keys)
    finally:
        admin.close()
    import psycopg  # noqa: PLC0415

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {tag} CASCADE")


async def test_a_nonce_claimed_through_one_replica_is_refused_by_the_other(deployment: Deployment) -> None:
    a, b = deployment.replicas
    message = modern_call(deployment.agents["nonce"])
    async with httpx2.AsyncClient() as http:
        assert outcome(await post(http, a.url, message)) == "ok"
        assert outcome(await post(http, b.url, message)) == "MCPS-005"
        assert outcome(await post(http, a.url, message)) == "MCPS-005"


async def test_a_rate_limit_holds_exactly_when_calls_race_through_both_replicas(deployment: Deployment) -> None:
    agent = deployment.agents["rate"]
    calls = [modern_call(agent, request_id=n) for n in range(24)]
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64)) as http:
        results = await asyncio.gather(
            *(post(http, deployment.replicas[n % 2].url, call) for n, call in enumerate(calls))
        )
    outcomes = [outcome(response) for response in results]
    assert outcomes.count("ok") == 10, outcomes
    assert outcomes.count("MCPS-010") == 14, outcomes


async def test_a_spend_cap_holds_exactly_when_transfers_race_through_both_replicas(deployment: Deployment) -> None:
    agent = deployment.agents["spend"]
    arguments = {"amount": 50, "currency": "USD", "to": "acct-2", "counterparty": "Acme Supplies"}
    calls = [modern_call(agent, tool="transfer_funds", arguments=arguments, request_id=n) for n in range(16)]
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64)) as http:
        results = await asyncio.gather(
            *(post(http, deployment.replicas[n % 2].url, call) for n, call in enumerate(calls))
        )
    outcomes = [outcome(response) for response in results]
    assert outcomes.count("ok") == 10, outcomes  # 500 USD a day at L2, 50 each
    assert all(result == "ok" or result.startswith("MCPS-") for result in outcomes), outcomes


async def test_a_revocation_on_the_shared_store_is_enforced_by_both_replicas_within_one_second(
    deployment: Deployment,
) -> None:
    a, b = deployment.replicas
    agent = deployment.agents["revoked"]
    async with httpx2.AsyncClient() as http:
        assert outcome(await post(http, b.url, modern_call(agent, request_id=1))) == "ok"
        revoked = mcps_cli(
            "revoke", "--sub", agent.identity, "--store", REDIS_URL, "--redis-prefix", f"{deployment.tag}:",
            cwd=deployment.files.directory,
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        written = time.monotonic()
        seen: dict[str, float] = {}
        n = 2
        while len(seen) < 2 and time.monotonic() - written < 5:
            for name, replica in (("a", a), ("b", b)):
                if name not in seen:
                    result = outcome(await post(http, replica.url, modern_call(agent, request_id=n)))
                    n += 1
                    if result == "MCPS-003":
                        seen[name] = time.monotonic() - written
                    else:
                        assert result == "ok", result
        assert set(seen) == {"a", "b"}, seen
        assert max(seen.values()) < 1.0, seen
        other = deployment.agents["other"]
        assert outcome(await post(http, a.url, modern_call(other))) == "ok"  # nobody else is refused


async def test_a_2025_session_opened_through_one_replica_goes_on_through_the_other(deployment: Deployment) -> None:
    a, b = deployment.replicas
    agent = deployment.agents["session"]
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    async with httpx2.AsyncClient() as http:
        opened = await _signed_post(http, a.url, initialize, agent, session=None, version="2025-11-25")
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}}
        noted = await _signed_post(http, b.url, initialized, agent, session=session, version="2025-11-25")
        assert noted.status_code == 202, noted.text
        ping = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        through_b = await _signed_post(http, b.url, ping, agent, session=session, version="2025-11-25")
        assert through_b.status_code == 200, through_b.text
        assert "get_balance" in through_b.text
        intruder = deployment.agents["other"]  # another signer on the same session: refused on B as on A
        refused = await _signed_post(http, b.url, {**ping, "id": 3}, intruder, session=session, version="2025-11-25")
        assert outcome(refused) == "MCPS-029"
        unknown = await _signed_post(http, b.url, {**ping, "id": 4}, agent, session="nope", version="2025-11-25")
        assert unknown.status_code == 404


async def _signed_post(
    http: httpx2.AsyncClient,
    url: str,
    message: dict[str, object],
    agent: Agent,
    *,
    session: str | None,
    version: str,
) -> httpx2.Response:
    from mcps.core.envelope import sign_message  # noqa: PLC0415
    from mcps.identity.resolver import attach_passport  # noqa: PLC0415

    signed = sign_message(attach_passport(message, agent.passport), agent.key, audience=PAYMENTS_ID, now=time.time())
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": version,
    }
    if session is not None:
        headers["mcp-session-id"] = session
    return await http.post(f"{url}/mcp/payments", content=json.dumps(signed), headers=headers, timeout=60)


def test_the_combined_audit_log_verifies(deployment: Deployment) -> None:
    directory = deployment.files.directory
    public = directory / "audit.pub.jwk"
    public.write_text(json.dumps(deployment.audit_key.public_key.to_jwk()), encoding="utf-8")
    verified = mcps_cli(
        "audit", "verify", "--db", POSTGRES_DSN, "--schema", deployment.tag, "--key", str(public), cwd=directory
    )
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["entries"] >= 2 * 24  # every decision and answer of both replicas, in one log
    for replica in deployment.replicas:  # each replica appended (its log says it served calls)
        assert any(record.get("logger") == "mcps.gateway" for record in replica.log_records())


def test_replicas_refuse_to_share_a_log_with_another_key(deployment: Deployment, tmp_path: Path) -> None:
    """A replica configured with another audit key does not start on the shared log (it would fork it)."""
    text = deployment.files.config.read_text(encoding="utf-8").replace('audit_key = "audit.pem"', 'audit_key = "x.pem"')
    other = deployment.files.directory / "other.toml"
    other.write_text(text, encoding="utf-8")
    stray = GatewayProcess(other, free_port(), tmp_path / "stray.log").start(log_format="text")
    assert stray.process is not None
    assert stray.process.wait(60) != 0
    assert "Traceback" not in stray.log_text()
