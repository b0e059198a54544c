"""Runner for the grants table: an upstream's :class:`SecureChannel` that requires grants for ``rm_rf`` delivers
each control with its grant verified, and answers each attack with a signed refusal carrying the case's code."""

from __future__ import annotations

from typing import Any

import pytest

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, GrantRequirement, SecureChannel
from mcps.bindings.channel import Inbound
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId
from mcps.identity.grants import GrantVerifier

from .cases_grants import CASES, GrantScenario
from .corpus import Case, assert_carries_canary, assert_no_canary, case_params
from .pki import AGENT, GATEWAY, NOW, SERVER, SERVER_ID


class DownStore:
    """A nonce store that cannot answer."""

    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="grant store is down (test)")

    async def aclose(self) -> None:
        return None


def replicas(scenario: GrantScenario) -> list[SecureChannel]:
    """Two upstream replicas: own message nonces, one shared grant store."""
    grant_store: Any = DownStore() if scenario.store_down else MemoryNonceStore()
    verifier = GrantVerifier(issuers=[GATEWAY.public_key], audience=SERVER_ID, nonces=grant_store, clock=lambda: NOW)
    return [
        SecureChannel(
            ChannelSecurity(
                key=SERVER,
                identity=SERVER_ID,
                trusted=PinnedKeys([AGENT.public_key]),
                nonces=MemoryNonceStore(),
                grants=GrantRequirement(verifier, tools={"rm_rf"}),
                clock=lambda: NOW,
            ),
            peer=None,
        )
        for _ in range(2)
    ]


def assert_delivered_with_grant(decision: Inbound) -> None:
    assert decision.reply is None, decision.reply
    assert decision.deliver is not None
    assert decision.caller is not None
    if decision.deliver["params"]["name"] == "rm_rf":
        assert decision.caller.grant is not None


@pytest.mark.parametrize("case", case_params(CASES))
async def test_grant_attack(case: Case[GrantScenario]) -> None:
    control = case.build(False)
    servers = replicas(control)
    for sent in control.sent:
        assert_delivered_with_grant(await servers[sent.replica].receive_raw(sent.raw))

    attack = case.build(True)
    servers = replicas(attack)
    *before, last = attack.sent
    for sent in before:
        assert_delivered_with_grant(await servers[sent.replica].receive_raw(sent.raw))
    assert_carries_canary(last.raw)
    decision = await servers[last.replica].receive_raw(last.raw)
    assert decision.deliver is None, "the attack reached the SDK"
    assert decision.reply is not None
    assert decision.reply["error"]["data"]["mcps_code"] == case.code.mcps  # type: ignore[union-attr]
    assert_no_canary(decision.reply)
