"""The deployment files: the compose file parses and runs two replicas from the Dockerfile with Redis, PostgreSQL
and a load balancer that reaches both; the replicas' gateway.toml is valid; the image runs as a non-root user.

Docker cannot run on the machine the tests run on (no daemon), so the images are not built here: these tests check
what can be checked without one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mcps.gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_runs_two_replicas_with_redis_postgres_and_a_load_balancer() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "postgres", "gateway-a", "gateway-b", "lb"}
    for name in ("gateway-a", "gateway-b"):
        replica = services[name]
        assert replica["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (DEPLOY / replica["build"]["context"] / replica["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
        assert set(replica["depends_on"]) == {"redis", "postgres"}
        assert replica["volumes"][0].startswith("./gw:/etc/mcps:ro")
        assert replica["stop_signal"] == "SIGTERM"
        grace = int(replica["stop_grace_period"].rstrip("s"))
        assert grace > load_config(DEPLOY / "gateway.toml").shutdown_timeout
    assert "--appendonly" in services["redis"]["command"]  # revocations and nonces survive a restart
    balancer = services["lb"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    assert balancer["ports"] == ["127.0.0.1:8787:8787"]


def test_the_load_balancer_reaches_both_replicas_checks_readiness_and_keeps_sessions() -> None:
    text = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+):(\d+)", text, re.MULTILINE)
    assert {(host, int(port)) for _, host, port in servers} == {("gateway-a", 8787), ("gateway-b", 8787)}
    assert "uri /readyz" in text
    assert "stick store-response res.hdr(mcp-session-id)" in text
    assert "stick on req.hdr(mcp-session-id)" in text


def test_the_replicas_configuration_shares_state_and_is_valid() -> None:
    config = load_config(DEPLOY / "gateway.toml")
    assert config.redis_url == "redis://redis:6379/0"
    assert config.postgres_url is not None
    assert config.postgres_url.startswith("postgresql://")
    assert config.audit_key == DEPLOY / "audit.pem"
    assert (config.host, config.port) == ("0.0.0.0", 8787)  # noqa: S104 - inside a container
    assert {"localhost", "gateway-a", "gateway-b"} <= set(config.allowed_hosts)
    upstream = config.upstreams["main"]
    assert upstream.command == ("python", "/opt/mcps/examples/payments_server.py")


def test_the_image_is_slim_non_root_and_has_the_gateway_and_postgres_extras() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert bases
    assert all(re.fullmatch(r"python:3\.1[1-9]-slim", base) for base in bases)
    assert "[gateway,postgres]" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user == ["10001:10001"]
    assert "COPY examples/gateway/payments_server.py /opt/mcps/examples/payments_server.py" in text
    assert (ROOT / "examples" / "gateway" / "payments_server.py").exists()
    assert 'ENTRYPOINT ["mcps", "gateway", "run", "--log-format", "json"]' in text
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored
    assert ".git" in ignored
