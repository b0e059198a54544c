"""Shared helpers for the policy tests: callers and calls."""

from __future__ import annotations

from typing import Any

from mcps.identity.levels import TrustLevel
from mcps.policy import CallContext, Principal

NOW = 1_763_683_200.0  # a UTC midnight


def agent(
    level: int = 2,
    scopes: tuple[str, ...] = ("payments:write",),
    identity: str = "agent-7",
    issuer: str | None = "https://issuer.example",
) -> Principal:
    return Principal(identity, f"kid-of-{identity}", TrustLevel(level), frozenset(scopes), issuer)


def call(
    tool: str | None = "transfer_funds",
    caller: Principal | None = None,
    server: str = "payments",
    method: str = "tools/call",
    **arguments: Any,
) -> CallContext:
    return CallContext(caller or agent(), server, method, tool, arguments)
