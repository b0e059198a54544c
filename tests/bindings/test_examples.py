"""The examples run on a fresh clone with no extra step: they make their own test keys where git ignores them.

Each test copies ``examples/`` without its ``keys/`` folder, as a fresh clone has it, and runs the agent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mcps import PrivateKey

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("keys", "__pycache__"))
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", **extra}


def test_signed_agent_calls_signed_server_on_a_fresh_clone(clone: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/signed_agent.py"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    keys = clone / "examples" / "keys"
    assert sorted(path.name for path in keys.glob("*.pem*")) == [
        "agent.pem",
        "agent.pem.pub.jwk",
        "server.pem",
        "server.pem.pub.jwk",
    ]
    assert (keys / "agent.pem").stat().st_mode & 0o077 == 0
    agent = PrivateKey.from_pem((keys / "agent.pem").read_bytes())
    assert done.stdout.strip() == f"noted for {agent.kid[:8]}…: ship it"


def test_example_keys_are_ignored_by_git() -> None:
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "examples/keys/" in lines


def test_the_same_example_over_streamable_http(clone: Path) -> None:
    """Issue 15.6: the notes server under uvicorn on 127.0.0.1, and its agent, started together as the README does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _env(MCPS_EXAMPLE_PORT=str(port))
    server = subprocess.Popen(
        [sys.executable, "examples/signed_http_server.py"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        done = subprocess.run(
            [sys.executable, "examples/signed_http_agent.py"],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert done.returncode == 0, done.stderr
    agent = PrivateKey.from_pem((clone / "examples" / "keys" / "agent.pem").read_bytes())
    assert done.stdout.strip() == f"noted for {agent.kid[:8]}…: ship it over HTTP"
    assert f"http://127.0.0.1:{port}/mcp" in out


def test_http_agent_without_a_server_says_so(clone: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = "import signed_http_agent as agent\nagent.wait_for_server(timeout=0.3)\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=clone / "examples",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(MCPS_EXAMPLE_PORT=str(port)),
    )
    assert done.returncode == 1
    assert f"no server listening on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
