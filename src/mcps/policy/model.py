"""What a policy decides on and what it answers: :class:`Principal`, :class:`CallContext`, :class:`Decision`.

A policy is a pure function of (who calls, which server, which method and tool, which arguments, when) → a
:class:`Decision` carried as data: allow, or deny with an MCPS code, a reason that is safe to send to the peer, a
local detail, and the ids of the rules that decided (SPEC.md §11). Apart from its counter store and its compliance
hooks it has no state and no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable

from mcps.core.errors import ErrorCode, McpsError
from mcps.identity.chains import VerifiedAgent
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import PassportClaims

__all__ = [
    "CallContext",
    "ComplianceHook",
    "Decision",
    "Effect",
    "Objection",
    "Policy",
    "Principal",
    "Reason",
    "ToolVisibility",
    "passport_claims",
]

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller, as the policy sees it.

    ``identity`` is the agent id (the passport's ``sub``), or the key id of a caller known only by a pinned key;
    ``kid`` the key that signed (``None`` for an unsigned client); ``level`` the effective trust level; ``issuer``
    the passport's ``iss`` (``None`` without a passport); ``claims`` the passport's claims, read-only (empty without
    a passport); ``signed`` is False only for an unsigned client that a gateway admits, which is always L0.
    """

    identity: str
    kid: str | None
    level: TrustLevel
    scopes: frozenset[str] = frozenset()
    issuer: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    signed: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", TrustLevel.parse(int(self.level)))
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        if not isinstance(self.claims, MappingProxyType):
            object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))
        if not self.signed and (self.level != TrustLevel.L0 or self.kid is not None):
            raise ValueError("an unsigned caller is L0 and has no key")

    @classmethod
    def from_agent(cls, agent: VerifiedAgent, kid: str) -> Principal:
        """A caller whose key was resolved through a verified passport path."""
        return cls(
            identity=agent.agent_id,
            kid=kid,
            level=agent.level,
            scopes=agent.scopes,
            issuer=agent.passport.iss,
            claims=passport_claims(agent.passport),
        )

    @classmethod
    def pinned(cls, kid: str, *, level: TrustLevel = TrustLevel.L0, scopes: frozenset[str] = frozenset()) -> Principal:
        """A caller known only by a pinned key: its identity is its kid; its level and scopes are what the
        deployment grants pinned keys (by default L0 and none: a pinned key proves who, not how far trusted)."""
        return cls(identity=kid, kid=kid, level=level, scopes=scopes)

    @classmethod
    def unsigned(cls, identity: str) -> Principal:
        """An unsigned client a gateway admits: always L0, no key, no scopes, no passport."""
        return cls(identity=identity, kid=None, level=TrustLevel.L0, signed=False)


def passport_claims(claims: PassportClaims) -> Mapping[str, Any]:
    """The passport's claims in their wire form (SPEC.md §7.3), as far as the verified passport keeps them."""
    out: dict[str, Any] = {
        "iss": claims.iss,
        "sub": claims.sub,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "exp": claims.exp,
        "jti": claims.jti,
        "mcps_tl": int(claims.level),
        "scope": " ".join(sorted(claims.scopes)),
    }
    if claims.aud is not None:
        out["aud"] = list(claims.aud)
    if claims.agent is not None:
        out["agent"] = {"name": claims.agent.name, "version": claims.agent.version}
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class CallContext:
    """One call to decide on. ``server`` names the server the call is for (a gateway's upstream name, or a signed
    server's own identity); ``tool`` is the tool of a ``tools/call`` (``None`` for other methods); ``arguments``
    the call's arguments as parsed (I-JSON: integers stay integers)."""

    caller: Principal
    server: str
    method: str
    tool: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Reason(enum.StrEnum):
    """Every reason a decision may give a peer: fixed sentences that never carry argument values, agent ids or tool
    names. Spend reasons name the cap; the level in them is the caller's own."""

    ALLOWED = "allowed by policy"
    UNKNOWN_SERVER = "server is not covered by the policy"
    CALLER_NOT_ALLOWED = "caller is not allowed by policy"
    LEVEL = "trust level is insufficient"
    SCOPE = "a required scope is missing"
    TOOL_NOT_ALLOWED = "tool is not allowed by policy"
    CONDITION = "a condition of the policy is not met"
    RATE = "rate limit exceeded"
    SPEND_LEVEL = "spending is not allowed at this trust level"
    SPEND_AMOUNT = "amount or currency is not acceptable"
    SPEND_PER_CALL = "per-call spend cap exceeded"
    SPEND_PER_DAY = "daily spend cap exceeded"
    COMPLIANCE = "refused by compliance screening"
    COMPLIANCE_FAILED = "compliance screening could not be completed"
    STORE = "policy state store is unavailable"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, as data. ``reason`` is safe for the peer; ``detail`` stays local; ``rules`` are the ids of
    the rules that decided, the deciding one last ("why was this denied?" is ``rules[-1]``)."""

    effect: Effect
    code: ErrorCode | None
    reason: str
    detail: str = ""
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.effect is Effect.ALLOW) != (self.code is None):
            raise ValueError("an allow has no code; a deny has one")

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    @classmethod
    def allow(cls, rules: tuple[str, ...], detail: str = "") -> Decision:
        return cls(Effect.ALLOW, None, Reason.ALLOWED.value, detail, rules)

    @classmethod
    def deny(cls, code: ErrorCode, reason: Reason | str, detail: str, rules: tuple[str, ...]) -> Decision:
        return cls(Effect.DENY, code, reason.value if isinstance(reason, Reason) else reason, detail, rules)

    def error(self) -> McpsError:
        """The refusal to send for a deny (its message is :attr:`reason`); raises ``ValueError`` for an allow."""
        if self.code is None:
            raise ValueError("an allow is not an error")
        where = f"rule {self.rules[-1]}" if self.rules else "policy"
        return McpsError(self.code, self.reason, detail=f"{where}: {self.detail}" if self.detail else where)


@runtime_checkable
class Policy(Protocol):
    """Decides one call. Pure apart from its counter store and hooks: limits are taken only when the decision is
    allow; a counter store that cannot answer is a deny (MCPS-030); a hook that fails is a deny."""

    async def decide(self, call: CallContext, *, now: float) -> Decision: ...


@runtime_checkable
class ToolVisibility(Protocol):
    """A policy that can tell, without a call, whether a caller could ever be allowed a tool (for ``tools/list``)."""

    def could_allow(self, caller: Principal, server: str, tool: str) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Objection:
    """A compliance hook's refusal: a peer-safe ``reason`` (no argument values) and a local ``detail``."""

    reason: str
    detail: str
    code: ErrorCode = ErrorCode.POLICY_DENIED


@runtime_checkable
class ComplianceHook(Protocol):
    """A check run after the rules and limits, given the same call, that may object. An exception (or a timeout) is
    a deny: hooks fail closed. A hook is loaded from a policy file by dotted path (``module:Class``), through
    ``Class.from_policy(options, base_dir=...)``, which raises ``ValueError`` for bad options."""

    async def screen(self, call: CallContext, *, now: float) -> Objection | None: ...
