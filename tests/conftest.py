"""Shared fixtures: the service endpoints (Redis, PostgreSQL) and a free TCP port.

A test that needs a service asks for ``redis_url`` or ``postgres_dsn``. When the service does not answer, the
test is skipped locally, and fails under CI (``CI=true``, set by ``.ci/run``), so a CI run never passes by
skipping what it was meant to test.
"""

from __future__ import annotations

import importlib.util
import os
import socket

import pytest
import redis
import redis.exceptions

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
_PROBE_TIMEOUT = 2.0


def _service_missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: services must be running; .ci/run starts them)", pytrace=False)
    pytest.skip(reason)


def _redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_timeout=_PROBE_TIMEOUT, socket_connect_timeout=_PROBE_TIMEOUT)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        return f"Redis at {url} is not answering PING: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def _postgres_problem(dsn: str) -> str | None:
    if importlib.util.find_spec("psycopg") is None:
        return _tcp_problem("127.0.0.1", 5432, what=f"PostgreSQL at {dsn}")
    import psycopg  # noqa: PLC0415 - optional: only the dev extra installs it

    try:
        with psycopg.connect(dsn, connect_timeout=int(_PROBE_TIMEOUT)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {dsn} is not answering: {type(exc).__name__}: {exc}"
    return None


def _tcp_problem(host: str, port: int, *, what: str) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT):
            return None
    except OSError as exc:
        return f"{what} is not reachable: {exc}"


@pytest.fixture(scope="session")
def _redis_status() -> str | None:
    return _redis_problem(REDIS_URL)


@pytest.fixture(scope="session")
def _postgres_status() -> str | None:
    return _postgres_problem(POSTGRES_DSN)


@pytest.fixture
def redis_url(_redis_status: str | None) -> str:
    """``redis://127.0.0.1:6379/0``, after checking that Redis answers PING (skip, or fail under CI)."""
    if _redis_status is not None:
        _service_missing(_redis_status)
    return REDIS_URL


@pytest.fixture
def postgres_dsn(_postgres_status: str | None) -> str:
    """``postgresql://postgres@127.0.0.1:5432/test``, after checking that it accepts a connection."""
    if _postgres_status is not None:
        _service_missing(_postgres_status)
    return POSTGRES_DSN


@pytest.fixture
def free_tcp_port() -> int:
    """A port on 127.0.0.1 that nobody listens on: one the kernel just handed out for a bind and got back."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
