"""Runner for the frame table on stdio: the server is a real subprocess (``python -m attacks.frame_server``,
:func:`mcps.bindings.serve_stdio`), shared by the cases; a case that could stop it gets a process of its own."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from .binding_harness import TIMEOUT, awaited_ids, check_answered, check_attack, liveness, parse_line
from .cases_bindings import FRAME_CASES, Frames
from .corpus import Case, case_params
from .pki import NOW

TESTS = Path(__file__).resolve().parent.parent


class StdioServer:
    """The frame server as a child process; lines it writes are read by a thread into a queue."""

    def __init__(self, log: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "MCPS_ATTACKS_NOW": str(NOW),
        }
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "attacks.frame_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self._lines.put(parse_line(line))
        self._lines.put(None)

    def send(self, raw: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(raw + b"\n")
        self.process.stdin.flush()

    def until_answered(self, *request_ids: str) -> list[dict[str, Any]]:
        """Every line the server writes until the answers to ``request_ids`` (fails if it stops or stays silent)."""
        seen, waiting = [], set(request_ids)
        while True:
            try:
                line = self._lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no answer to {sorted(waiting)} within {TIMEOUT} s; got {seen}")
            if line is None:
                pytest.fail(f"the server stopped (exit {self.process.wait()}); got {seen}")
            seen.append(line)
            if "method" not in line and line.get("id") in waiting:
                waiting.discard(line["id"])
                if not waiting:
                    return seen

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StdioServer]:
    server = StdioServer(tmp_path_factory.mktemp("stdio") / "server.log")
    yield server
    server.close()


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StdioServer]:
    case: Case[Frames] = request.node.callspec.params["case"]
    if "isolated" not in case.tags:
        yield request.getfixturevalue("shared_server")
        return
    own = StdioServer(tmp_path / "server.log")
    yield own
    own.close()


@pytest.mark.parametrize("case", case_params(FRAME_CASES, surface="stdio"))
def test_stdio_attack(case: Case[Frames], server: StdioServer) -> None:
    control = case.build(False)
    for raw in control.frames:
        server.send(raw)
    check_answered(server.until_answered(control.call_id), control.call_id)

    attack = case.build(True)
    live_id, live = liveness()
    *before, last = attack.frames
    for raw in before:
        server.send(raw)
        if attack.call_id:
            server.until_answered(attack.call_id)
    server.send(last)
    server.send(live)
    check_attack(case, "stdio", attack, server.until_answered(*awaited_ids(case, "stdio", attack, live_id)), live_id)
