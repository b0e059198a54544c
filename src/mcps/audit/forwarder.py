"""Forward audit entries to a syslog collector as RFC 5424 lines, resuming after a restart (SPEC.md A.9).

Transports: UDP (one message per datagram, RFC 5426) and TCP with octet-counting framing, ``MSG-LEN SP
SYSLOG-MSG`` (RFC 6587 §3.4.1), so a value can never end a frame early. TLS is not offered here.

The index of the next entry to send is kept in a small JSON state file, ``{"next": N}``, replaced atomically
(write a temporary file, fsync, rename, fsync the directory) after each chunk is handed to the transport. A restart
resumes from it: an orderly stop loses and duplicates nothing; a crash between sending a chunk and recording it
re-sends at most that chunk (at-least-once). An unreadable state file is refused rather than guessed, since
guessing either floods the collector with duplicates or silently skips entries.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, Protocol

from mcps.audit.entry import parse_entry
from mcps.audit.log import StoredEntry
from mcps.audit.siem import safe_syslog_name, syslog_line
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import parse_message
from mcps.stores.files import replace_atomically

__all__ = ["EntryReader", "SyslogForwarder", "frame", "read_state", "write_state"]

_CHUNK: Final = 500
_STATE_KEY: Final = "next"


class EntryReader(Protocol):
    """What the forwarder reads: stored entries with ``start <= index < end``, in order (``SqlAuditLog`` does)."""

    def read_entries(self, start: int, end: int) -> list[StoredEntry]: ...


def read_state(path: Path) -> int:
    """The index of the next entry to send: 0 when the state file does not exist yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return 0
    try:
        state = parse_message(raw)  # strictly: a nested or duplicated state file is unreadable, not a RecursionError
    except McpsError:
        state = None
    value = state.get(_STATE_KEY) if isinstance(state, dict) else None
    if type(value) is not int or value < 0:
        raise ValueError(f"forwarder state file {path} is unreadable; fix or remove it to choose where to resume")
    return value


def write_state(path: Path, next_index: int) -> None:
    """Replace the state file atomically: a reader sees the old or the new index, never a torn file."""
    replace_atomically(path, json.dumps({_STATE_KEY: next_index}).encode())


def frame(message: bytes, transport: Literal["udp", "tcp"]) -> bytes:
    """The bytes for one message: as is for UDP, ``MSG-LEN SP message`` for TCP (RFC 6587 §3.4.1)."""
    return message if transport == "udp" else str(len(message)).encode("ascii") + b" " + message


class SyslogForwarder:
    """Send every entry after the last one sent to ``host:port``; call :meth:`forward` whenever the log grew."""

    def __init__(
        self,
        log: EntryReader,
        *,
        host: str,
        port: int,
        transport: Literal["udp", "tcp"],
        state_path: Path,
        hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be 'udp' or 'tcp'")
        self._log = log
        self._address = (host, port)
        self._transport: Literal["udp", "tcp"] = transport
        self._state_path = state_path
        self._hostname = safe_syslog_name(hostname if hostname is not None else socket.gethostname())
        self._procid = str(os.getpid())
        self._timeout = timeout
        self._next = read_state(state_path)
        self._socket: socket.socket | None = None

    @property
    def next_index(self) -> int:
        """The index of the next entry to send."""
        return self._next

    def _connect(self) -> socket.socket:
        if self._socket is None:
            if self._transport == "tcp":
                self._socket = socket.create_connection(self._address, timeout=self._timeout)
            else:
                self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._socket.settimeout(self._timeout)
                self._socket.connect(self._address)
        return self._socket

    def _line(self, row: StoredEntry) -> bytes:
        try:
            entry = parse_entry(row.data)
        except ValueError as exc:
            raise McpsError(ErrorCode.AUDIT_INVALID, detail=f"entry {row.index} does not parse: {exc}") from exc
        return syslog_line(entry, hostname=self._hostname, procid=self._procid).encode("utf-8")

    def _send(self, rows: Sequence[StoredEntry]) -> None:
        sock = self._connect()
        try:
            for row in rows:
                sock.sendall(frame(self._line(row), self._transport))
        except OSError:
            self.close()  # a broken connection is reopened on the next call; the chunk is sent again whole
            raise

    def forward(self) -> int:
        """Send every entry from :attr:`next_index` on, recording progress after each chunk; return how many.

        Raises ``OSError`` when the collector cannot be reached (the state keeps the last chunk that went out).
        """
        sent = 0
        while True:
            rows = self._log.read_entries(self._next, self._next + _CHUNK)
            if not rows:
                return sent
            if [row.index for row in rows] != list(range(self._next, self._next + len(rows))):
                raise McpsError(ErrorCode.AUDIT_INVALID, detail=f"entries after {self._next} have a gap")
            self._send(rows)
            self._next += len(rows)
            write_state(self._state_path, self._next)
            sent += len(rows)

    def close(self) -> None:
        """Close the connection (the state file is already up to date)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
