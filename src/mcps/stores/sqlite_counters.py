"""Rate and spend counters for processes on one machine, in one SQLite file that survives restarts.

One row per counter: ``value`` (a bucket's tokens, or a window's sum), ``stamp`` (a bucket's last update) and
``expires_at`` (when a bucket is full again, or a window ends: the row can be forgotten from then on). A
``consume`` is one ``BEGIN IMMEDIATE`` transaction: read every counter, decide, write every counter or none,
commit — SQLite's write lock makes it atomic across the processes sharing the file.

Every :class:`sqlite3.Error` (and an unusable path) becomes MCPS-030: a store that cannot answer refuses the call.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.stores.counters import Charge, WindowSum, bucket_after, full_again_at, window_key
from mcps.stores.sqlite_nonces import DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_PURGE_EVERY, _create_private_file

__all__ = ["SqliteCounterStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS counters (
    key        TEXT NOT NULL PRIMARY KEY,
    value      REAL NOT NULL,
    stamp      REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_expires_at ON counters (expires_at);
"""
_READ: Final = "SELECT value, stamp, expires_at FROM counters WHERE key = ?"
_WRITE: Final = """
INSERT INTO counters (key, value, stamp, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, stamp = excluded.stamp, expires_at = excluded.expires_at
"""
_PURGE: Final = "DELETE FROM counters WHERE expires_at <= ?"


def _unavailable(detail: str) -> McpsError:
    return McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"sqlite counter store: {detail}")


class SqliteCounterStore:
    """A :class:`~mcps.stores.counters.CounterStore` in one SQLite file (WAL, ``busy_timeout``, mode 0600).

    Like :class:`~mcps.stores.sqlite_nonces.SqliteNonceStore`, each call is a short synchronous transaction run in
    the ``async`` method; a wait for another process's write lock longer than ``busy_timeout_ms`` is MCPS-030.
    Expired rows are purged once every ``purge_every`` committed consumes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        purge_every: int = DEFAULT_PURGE_EVERY,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        if purge_every < 1:
            raise ValueError("purge_every must be positive")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must not be negative")
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise ValueError("SqliteCounterStore needs a file path; use MemoryCounterStore for one process")
        self.path = Path(text)
        self._purge_every = purge_every
        self._since_purge = 0
        self._lock = threading.Lock()
        try:
            _create_private_file(self.path)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
        except OSError as exc:
            raise _unavailable(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise _unavailable(f"cannot open {self.path}: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            self._db = None
            raise _unavailable(f"cannot initialise {self.path}: {exc}") from exc

    async def consume(self, charges: Sequence[Charge], *, now: float, commit: bool = True) -> int | None:
        with self._lock:
            db = self._db
            if db is None:
                raise _unavailable("store is closed")
            try:
                db.execute("BEGIN IMMEDIATE" if commit else "BEGIN")
                try:
                    refused, updates = _decide(db, charges, now)
                    if refused is None and commit:
                        db.executemany(_WRITE, [(key, *row) for key, row in updates.items()])
                        self._since_purge += 1
                        if self._since_purge >= self._purge_every:
                            self._since_purge = 0
                            db.execute(_PURGE, (now,))
                    db.execute("COMMIT" if refused is None and commit else "ROLLBACK")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _unavailable(str(exc)) from exc
        return refused

    async def aclose(self) -> None:
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()


def _decide(
    db: sqlite3.Connection, charges: Sequence[Charge], now: float
) -> tuple[int | None, dict[str, tuple[float, float, float]]]:
    updates: dict[str, tuple[float, float, float]] = {}
    for index, charge in enumerate(charges):
        if isinstance(charge, WindowSum):
            key, ends = window_key(charge, now)
            held = updates.get(key) or db.execute(_READ, (key,)).fetchone()
            total = (held[0] if held is not None and held[2] > now else 0.0) + charge.amount
            if total > charge.limit:
                return index, {}
            updates[key] = (total, now, ends)
        else:
            key = charge.key
            held = updates.get(key) or db.execute(_READ, (key,)).fetchone()
            tokens, stamp = bucket_after(charge, held, now)
            if tokens < charge.cost:
                return index, {}
            tokens -= charge.cost
            updates[key] = (tokens, stamp, full_again_at(charge, tokens, stamp))
    return None, updates
