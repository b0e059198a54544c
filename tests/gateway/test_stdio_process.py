"""The stdio child process: frames read with the size bound, unreadable responses attributed (and only to the
right request), stderr logged bounded, termination without zombies, restart backoff."""

from __future__ import annotations

import json
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcps.gateway.stdio_process import (
    ChildProcess,
    Frame,
    Message,
    RestartPolicy,
    StdioCommand,
    Unreadable,
    UpstreamUnavailable,
    encode_line,
    response_id,
)

from .stdio_harness import TIMEOUT, FakeClock, process_gone

SAFE = 2**53 - 1
ids = st.one_of(st.integers(-SAFE, SAFE), st.text(max_size=40))
values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "a", "jsonrpc"]), inner),
    max_leaves=20,
)
FOUND = [("jsonrpc", "id", "result"), ("id", "jsonrpc", "result"), ("id", "result"), ("result", "jsonrpc", "id")]
ANY_ORDER = [*FOUND, ("jsonrpc", "result", "id"), ("result", "id", "jsonrpc"), ("result", "id")]


def line_of(members: dict[str, Any], order: tuple[str, ...], ascii_only: bool) -> bytes:
    parts = [json.dumps(key) + ":" + json.dumps(members[key], ensure_ascii=ascii_only) for key in order]
    return ("{" + ",".join(parts) + "}").encode()


@given(ids, values, st.sampled_from(FOUND), st.integers(0, 3000), st.booleans())
def test_response_id_is_found_when_it_is_first_or_last(
    request_id: Any, payload: Any, order: tuple[str, ...], padding: int, ascii_only: bool
) -> None:
    members = {"jsonrpc": "2.0", "id": request_id, "result": {"payload": payload, "pad": "x" * padding}}
    raw = line_of(members, order, ascii_only)
    assert response_id(raw[:1024], raw[-1024:]) == (True, request_id)


@given(ids, values, st.sampled_from(ANY_ORDER), st.integers(0, 3000), st.booleans())
def test_response_id_is_never_another_requests_id(
    request_id: Any, payload: Any, order: tuple[str, ...], padding: int, ascii_only: bool
) -> None:
    """Whatever the payload (it may hold ``"id"`` members of its own), the id found is the right one or none."""
    members = {"jsonrpc": "2.0", "id": request_id, "result": [payload, "x" * padding, payload]}
    raw = line_of(members, order, ascii_only)
    assert response_id(raw[:1024], raw[-1024:]) in ((True, request_id), (True, None))


@given(ids, values)
def test_requests_and_notifications_are_never_taken_for_responses(request_id: Any, payload: Any) -> None:
    for message in (
        {"jsonrpc": "2.0", "id": request_id, "method": "sampling/createMessage", "params": {"p": payload}},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"p": payload}},
    ):
        raw = json.dumps(message).encode()
        assert response_id(raw[:1024], raw[-1024:]) == (False, None)


def test_restart_delays_double_after_the_first_crash_up_to_the_cap() -> None:
    policy = RestartPolicy(initial_delay=0.5, max_delay=3.0)
    assert [policy.delay(crashes) for crashes in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10_000) == 3.0
    with pytest.raises(ValueError, match="restart delays"):
        RestartPolicy(initial_delay=5.0, max_delay=1.0)


def test_encoded_lines_are_ascii_and_one_line() -> None:
    line = encode_line({"text": "é\u2028\n", "lone": "\ud800"})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"text": "é\u2028\n", "lone": "\ud800"}


def script(tmp_path: Path, body: str) -> StdioCommand:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return StdioCommand((sys.executable, str(path)))


async def run_child(command: StdioCommand, max_bytes: int = 1 << 20) -> tuple[ChildProcess, list[Frame]]:
    """Run ``command`` to its end; its frames."""
    frames: list[Frame] = []

    async def on_frame(frame: Frame) -> None:
        frames.append(frame)

    child = ChildProcess(command, name="test", max_bytes=max_bytes, kill_timeout=2.0, clock=FakeClock())
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tasks:
            await tasks.start(child.run, on_frame)
    return child, frames


async def test_frames_garbage_oversize_and_stderr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    command = script(
        tmp_path,
        r"""
        import sys
        out = sys.stdout.buffer
        out.write(b'{"jsonrpc":"2.0","id":1,"result":{}}\n')
        out.write(b'Starting...\n\xff\xfe garbage\n[1,2]\n\n')
        out.write(b'{"result":{"x":"' + b'x' * (3 << 20) + b'"},"jsonrpc":"2.0","id":7}\n')
        out.write(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"d":"' + b'y' * (2 << 20) + b'"}}\n')
        out.write(b'{"jsonrpc":"2.0","id":8,"result":{"a":1,"a":2}}\r\n')
        out.write(b'{"jsonrpc":"2.0","id":"s","result":{"n":1e400}}\n')
        out.write(b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}')
        out.flush()
        sys.stderr.write("warning: something\x1b[31m red\n" + "z" * 10000 + "\nlast line\n")
        """,
    )
    with caplog.at_level(logging.INFO, logger="mcps.gateway.stdio"):
        child, frames = await run_child(command)
    assert frames == [
        Message({"jsonrpc": "2.0", "id": 1, "result": {}}),
        Unreadable(7),
        Unreadable(8),
        Unreadable("s"),
    ]  # the last line has no newline: a frame is only complete at its end of line
    assert child.pid is not None
    assert process_gone(child.pid)
    stderr = [record.getMessage() for record in caplog.records if record.name == "mcps.gateway.stdio.stderr"]
    assert "\\x1b[31m red" in stderr[0]  # control characters are escaped in the log
    assert max(len(line) for line in stderr) < 1200  # a long line is cut
    assert stderr[-1].endswith("'last line'")


async def test_a_child_ignoring_eof_and_sigterm_is_killed_and_reaped(tmp_path: Path) -> None:
    command = script(
        tmp_path,
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stdout.write('{"jsonrpc":"2.0","method":"ready"}\\n')
        sys.stdout.flush()
        sys.stdin.close()
        time.sleep(300)
        """,
    )
    frames: list[Frame] = []
    ready = anyio.Event()

    async def on_frame(frame: Frame) -> None:
        frames.append(frame)
        ready.set()

    child = ChildProcess(command, name="stubborn", max_bytes=1024, kill_timeout=0.2, clock=FakeClock())
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tasks:
            pid = await tasks.start(child.run, on_frame)
            await ready.wait()
            child.stop()
        await child.exited.wait()
    assert process_gone(pid)
    assert child.deliberate


async def test_the_whole_process_group_is_signalled(tmp_path: Path) -> None:
    """A server that started helpers: SIGTERM goes to its process group, so they end with it."""
    announce = json.dumps({"jsonrpc": "2.0", "method": "pid", "params": {"pid": "PID"}}).replace('"PID"', "$!")
    escaped = announce.replace('"', '\\"')
    command = StdioCommand(("sh", "-c", f'sleep 300 & echo "{escaped}"; wait'))
    started = anyio.Event()
    frames: list[Frame] = []

    async def on_frame(frame: Frame) -> None:
        frames.append(frame)
        started.set()

    child = ChildProcess(command, name="tree", max_bytes=1024, kill_timeout=0.2, clock=FakeClock())
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tasks:
            await tasks.start(child.run, on_frame)
            await started.wait()
            child.stop()
    first = frames[0]
    assert isinstance(first, Message)
    helper = first.value["params"]["pid"]
    with anyio.fail_after(TIMEOUT):
        while not dead(helper):  # noqa: ASYNC110 - reaped by init, not by us: nothing to wait on
            await anyio.sleep(0.02)


def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for its (other) parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


async def test_a_command_that_cannot_start_raises_oserror() -> None:
    child = ChildProcess(
        StdioCommand(("/nonexistent/server",)), name="x", max_bytes=1024, kill_timeout=1, clock=FakeClock()
    )

    async def on_frame(_frame: Frame) -> None:
        raise AssertionError("no frame expected")

    async with anyio.create_task_group() as tasks:
        with pytest.raises(OSError, match="No such file"):
            await tasks.start(child.run, on_frame)
    assert child.exited.is_set()


def test_environment_is_the_sdk_default_plus_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_SECRET", "x")
    environment = StdioCommand(("x",), {"EXTRA": "1"}).environment()
    assert environment["EXTRA"] == "1"
    assert "GATEWAY_TEST_SECRET" not in environment
    assert environment.get("PATH") == os.environ.get("PATH")
    with pytest.raises(ValueError, match="argv"):
        StdioCommand(())


async def test_a_child_that_stops_reading_is_ended_not_waited_for(tmp_path: Path) -> None:
    command = script(
        tmp_path,
        """
        import sys, time
        sys.stdout.write('{"jsonrpc":"2.0","method":"ready"}\\n')
        sys.stdout.flush()
        time.sleep(300)
        """,
    )
    ready = anyio.Event()

    async def on_frame(_frame: Frame) -> None:
        ready.set()

    child = ChildProcess(
        command, name="deaf", max_bytes=1 << 20, kill_timeout=0.2, clock=FakeClock(), write_timeout=0.5
    )
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tasks:
            pid = await tasks.start(child.run, on_frame)
            await ready.wait()
            with pytest.raises(UpstreamUnavailable, match="not responding"):  # noqa: PT012 - it fails on some send
                for index in range(1000):
                    await child.send({"jsonrpc": "2.0", "method": "fill", "params": {"i": index, "pad": "x" * 65536}})
        await child.exited.wait()
    assert process_gone(pid)
    assert not child.deliberate  # a hung child counts as a crash (restart backoff applies)
