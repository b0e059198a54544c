"""Least privilege per call: a policy decides each call — allow, or deny with a code and a reason (SPEC.md §11).

Layer 4 of the design (above :mod:`mcps.stores`, below the audit log and the bindings)::

    policy = PolicyFile.load("policy.toml", counters=MemoryCounterStore())
    decision = await policy.decide(CallContext(caller, "payments", "tools/call", "transfer", {"amount": 5}), now=now)
    if not decision.allowed:
        raise decision.error()          # MCPS-009, 010, 016 or 030, with a reason safe for the peer

* :mod:`~mcps.policy.model` — :class:`Principal`, :class:`CallContext`, :class:`Decision`, the :class:`Policy`
  protocol (one method, ``decide``), :class:`ComplianceHook`;
* :mod:`~mcps.policy.file` — :class:`PolicyFile`: the TOML policy file, validated at load;
* :mod:`~mcps.policy.engine` — the decision chain, :meth:`~RulePolicy.explain`, :func:`visible_tools` for
  ``tools/list``;
* :mod:`~mcps.policy.cel` — conditions in CEL; :mod:`~mcps.policy.limits` — rates and spend tiers;
* :mod:`~mcps.policy.sanctions` — a compliance hook screening arguments against an OFAC SDN list.

Counters live in :mod:`mcps.stores` (:class:`~mcps.stores.counters.MemoryCounterStore`, SQLite, Redis).
"""

from mcps.policy.engine import Explanation, RulePolicy, Step, visible_tools
from mcps.policy.file import PolicyFile, PolicyFileError, PolicyIssue
from mcps.policy.model import (
    CallContext,
    ComplianceHook,
    Decision,
    Effect,
    Objection,
    Policy,
    Principal,
    Reason,
    ToolVisibility,
)

__all__ = [
    "CallContext",
    "ComplianceHook",
    "Decision",
    "Effect",
    "Explanation",
    "Objection",
    "Policy",
    "PolicyFile",
    "PolicyFileError",
    "PolicyIssue",
    "Principal",
    "Reason",
    "RulePolicy",
    "Step",
    "ToolVisibility",
    "visible_tools",
]
