"""Syslog forwarder: UDP datagrams and RFC 6587 octet-counted TCP to local receivers; a restart resumes from the
state file with nothing lost or duplicated; failures and unreadable state never advance or guess."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcps.audit.entry import AuditEvent, build_entry
from mcps.audit.forwarder import SyslogForwarder, frame, read_state, write_state
from mcps.audit.log import StoredEntry
from mcps.core.errors import McpsError


class ListLog:
    """An in-memory entry reader standing in for a SQL log."""

    def __init__(self) -> None:
        self.rows: list[StoredEntry] = []

    def add(self, count: int, tool: str = "read_file") -> None:
        for _ in range(count):
            index = len(self.rows)
            data = build_entry(AuditEvent(event="call", tool=tool), index=index, prev=None, time_ms=1000 + index)
            self.rows.append(StoredEntry(index, b"\0" * 32, data))

    def read_entries(self, start: int, end: int) -> list[StoredEntry]:
        return [row for row in self.rows if start <= row.index < end]


def _indexes(messages: list[bytes]) -> list[int]:
    found = []
    for message in messages:
        match = re.search(rb'\[mcps@32473 index="([0-9]+)"', message)
        assert match is not None, message
        found.append(int(match.group(1)))
    return found


def _octet_counted(stream: bytes) -> list[bytes]:
    """Split an RFC 6587 §3.4.1 stream into messages; fails on anything but ``MSG-LEN SP MSG`` frames."""
    messages = []
    while stream:
        length, _, rest = stream.partition(b" ")
        assert length.isdigit(), stream[:20]
        messages.append(rest[: int(length)])
        stream = rest[int(length) :]
    return messages


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _drain_udp(sock: socket.socket) -> list[bytes]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(65535))
        except BlockingIOError:
            return messages


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.settimeout(10)
    yield sock
    sock.close()


def _read_connection(listener: socket.socket) -> bytes:
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_udp_restart_loses_and_duplicates_nothing(udp_receiver: socket.socket, tmp_path: Path) -> None:
    log, state = ListLog(), tmp_path / "fwd.state"
    port = udp_receiver.getsockname()[1]
    log.add(5)
    first = SyslogForwarder(log, host="127.0.0.1", port=port, transport="udp", state_path=state, hostname="h")
    assert first.forward() == 5
    first.close()
    assert read_state(state) == 5
    log.add(4)
    second = SyslogForwarder(log, host="127.0.0.1", port=port, transport="udp", state_path=state, hostname="h")
    assert second.next_index == 5
    assert second.forward() == 4
    assert second.forward() == 0
    second.close()
    messages = _drain_udp(udp_receiver)
    assert _indexes(messages) == list(range(9))
    assert messages[0].startswith(b"<110>1 1970-01-01T00:00:01.000Z h mcps ")


def test_tcp_octet_counting_and_restart(tcp_listener: socket.socket, tmp_path: Path) -> None:
    log, state = ListLog(), tmp_path / "fwd.state"
    port = tcp_listener.getsockname()[1]
    log.add(3, tool="evil\n12 <13>1 forged")
    for _round in range(2):
        fwd = SyslogForwarder(log, host="127.0.0.1", port=port, transport="tcp", state_path=state)
        fwd.forward()
        fwd.close()
        log.add(600)  # more than one chunk
    fwd = SyslogForwarder(log, host="127.0.0.1", port=port, transport="tcp", state_path=state)
    fwd.forward()
    fwd.close()
    streams = [_read_connection(tcp_listener) for _ in range(3)]
    messages = [m for stream in streams for m in _octet_counted(stream)]
    assert _indexes(messages) == list(range(1203))
    assert b"forged" in messages[0]
    assert b"\n" not in b"".join(messages)


def test_failed_send_does_not_advance_the_state(tmp_path: Path) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    log, state = ListLog(), tmp_path / "fwd.state"
    log.add(2)
    write_state(state, 1)
    fwd = SyslogForwarder(log, host="127.0.0.1", port=port, transport="tcp", state_path=state)
    with pytest.raises(OSError):
        fwd.forward()
    assert fwd.next_index == 1
    assert read_state(state) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"next": -1}',
        b'{"next": "3"}',
        b'{"next": true}',
        b'{"next": 1, "next": 9}',
        b"[" * 100_000 + b"]" * 100_000,  # refused, not a RecursionError
    ],
)
def test_unreadable_state_is_refused_not_guessed(tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "fwd.state"
    state.write_bytes(content)
    with pytest.raises(ValueError, match="unreadable"):
        SyslogForwarder(ListLog(), host="127.0.0.1", port=9, transport="udp", state_path=state)


def test_state_write_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    state = tmp_path / "fwd.state"
    assert read_state(state) == 0
    write_state(state, 41)
    write_state(state, 42)
    assert read_state(state) == 42
    assert [p.name for p in tmp_path.iterdir()] == ["fwd.state"]


def test_gap_and_corrupt_rows_are_refused(udp_receiver: socket.socket, tmp_path: Path) -> None:
    port = udp_receiver.getsockname()[1]
    log = ListLog()
    log.add(3)
    del log.rows[1]
    fwd = SyslogForwarder(log, host="127.0.0.1", port=port, transport="udp", state_path=tmp_path / "a")
    with pytest.raises(McpsError, match="MCPS-033"):
        fwd.forward()
    log = ListLog()
    log.rows.append(StoredEntry(0, b"", b"[1]"))
    fwd = SyslogForwarder(log, host="127.0.0.1", port=port, transport="udp", state_path=tmp_path / "b")
    with pytest.raises(McpsError, match="MCPS-033"):
        fwd.forward()
    fwd.close()
    assert fwd.next_index == 0


def test_frame() -> None:
    assert frame(b"<13>1 - - - - - - x", "tcp") == b"19 <13>1 - - - - - - x"
    assert frame(b"abc", "udp") == b"abc"
    with pytest.raises(ValueError, match="transport"):
        SyslogForwarder(ListLog(), host="h", port=1, transport="tls", state_path=Path("s"))  # type: ignore[arg-type]
