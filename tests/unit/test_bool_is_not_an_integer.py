"""Wherever the spec reads an integer, a JSON ``true``/``false`` is refused (issue 9 §1.5).

In Python ``bool`` is a subclass of ``int`` and ``True == 1``, so ``isinstance(x, int)`` or ``x != 1`` lets
``"v": true`` through as version 1. Every reader of an integer member is swept here, one case per member, each
with a positive control: the same input with the integer is accepted, so a refusal can only come from the bool.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcps.audit.entry import AuditEvent, build_entry, parse_entry
from mcps.audit.evidence import check_evidence
from mcps.audit.log import Receipt
from mcps.audit.otel import span_attributes
from mcps.bindings.tofu import UnsafeTrustOnFirstUse
from mcps.core.encoding import b64u_decode
from mcps.core.envelope import PinnedKeys, sign_message
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey
from mcps.core.tools import dump_lockfile, parse_lockfile, sign_tool, verify_tool
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.grants import GRANT_KEY, GRANT_TYP, GrantVerifier, mint_grant
from mcps.identity.jws import sign_compact
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import PASSPORT_TYP, issue_passport, parse_passport
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import (
    REVOCATION_LIST_TYP,
    MemoryRevocationStore,
    issue_revocation_list,
    verify_revocation_list,
)
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageVerifier

AUD = "https://tools.example/mcp"
NOW = 1_763_683_200
KEY = PrivateKey.generate()
ISSUER = PrivateKey.generate()
AUDIT_VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "audit" / "audit-log.json").read_text())
AUDIT_KEY = PublicKey.from_jwk({k: AUDIT_VECTORS["test_key_jwk"][k] for k in ("kty", "crv", "x")})


def claims_of(token: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(b64u_decode(token.split(".")[1]))
    return value


# --- the message envelope (SPEC §4) ------------------------------------------------------------------------------


def signed(edit: Callable[[dict[str, Any]], None]) -> bytes:
    message = sign_message({"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {}}, KEY, audience=AUD, now=NOW)
    edit(message)
    return json.dumps(message).encode()


async def envelope_code(raw: bytes) -> ErrorCode | None:
    verifier = MessageVerifier(
        audience=AUD, keys=PinnedKeys([KEY.public_key]), nonces=MemoryNonceStore(), clock=lambda: NOW
    )
    try:
        await verifier.verify(raw)
    except McpsError as exc:
        return exc.code
    return None


def _set_block(member: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(message: dict[str, Any]) -> None:
        message["params"]["_meta"]["mcps/sig"][member] = value

    return edit


def _set_id(value: object) -> Callable[[dict[str, Any]], None]:
    def edit(message: dict[str, Any]) -> None:
        message["id"] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (_set_block("v", True), ErrorCode.SIGNATURE_MALFORMED),
        (_set_block("iat", True), ErrorCode.SIGNATURE_MALFORMED),
        (_set_block("exp", True), ErrorCode.SIGNATURE_MALFORMED),
        (_set_id(True), ErrorCode.NOT_JSONRPC),
        (_set_id(False), ErrorCode.NOT_JSONRPC),
    ],
    ids=["block-v", "block-iat", "block-exp", "id-true", "id-false"],
)
async def test_envelope_integer_members_refuse_a_bool(edit: Callable[[dict[str, Any]], None], code: ErrorCode) -> None:
    assert await envelope_code(signed(lambda message: None)) is None
    assert await envelope_code(signed(edit)) is code


# --- passports, grants, revocation lists, anchors (SPEC §7) --------------------------------------------------------


@pytest.mark.parametrize("claim", ["iat", "nbf", "exp", "mcps_tl"])
def test_passport_integer_claim_refuses_a_bool(claim: str) -> None:
    token = issue_passport(ISSUER, iss="i", sub="a", agent_key=KEY.public_key, level=1, scopes=(), now=0, ttl=3600)
    claims = claims_of(token)
    parse_passport(sign_compact({**claims, claim: claims[claim]}, ISSUER, typ=PASSPORT_TYP))
    with pytest.raises(McpsError) as caught:
        parse_passport(sign_compact({**claims, claim: True}, ISSUER, typ=PASSPORT_TYP))
    assert caught.value.code is ErrorCode.PASSPORT_MALFORMED


@pytest.mark.parametrize("claim", ["tl", "iat", "exp"])
async def test_grant_integer_claim_refuses_a_bool(claim: str) -> None:
    request = sign_message(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {}}},
        KEY,
        audience="gateway",
        now=NOW,
    )
    sig = request["params"]["_meta"]["mcps/sig"]["sig"]
    token = mint_grant(
        ISSUER, iss="gw", sub="a", aud=AUD, tool="t", arguments={}, request_sig=sig, level=1, scopes=(), now=NOW
    )
    claims = claims_of(token)
    verifier = GrantVerifier(issuers=[ISSUER.public_key], audience=AUD, nonces=MemoryNonceStore(), clock=lambda: NOW)

    def with_grant(value: object) -> dict[str, Any]:
        message = copy.deepcopy(request)
        message["params"]["_meta"][GRANT_KEY] = sign_compact({**claims, claim: value}, ISSUER, typ=GRANT_TYP)
        return message

    if claim == "tl":  # `true` would read as L1: use the L1 grant as the control
        assert (await verifier.verify_request(with_grant(1), agent="a")).level == TrustLevel.L1
    with pytest.raises(McpsError) as caught:
        await verifier.verify_request(with_grant(True), agent="a")
    assert caught.value.code is ErrorCode.GRANT_INVALID


@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_revocation_list_integer_claim_refuses_a_bool(claim: str) -> None:
    anchors = TrustAnchors([TrustAnchor(ISSUER.public_key, TrustLevel.L2)])
    claims = claims_of(issue_revocation_list(ISSUER, iss="i", jtis=["j"], now=1))
    assert verify_revocation_list(sign_compact(claims, ISSUER, typ=REVOCATION_LIST_TYP), anchors=anchors, now=1)
    with pytest.raises(McpsError) as caught:
        verify_revocation_list(
            sign_compact({**claims, claim: True}, ISSUER, typ=REVOCATION_LIST_TYP), anchors=anchors, now=1
        )
    assert caught.value.code is ErrorCode.PASSPORT_MALFORMED


def test_anchor_max_level_refuses_a_bool() -> None:
    assert TrustAnchors.from_jwks({"keys": [{**ISSUER.public_key.to_jwk(), "mcps_max_tl": 1}]})
    with pytest.raises(McpsError) as caught:
        TrustAnchors.from_jwks({"keys": [{**ISSUER.public_key.to_jwk(), "mcps_max_tl": True}]})
    assert caught.value.code is ErrorCode.UNKNOWN_KEY


@pytest.mark.parametrize(
    "make",
    [
        lambda level: issue_passport(ISSUER, iss="i", sub="a", agent_key=KEY.public_key, level=level, scopes=(), now=0),
        lambda level: mint_grant(
            ISSUER, iss="g", sub="a", aud=AUD, tool="t", arguments={}, request_sig="s", level=level, scopes=(), now=0
        ),
        lambda level: PassportResolver(
            anchors=TrustAnchors([]), audience=AUD, revocations=MemoryRevocationStore(), min_level=level
        ),
        lambda level: TrustAnchor(ISSUER.public_key, level),
        TrustLevel.parse,
    ],
    ids=["issue_passport", "mint_grant", "PassportResolver-min_level", "TrustAnchor", "TrustLevel.parse"],
)
def test_level_given_as_a_bool_is_refused_not_read_as_l1(make: Callable[[object], object]) -> None:
    make(1)
    make(TrustLevel.L1)
    with pytest.raises(ValueError, match=r"0\.\.4"):
        make(True)


# --- tools: signatures and the lock file (SPEC §10) ----------------------------------------------------------------


@pytest.mark.parametrize("member", ["v", "iat"])
def test_tool_signature_integer_member_refuses_a_bool(member: str) -> None:
    tool = sign_tool({"name": "t", "inputSchema": {"type": "object"}}, KEY, now=NOW)
    verify_tool(tool, KEY.public_key)
    tool["_meta"]["mcps/tool-sig"][member] = True
    with pytest.raises(McpsError) as caught:
        verify_tool(tool, KEY.public_key)
    assert caught.value.code is ErrorCode.TOOL_CHANGED


def test_lock_file_version_true_is_refused() -> None:
    text = '{"mcps_lock": %s, "servers": {}}'
    assert parse_lockfile(text % "1").servers == {}
    with pytest.raises(ValueError, match=r"mcps\.lock"):
        parse_lockfile(text % "true")
    assert parse_lockfile(dump_lockfile(parse_lockfile(text % "1"))).servers == {}


def test_known_keys_file_version_true_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "known_keys.json"
    path.write_text('{"mcps_known_keys": true, "servers": {}}')
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match="mcps_known_keys"):
        UnsafeTrustOnFirstUse("urn:example:server", path=path)


# --- audit: entries, events, evidence, receipts, exporters (SPEC §8) ----------------------------------------------


@pytest.mark.parametrize("member", ["v", "index", "time"])
def test_stored_entry_integer_member_refuses_a_bool(member: str) -> None:
    data = build_entry(AuditEvent(event="call"), index=1, prev=None, time_ms=1)
    assert parse_entry(data)[member] == 1
    with pytest.raises(ValueError, match="v, index or time"):
        parse_entry(data.replace(f'"{member}":1'.encode(), f'"{member}":true'.encode()))


@pytest.mark.parametrize("member", ["trust_level", "latency_ms", "request_id"])
def test_audit_event_integer_member_refuses_a_bool(member: str) -> None:
    AuditEvent.from_json({"event": "call", member: 1})
    with pytest.raises(McpsError) as caught:
        AuditEvent.from_json({"event": "call", member: True})
    assert caught.value.code is ErrorCode.MALFORMED_JSON


@pytest.mark.parametrize("member", ["v", "index"])
def test_evidence_integer_member_refuses_a_bool(member: str) -> None:
    evidence = dict(AUDIT_VECTORS["evidence"])
    assert check_evidence(json.dumps(evidence).encode(), AUDIT_KEY).index == evidence["index"]
    evidence[member] = True
    with pytest.raises(McpsError) as caught:
        check_evidence(json.dumps(evidence).encode(), AUDIT_KEY)
    assert caught.value.code is ErrorCode.AUDIT_INVALID


def test_evidence_with_v_true_is_refused_in_every_form() -> None:
    evidence = json.dumps({**AUDIT_VECTORS["evidence"], "v": True})
    assert '"v": true' in evidence
    for form in (evidence.encode(), json.loads(evidence)):
        with pytest.raises(McpsError) as caught:
            check_evidence(form, AUDIT_KEY)
        assert "version 1" in (caught.value.detail or "")


def test_receipt_index_refuses_a_bool() -> None:
    receipt = {"log": "l", "index": 1, "leaf": AUDIT_VECTORS["entries"][1]["leaf"]}
    assert Receipt.from_json(receipt).index == 1
    with pytest.raises(ValueError, match="integer"):
        Receipt.from_json({**receipt, "index": True})


def test_otel_exports_no_bool_as_a_request_id_or_index() -> None:
    attributes = span_attributes({"request_id": True, "index": True, "trust_level": True, "method": "m"})
    assert "jsonrpc.request.id" not in attributes
    assert "mcps.audit.index" not in attributes
    assert "mcps.audit.trust_level" not in attributes
    assert span_attributes({"request_id": 1, "index": 2})["jsonrpc.request.id"] == "1"


# --- the other side: an integer respelled (1.0, 1e0) is still that integer (SPEC §3) --------------------------------


@pytest.mark.parametrize("spelling", ["1.0", "1e0", "10e-1"])
def test_lock_file_version_respelled_is_version_1(spelling: str) -> None:
    assert parse_lockfile(f'{{"mcps_lock": {spelling}, "servers": {{}}}}').servers == {}
    with pytest.raises(ValueError, match=r"mcps\.lock"):
        parse_lockfile('{"mcps_lock": 1.5, "servers": {}}')


@pytest.mark.parametrize("spelling", ["1.0", "1e0", "10e-1"])
def test_evidence_version_respelled_is_version_1(spelling: str) -> None:
    text = json.dumps(AUDIT_VECTORS["evidence"]).replace('"v": 1,', f'"v": {spelling},', 1)
    assert f'"v": {spelling},' in text
    assert check_evidence(text.encode(), AUDIT_KEY).index == AUDIT_VECTORS["evidence"]["index"]
    with pytest.raises(McpsError) as caught:
        check_evidence(text.replace(f'"v": {spelling},', '"v": 1.5,').encode(), AUDIT_KEY)
    assert caught.value.code is ErrorCode.AUDIT_INVALID
