"""``mcps pin`` as a new user meets it: wrong servers, hanging servers, closed ports, chatty servers (issue 9 §4).

Each case runs the real command as a process and checks that it ends with one line on stderr that says what
happened, a non-zero exit, and no traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mcps import PrivateKey
from mcps.cli.main import main
from mcps.core.keys import save_private_key

HERE = Path(__file__).parent
SERVER_IDENTITY = "urn:mcps:test:server"


class Pin:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.agent, self.server = PrivateKey.generate(), PrivateKey.generate()  # test keys, made per run
        save_private_key(self.agent, state / "agent.pem")
        save_private_key(self.server, state / "server.pem")
        (state / "agent.jwk").write_text(json.dumps(self.agent.public_key.to_jwk()))
        (state / "server.jwk").write_text(json.dumps(self.server.public_key.to_jwk()))
        self.env = {**os.environ, "MCPS_TEST_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "200"}

    def run(
        self, *where: str, identity: str = SERVER_IDENTITY, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "mcps", *extra, "pin", *where, "--server-identity", identity]
        argv += ["--key", str(self.state / "agent.pem"), "--server-key", str(self.state / "server.jwk")]
        argv += ["--out", str(self.state / "mcps.lock")]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=self.env, timeout=60)
        assert "Traceback" not in done.stdout + done.stderr
        return done

    def signed_server(self) -> str:
        return shlex.join([sys.executable, str(HERE / "signed_server.py")])


@pytest.fixture
def pin(tmp_path: Path) -> Pin:
    return Pin(tmp_path)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_pin_against_cat_says_not_an_mcp_server_not_mcps_011(pin: Pin) -> None:
    done = pin.run("--server", "cat")
    assert done.returncode == 2
    line = _one_line(done)
    assert "'cat' is not an MCP server" in line
    assert not line.startswith("MCPS-011")


def test_pin_against_a_process_that_exits_says_it_closed_without_answering(pin: Pin) -> None:
    done = pin.run("--server", shlex.join([sys.executable, "-c", "print('hello')"]))
    assert done.returncode == 2
    assert "closed the connection without answering initialize" in _one_line(done)


def test_pin_against_a_server_that_never_answers_times_out(pin: Pin) -> None:
    done = pin.run("--server", "sleep 100", "--timeout", "0.5")
    assert done.returncode == 2
    assert "no answer from 'sleep 100' within 0.5 s (--timeout)" in _one_line(done)


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "inf", "nan"])
def test_pin_timeout_must_be_a_positive_number(pin: Pin, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    argv = ["pin", "--server", "cat", "--server-identity", SERVER_IDENTITY, "--timeout", bad]
    argv += ["--key", str(pin.state / "agent.pem"), "--server-key", str(pin.state / "server.jwk")]
    assert main(argv) == 2
    assert "not a positive number of seconds" in capsys.readouterr().err


def test_pin_url_to_a_closed_port_is_one_line_not_an_exception_group(pin: Pin) -> None:
    with socket.socket() as probe:  # a port nobody listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    done = pin.run("--url", url)
    assert done.returncode == 2
    assert f"cannot reach {url}" in _one_line(done)


def test_server_log_lines_do_not_spill_onto_pins_stderr(pin: Pin) -> None:
    """The server refuses a request addressed to another identity and logs a WARNING on its own stderr."""
    done = pin.run("--server", pin.signed_server(), identity="urn:mcps:test:someone-else")
    assert done.returncode == 1
    line = _one_line(done)
    assert line.startswith("MCPS-011")
    assert "WARNING" not in done.stderr
    verbose = pin.run("--server", pin.signed_server(), identity="urn:mcps:test:someone-else", extra=("-v",))
    assert "WARNING" in verbose.stderr  # -v shows the server's stderr


def test_pin_still_pins_a_real_server(pin: Pin) -> None:
    done = pin.run("--server", pin.signed_server())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tools"] == ["rm_rf", "safe", "whoami"]
    assert "WARNING" not in done.stderr


def test_pin_with_a_private_key_as_server_key_hints_at_the_public_jwk(pin: Pin) -> None:
    argv = [sys.executable, "-m", "mcps", "pin", "--server", "cat", "--server-identity", SERVER_IDENTITY]
    argv += ["--key", str(pin.state / "agent.pem"), "--server-key", str(pin.state / "server.pem")]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=pin.env, timeout=60)
    assert done.returncode == 2
    assert "--server-key" in _one_line(done)
    assert "is a private key" in done.stderr
