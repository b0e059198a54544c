"""Gateways as real processes (``mcps gateway run``) for the replica, signal and operations tests.

:func:`write_replicated` writes a gateway directory (the harness's payments gateway) whose state is shared through
Redis and PostgreSQL under a random prefix and schema, with extra TEST agents; :class:`GatewayProcess` runs one
``mcps gateway run`` on a free port with its log in a file, and stops it with a signal.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from tests.gateway.harness import PAYMENTS_ID, Agent, GatewayFiles, write_gateway

from mcps.core.envelope import sign_message
from mcps.core.keys import Algorithm, PrivateKey, jwks, save_private_key
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import attach_passport

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def add_agents(files: GatewayFiles, names: dict[str, tuple[int, list[str]]]) -> dict[str, Agent]:
    """More TEST agents, from a second TEST issuer added to the gateway's anchors: name → (level, scopes)."""
    issuer = PrivateKey.generate(Algorithm.EDDSA)
    anchors_path = files.directory / "anchors.jwks"
    anchors = json.loads(anchors_path.read_text(encoding="utf-8"))
    extra = jwks([issuer.public_key])["keys"][0]
    extra["mcps_max_tl"] = 3
    anchors["keys"].append(extra)
    anchors_path.write_text(json.dumps(anchors), encoding="utf-8")
    agents = {}
    for name, (level, scopes) in names.items():
        key = PrivateKey.generate(Algorithm.EDDSA)
        passport = issue_passport(
            issuer, iss="urn:test:issuer-2", sub=f"agent-{name}", agent_key=key.public_key, level=level,
            scopes=scopes, now=time.time(),
        )  # fmt: skip
        agents[name] = Agent(key, passport, f"agent-{name}")
    return agents


def set_gateway_settings(files: GatewayFiles, settings: dict[str, Any]) -> None:
    """Add settings to the ``[gateway]`` table of ``gateway.toml``."""
    text = files.config.read_text(encoding="utf-8")
    lines = "".join(f"{name} = {json.dumps(value)}\n" for name, value in settings.items())
    files.config.write_text(text.replace("[gateway]\n", "[gateway]\n" + lines, 1), encoding="utf-8")


def share_state(files: GatewayFiles, *, redis_url: str, postgres_dsn: str, tag: str) -> PrivateKey:
    """Point the gateway at Redis and PostgreSQL under ``tag`` (a random prefix and schema); returns the TEST audit
    log key every replica loads."""
    audit_key = PrivateKey.generate(Algorithm.EDDSA)
    save_private_key(audit_key, files.directory / "audit.pem")
    set_gateway_settings(
        files,
        {
            "redis_url": redis_url,
            "redis_prefix": f"{tag}:",
            "postgres_url": postgres_dsn,
            "postgres_schema": tag,
            "audit_key": "audit.pem",
        },
    )
    return audit_key


def mcps_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcps", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip


@dataclass
class GatewayProcess:
    """One ``mcps gateway run`` process."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, log_format: str = "json") -> GatewayProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcps", "gateway", "run", "--config", str(self.config), "--port", str(self.port),
             "--log-format", log_format],
            stdout=handle, stderr=handle, env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        handle.close()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"gateway exited {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx2.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gateway not ready in {timeout} s:\n{self.log_text()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records


def modern_call(
    agent: Agent,
    *,
    tool: str = "get_balance",
    arguments: dict[str, Any] | None = None,
    request_id: int = 1,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """A signed 2026-07-28 ``tools/call`` for the payments upstream."""
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    if traceparent is not None:
        meta["traceparent"] = traceparent
    call = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}, "_meta": meta},
    }
    return sign_message(attach_passport(call, agent.passport), agent.key, audience=PAYMENTS_ID, now=time.time())


def headers_for(message: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": message["method"],
        "mcp-name": message["params"]["name"],
        **extra,
    }


async def post(http: httpx2.AsyncClient, url: str, message: dict[str, Any], **extra: str) -> httpx2.Response:
    return await http.post(
        f"{url}/mcp/payments", content=json.dumps(message), headers=headers_for(message, **extra), timeout=60
    )


def outcome(response: httpx2.Response) -> str:
    """``ok`` for a tool result, else the MCPS code of the refusal."""
    body = response.text
    if not body.startswith("{"):
        data = [line[5:] for line in body.splitlines() if line.startswith("data:") and line[5:].strip()]
        body = data[-1] if data else "{}"
    message = json.loads(body)
    if "result" in message:
        return "ok"
    return str(message["error"].get("data", {}).get("mcps_code", message["error"].get("code")))


def write_replicated(directory: Path, upstream_url: str) -> GatewayFiles:
    """The harness's payments gateway in front of ``upstream_url``."""
    return write_gateway(directory, admit_unsigned=False, upstream_url=upstream_url)
