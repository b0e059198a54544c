"""Replay defence for processes on one machine: a nonce store in one SQLite file.

Several processes (workers of one gateway) may open the same file; a claim is one ``INSERT … ON CONFLICT …
DO UPDATE … WHERE`` statement in its own transaction, so SQLite's write lock makes it atomic across them:

.. code-block:: sql

    INSERT INTO nonces (kid, nonce, expires_at) VALUES (:kid, :nonce, :expires_at)
    ON CONFLICT (kid, nonce) DO UPDATE SET expires_at = excluded.expires_at
    WHERE nonces.expires_at <= :now

One row changed means the pair was new (or its previous entry had expired): the claim succeeds. No row changed
means a live entry holds the pair: a replay. Replicas on several machines need
:class:`mcps.stores.redis_nonces.RedisNonceStore` instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "DEFAULT_PURGE_EVERY", "SqliteNonceStore"]

DEFAULT_PURGE_EVERY: Final = 1000
"""Expired rows are deleted once every this many claims (per store instance)."""
DEFAULT_BUSY_TIMEOUT_MS: Final = 5000
"""How long a claim waits for another process's write lock before the store counts as unavailable."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS nonces (
    kid        TEXT    NOT NULL,
    nonce      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kid, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expires_at ON nonces (expires_at);
"""
_CLAIM: Final = """
INSERT INTO nonces (kid, nonce, expires_at) VALUES (:kid, :nonce, :expires_at)
ON CONFLICT (kid, nonce) DO UPDATE SET expires_at = excluded.expires_at
WHERE nonces.expires_at <= :now
"""
_PURGE: Final = "DELETE FROM nonces WHERE expires_at <= :now"


def _unavailable(detail: str) -> McpsError:
    return McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"sqlite nonce store: {detail}")


class SqliteNonceStore:
    """A :class:`~mcps.core.replay.NonceStore` in one SQLite file, shared by the processes of one machine.

    * The file is opened in WAL mode with ``busy_timeout`` (``busy_timeout_ms``), so processes wait for each
      other's short write transactions instead of failing; a wait longer than that raises MCPS-030.
    * ``synchronous=NORMAL``: in WAL mode a commit survives a crash of the *application*, but a power loss or an
      operating-system crash may lose the transactions committed since the last checkpoint. After such a crash,
      a nonce claimed moments before it may be forgotten, re-opening a replay window for at most the message
      lifetime plus skew (≤ 330 s). Pass ``synchronous="FULL"`` to close that window at the cost of an fsync
      per claim.
    * The directory is created with mode 0700 and the file with mode 0600 when they do not exist; SQLite gives
      its ``-wal`` and ``-shm`` files the mode of the database file.
    * Expired rows are purged once every ``purge_every`` claims.
    * Each call is one short, synchronous SQLite statement run inside the ``async`` methods, blocking the event
      loop for its duration (microseconds unless another process holds the write lock, at most
      ``busy_timeout_ms``). That is the price of having no thread hop on the hot path.

    Every :class:`sqlite3.Error` (and an unusable path) becomes :class:`~mcps.core.errors.McpsError` MCPS-030:
    a store that cannot answer never lets a message through.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        purge_every: int = DEFAULT_PURGE_EVERY,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        synchronous: str = "NORMAL",
    ) -> None:
        if purge_every < 1:
            raise ValueError("purge_every must be positive")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must not be negative")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise ValueError("SqliteNonceStore needs a file path; use MemoryNonceStore for one process")
        self.path = Path(text)
        self._purge_every = purge_every
        self._claims_since_purge = 0
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
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            self._db = None
            raise _unavailable(f"cannot initialise {self.path}: {exc}") from exc

    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        """Record ``(kid, nonce)`` until ``expires_at``; True if new, False if a live entry holds it."""
        with self._lock:
            db = self._db
            if db is None:
                raise _unavailable("store is closed")
            try:
                cursor = db.execute(_CLAIM, {"kid": kid, "nonce": nonce, "expires_at": expires_at, "now": now})
                claimed = cursor.rowcount == 1
                self._claims_since_purge += 1
                if self._claims_since_purge >= self._purge_every:
                    self._claims_since_purge = 0
                    db.execute(_PURGE, {"now": now})
            except sqlite3.Error as exc:
                raise _unavailable(str(exc)) from exc
        return claimed

    async def aclose(self) -> None:
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()


def _create_private_file(path: Path) -> None:
    """Create the parent directory (0700) and the file (0600) when missing; leave existing ones as they are."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
