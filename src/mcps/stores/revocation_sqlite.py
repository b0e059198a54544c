"""Revocations for processes on one machine: a :class:`~mcps.identity.revocation.RevocationStore` in one SQLite file.

Every process that verifies messages opens the same file and asks it on every message, so ``mcps revoke`` writing
to the file takes effect on the next message in all of them; there is no cache to invalidate. The file is opened
in WAL mode (readers never wait for the writer) with ``busy_timeout``; each lookup is one indexed ``SELECT``:

.. code-block:: sql

    SELECT 1 FROM revocations
    WHERE (scope, kind, value) IN (VALUES (?, ?, ?), ...) AND (until IS NULL OR until > :now) LIMIT 1

Every :class:`sqlite3.Error` becomes MCPS-030: a store that cannot answer refuses the message.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.revocation import RevocationKey

__all__ = ["SqliteRevocationStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS revocations (
    scope TEXT    NOT NULL,
    kind  TEXT    NOT NULL,
    value TEXT    NOT NULL,
    until INTEGER,
    PRIMARY KEY (scope, kind, value)
) WITHOUT ROWID;
"""
_REVOKE: Final = """
INSERT INTO revocations (scope, kind, value, until) VALUES (?, ?, ?, ?)
ON CONFLICT (scope, kind, value) DO UPDATE SET until =
    CASE WHEN revocations.until IS NULL OR excluded.until IS NULL THEN NULL
         ELSE max(revocations.until, excluded.until) END
"""


def _unavailable(detail: str) -> McpsError:
    return McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"sqlite revocation store: {detail}")


class SqliteRevocationStore:
    """Revocations in one SQLite file (created 0600 in a 0700 directory when missing)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> None:
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise ValueError("SqliteRevocationStore needs a file path; use MemoryRevocationStore for one process")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must not be negative")
        self.path = Path(text)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")  # a kill switch must survive a power loss
            self._db.executescript(_SCHEMA)
        except OSError as exc:
            raise _unavailable(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise _unavailable(f"cannot open {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise _unavailable("store is closed")
        return self._db

    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        with self._lock:
            try:
                self._connection().execute(_REVOKE, (key.scope, key.kind.value, key.value, until))
            except sqlite3.Error as exc:
                raise _unavailable(str(exc)) from exc

    async def is_revoked(self, keys: Collection[RevocationKey], *, now: float) -> bool:
        if not keys:
            return False
        rows = ", ".join(["(?, ?, ?)"] * len(keys))
        query = (
            f"SELECT 1 FROM revocations WHERE (scope, kind, value) IN (VALUES {rows}) "  # noqa: S608 - placeholders only
            "AND (until IS NULL OR until > ?) LIMIT 1"
        )
        parameters: list[object] = [part for key in keys for part in (key.scope, key.kind.value, key.value)]
        parameters.append(now)
        with self._lock:
            try:
                return self._connection().execute(query, parameters).fetchone() is not None
            except sqlite3.Error as exc:
                raise _unavailable(str(exc)) from exc

    async def aclose(self) -> None:
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()
