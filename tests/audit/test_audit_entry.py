"""Entry schema: what callers may record, what the log adds, and receipts."""

from __future__ import annotations

import json

import pytest

from mcps.audit.entry import AuditEvent, build_entry, json_hash, parse_entry
from mcps.audit.log import Receipt
from mcps.audit.merkle import leaf_hash
from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError


def test_entry_is_jcs_with_log_members() -> None:
    event = AuditEvent(event="call", tool="t", arguments={"b": 1, "a": 2}, args_hash=json_hash({"b": 1, "a": 2}))
    prev = leaf_hash(b"x")
    data = build_entry(event, index=7, prev=prev, time_ms=1234)
    entry = json.loads(data)
    assert canonicalize(entry) == data
    assert (entry["v"], entry["index"], entry["prev"], entry["time"]) == (1, 7, b64u_encode(prev), 1234)
    assert "result" not in entry  # absent members are left out
    assert parse_entry(data) == entry


@pytest.mark.parametrize(
    "fields",
    [
        {"event": "Call"},
        {"event": ""},
        {"event": "call", "trust_level": 5},
        {"event": "call", "trust_level": True},
        {"event": "call", "request_id": 1.5},
        {"event": "call", "args_hash": "short"},
        {"event": "call", "decision": "maybe"},
        {"event": "call", "code": "E42"},
        {"event": "call", "latency_ms": -1},
        {"event": "call", "arguments": [1]},
        {"event": "call", "tool": "x" * 1025},
    ],
)
def test_bad_events_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(McpsError) as caught:
        AuditEvent.from_json(fields)
    assert caught.value.code is ErrorCode.MALFORMED_JSON


@pytest.mark.parametrize("member", ["v", "index", "prev", "time"])
def test_log_members_cannot_be_supplied(member: str) -> None:
    with pytest.raises(McpsError, match="audit event is malformed") as caught:
        AuditEvent.from_json({"event": "x", member: 1})
    assert "set by the log" in (caught.value.detail or "")


def test_unknown_members_and_missing_event() -> None:
    for value in ({"event": "x", "extra": 1}, {"tool": "t"}, ["event"]):
        with pytest.raises(McpsError):
            AuditEvent.from_json(value)


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"v":2,"index":0,"time":0}', b'{"v":1,"index":"0","time":0}', b'{"v":1,"index":0,"time":0,"prev":5}'],
)
def test_parse_entry_refuses_non_entries(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_entry(data)


def test_receipt_json() -> None:
    receipt = Receipt("log", 3, leaf_hash(b""))
    assert Receipt.from_json(receipt.to_json()) == receipt
    for bad in [
        {"log": "log", "index": 3},
        {"log": "log", "index": -1, "leaf": receipt.to_json()["leaf"]},
        {"log": "log", "index": 3, "leaf": "AAAA"},
    ]:
        with pytest.raises(ValueError):
            Receipt.from_json(bad)
