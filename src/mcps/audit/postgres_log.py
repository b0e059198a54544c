"""The audit log for replicas: PostgreSQL, several processes appending to one log.

Each process runs its own group commit; each batch is one transaction that first takes
``LOCK TABLE <checkpoints> IN EXCLUSIVE MODE`` — which blocks other appenders (in any process) until commit but
not readers — then reads the latest checkpoint, checks it, extends it and writes entries, nodes and the new
checkpoint. So the log has one sequence of indexes, no gaps, and every checkpoint extends the previous one.
``synchronous_commit`` is left at the server's setting (``on`` by default): ``append`` returns after the commit
is durable on the server.

Tables live in a PostgreSQL schema of their own (default ``mcps_audit``), created when missing. The signing key
is passed in (every process of one log loads the same key file); it is never stored in the database.
Needs ``psycopg`` 3 (the ``postgres`` extra).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Final

from mcps.audit.log import DEFAULT_MAX_BATCH
from mcps.audit.sql import SqlAuditLog, unavailable
from mcps.core.keys import PrivateKey

__all__ = ["DEFAULT_SCHEMA", "PostgresAuditLog"]

DEFAULT_SCHEMA: Final = "mcps_audit"
_IDENT: Final = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_SCHEMA_SQL: Final = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.entries (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, entry BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
                                      PRIMARY KEY (level, idx));
CREATE TABLE IF NOT EXISTS {s}.checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL, frontier BYTEA NOT NULL);
"""


def _connect(dsn: str) -> Any:
    import psycopg  # noqa: PLC0415 - optional dependency

    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        raise unavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc


class PostgresAuditLog(SqlAuditLog):
    """An :class:`~mcps.audit.log.AuditLog` in PostgreSQL, shared by several processes.

    ``key=None`` opens an existing log read-only (verification, proofs, export); ``append`` is then refused.
    """

    placeholder = "%s"

    def __init__(
        self,
        dsn: str,
        *,
        key: PrivateKey | None,
        schema: str = DEFAULT_SCHEMA,
        origin: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if _IDENT.fullmatch(schema) is None:
            raise ValueError("schema must be a lower-case SQL identifier")
        self.schema = schema
        writer = _connect(dsn)
        reader = _connect(dsn)
        reader.autocommit = True
        try:
            with writer.transaction():
                writer.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema,))  # one creator at a time
                for statement in _SCHEMA_SQL.format(s=schema).split(";"):
                    if statement.strip():
                        writer.execute(statement)
        except Exception as exc:
            writer.close()
            reader.close()
            raise unavailable(f"cannot create the audit schema: {type(exc).__name__}: {exc}") from exc
        super().__init__(
            writer=writer,
            reader=reader,
            prefix=f"{schema}.",
            key=key,
            origin=origin,
            max_batch=max_batch,
            max_delay=max_delay,
            clock=clock,
        )
        self._initialise()

    def _begin(self) -> None:
        """psycopg opens a transaction with the first statement (``autocommit`` is off on the writer)."""

    def _lock_for_append(self) -> None:
        self._writer.execute(self._sql("LOCK TABLE {checkpoints} IN EXCLUSIVE MODE"))

    def drop(self) -> None:
        """Drop the log's schema and everything in it (tests and tear-down only)."""
        with self._writer.transaction():
            self._writer.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
