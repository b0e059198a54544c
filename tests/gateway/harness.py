"""A gateway for tests: TEST keys, passports, a policy, the example payments server behind it, served on uvicorn.

:func:`write_gateway` writes a complete gateway directory (as an operator would: keys, anchors, passports, a
policy with levels, scopes, a spend cap and sanctions screening, a sanctions list, ``gateway.toml``) for the plain
SDK payments server of ``examples/gateway``; :func:`running_gateway` pins the upstream's tools, opens the gateway
and serves it on 127.0.0.1, yielding its base URL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.bindings.http_harness import serving

from mcps.core.keys import Algorithm, PrivateKey, jwks, save_private_key
from mcps.gateway.config import load_config
from mcps.gateway.runtime import Gateway
from mcps.gateway.setup import pin_upstreams
from mcps.identity.passports import issue_passport

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "gateway"
GATEWAY_ID = "urn:mcps:gateway:test"
PAYMENTS_ID = "urn:example:payments"

POLICY = """\
mcps_policy = 1

[servers.payments]
default = "deny"
min_level = 0

[[servers.payments.tools]]
match = "get_balance"
min_level = 0

[[servers.payments.tools]]
match = "transfer_funds"
min_level = 2
scopes_all = ["payments:write"]
spend.amount_arg = "amount"
spend.currency_arg = "currency"
spend.currency = "USD"
spend.per_level."2" = { per_call = 100, per_day = 500 }
spend.per_level."3" = { per_call = 10000, per_day = 100000 }
hooks = [{ hook = "mcps.policy.sanctions:SanctionsScreen", args = ["counterparty"], list = "sdn.csv", threshold = 90 }]

[[servers.payments.tools]]
match = "read_file"
min_level = 1
scopes_all = ["files:read"]
"""

SDN = """36,"AEROCARIBBEAN AIRLINES",-0-,"CUBA",-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-
2674,"EVIL CORP HOLDINGS LTD",-0-,"SDGT",-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-
"""


@dataclass(frozen=True)
class Agent:
    """A TEST agent: its key, passport and identity."""

    key: PrivateKey
    passport: str
    identity: str


@dataclass(frozen=True)
class GatewayFiles:
    directory: Path
    config: Path
    gateway_key: PrivateKey
    agents: dict[str, Agent]
    rug_pull_flag: Path


def write_gateway(directory: Path, *, admit_unsigned: bool = True, upstream_url: str | None = None) -> GatewayFiles:
    """A complete gateway configuration in ``directory`` (TEST keys only)."""
    gateway_key, issuer = PrivateKey.generate(Algorithm.EDDSA), PrivateKey.generate(Algorithm.ES256)
    save_private_key(gateway_key, directory / "gateway.pem")
    anchors = jwks([issuer.public_key])
    anchors["keys"][0]["mcps_max_tl"] = 3
    (directory / "anchors.jwks").write_text(json.dumps(anchors), encoding="utf-8")
    now = time.time()
    agents = {}
    for name, level, scopes in (
        ("payer", 2, ["payments:write", "files:read"]),
        ("reader", 1, ["files:read"]),
        ("nobody", 2, []),
    ):
        key = PrivateKey.generate(Algorithm.EDDSA)
        passport = issue_passport(
            issuer,
            iss="urn:test:issuer",
            sub=f"agent-{name}",
            agent_key=key.public_key,
            level=level,
            scopes=scopes,
            now=now,
        )
        agents[name] = Agent(key, passport, f"agent-{name}")
    (directory / "policy.toml").write_text(POLICY, encoding="utf-8")
    (directory / "sdn.csv").write_text(SDN, encoding="utf-8")
    data = directory / "data"
    data.mkdir(exist_ok=True)
    (data / "hello.txt").write_text("hello from the payments server\n", encoding="utf-8")
    flag = directory / "rug-pull"
    command = [sys.executable, str(EXAMPLES / "payments_server.py")]
    config = f"""\
[gateway]
identity = "{GATEWAY_ID}"
key = "gateway.pem"
listen = "127.0.0.1:0"
state_dir = "state"
policy = "policy.toml"
admit_unsigned = {"true" if admit_unsigned else "false"}

[agents]
anchors = ["anchors.jwks"]

[upstreams.payments]
identity = "{PAYMENTS_ID}"
trust = "unsigned"
timeout = 20
"""
    if upstream_url is None:
        config += f"""command = {json.dumps(command)}
env = {{ PAYMENTS_DATA = "{data}", PAYMENTS_RUG_PULL = "{flag}" }}
"""
    else:
        config += f'url = "{upstream_url}"\n'
    path = directory / "gateway.toml"
    path.write_text(config, encoding="utf-8")
    return GatewayFiles(directory, path, gateway_key, agents, flag)


@asynccontextmanager
async def running_gateway(files: GatewayFiles) -> AsyncIterator[tuple[str, Gateway]]:
    """Pin the upstream's tools, open the gateway and serve it; yields (base URL, gateway)."""
    config = load_config(files.config)
    await pin_upstreams(config, sorted(config.upstreams), False)
    gateway = await Gateway.open(config)
    try:
        async with serving(gateway.front) as url:
            yield url, gateway
    finally:
        await gateway.aclose()


@contextmanager
def payments_over_http(directory: Path) -> Iterator[str]:
    """The payments server over Streamable HTTP on 127.0.0.1 (a subprocess); yields its MCP URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = directory / "data"
    data.mkdir(exist_ok=True)
    env = {**os.environ, "PAYMENTS_DATA": str(data)}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "payments_server.py"), "--http", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        _stop(process)


LEDGER_ID = "urn:example:ledger"


@contextmanager
def signed_ledger(files: GatewayFiles) -> Iterator[tuple[str, PrivateKey]]:
    """The payments server with mcps in it (examples/gateway/signed_payments_server.py) on 127.0.0.1, added to the
    gateway's configuration and policy as the signed upstream ``ledger``; yields (its URL, its TEST key)."""
    directory = files.directory
    key = PrivateKey.generate(Algorithm.EDDSA)
    save_private_key(key, directory / "ledger.pem")
    (directory / "ledger.pub.jwk").write_text(json.dumps(key.public_key.to_jwk()), encoding="utf-8")
    (directory / "gateway.pub.jwk").write_text(json.dumps(files.gateway_key.public_key.to_jwk()), encoding="utf-8")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        str(EXAMPLES / "signed_payments_server.py"),
        "--port", str(port),
        "--key", str(directory / "ledger.pem"),
        "--identity", LEDGER_ID,
        "--anchors", str(directory / "anchors.jwks"),
        "--gateway-key", str(directory / "gateway.pub.jwk"),
    ]  # fmt: skip
    env = {**os.environ, "PAYMENTS_DATA": str(directory / "data")}
    process = subprocess.Popen(command, env=env, cwd=EXAMPLES, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    with files.config.open("a", encoding="utf-8") as config:
        config.write(
            f'\n[upstreams.ledger]\nidentity = "{LEDGER_ID}"\nurl = "{url}"\nkey = "ledger.pub.jwk"\ntimeout = 20\n'
        )
    policy = (directory / "policy.toml").read_text(encoding="utf-8")
    ledger_rules = policy[policy.index("[servers.payments]") :].replace("servers.payments", "servers.ledger")
    (directory / "policy.toml").write_text(policy + "\n" + ledger_rules, encoding="utf-8")
    try:
        _wait_for_port(port, process)
        yield url, key
    finally:
        _stop(process)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
