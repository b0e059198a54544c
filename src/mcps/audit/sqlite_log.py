"""The embedded audit log: one SQLite file, WAL, ``synchronous=FULL``, group commit.

* Durability: the file is in WAL mode with ``synchronous=FULL``, so a commit is fsynced before ``append``
  returns; an acknowledged entry survives a crash of the process (SIGKILL) and of the machine.
* One fsync and one signed checkpoint per batch (:class:`~mcps.audit.log.GroupCommitter`).
* Several processes may append to one file: each batch runs in ``BEGIN IMMEDIATE``, which takes SQLite's write
  lock, and re-reads the latest checkpoint inside it, so no two batches extend the same tree head.
* The signing key is ``<file>.key`` (PKCS#8 PEM, created with mode 0600 when missing, refused when others may
  read it) unless a key is passed. The directory is created 0700 and the database 0600.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mcps.audit.log import DEFAULT_MAX_BATCH, load_or_create_log_key
from mcps.audit.sql import SqlAuditLog, unavailable
from mcps.core.keys import PrivateKey

__all__ = ["SqliteAuditLog", "default_key_path"]

BUSY_TIMEOUT_MS: Final = 10_000
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, frontier BLOB NOT NULL);
"""


def default_key_path(path: str | os.PathLike[str]) -> Path:
    """Where the log key of the database at ``path`` lives when none is given: ``<path>.key``."""
    return Path(os.fspath(path) + ".key")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


class SqliteAuditLog(SqlAuditLog):
    """An :class:`~mcps.audit.log.AuditLog` in one SQLite file.

    ``read_only=True`` opens an existing log without its signing key (for verification, proofs, export):
    the public key and origin then come from the log's own metadata, and ``append`` is refused.
    """

    placeholder = "?"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: PrivateKey | None = None,
        origin: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise ValueError("SqliteAuditLog needs a file path")
        self.path = Path(text)
        if read_only:
            if key is not None:
                raise ValueError("a read-only log takes no signing key")
            if not self.path.is_file():
                raise unavailable(f"no audit log at {self.path}")
        elif key is None:
            key = load_or_create_log_key(default_key_path(self.path))
        try:
            _create_private_file(self.path)
            writer = _connect(self.path)
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA synchronous = FULL")
            writer.executescript(_SCHEMA)
            reader = _connect(self.path)
            reader.execute("PRAGMA query_only = ON")
        except OSError as exc:
            raise unavailable(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise unavailable(f"cannot open {self.path}: {exc}") from exc
        super().__init__(
            writer=writer,
            reader=reader,
            prefix="audit_",
            key=key,
            origin=origin,
            max_batch=max_batch,
            max_delay=max_delay,
            clock=clock,
        )
        try:
            self._initialise()
        except sqlite3.Error as exc:
            raise unavailable(f"cannot initialise {self.path}: {exc}") from exc

    def _begin(self) -> None:
        self._writer.execute("BEGIN IMMEDIATE")  # takes the write lock now: this is the append lock

    def _lock_for_append(self) -> None:
        """``BEGIN IMMEDIATE`` already holds SQLite's single write lock."""


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
