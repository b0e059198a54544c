"""Hop records (SPEC.md §12.3–12.4): countersign a forwarded message, verify the chain, refuse each defect."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mcps.core.envelope import GRANT_KEY, VIA_KEY, PinnedKeys, sign_message
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.hops import countersign, grant_hash, verify_hops
from mcps.core.keys import Algorithm, PrivateKey

NOW = 1_763_683_200
AGENT = PrivateKey.generate(Algorithm.EDDSA)
GATEWAY = PrivateKey.generate(Algorithm.ES256)
EDGE = PrivateKey.generate(Algorithm.EDDSA)
OTHER = PrivateKey.generate(Algorithm.EDDSA)
UPSTREAM_ID = "urn:example:payments"
GATEWAY_ID = "urn:mcps:gateway:test"
EDGE_ID = "urn:mcps:gateway:edge"
TRUSTED = PinnedKeys([GATEWAY.public_key, EDGE.public_key])
CALL: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "transfer", "arguments": {"amount": 125, "to": "acct-2"}},
}


def _signed() -> dict[str, Any]:
    return sign_message(CALL, AGENT, audience=UPSTREAM_ID, now=NOW)


def _forwarded(**options: Any) -> dict[str, Any]:
    return countersign(_signed(), GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW, **options)


def _verify(message: dict[str, Any], *, required: bool = True, names: tuple[str, ...] = (UPSTREAM_ID,)) -> Any:
    return verify_hops(message, keys=TRUSTED, names=names, now=NOW, skew=30, required=required)


def _code(message: dict[str, Any], **options: Any) -> ErrorCode:
    with pytest.raises(McpsError) as refusal:
        _verify(message, **options)
    return refusal.value.code


def _record(message: dict[str, Any], index: int = -1) -> dict[str, Any]:
    via: list[dict[str, Any]] = message["params"]["_meta"][VIA_KEY]
    return via[index]


def test_a_countersigned_message_verifies_and_reports_its_hop() -> None:
    hops = _verify(_forwarded())
    assert [(hop.iss, hop.aud, hop.on_behalf, hop.grant) for hop in hops] == [(GATEWAY_ID, UPSTREAM_ID, False, None)]


def test_countersigning_leaves_the_agent_signature_and_the_input_untouched() -> None:
    signed = _signed()
    before = copy.deepcopy(signed)
    forwarded = countersign(signed, GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW)
    assert signed == before
    assert forwarded["params"]["_meta"]["mcps/sig"] == signed["params"]["_meta"]["mcps/sig"]


def test_two_gateways_chain_and_each_names_the_next() -> None:
    edge = countersign(_signed(), EDGE, identity=EDGE_ID, audience=GATEWAY_ID, now=NOW)
    both = countersign(edge, GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW + 1)
    assert [hop.iss for hop in _verify(both)] == [EDGE_ID, GATEWAY_ID]


def test_no_hops_is_refused_only_when_required() -> None:
    assert _verify(_signed(), required=False) == ()
    assert _code(_signed()) is ErrorCode.HOP_INVALID


def test_a_substituted_gateway_key_is_unknown() -> None:
    forged = countersign(_signed(), OTHER, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW)
    assert _code(forged) is ErrorCode.UNKNOWN_KEY


def test_a_changed_record_member_breaks_its_signature() -> None:
    forwarded = _forwarded()
    _record(forwarded)["iss"] = "urn:mcps:gateway:evil"
    assert _code(forwarded) is ErrorCode.BAD_SIGNATURE


def test_a_record_moved_onto_another_message_does_not_verify() -> None:
    record = _record(_forwarded())
    other = _signed()  # same call, new nonce: a new block sig
    other["params"]["_meta"][VIA_KEY] = [record]
    assert _code(other) is ErrorCode.BAD_SIGNATURE


def test_a_record_for_another_receiver_is_refused() -> None:
    assert _code(_forwarded(), names=("urn:example:other",)) is ErrorCode.AUDIENCE_MISMATCH


def test_broken_chain_is_refused() -> None:
    edge = countersign(_signed(), EDGE, identity=EDGE_ID, audience="urn:somewhere:else", now=NOW)
    both = countersign(edge, GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW)
    assert _code(both) is ErrorCode.HOP_INVALID


def test_on_behalf_needs_the_hop_to_have_made_the_block() -> None:
    assert _code(_forwarded(on_behalf=True)) is ErrorCode.HOP_INVALID
    own = sign_message(CALL, GATEWAY, audience=UPSTREAM_ID, now=NOW)
    made = countersign(own, GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW, on_behalf=True)
    assert _verify(made)[0].on_behalf is True


def test_a_record_from_the_future_or_too_old_is_refused() -> None:
    ahead = countersign(_signed(), GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW + 31)
    assert _code(ahead) is ErrorCode.TIMESTAMP_OUT_OF_WINDOW
    before_block = countersign(_signed(), GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW - 31)
    assert _code(before_block) is ErrorCode.TIMESTAMP_OUT_OF_WINDOW


@pytest.mark.parametrize(
    ("defect", "mutate", "code"),
    [
        ("via-not-an-array", lambda meta: meta.__setitem__(VIA_KEY, {}), ErrorCode.HOP_INVALID),
        ("via-empty", lambda meta: meta.__setitem__(VIA_KEY, []), ErrorCode.HOP_INVALID),
        ("via-too-long", lambda meta: meta.__setitem__(VIA_KEY, meta[VIA_KEY] * 5), ErrorCode.HOP_INVALID),
        ("record-unknown-member", lambda meta: meta[VIA_KEY][0].__setitem__("x", 1), ErrorCode.HOP_INVALID),
        ("record-missing-iat", lambda meta: meta[VIA_KEY][0].pop("iat"), ErrorCode.HOP_INVALID),
        ("record-iat-bool", lambda meta: meta[VIA_KEY][0].__setitem__("iat", True), ErrorCode.HOP_INVALID),
        ("record-on-behalf-int", lambda meta: meta[VIA_KEY][0].__setitem__("on_behalf", 0), ErrorCode.HOP_INVALID),
        ("record-v2", lambda meta: meta[VIA_KEY][0].__setitem__("v", 2), ErrorCode.NO_COMMON_VERSION),
        ("record-v-true", lambda meta: meta[VIA_KEY][0].__setitem__("v", True), ErrorCode.HOP_INVALID),
        ("record-alg-none", lambda meta: meta[VIA_KEY][0].__setitem__("alg", "none"), ErrorCode.ALGORITHM_MISMATCH),
        ("record-alg-swapped", lambda meta: meta[VIA_KEY][0].__setitem__("alg", "EdDSA"), ErrorCode.ALGORITHM_MISMATCH),
        ("record-kid-padded", lambda meta: meta[VIA_KEY][0].__setitem__("kid", "A="), ErrorCode.HOP_INVALID),
        (
            "record-receipt-index-bool",
            lambda meta: meta[VIA_KEY][0].__setitem__("receipt", {"log": "l", "index": True, "leaf": "A" * 43}),
            ErrorCode.HOP_INVALID,
        ),
    ],
)
def test_malformed_records_are_refused_with_their_code(defect: str, mutate: Any, code: ErrorCode) -> None:
    forwarded = _forwarded()
    mutate(forwarded["params"]["_meta"])
    assert _code(forwarded) is code, defect


def test_the_grant_carried_must_be_the_one_the_last_hop_attached() -> None:
    with_grant = _forwarded(grant="token-a")
    with_grant["params"]["_meta"][GRANT_KEY] = "token-a"
    assert _verify(with_grant)[0].grant == grant_hash("token-a")
    swapped = _forwarded(grant="token-a")
    swapped["params"]["_meta"][GRANT_KEY] = "token-b"
    assert _code(swapped) is ErrorCode.GRANT_MISMATCH
    unannounced = _forwarded()
    unannounced["params"]["_meta"][GRANT_KEY] = "token-a"
    assert _code(unannounced) is ErrorCode.GRANT_MISMATCH
    dropped = _forwarded(grant="token-a")
    assert _code(dropped) is ErrorCode.GRANT_INVALID


def test_a_receipt_is_covered_by_the_record() -> None:
    receipt = {"log": "mcps.audit/x", "index": 4, "leaf": "A" * 43}
    forwarded = _forwarded(receipt=receipt)
    assert _verify(forwarded)[0].receipt == receipt
    _record(forwarded)["receipt"]["index"] = 5
    assert _code(forwarded) is ErrorCode.BAD_SIGNATURE


def test_responses_carry_hops_in_result_meta() -> None:
    request = _signed()
    agent_sig = request["params"]["_meta"]["mcps/sig"]["sig"]
    upstream = PrivateKey.generate(Algorithm.EDDSA)
    result = {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
    answer = sign_message(result, upstream, audience="agent-7", now=NOW, in_reply_to=agent_sig)
    forwarded = countersign(answer, GATEWAY, identity=GATEWAY_ID, audience="agent-7", now=NOW)
    assert VIA_KEY in forwarded["result"]["_meta"]
    assert _verify(forwarded, names=("agent-7",))[0].iss == GATEWAY_ID


def test_only_a_signed_message_can_be_countersigned() -> None:
    with pytest.raises(McpsError) as refusal:
        countersign(CALL, GATEWAY, identity=GATEWAY_ID, audience=UPSTREAM_ID, now=NOW)
    assert refusal.value.code is ErrorCode.SIGNATURE_MISSING
