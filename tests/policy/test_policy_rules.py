"""Each rule kind at its boundary, the order of the chain, and what a decision says (SPEC.md §11)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mcps.core.errors import ErrorCode
from mcps.policy import CallContext, Decision, Objection, Principal, visible_tools
from mcps.stores.counters import MemoryCounterStore
from mcps.stores.redis_counters import RedisCounterStore

from .conftest import PolicyFactory
from .helpers import NOW, agent, call

DENIED, LEVEL, RATE, STORE = (
    ErrorCode.POLICY_DENIED,
    ErrorCode.INSUFFICIENT_TRUST,
    ErrorCode.RATE_LIMITED,
    ErrorCode.STORE_UNAVAILABLE,
)


def refused(decision: Decision, code: ErrorCode, rule: str | None = None) -> bool:
    assert not decision.allowed, decision
    assert decision.code is code, decision
    if rule is not None:
        assert decision.rules[-1] == rule, decision.rules
    return True


# --- server, tools, default ----------------------------------------------------------------------------------------


async def test_a_server_the_policy_does_not_name_is_denied(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\ndefault = 'allow'\n")
    assert refused(await p.decide(call(server="files"), now=NOW), DENIED, "servers")


async def test_a_tool_no_rule_names_is_denied_by_default(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\n[[servers.payments.tools]]\nmatch = 'get_balance'\n")
    assert (await p.decide(call("get_balance"), now=NOW)).allowed
    decision = await p.decide(call("transfer_funds"), now=NOW)
    assert refused(decision, DENIED, "payments#default")
    assert decision.reason == "tool is not allowed by policy"


async def test_default_allow_only_when_written(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\ndefault = 'allow'\n[[servers.payments.tools]]\nmatch = 'drop_*'\neffect = 'deny'\n")
    assert (await p.decide(call("anything"), now=NOW)).rules == ("payments", "payments#default")
    assert refused(await p.decide(call("drop_tables"), now=NOW), DENIED, "payments/drop_*")


async def test_exact_name_beats_glob_and_first_glob_wins(policy: PolicyFactory) -> None:
    p = policy(
        """
[servers.payments]
[[servers.payments.tools]]
match = "transfer_*"
min_level = 3
[[servers.payments.tools]]
match = "transfer_small"
min_level = 1
[[servers.payments.tools]]
match = "trans*"
effect = "deny"
"""
    )
    caller = agent(level=2)
    assert (await p.decide(call("transfer_small", caller), now=NOW)).rules == ("payments", "payments/transfer_small")
    assert refused(await p.decide(call("transfer_big", caller), now=NOW), LEVEL, "payments/transfer_*#min_level")
    assert refused(await p.decide(call("transact", caller), now=NOW), DENIED, "payments/trans*")


async def test_tools_call_without_a_tool_name_is_denied(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\ndefault = 'allow'\n")
    assert refused(await p.decide(call(None), now=NOW), DENIED)


async def test_other_methods_pass_the_server_identity_checks_only(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\nmin_level = 2\n")
    assert (await p.decide(call(None, method="resources/read"), now=NOW)).allowed
    assert refused(await p.decide(call(None, agent(level=1), method="resources/read"), now=NOW), LEVEL)


# --- identity --------------------------------------------------------------------------------------------------------

TOOL = "[servers.payments]\n[[servers.payments.tools]]\nmatch = 'transfer_funds'\n"


async def test_min_level_boundary(policy: PolicyFactory) -> None:
    p = policy(TOOL + "min_level = 2\n")
    assert (await p.decide(call(caller=agent(level=2)), now=NOW)).allowed
    decision = await p.decide(call(caller=agent(level=1)), now=NOW)
    assert refused(decision, LEVEL, "payments/transfer_funds#min_level")
    assert decision.detail == "caller is L1, rule requires L2"


async def test_server_min_level_applies_to_every_tool(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\nmin_level = 3\n[[servers.payments.tools]]\nmatch = 'transfer_funds'\n")
    assert refused(await p.decide(call(caller=agent(level=2)), now=NOW), LEVEL, "payments#min_level")
    assert (await p.decide(call(caller=agent(level=3)), now=NOW)).allowed


async def test_scopes_all_of_boundary(policy: PolicyFactory) -> None:
    p = policy(TOOL + "scopes_all = ['payments:write', 'payments:large']\n")
    assert (await p.decide(call(caller=agent(scopes=("payments:write", "payments:large"))), now=NOW)).allowed
    decision = await p.decide(call(caller=agent(scopes=("payments:write",))), now=NOW)
    assert refused(decision, DENIED, "payments/transfer_funds#scopes_all")
    assert decision.reason == "a required scope is missing"


async def test_scopes_any_of_boundary(policy: PolicyFactory) -> None:
    p = policy(TOOL + "scopes_any = ['payments:write', 'payments:admin']\n")
    assert (await p.decide(call(caller=agent(scopes=("payments:admin",))), now=NOW)).allowed
    assert refused(await p.decide(call(caller=agent(scopes=("payments:read",))), now=NOW), DENIED)


async def test_agent_and_issuer_lists(policy: PolicyFactory) -> None:
    p = policy(
        TOOL + "agents = ['agent-7', 'agent-8']\ndeny_agents = ['agent-8']\nissuers = ['https://issuer.example']\n"
    )
    assert (await p.decide(call(caller=agent(identity="agent-7")), now=NOW)).allowed
    assert refused(
        await p.decide(call(caller=agent(identity="agent-8")), now=NOW), DENIED, "payments/transfer_funds#agents"
    )
    assert refused(await p.decide(call(caller=agent(identity="agent-9")), now=NOW), DENIED)
    other_issuer = agent(issuer="https://other.example")
    assert refused(await p.decide(call(caller=other_issuer), now=NOW), DENIED, "payments/transfer_funds#issuers")
    pinned = Principal.pinned("agent-7", level=agent().level, scopes=agent().scopes)
    assert refused(await p.decide(call(caller=pinned), now=NOW), DENIED)  # no issuer: not on the issuer list


async def test_denied_issuer(policy: PolicyFactory) -> None:
    p = policy(TOOL + "deny_issuers = ['https://issuer.example']\n")
    assert refused(await p.decide(call(), now=NOW), DENIED, "payments/transfer_funds#issuers")
    assert (await p.decide(call(caller=agent(issuer=None)), now=NOW)).allowed


async def test_unsigned_client_is_level_zero(policy: PolicyFactory) -> None:
    p = policy("[servers.files]\n[[servers.files.tools]]\nmatch = 'read'\nmin_level = 0\n"
               "[[servers.files.tools]]\nmatch = 'write'\nmin_level = 1\n")  # fmt: skip
    anonymous = Principal.unsigned("anonymous")
    assert (await p.decide(call("read", anonymous, server="files"), now=NOW)).allowed
    assert refused(await p.decide(call("write", anonymous, server="files"), now=NOW), LEVEL)
    with pytest.raises(ValueError, match="L0"):
        Principal("x", None, agent().level, signed=False)


# --- CEL conditions ------------------------------------------------------------------------------------------------


async def test_condition_boundary(policy: PolicyFactory) -> None:
    p = policy(TOOL + "when = 'args.amount <= 1000 || caller.level >= 3'\n")
    assert (await p.decide(call(amount=1000), now=NOW)).allowed
    assert (await p.decide(call(amount=1000.0), now=NOW)).allowed
    decision = await p.decide(call(amount=1001), now=NOW)
    assert refused(decision, DENIED, "payments/transfer_funds#when")
    assert decision.detail == "evaluated to false"
    assert (await p.decide(call(caller=agent(level=3), amount=10**9), now=NOW)).allowed


async def test_condition_that_cannot_be_evaluated_denies(policy: PolicyFactory) -> None:
    p = policy(TOOL + "when = 'args.amount <= 1000'\n")
    for arguments in ({}, {"amount": "1"}, {"amount": None}, {"amount": True}, {"amount": [1]}, {"amount": 2**70}):
        decision = await p.decide(call(**arguments), now=NOW)
        assert refused(decision, DENIED, "payments/transfer_funds#when")
        assert decision.reason == "a condition of the policy is not met"


async def test_condition_sees_caller_server_tool_and_claims(policy: PolicyFactory) -> None:
    p = policy(
        TOOL
        + "when = \"'payments:write' in caller.scopes && caller.id == 'agent-7' && caller.issuer.endsWith('.example')"
        + " && server == 'payments' && tool == 'transfer_funds' && method == 'tools/call' && caller.signed"
        + " && caller.claims.sub == 'agent-7' && caller.kid != ''\"\n"
    )
    caller = Principal(
        "agent-7", "k", agent().level, frozenset({"payments:write"}), "https://i.example", {"sub": "agent-7"}
    )
    assert (await p.decide(call(caller=caller), now=NOW)).allowed
    assert refused(await p.decide(call(caller=agent()), now=NOW), DENIED)  # no claims.sub: an error, denied


async def test_a_dyn_condition_that_is_not_a_bool_denies(policy: PolicyFactory) -> None:
    p = policy(TOOL + "when = 'args.flag'\n")
    assert (await p.decide(call(flag=True), now=NOW)).allowed
    decision = await p.decide(call(flag=1), now=NOW)
    assert refused(decision, DENIED)
    assert decision.detail == "evaluated to int, not bool"


# --- rates -----------------------------------------------------------------------------------------------------------


async def test_rate_boundary_and_refill(policy: PolicyFactory) -> None:
    p = policy(TOOL + "rate = ['3/minute']\n")
    for _ in range(3):
        assert (await p.decide(call(), now=NOW)).allowed
    decision = await p.decide(call(), now=NOW)
    assert refused(decision, RATE, "payments/transfer_funds#rate[0]")
    assert decision.reason == "rate limit exceeded"
    assert refused(await p.decide(call(), now=NOW + 19.9), RATE)  # one token every 20 s
    assert (await p.decide(call(), now=NOW + 20.0)).allowed


async def test_rate_burst(policy: PolicyFactory) -> None:
    p = policy(TOOL + "rate = ['60/minute burst 2']\n")
    assert [(await p.decide(call(), now=NOW)).allowed for _ in range(3)] == [True, True, False]
    assert (await p.decide(call(), now=NOW + 1)).allowed


async def test_rate_per_agent_tool_and_both(policy: PolicyFactory) -> None:
    p = policy(
        "[servers.payments]\n[[servers.payments.tools]]\nmatch = 't_*'\n"
        "rate = ['1/minute per agent-tool', '2/minute per agent', '2/minute per tool']\n"
    )
    a, b, c = agent(identity="a"), agent(identity="b"), agent(identity="c")
    assert (await p.decide(call("t_1", a), now=NOW)).allowed
    assert refused(await p.decide(call("t_1", a), now=NOW), RATE, "payments/t_*#rate[0]")  # per agent and tool
    assert (await p.decide(call("t_2", a), now=NOW)).allowed
    assert refused(await p.decide(call("t_3", a), now=NOW), RATE, "payments/t_*#rate[1]")  # per agent
    assert (await p.decide(call("t_1", b), now=NOW)).allowed
    assert refused(await p.decide(call("t_1", c), now=NOW), RATE, "payments/t_*#rate[2]")  # per tool


async def test_server_rate_counts_every_tool(policy: PolicyFactory) -> None:
    p = policy("[servers.payments]\ndefault = 'allow'\nrate = ['2/hour per agent']\n")
    assert (await p.decide(call("a"), now=NOW)).allowed
    assert (await p.decide(call("b"), now=NOW)).allowed
    assert refused(await p.decide(call("c"), now=NOW), RATE, "payments#rate[0]")


# --- spend -----------------------------------------------------------------------------------------------------------

SPEND_TABLE = """[servers.payments.tools.spend]
amount_arg = "amount"
currency_arg = "currency"
currency = "USD"
per_level = { 1 = { per_call = 10, per_day = 50 }, 3 = { per_call = 10000, per_day = 100000 } }
"""
SPEND = TOOL + SPEND_TABLE


def spend_with(extra: str) -> str:
    """The spend policy with ``extra`` keys in the tool rule (before its spend table)."""
    return TOOL + extra + SPEND_TABLE


async def test_spend_per_call_boundary_per_level(policy: PolicyFactory) -> None:
    p = policy(SPEND)
    assert (await p.decide(call(caller=agent(level=1), amount=10, currency="USD"), now=NOW)).allowed
    decision = await p.decide(call(caller=agent(level=1), amount=10.01, currency="USD"), now=NOW)
    assert refused(decision, DENIED, "payments/transfer_funds#spend.L1.per_call")
    assert decision.reason == "per-call spend cap exceeded (L1 tier)"
    # L2 uses the L1 tier (the highest at or below it); L4 the L3 tier.
    assert refused(await p.decide(call(caller=agent(level=2), amount=11, currency="USD"), now=NOW), DENIED)
    assert (await p.decide(call(caller=agent(level=4), amount=10_000, currency="USD"), now=NOW)).allowed
    assert refused(await p.decide(call(caller=agent(level=4), amount=10_000.01, currency="USD"), now=NOW), DENIED)


async def test_spend_per_day_boundary_per_level(policy: PolicyFactory) -> None:
    p = policy(SPEND)
    small = agent(level=1)
    for _ in range(5):
        assert (await p.decide(call(caller=small, amount=10, currency="USD"), now=NOW + 3600)).allowed
    decision = await p.decide(call(caller=small, amount=0.01, currency="USD"), now=NOW + 3600)
    assert refused(decision, DENIED, "payments/transfer_funds#spend.L1.per_day")
    assert decision.reason == "daily spend cap exceeded (L1 tier)"
    assert (await p.decide(call(caller=small, amount=0, currency="USD"), now=NOW + 3600)).allowed
    assert (await p.decide(call(caller=small, amount=10, currency="USD"), now=NOW + 86_400)).allowed  # next UTC day
    # Another agent has its own daily total.
    assert (await p.decide(call(caller=agent(level=1, identity="other"), amount=10, currency="USD"), now=NOW)).allowed
    big = agent(level=3, identity="big")
    for _ in range(10):
        assert (await p.decide(call(caller=big, amount=10_000, currency="USD"), now=NOW)).allowed
    assert refused(
        await p.decide(call(caller=big, amount=1, currency="USD"), now=NOW),
        DENIED,
        "payments/transfer_funds#spend.L3.per_day",
    )


async def test_spend_below_the_lowest_tier_is_insufficient_trust(policy: PolicyFactory) -> None:
    decision = await policy(SPEND).decide(call(caller=agent(level=0), amount=1, currency="USD"), now=NOW)
    assert refused(decision, LEVEL, "payments/transfer_funds#spend.tiers")
    assert decision.reason == "spending is not allowed at this trust level"


@pytest.mark.parametrize(
    "arguments",
    [
        {"currency": "USD"},
        {"amount": "5", "currency": "USD"},
        {"amount": -1, "currency": "USD"},
        {"amount": True, "currency": "USD"},
        {"amount": 1.001, "currency": "USD"},
        {"amount": 5, "currency": "EUR"},
        {"amount": 5},
    ],
    ids=["missing", "string", "negative", "bool", "three-decimals", "other-currency", "no-currency"],
)
async def test_spend_amount_and_currency_must_be_acceptable(policy: PolicyFactory, arguments: dict[str, Any]) -> None:
    decision = await policy(SPEND).decide(call(caller=agent(level=1), **arguments), now=NOW)
    assert refused(decision, DENIED, "payments/transfer_funds#spend.L1")
    assert decision.reason == "amount or currency is not acceptable"


async def test_a_refused_call_consumes_no_limit(policy: PolicyFactory) -> None:
    p = policy(spend_with("rate = ['2/hour']\n"))
    caller = agent(level=1)
    # Refused by the daily cap (45 + 10 > 50): the rate limit is not consumed either.
    assert (await p.decide(call(caller=caller, amount=9, currency="USD"), now=NOW)).allowed
    for _ in range(3):
        assert refused(await p.decide(call(caller=caller, amount=10, currency="EUR"), now=NOW), DENIED)
    assert (await p.decide(call(caller=caller, amount=9, currency="USD"), now=NOW)).allowed
    assert refused(await p.decide(call(caller=caller, amount=1, currency="USD"), now=NOW), RATE)


# --- hooks -----------------------------------------------------------------------------------------------------------


class Recorder:
    """A test hook: objects when told to, raises when told to, or sleeps past its timeout."""

    calls: ClassVar[list[str]] = []

    def __init__(self, mode: str) -> None:
        self.mode = mode

    @classmethod
    def from_policy(cls, options: dict[str, Any], *, base_dir: Path) -> Recorder:
        return cls(options["mode"])

    async def screen(self, call: CallContext, *, now: float) -> Objection | None:
        Recorder.calls.append(self.mode)
        if self.mode == "object":
            return Objection("refused by compliance screening", "test objection")
        if self.mode == "raise":
            raise RuntimeError("hook bug with secret detail")
        if self.mode == "sleep":
            await asyncio.sleep(10)
        return None


def hook(mode: str, timeout: float = 5) -> str:
    return f"hooks = [{{ hook = '{__name__}:Recorder', mode = '{mode}', timeout = {timeout} }}]\n"


async def test_hook_objection_denies_and_consumes_nothing(policy: PolicyFactory) -> None:
    counters = MemoryCounterStore()
    p = policy(TOOL + "rate = ['1/hour']\n" + hook("object"), counters)
    for _ in range(3):
        decision = await p.decide(call(), now=NOW)
        assert refused(decision, DENIED, "payments/transfer_funds#hooks[0]")
        assert decision.reason == "refused by compliance screening"
    assert len(counters) == 0  # the dry run took nothing


async def test_hook_that_raises_denies_and_is_logged(policy: PolicyFactory, caplog: pytest.LogCaptureFixture) -> None:
    p = policy(TOOL + hook("raise"))
    with caplog.at_level(logging.ERROR, logger="mcps.policy"):
        decision = await p.decide(call(), now=NOW)
    assert refused(decision, DENIED, "payments/transfer_funds#hooks[0]")
    assert decision.reason == "compliance screening could not be completed"
    assert "secret" not in decision.reason + decision.detail
    assert "payments/transfer_funds#hooks[0]" in caplog.text
    assert "RuntimeError" in caplog.text


async def test_hook_that_times_out_denies(policy: PolicyFactory) -> None:
    decision = await policy(TOOL + hook("sleep", timeout=0.05)).decide(call(), now=NOW)
    assert refused(decision, DENIED)
    assert decision.detail == "hook timed out after 0.05 s"


async def test_hooks_run_after_limits_are_checked(policy: PolicyFactory) -> None:
    Recorder.calls.clear()
    p = policy(TOOL + "rate = ['1/hour']\n" + hook("pass"))
    assert (await p.decide(call(), now=NOW)).allowed
    assert refused(await p.decide(call(), now=NOW), RATE)
    assert Recorder.calls == ["pass"]  # the rate refused the second call before the hook ran


# --- store failure ---------------------------------------------------------------------------------------------------


async def test_counter_store_that_is_down_refuses(policy: PolicyFactory, free_tcp_port: int) -> None:
    store = RedisCounterStore.from_url(f"redis://127.0.0.1:{free_tcp_port}/0")
    try:
        decision = await policy(spend_with("rate = ['100/second']\n"), store).decide(
            call(caller=agent(level=1), amount=1, currency="USD"), now=NOW
        )
        assert refused(decision, STORE)
        assert decision.reason == "policy state store is unavailable"
        assert str(free_tcp_port) not in decision.reason
        # A call that needs no counter does not ask the store.
        free = await policy("[servers.payments]\ndefault = 'allow'\n", store).decide(call("x"), now=NOW)
        assert free.allowed
    finally:
        await store.aclose()


# --- decisions, explanations, listings -------------------------------------------------------------------------------


async def test_reasons_never_echo_arguments_agents_or_tools(policy: PolicyFactory) -> None:
    p = policy(spend_with("when = 'args.note != \"x\"'\nrate = ['1/hour']\n"))
    marker = "MARKER-41"
    caller = agent(level=1, identity=f"agent-{marker}")
    decisions = [
        await p.decide(call(f"tool-{marker}", caller, amount=1, currency="USD"), now=NOW),
        await p.decide(call(caller=caller, note="x", amount=1, currency="USD"), now=NOW),
        await p.decide(call(caller=caller, amount=marker, currency="USD"), now=NOW),
        await p.decide(call(caller=caller, amount=41.41, currency="USD"), now=NOW),
        await p.decide(call(caller=caller, amount=1, currency=marker), now=NOW),
    ]
    for decision in decisions:
        assert not decision.allowed
        assert marker not in decision.reason
        assert "41" not in decision.reason
        assert marker not in decision.error().message


async def test_decision_error_carries_code_reason_and_local_rule(policy: PolicyFactory) -> None:
    decision = await policy(TOOL + "min_level = 4\n").decide(call(), now=NOW)
    error = decision.error()
    assert error.code is LEVEL
    assert error.to_jsonrpc_error() == {
        "code": -33009, "message": "trust level is insufficient", "data": {"mcps_code": "MCPS-009"},
    }  # fmt: skip
    assert "payments/transfer_funds#min_level" in error.diagnostics()
    with pytest.raises(ValueError, match="not an error"):
        Decision.allow(("x",)).error()


async def test_explain_lists_each_step_and_takes_nothing(policy: PolicyFactory) -> None:
    counters = MemoryCounterStore()
    p = policy(spend_with("rate = ['1/hour']\n"), counters)
    for _ in range(3):
        explanation = await p.explain(call(caller=agent(level=1), amount=5, currency="USD"), now=NOW)
        assert explanation.decision.allowed
    assert len(counters) == 0
    checks = [(step.rule, step.check, step.outcome) for step in explanation.steps]
    assert checks[0] == ("payments", "identity", "pass")
    assert ("payments/transfer_funds#rate[0]", "limit", "pass") in checks
    assert checks[-1][2] == "allow"
    denied = await p.explain(call(caller=agent(level=1), amount=50, currency="USD"), now=NOW)
    assert denied.steps[-1].outcome == "deny"
    assert denied.steps[-1].rule == "payments/transfer_funds#spend.L1.per_call"


async def test_tools_list_shows_only_what_the_caller_could_call(policy: PolicyFactory) -> None:
    p = policy(
        """
[servers.payments]
min_level = 1
[[servers.payments.tools]]
match = "get_*"
[[servers.payments.tools]]
match = "transfer_*"
min_level = 2
scopes_all = ["payments:write"]
when = "args.amount < 10"
[[servers.payments.tools]]
match = "drop_everything"
effect = "deny"
"""
    )
    tools: list[Any] = [
        {"name": "get_balance"}, {"name": "transfer_funds"}, {"name": "drop_everything"}, {"name": "unlisted"},
        {"title": "no name"}, "not a tool",
    ]  # fmt: skip
    names = lambda caller: [t["name"] for t in visible_tools(p, caller, "payments", tools)]  # noqa: E731
    assert names(agent(level=2)) == ["get_balance", "transfer_funds"]  # conditions depend on the call: shown
    assert names(agent(level=2, scopes=())) == ["get_balance"]
    assert names(agent(level=1)) == ["get_balance"]
    assert names(agent(level=0)) == []
    assert visible_tools(p, agent(), "other-server", tools) == []
    # A hidden tool called by name is still refused.
    assert refused(await p.decide(call("transfer_funds", agent(level=1), amount=1), now=NOW), LEVEL)
