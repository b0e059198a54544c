"""``mcps pin`` and ``mcps pin --check`` against real signed servers: a process over stdio (tool_server.py) and
an MCPServer on uvicorn over Streamable HTTP."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, load_lockfile, save_lockfile
from mcps.cli.main import main
from mcps.core.keys import save_private_key
from mcps.core.tools import Lockfile, ServerPins
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport

from .http_harness import serving, signed_app

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"
TOOLS = ["rm_rf", "rug_pull", "safe", "whoami"]


class Pin:
    def __init__(self, state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.state, self.monkeypatch, self.capsys = state, monkeypatch, capsys
        self.agent, self.server = PrivateKey.generate(), PrivateKey.generate()  # test keys, made per run
        save_private_key(self.agent, state / "agent.pem")
        save_private_key(self.server, state / "server.pem")
        (state / "agent.jwk").write_text(json.dumps(self.agent.public_key.to_jwk()))
        (state / "server.jwk").write_text(json.dumps(self.server.public_key.to_jwk()))
        self.lock = state / "mcps.lock"
        monkeypatch.setenv("MCPS_TEST_DIR", str(state))

    def run(self, *extra: str, server_key: str = "server.jwk", script: str = "tool_server.py") -> tuple[int, Any, str]:
        command = shlex.join([sys.executable, str(HERE / script)])
        code = main(
            [
                "pin",
                "--server",
                command,
                "--server-identity",
                SERVER_IDENTITY,
                "--key",
                str(self.state / "agent.pem"),
                "--server-key",
                str(self.state / server_key),
                "--out",
                str(self.lock),
                *extra,
            ]
        )
        out, err = self.capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err


@pytest.fixture
def pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Pin:
    return Pin(tmp_path, monkeypatch, capsys)


def test_pin_records_the_tools_then_check_passes(pin: Pin) -> None:
    code, out, err = pin.run()
    assert code == 0
    assert f"in a new lock file, {pin.lock}" in err  # it says that it created the lock file
    assert out == {"server": SERVER_IDENTITY, "kid": pin.server.kid, "tools": TOOLS}
    text = pin.lock.read_text(encoding="utf-8")
    assert [line.split('"')[1] for line in text.splitlines() if line.startswith("        ")] == TOOLS  # one per line
    entry = load_lockfile(pin.lock).server(SERVER_IDENTITY)
    assert entry is not None
    assert entry.kid == pin.server.kid
    code, out, _ = pin.run("--check")
    assert code == 0
    assert out["ok"] is True
    assert sorted(out["pinned"]) == TOOLS


def test_check_against_a_changed_server_exits_non_zero_naming_the_change(pin: Pin) -> None:
    assert pin.run()[0] == 0
    pin.monkeypatch.setenv("MCPS_TOOL_VARIANT", "changed")
    code, out, err = pin.run("--check")
    assert code == 1
    assert out["ok"] is False
    assert out["changed"] == ["safe"]
    assert "changed: safe" in err


def test_check_reports_new_and_removed_tools(pin: Pin) -> None:
    assert pin.run()[0] == 0
    lock = load_lockfile(pin.lock)
    entry = lock.server(SERVER_IDENTITY)
    assert entry is not None
    tools = {name: pin_ for name, pin_ in entry.tools.items() if name != "rm_rf"}
    tools["gone"] = entry.tools["rm_rf"]
    save_lockfile(lock.with_server(SERVER_IDENTITY, ServerPins(entry.kid, tools)), pin.lock)
    code, out, err = pin.run("--check")
    assert (code, out["new"], out["removed"], out["renamed"]) == (1, ["rm_rf"], ["gone"], [])
    assert "new: rm_rf" in err
    assert "removed: gone" in err


def test_check_without_pins_is_a_usage_error(pin: Pin) -> None:
    save_lockfile(Lockfile(), pin.lock)
    code, _, err = pin.run("--check")
    assert code == 2
    assert f"{pin.lock} has no pins for {SERVER_IDENTITY}; run mcps pin without --check first" in err


def test_check_against_a_missing_lock_file_is_a_usage_error_naming_it(pin: Pin) -> None:
    """Regression: a missing lock file was an empty one, so --check reported every tool as new."""
    code, out, err = pin.run("--check")
    assert (code, out) == (2, None)
    assert f"{pin.lock} does not exist; run mcps pin without --check first to create it" in err
    assert not pin.lock.exists()


def test_pin_into_an_existing_lock_file_does_not_call_it_new(pin: Pin) -> None:
    save_lockfile(Lockfile(), pin.lock)
    code, _, err = pin.run()
    assert code == 0
    assert "new lock file" not in err
    assert f"in {pin.lock}" in err


def test_pin_refuses_a_server_that_does_not_hold_the_pinned_key(pin: Pin) -> None:
    (pin.state / "other.jwk").write_text(json.dumps(PrivateKey.generate().public_key.to_jwk()))
    code, _, err = pin.run(server_key="other.jwk")
    assert code == 1
    assert "MCPS-029" in err
    assert not pin.lock.exists()


async def test_pin_and_check_over_streamable_http(pin: Pin) -> None:
    security = ChannelSecurity(
        key=pin.server,
        identity=SERVER_IDENTITY,
        trusted=PinnedKeys([pin.agent.public_key]),
        nonces=MemoryNonceStore(),
    )
    common = ["--server-identity", SERVER_IDENTITY, "--key", str(pin.state / "agent.pem")]
    common += ["--server-key", str(pin.state / "server.jwk"), "--out", str(pin.lock)]
    with anyio.fail_after(30):
        async with serving(signed_app(security, [], json_response=True)) as url:
            argv = ["pin", "--url", f"{url}/mcp", *common]
            assert await anyio.to_thread.run_sync(main, argv) == 0
            assert json.loads(pin.capsys.readouterr().out)["tools"] == ["rm_rf", "safe"]
            assert await anyio.to_thread.run_sync(main, [*argv, "--check"]) == 0
            assert json.loads(pin.capsys.readouterr().out)["ok"] is True


def test_pin_presents_the_agent_passport_to_a_server_that_trusts_passports(pin: Pin) -> None:
    """signed_server.py with MCPS_TEST_TRUST=passport trusts agents through anchors.jwks only."""
    anchor, gateway = PrivateKey.generate(), PrivateKey.generate()  # test keys, made per run
    anchors = TrustAnchors([TrustAnchor(anchor.public_key, TrustLevel.L3)])
    (pin.state / "anchors.jwks").write_text(json.dumps(anchors.to_jwks()))
    (pin.state / "gateway.jwk").write_text(json.dumps(gateway.public_key.to_jwk()))
    token = issue_passport(
        anchor, iss="urn:mcps:test:issuer", sub="agent-1", agent_key=pin.agent.public_key, level=2, now=time.time()
    )
    (pin.state / "agent.passport").write_text(token + "\n")
    pin.monkeypatch.setenv("MCPS_TEST_TRUST", "passport")
    code, _, err = pin.run(script="signed_server.py")
    assert code == 1
    assert "MCPS-029" in err  # no passport, and the server pins no agent key
    code, out, _ = pin.run("--passport", str(pin.state / "agent.passport"), script="signed_server.py")
    assert code == 0
    assert out["tools"] == ["rm_rf", "safe", "whoami"]
