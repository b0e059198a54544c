"""The policy in a signed server: every verified request is decided before the SDK sees it; listings are filtered.

::

    policy = PolicyFile.load("policy.toml", counters=SqliteCounterStore("state/counters.sqlite3"))
    security = ChannelSecurity(key=server_key, identity="urn:example:payments", trusted=..., nonces=nonces,
                               policy=PolicyGate(policy, audit=audit_log))   # or policy=policy

The policy file names this server by its identity (``[servers."urn:example:payments"]``). For each request that
passed every check of SPEC.md §5 (and its grant, §9.6), SPEC.md §11.7:

* ``tools/call`` and every other request but ``initialize``, ``ping`` and ``server/discover`` is decided
  (:meth:`~mcps.policy.Policy.decide`); a deny is answered with a signed JSON-RPC error carrying the decision's code
  and reason, and the handler never runs;
* a ``tools/list`` result is filtered to the tools this caller could be allowed to call
  (:func:`~mcps.policy.visible_tools`), before the server signs it;
* with ``audit``, every decision — allow and deny — is appended to the audit log with the rules that decided, before
  the request goes on; an allow that cannot be logged is refused (MCPS-030).

A caller known by a passport is the principal of that passport; a caller known only by a pinned key is
``Principal.pinned(kid, level=pinned_level, scopes=pinned_scopes)`` (L0 and no scopes by default).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.audit.entry import AuditEvent, json_hash
from mcps.audit.log import AuditLog
from mcps.bindings.caller import Caller
from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.levels import TrustLevel
from mcps.policy import CallContext, Decision, Policy, Principal, ToolVisibility, visible_tools

__all__ = ["UNDECIDED_METHODS", "PolicyGate", "as_gate"]

logger = logging.getLogger("mcps.bindings")

UNDECIDED_METHODS: Final = frozenset({"initialize", "ping", "server/discover"})
"""Requests the policy is not asked about: the protocol's own handshake and liveness."""
_MAX_AUDIT_TEXT: Final = 1024


@dataclass(frozen=True, slots=True)
class PolicyGate:
    """A policy as a signed server applies it: ``policy``, an optional ``audit`` log, and the level and scopes a
    caller known only by a pinned key is given."""

    policy: Policy
    audit: AuditLog | None = None
    pinned_level: TrustLevel = TrustLevel.L0
    pinned_scopes: frozenset[str] = frozenset()

    def principal(self, caller: Caller) -> Principal:
        agent = caller.agent
        if agent is not None:
            return Principal.from_agent(agent, caller.kid)
        return Principal.pinned(caller.kid, level=self.pinned_level, scopes=self.pinned_scopes)

    async def check(self, request: Mapping[str, Any], caller: Caller, *, server: str, now: float) -> None:
        """Decide a verified request from ``caller``; raise :class:`McpsError` (the decision's code and reason) on a
        deny. Requests in :data:`UNDECIDED_METHODS` pass undecided."""
        method = request.get("method")
        if not isinstance(method, str) or method in UNDECIDED_METHODS:
            return
        params = request.get("params")
        params = params if isinstance(params, dict) else {}
        tool = params.get("name") if method == "tools/call" else None
        arguments = params.get("arguments") if method == "tools/call" else None
        call = CallContext(
            self.principal(caller),
            server,
            method,
            tool if isinstance(tool, str) else None,
            arguments if isinstance(arguments, dict) else {},
        )
        decision = await self.policy.decide(call, now=now)
        if self.audit is not None:
            await _record(self.audit, call, decision, request.get("id"))
        if not decision.allowed:
            raise decision.error()

    def filter_listing(self, result: dict[str, Any], caller: Caller, *, server: str) -> dict[str, Any]:
        """A ``tools/list`` result message with only the tools ``caller`` could be allowed to call.

        A policy that cannot tell without a call (no :class:`~mcps.policy.ToolVisibility`) lists nothing: an agent
        must not see what it may not use, and calls are decided in full anyway.
        """
        body = result.get("result")
        tools = body.get("tools") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(tools, list):
            return result
        if isinstance(self.policy, ToolVisibility):
            shown = visible_tools(self.policy, self.principal(caller), server, tools)
        else:
            logger.warning("mcps: the policy cannot filter tools/list (no could_allow); listing no tools")
            shown = []
        return {**result, "result": {**body, "tools": shown}}


async def _record(audit: AuditLog, call: CallContext, decision: Decision, request_id: object) -> None:
    caller = call.caller
    event = AuditEvent(
        event="call" if decision.allowed else "deny",
        agent=_text(caller.identity),
        kid=caller.kid,
        trust_level=int(caller.level),
        method=_text(call.method),
        tool=_text(call.tool) if call.tool is not None else None,
        request_id=request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None,
        args_hash=json_hash(dict(call.arguments)),
        decision=decision.effect.value,
        code=decision.code.mcps if decision.code is not None else None,
        upstream=_text(call.server),
        data={"rules": list(decision.rules), "reason": decision.reason},  # not the detail: it may quote arguments
    )
    try:
        await audit.append(event)
    except McpsError as error:
        if decision.allowed:  # an allowed call must be in the log before it runs
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"audit log: {error.diagnostics()}") from error
        logger.error("mcps: a denied call could not be audited: %s", error.diagnostics())  # noqa: TRY400


def as_gate(policy: PolicyGate | Policy) -> PolicyGate:
    """``policy`` as a gate (a bare :class:`~mcps.policy.Policy` gets no audit log and pinned callers at L0)."""
    return policy if isinstance(policy, PolicyGate) else PolicyGate(policy)


def _text(value: str) -> str:
    return value if len(value) <= _MAX_AUDIT_TEXT else value[: _MAX_AUDIT_TEXT - 1] + "…"
