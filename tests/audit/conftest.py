"""Audit-log fixtures: a log factory over each backend (SQLite file, real PostgreSQL schema)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mcps.audit.postgres_log import PostgresAuditLog
from mcps.audit.sql import SqlAuditLog
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.core.keys import PrivateKey

BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]

LogFactory = Callable[..., SqlAuditLog]


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(params=BACKENDS)
async def make_log(request: pytest.FixtureRequest, tmp_path: Path, log_key: PrivateKey) -> AsyncIterator[LogFactory]:
    """A factory of log instances on one fresh store; every instance opened is closed (and the schema dropped)."""
    opened: list[SqlAuditLog] = []
    schema = f"t_audit_{secrets.token_hex(6)}"
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")

    def factory(**kwargs: Any) -> SqlAuditLog:
        kwargs.setdefault("key", log_key)
        log: SqlAuditLog
        if request.param == "sqlite":
            log = SqliteAuditLog(tmp_path / "audit.db", **kwargs)
        else:
            log = PostgresAuditLog(dsn, schema=schema, **kwargs)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        await log.aclose()
    if request.param == "postgres":
        import psycopg  # noqa: PLC0415

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
