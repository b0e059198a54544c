"""The gateway's commands as an operator uses them: init writes a working starter, check-config finds what is
wrong, pin records and checks the upstreams' tools, and ``mcps call`` goes through a running gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
from tests.bindings.http_harness import serving

from mcps.gateway.config import load_config
from mcps.gateway.runtime import Gateway

PAYMENTS = Path(__file__).resolve().parents[2] / "examples" / "gateway" / "payments_server.py"


def mcps(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcps", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )  # fmt: skip


def _init(tmp_path: Path) -> Path:
    done = mcps("gateway", "init", "--upstream-command", f"{sys.executable} {PAYMENTS}", "--dir", "gw", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tools"] == ["get_balance", "read_file", "transfer_funds"]
    return tmp_path / "gw"


def test_init_writes_a_starter_that_check_config_accepts(tmp_path: Path) -> None:
    directory = _init(tmp_path)
    checked = mcps("gateway", "check-config", "gw/gateway.toml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["problems"] == []
    assert (directory / "gateway.pem").stat().st_mode & 0o077 == 0
    again = mcps("gateway", "init", "--upstream-command", "python x.py", "--dir", "gw", cwd=tmp_path)
    assert again.returncode == 2  # never overwrites a configuration
    assert "Traceback" not in again.stderr


def test_check_config_names_the_file_and_line_of_each_problem(tmp_path: Path) -> None:
    directory = _init(tmp_path)
    config = (directory / "gateway.toml").read_text(encoding="utf-8")
    (directory / "gateway.toml").write_text(config.replace('trust = "unsigned"', 'trust = "maybe"'), encoding="utf-8")
    bad = mcps("gateway", "check-config", "gw/gateway.toml", cwd=tmp_path)
    assert bad.returncode == 2
    assert "gateway.toml:" in bad.stderr
    assert "upstreams.main.trust" in bad.stderr
    (directory / "gateway.toml").write_text(config, encoding="utf-8")
    (directory / "policy.toml").write_text("mcps_policy = 1\n[servers.main]\nmin_level = 9\n", encoding="utf-8")
    (directory / "mcps.lock").unlink()
    missing = mcps("gateway", "check-config", "gw/gateway.toml", cwd=tmp_path)
    assert missing.returncode == 1
    problems = json.loads(missing.stdout)["problems"]
    assert any("policy.toml" in problem and "min_level" in problem for problem in problems)
    assert any("mcps.lock" in problem and "gateway pin" in problem for problem in problems)


def test_pin_check_finds_a_changed_tool(tmp_path: Path) -> None:
    directory = _init(tmp_path)
    clean = mcps("gateway", "pin", "--config", "gw/gateway.toml", "--check", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    flag = tmp_path / "pulled"
    flag.touch()
    config = (directory / "gateway.toml").read_text(encoding="utf-8")
    config += f'env = {{ PAYMENTS_RUG_PULL = "{flag}" }}\n'
    (directory / "gateway.toml").write_text(config, encoding="utf-8")
    changed = mcps("gateway", "pin", "--config", "gw/gateway.toml", "--check", cwd=tmp_path)
    assert changed.returncode == 1
    assert "main: changed: read_file" in changed.stderr


async def test_mcps_call_goes_through_a_running_gateway(tmp_path: Path) -> None:
    directory = _init(tmp_path)
    gateway = await Gateway.open(load_config(directory / "gateway.toml"))
    try:
        async with serving(gateway.front) as url:
            common = ["--key", "agent.pem", "--passport", "agent.passport", "--gateway-key", "gateway.pem.pub.jwk"]
            done = await anyio.to_thread.run_sync(
                lambda: mcps("call", f"{url}/mcp/main", "get_balance", *common, cwd=directory)
            )
            assert done.returncode == 0, done.stderr
            assert "balance" in json.loads(done.stdout)["content"][0]["text"]
            refused = await anyio.to_thread.run_sync(
                lambda: mcps("call", f"{url}/mcp/main", "no_such_tool", *common, cwd=directory)
            )
            assert refused.returncode == 1
            assert refused.stderr.strip().splitlines()[-1].startswith("MCPS-008")
    finally:
        await gateway.aclose()
