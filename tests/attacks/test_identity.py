"""Runner for the identity table: a :class:`MessageVerifier` resolving signers through passports (or, for trust on
first use, through :class:`UnsafeTrustOnFirstUse`) accepts each control and refuses each attack with its code."""

from __future__ import annotations

import warnings

import pytest

from mcps import MemoryNonceStore, MessageVerifier
from mcps.bindings.tofu import UnsafeTrustWarning
from mcps.core.envelope import KeyResolver
from mcps.core.errors import McpsError
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import MemoryRevocationStore

from .cases_identity import CASES, IdScenario
from .corpus import Case, assert_carries_canary, assert_no_canary, case_params
from .pki import SERVER_ID


async def prepare(scenario: IdScenario) -> MessageVerifier:
    revocations = MemoryRevocationStore()
    for key in scenario.revoked:
        await revocations.revoke(key, now=scenario.clock())
    if scenario.store_down:
        await revocations.aclose()
    keys: KeyResolver
    if scenario.resolver is not None:
        keys = scenario.resolver()
    else:
        keys = PassportResolver(
            anchors=scenario.anchors, audience=SERVER_ID, revocations=revocations, min_level=scenario.min_level
        )
    if scenario.setup is not None:
        await scenario.setup()
    return MessageVerifier(audience=scenario.audience, keys=keys, nonces=MemoryNonceStore(), clock=scenario.clock)


async def run(scenario: IdScenario) -> McpsError | None:
    """Verify every message; ``None`` when all are accepted, else the refusal of the last (earlier ones must pass)."""
    verifier = await prepare(scenario)
    *before, last = scenario.messages
    for raw in before:
        await verifier.verify(raw)
    if scenario.before_last is not None:
        await scenario.before_last()
    try:
        await verifier.verify(last)
    except McpsError as error:
        return error
    return None


@pytest.mark.parametrize("case", case_params(CASES))
async def test_identity_attack(case: Case[IdScenario]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafeTrustWarning)  # trust on first use warns on every use, by design
        accepted = await run(case.build(False))
        attack = case.build(True)
        assert_carries_canary(attack.messages[-1])
        refused = await run(attack)
    assert accepted is None, accepted.diagnostics()
    assert refused is not None, "the attack was accepted"
    assert refused.code is case.code, refused.diagnostics()
    assert_no_canary(refused)
