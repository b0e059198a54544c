"""The decision procedure (SPEC.md §11.3): one fixed chain of stages, each returning a denial as data or passing.

1. **Server**: the call's server must be in the policy (MCPS-016).
2. **Identity** (the server's, then the tool rule's): denied agents and issuers, allowed agents and issuers
   (MCPS-016), minimum level (MCPS-009), scopes all-of and any-of (MCPS-016).
3. **Tool rule**: for ``tools/call``, the rule for the tool (exact name, else the first matching glob) must allow
   it; a tool no rule names gets the server's ``default``, which is deny unless the file says ``allow`` (MCPS-016).
4. **Conditions**: the server's ``when``, then the rule's (CEL; anything but ``true`` denies, MCPS-016).
5. **Limits, checked**: spend per call and tier (MCPS-016, MCPS-009 without a tier), then every rate and daily
   spend counter, as a dry run (MCPS-010 for a rate, MCPS-016 for a daily cap).
6. **Compliance hooks**, server's then rule's; an objection, an exception or a timeout denies.
7. **Limits, taken**: every counter at once, atomically; a counter that filled up since step 5 denies as there.

So a call refused at any stage consumes nothing, and a counter store that cannot answer denies (MCPS-030).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Any, Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.levels import TrustLevel
from mcps.policy.cel import Condition
from mcps.policy.hooks import HookRef
from mcps.policy.limits import RateLimit, SpendLimit
from mcps.policy.model import CallContext, Decision, Effect, Principal, Reason, ToolVisibility
from mcps.stores.counters import Charge, CounterStore

__all__ = ["Explanation", "IdentityRule", "RulePolicy", "ServerRules", "Step", "ToolRule", "visible_tools"]

logger = logging.getLogger("mcps.policy")

TOOLS_CALL: Final = "tools/call"
_LOOKUP_CACHE: Final = 4096


@dataclass(frozen=True, slots=True)
class Step:
    """One line of an explanation: which rule, what was checked, and the outcome (``pass``, ``deny``, ``skip``)."""

    rule: str
    check: str
    outcome: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """Who may call: all of these must hold (an empty set or ``None`` means no constraint)."""

    min_level: TrustLevel | None = None
    scopes_all: frozenset[str] = frozenset()
    scopes_any: frozenset[str] = frozenset()
    agents: frozenset[str] | None = None
    deny_agents: frozenset[str] = frozenset()
    issuers: frozenset[str] | None = None
    deny_issuers: frozenset[str] = frozenset()

    def check(self, caller: Principal, rule: str) -> Decision | None:
        """A denial, or ``None`` when the caller passes."""
        if caller.identity in self.deny_agents or (self.agents is not None and caller.identity not in self.agents):
            return Decision.deny(ErrorCode.POLICY_DENIED, Reason.CALLER_NOT_ALLOWED, "agent list", (f"{rule}#agents",))
        issuer = caller.issuer
        if (issuer is not None and issuer in self.deny_issuers) or (
            self.issuers is not None and (issuer is None or issuer not in self.issuers)
        ):
            return Decision.deny(
                ErrorCode.POLICY_DENIED, Reason.CALLER_NOT_ALLOWED, "issuer list", (f"{rule}#issuers",)
            )
        if self.min_level is not None and caller.level < self.min_level:
            detail = f"caller is {caller.level}, rule requires {self.min_level}"
            return Decision.deny(ErrorCode.INSUFFICIENT_TRUST, Reason.LEVEL, detail, (f"{rule}#min_level",))
        if self.scopes_all and not self.scopes_all <= caller.scopes:
            missing = ", ".join(sorted(self.scopes_all - caller.scopes))
            return Decision.deny(ErrorCode.POLICY_DENIED, Reason.SCOPE, f"missing {missing}", (f"{rule}#scopes_all",))
        if self.scopes_any and not self.scopes_any & caller.scopes:
            wanted = ", ".join(sorted(self.scopes_any))
            detail = f"needs one of {wanted}"
            return Decision.deny(ErrorCode.POLICY_DENIED, Reason.SCOPE, detail, (f"{rule}#scopes_any",))
        return None


@dataclass(frozen=True, slots=True)
class ToolRule:
    id: str
    match: str
    effect: Effect = Effect.ALLOW
    identity: IdentityRule = IdentityRule()
    when: Condition | None = None
    rates: tuple[RateLimit, ...] = ()
    spend: SpendLimit | None = None
    hooks: tuple[HookRef, ...] = ()
    line: int | None = None

    @property
    def is_glob(self) -> bool:
        return any(char in self.match for char in "*?[")


@dataclass(frozen=True, slots=True)
class ServerRules:
    id: str
    default: Effect = Effect.DENY
    identity: IdentityRule = IdentityRule()
    when: Condition | None = None
    rates: tuple[RateLimit, ...] = ()
    hooks: tuple[HookRef, ...] = ()
    tools: tuple[ToolRule, ...] = ()
    line: int | None = None


class _Server:
    """A server's rules with the tool lookup precomputed: exact names first, else the first glob in file order."""

    def __init__(self, rules: ServerRules) -> None:
        self.rules = rules
        self.exact = {rule.match: rule for rule in rules.tools if not rule.is_glob}
        self.globs = [(re.compile(translate(rule.match)).match, rule) for rule in rules.tools if rule.is_glob]
        self._cache: dict[str, ToolRule | None] = {}
        # What a call under each rule (None: the default) counts and runs, worked out once.
        self.plans: dict[str | None, _Plan] = {
            rule.id if rule is not None else None: _Plan.of(rules, rule) for rule in (None, *rules.tools)
        }

    def rule_for(self, tool: str) -> ToolRule | None:
        try:
            return self._cache[tool]
        except KeyError:
            pass
        rule = self.exact.get(tool)
        if rule is None:
            rule = next((candidate for matches, candidate in self.globs if matches(tool)), None)
        if len(self._cache) >= _LOOKUP_CACHE:
            self._cache.clear()
        self._cache[tool] = rule
        return rule


@dataclass(frozen=True, slots=True)
class _Limit:
    """Why a charge would be refused: its rule, code, reason and detail."""

    rule: str
    code: ErrorCode
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Plan:
    """The rates (server's, then the rule's) with their refusals, and the hooks, for calls under one rule."""

    rates: tuple[RateLimit, ...]
    limits: tuple[_Limit, ...]
    hooks: tuple[HookRef, ...]

    @classmethod
    def of(cls, server: ServerRules, rule: ToolRule | None) -> _Plan:
        rates = (*server.rates, *(rule.rates if rule is not None else ()))
        limits = tuple(_Limit(rate.id, ErrorCode.RATE_LIMITED, Reason.RATE.value, rate.text) for rate in rates)
        return cls(rates, limits, (*server.hooks, *(rule.hooks if rule is not None else ())))


class RulePolicy:
    """A :class:`~mcps.policy.model.Policy` made of server and tool rules, with counters in ``counters``.

    Build one from a file with :meth:`mcps.policy.PolicyFile.load`. :meth:`decide` is the policy; :meth:`explain`
    runs the same chain without taking anything from the counters and records every step; :meth:`could_allow`
    runs only the static stages (for ``tools/list``).
    """

    def __init__(self, servers: Iterable[ServerRules], *, counters: CounterStore) -> None:
        self._servers = {rules.id: _Server(rules) for rules in servers}
        self.counters = counters

    @property
    def servers(self) -> Mapping[str, ServerRules]:
        return {name: server.rules for name, server in self._servers.items()}

    async def decide(self, call: CallContext, *, now: float) -> Decision:
        return await self._decide(call, now, None, commit=True)

    async def explain(self, call: CallContext, *, now: float) -> Explanation:
        """The decision for ``call`` and every step that led to it; counters are read, never taken."""
        steps: list[Step] = []
        decision = await self._decide(call, now, steps, commit=False)
        return Explanation(decision, tuple(steps))

    def could_allow(self, caller: Principal, server: str, tool: str) -> Decision:
        """Whether ``caller`` could ever be allowed ``tool`` on ``server``: the identity and tool-rule stages only
        (conditions, limits and hooks depend on the call)."""
        found = self._servers.get(server)
        if found is None:
            return _unknown_server(server)
        denied = found.rules.identity.check(caller, found.rules.id)
        if denied is not None:
            return denied
        rule, denied = _tool_rule(found, tool, None)
        if denied is not None:
            return denied
        if rule is not None:
            denied = rule.identity.check(caller, rule.id)
            if denied is not None:
                return _with(denied, found.rules.id)
        return Decision.allow((found.rules.id, rule.id if rule is not None else f"{found.rules.id}#default"))

    # --- the chain -------------------------------------------------------------------------------------------------

    async def _decide(self, call: CallContext, now: float, trace: list[Step] | None, *, commit: bool) -> Decision:
        found = self._servers.get(call.server)
        if found is None:
            return _traced(trace, _unknown_server(call.server), "server")
        server = found.rules
        path: tuple[str, ...] = (server.id,)
        caller = call.caller
        denied = server.identity.check(caller, server.id)
        if denied is not None:
            return _traced(trace, denied, "identity")
        _pass(trace, server.id, "identity", f"{caller.level}, {len(caller.scopes)} scopes")
        rule: ToolRule | None = None
        if call.method == TOOLS_CALL:
            rule, denied = _tool_rule(found, call.tool, trace)
            if denied is not None:
                return _with(denied, server.id)
            path += (rule.id if rule is not None else f"{server.id}#default",)
            if rule is not None:
                denied = rule.identity.check(caller, rule.id)
                if denied is not None:
                    return _traced(trace, _with(denied, *path[:-1]), "identity")
                _pass(trace, rule.id, "identity")
        for owner, condition in ((server.id, server.when), (rule.id if rule else "", rule.when if rule else None)):
            if condition is None:
                continue
            failed = condition.check(call)
            if failed is not None:
                denial = Decision.deny(ErrorCode.POLICY_DENIED, Reason.CONDITION, failed, (*path, f"{owner}#when"))
                return _traced(trace, denial, "when", condition.source)
            _pass(trace, f"{owner}#when", "when", condition.source)
        plan = found.plans[rule.id if rule is not None else None]
        charges: list[Charge] = [rate.charge(call) for rate in plan.rates]
        limits: list[_Limit] = list(plan.limits)
        if rule is not None and rule.spend is not None:
            verdict = rule.spend.assess(call)
            if verdict.code is not None:
                denial = Decision.deny(verdict.code, verdict.reason, verdict.detail, (*path, verdict.rule))
                return _traced(trace, denial, "spend")
            _pass(trace, verdict.tier, "spend", "amount and currency accepted, within the per-call cap")
            if verdict.charge is not None:
                charges.append(verdict.charge)
                limits.append(_Limit(verdict.rule, ErrorCode.POLICY_DENIED, verdict.reason, verdict.detail))
        hooks = plan.hooks
        if charges and (hooks or not commit):
            denied = await self._take(charges, limits, now, path, trace, commit=False)
            if denied is not None:
                return denied
        for ref in hooks:
            denied = await _run_hook(ref, call, now, path)
            if denied is not None:
                return _traced(trace, denied, "hook", ref.path)
            _pass(trace, ref.id, "hook", ref.path)
        if charges and commit:
            denied = await self._take(charges, limits, now, path, trace, commit=True)
            if denied is not None:
                return denied
        decision = Decision.allow((*path, *(limit.rule for limit in limits), *(ref.id for ref in hooks)))
        if trace is not None:
            trace.append(Step(path[-1], "decision", "allow"))
        return decision

    async def _take(
        self,
        charges: Sequence[Charge],
        limits: Sequence[_Limit],
        now: float,
        path: tuple[str, ...],
        trace: list[Step] | None,
        *,
        commit: bool,
    ) -> Decision | None:
        try:
            refused = await self.counters.consume(charges, now=now, commit=commit)
        except McpsError as error:
            detail = error.detail or error.message
            return _traced(trace, Decision.deny(ErrorCode.STORE_UNAVAILABLE, Reason.STORE, detail, path), "limits")
        except Exception as exc:  # a store bug must not let a call through
            logger.exception("mcps policy: counter store failed")
            detail = f"counter store: {type(exc).__name__}"
            return _traced(trace, Decision.deny(ErrorCode.STORE_UNAVAILABLE, Reason.STORE, detail, path), "limits")
        if refused is None:
            for limit in limits:
                _pass(trace, limit.rule, "limit", "taken" if commit else "has room")
            return None
        limit = limits[refused]
        return _traced(trace, Decision.deny(limit.code, limit.reason, limit.detail, (*path, limit.rule)), "limit")


def visible_tools(policy: ToolVisibility, caller: Principal, server: str, tools: Sequence[Any]) -> list[Any]:
    """The tool definitions (dicts with a ``name``) that ``caller`` could be allowed to call on ``server``; anything
    else in ``tools`` is dropped. Static checks only: a listed tool's call is still decided in full."""
    return [
        tool
        for tool in tools
        if isinstance(tool, dict)
        and isinstance(tool.get("name"), str)
        and policy.could_allow(caller, server, tool["name"]).allowed
    ]


def _tool_rule(server: _Server, tool: str | None, trace: list[Step] | None) -> tuple[ToolRule | None, Decision | None]:
    rules = server.rules
    if tool is None:
        denial = Decision.deny(ErrorCode.POLICY_DENIED, Reason.TOOL_NOT_ALLOWED, "no tool name", (f"{rules.id}#tools",))
        return None, _traced(trace, denial, "tool")
    rule = server.rule_for(tool)
    if rule is None:
        if rules.default is Effect.DENY:
            detail = "no rule names this tool; default is deny"
            denial = Decision.deny(ErrorCode.POLICY_DENIED, Reason.TOOL_NOT_ALLOWED, detail, (f"{rules.id}#default",))
            return None, _traced(trace, denial, "tool")
        _pass(trace, f"{rules.id}#default", "tool", "no rule names this tool; default is allow")
        return None, None
    if rule.effect is Effect.DENY:
        denial = Decision.deny(ErrorCode.POLICY_DENIED, Reason.TOOL_NOT_ALLOWED, f"rule {rule.match!r}", (rule.id,))
        return rule, _traced(trace, denial, "tool")
    _pass(trace, rule.id, "tool", f"matches {rule.match!r}")
    return rule, None


async def _run_hook(ref: HookRef, call: CallContext, now: float, path: tuple[str, ...]) -> Decision | None:
    try:
        async with asyncio.timeout(ref.timeout):
            objection = await ref.hook.screen(call, now=now)
    except TimeoutError:
        logger.error("mcps policy: hook %s (%s) timed out after %s s: call denied", ref.id, ref.path, ref.timeout)  # noqa: TRY400
        detail = f"hook timed out after {ref.timeout} s"
        return Decision.deny(ErrorCode.POLICY_DENIED, Reason.COMPLIANCE_FAILED, detail, (*path, ref.id))
    except Exception as exc:
        logger.exception("mcps policy: hook %s (%s) raised: call denied", ref.id, ref.path)
        detail = f"hook raised {type(exc).__name__}"
        return Decision.deny(ErrorCode.POLICY_DENIED, Reason.COMPLIANCE_FAILED, detail, (*path, ref.id))
    if objection is None:
        return None
    return Decision.deny(objection.code, objection.reason, objection.detail, (*path, ref.id))


def _unknown_server(server: str) -> Decision:
    return Decision.deny(ErrorCode.POLICY_DENIED, Reason.UNKNOWN_SERVER, f"no [servers] entry {server!r}", ("servers",))


def _with(decision: Decision, *prefix: str) -> Decision:
    """``decision`` with ``prefix`` put before its rules (the rules consulted on the way)."""
    return Decision(decision.effect, decision.code, decision.reason, decision.detail, (*prefix, *decision.rules))


def _pass(trace: list[Step] | None, rule: str, check: str, note: str = "") -> None:
    if trace is not None:
        trace.append(Step(rule, check, "pass", note))


def _traced(trace: list[Step] | None, decision: Decision, check: str, note: str = "") -> Decision:
    if trace is not None:
        trace.append(Step(decision.rules[-1] if decision.rules else "", check, "deny", note or decision.detail))
    return decision
