"""Action limits (ATTP): rates per agent, tool or both, and spend caps per trust level (SPEC.md §11.5).

* A **rate** is written ``"<count>/<unit> [burst <n>] [per agent|tool|agent-tool]"``, unit ``second``, ``minute``,
  ``hour`` or ``day``: a token bucket of ``burst`` tokens (default: ``count``) refilled at ``count`` per unit. It is
  counted per rule; ``per …`` splits the count by caller, by tool name, or by both.
* A **spend** limit names the argument that carries the amount (and optionally the one that carries the currency,
  which must then equal ``currency``), and caps per trust level: ``per_call`` (one call's amount) and ``per_day``
  (the sum of an agent's amounts under this rule in one UTC day). A caller uses the tier of the highest level listed
  at or below its own; below the lowest tier it may not spend at all. Amounts are counted exactly, in units of
  ``10**-decimals`` (default 2 decimals): an amount with more decimals is refused.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final

from mcps.core.errors import ErrorCode
from mcps.policy.model import CallContext, Reason
from mcps.stores.counters import TokenBucket, WindowSum

__all__ = ["Per", "RateLimit", "SpendLimit", "SpendTier", "SpendVerdict", "counter_key", "parse_rate"]

DAY: Final = 86_400
_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": DAY}
_RATE: Final = re.compile(
    r"\s*(?P<count>[0-9]{1,9})\s*/\s*(?P<unit>second|minute|hour|day)"
    r"(?:\s+burst\s+(?P<burst>[0-9]{1,9}))?(?:\s+per\s+(?P<per>agent-tool|agent|tool))?\s*"
)
_MAX_KEY: Final = 512


class Per(enum.Enum):
    RULE = "rule"
    AGENT = "agent"
    TOOL = "tool"
    AGENT_TOOL = "agent-tool"


def counter_key(prefix: str, *parts: str) -> str:
    """An unambiguous counter key: ``prefix`` (fixed by the policy) then each part length-prefixed (agent ids and
    tool names may hold any character); a key longer than 512 characters is replaced by its SHA-256."""
    if len(parts) == 1:
        key = f"{prefix}|{len(parts[0])}:{parts[0]}"
    else:
        key = prefix + "".join([f"|{len(part)}:{part}" for part in parts])
    if len(key) <= _MAX_KEY:
        return key
    import hashlib  # noqa: PLC0415 - rare path

    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class RateLimit:
    id: str
    text: str
    count: int
    seconds: int
    burst: int
    per: Per
    _prefix: str = field(init=False, repr=False, compare=False)
    _by_agent: bool = field(init=False, repr=False, compare=False)
    _by_tool: bool = field(init=False, repr=False, compare=False)
    _per_second: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        TokenBucket("check", self.burst, self.count / self.seconds)  # validates once, at load
        object.__setattr__(self, "_prefix", f"rate|{len(self.id)}:{self.id}|{self.per.value}")
        object.__setattr__(self, "_by_agent", self.per in (Per.AGENT, Per.AGENT_TOOL))
        object.__setattr__(self, "_by_tool", self.per in (Per.TOOL, Per.AGENT_TOOL))
        object.__setattr__(self, "_per_second", self.count / self.seconds)

    def charge(self, call: CallContext) -> TokenBucket:
        if self._by_agent:
            if self._by_tool:
                key = counter_key(self._prefix, call.caller.identity, call.tool or "")
            else:
                key = counter_key(self._prefix, call.caller.identity)
        else:
            key = counter_key(self._prefix, call.tool or "") if self._by_tool else self._prefix
        return TokenBucket(key, self.burst, self._per_second)


def parse_rate(rule_id: str, text: str) -> RateLimit:
    """``"60/minute burst 10 per agent"`` → a :class:`RateLimit`; ``ValueError`` names what is wrong."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"rate {text!r} is not '<count>/<second|minute|hour|day> [burst <n>] [per agent|tool|agent-tool]'"
        )
    count = int(match["count"])
    burst = int(match["burst"]) if match["burst"] is not None else count
    if count < 1 or burst < 1:
        raise ValueError(f"rate {text!r}: count and burst must be at least 1")
    per = Per(match["per"]) if match["per"] is not None else Per.RULE
    return RateLimit(rule_id, text.strip(), count, _UNITS[match["unit"]], burst, per)


@dataclass(frozen=True, slots=True)
class SpendTier:
    level: int
    per_call: Decimal | None
    per_day: Decimal | None


@dataclass(frozen=True, slots=True)
class SpendVerdict:
    """The outcome of assessing one call's spend: a refusal (``code`` set), or the window charge to take
    (``charge``; ``None`` when the tier has no daily cap), with the reason to give if that charge does not fit."""

    rule: str
    tier: str = ""
    code: ErrorCode | None = None
    reason: str = ""
    detail: str = ""
    charge: WindowSum | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A tier's rule ids, reasons and daily cap in counted units, worked out once at load."""

    tier: SpendTier
    id: str
    per_call_reason: str
    per_day_reason: str
    per_day_detail: str
    per_day_units: int | None


@dataclass(frozen=True, slots=True)
class SpendLimit:
    id: str
    amount_arg: str
    currency_arg: str | None
    currency: str | None
    decimals: int
    tiers: tuple[SpendTier, ...]
    """Sorted by level, ascending."""
    _plans: tuple[_Plan | None, ...] = field(init=False, repr=False, compare=False)
    _prefix: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = f" {self.currency}" if self.currency else ""
        plans: list[_Plan | None] = []
        for level in range(5):
            tier = self.tier_for(level)
            if tier is None:
                plans.append(None)
                continue
            plans.append(
                _Plan(
                    tier,
                    f"{self.id}.L{tier.level}",
                    f"{Reason.SPEND_PER_CALL.value} (L{tier.level} tier)",
                    f"{Reason.SPEND_PER_DAY.value} (L{tier.level} tier)",
                    f"today's total plus this amount would exceed the daily cap {tier.per_day}{label}",
                    self.units(tier.per_day) if tier.per_day is not None else None,
                )
            )
        object.__setattr__(self, "_plans", tuple(plans))
        object.__setattr__(self, "_prefix", f"spend|{len(self.id)}:{self.id}")

    def tier_for(self, level: int) -> SpendTier | None:
        chosen = None
        for tier in self.tiers:
            if tier.level <= level:
                chosen = tier
        return chosen

    def units(self, amount: Decimal) -> int:
        """``amount`` in counted units; ``ValueError`` if it has more decimals than the limit counts."""
        scaled = amount.scaleb(self.decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"amount has more than {self.decimals} decimal places")
        return int(scaled)

    def assess(self, call: CallContext) -> SpendVerdict:
        level = int(call.caller.level)
        plan = self._plans[level]
        if plan is None:
            return SpendVerdict(
                f"{self.id}.tiers", "", ErrorCode.INSUFFICIENT_TRUST, Reason.SPEND_LEVEL.value,
                f"no spend tier at or below L{level}",
            )  # fmt: skip
        tier, tier_id = plan.tier, plan.id
        problem = self._currency_problem(call)
        amount = _amount(call.arguments.get(self.amount_arg))
        if problem is None and amount is None:
            problem = f"argument {self.amount_arg!r} is missing or not a non-negative number"
        if problem is not None or amount is None:
            return SpendVerdict(tier_id, tier_id, ErrorCode.POLICY_DENIED, Reason.SPEND_AMOUNT.value, problem or "")
        try:
            units = self.units(amount)
        except ValueError as exc:
            return SpendVerdict(tier_id, tier_id, ErrorCode.POLICY_DENIED, Reason.SPEND_AMOUNT.value, str(exc))
        if tier.per_call is not None and amount > tier.per_call:
            label = f" {self.currency}" if self.currency else ""
            detail = f"amount {amount}{label} > per-call cap {tier.per_call}{label}"
            return SpendVerdict(f"{tier_id}.per_call", tier_id, ErrorCode.POLICY_DENIED, plan.per_call_reason, detail)
        if plan.per_day_units is None:
            return SpendVerdict(tier_id, tier_id)
        key = counter_key(self._prefix, call.caller.identity)
        charge = WindowSum(key, plan.per_day_units, DAY, units)
        # The reason and detail are used only if the charge does not fit.
        return SpendVerdict(f"{tier_id}.per_day", tier_id, None, plan.per_day_reason, plan.per_day_detail, charge)

    def _currency_problem(self, call: CallContext) -> str | None:
        if self.currency_arg is None:
            return None
        value = call.arguments.get(self.currency_arg)
        if value != self.currency or not isinstance(value, str):
            return f"argument {self.currency_arg!r} is not {self.currency!r}"
        return None


def _amount(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        amount = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    except InvalidOperation:
        return None
    return amount if amount >= 0 else None
