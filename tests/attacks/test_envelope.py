"""Runner for the envelope table: :class:`mcps.MessageVerifier` (pinned keys, in-memory nonces, fixed clock)
accepts every control scenario and refuses the last message of each attack with the case's code."""

from __future__ import annotations

import pytest

from mcps import MemoryNonceStore, MessageVerifier, PinnedKeys
from mcps.core.errors import McpsError

from .cases_envelope import CASES, Scenario
from .corpus import Case, assert_carries_canary, assert_no_canary, case_params
from .pki import NOW


def verifier(scenario: Scenario) -> MessageVerifier:
    return MessageVerifier(
        audience=scenario.audience, keys=PinnedKeys(scenario.keys), nonces=MemoryNonceStore(), clock=lambda: NOW
    )


@pytest.mark.parametrize("case", case_params(CASES))
async def test_envelope_attack(case: Case[Scenario]) -> None:
    control = case.build(False)
    checker = verifier(control)
    for step in control.steps:
        await checker.verify(step.raw, in_reply_to=step.in_reply_to)

    attack = case.build(True)
    *before, last = attack.steps
    checker = verifier(attack)
    for step in before:
        await checker.verify(step.raw, in_reply_to=step.in_reply_to)
    assert_carries_canary(last.raw)
    with pytest.raises(McpsError) as refused:
        await checker.verify(last.raw, in_reply_to=last.in_reply_to)
    assert refused.value.code is case.code, refused.value.diagnostics()
    assert_no_canary(refused.value)
