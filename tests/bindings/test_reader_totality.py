"""Readers are total (issue 9 §1.1): no frame, from any peer, makes a reader raise. In memory and with hypothesis;
the same defects over real transports are in ``test_reader_totality_end_to_end.py``. All keys are test keys.

A refusal echoes the request's ``id`` only when a signed message can carry it (SPEC.md §9.1), else ``null``; every
refusal is I-JSON and carries a signature that verifies with the refusing side's key.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp_types import INVALID_REQUEST

from mcps import ErrorCode, McpsError, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SecureChannel, streams
from mcps.bindings.channel import UNKNOWN_PEER, Inbound, echoable_id
from mcps.bindings.sse import SseRewriter
from mcps.bindings.streams import LineReader
from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.envelope import request_binding, sign_message, signing_input
from mcps.core.strict import Limits

SERVER = "urn:mcps:test:server"
NOW = 1_800_000_000.0
AGENT = PrivateKey.generate()
SERVER_KEY = PrivateKey.generate()


def clock() -> float:
    return NOW


def server_channel(limits: Limits | None = None) -> SecureChannel:
    security = ChannelSecurity(
        key=SERVER_KEY,
        identity=SERVER,
        trusted=PinnedKeys([AGENT.public_key]),
        nonces=MemoryNonceStore(),
        clock=clock,
        **({"limits": limits} if limits is not None else {}),
    )
    return SecureChannel(security, peer=None)


def client_channel() -> SecureChannel:
    security = ChannelSecurity(
        key=AGENT, trusted=PinnedKeys([SERVER_KEY.public_key]), nonces=MemoryNonceStore(), clock=clock
    )
    return SecureChannel(security, peer=SERVER)


def assert_signed_refusal(reply: dict[str, Any], key: PrivateKey = SERVER_KEY) -> None:
    """I-JSON, an echoable id, an MCPS code, and a signature by ``key`` over its canonical form."""
    canonicalize(reply)  # raises for anything a signed message cannot carry
    assert reply["id"] is None or echoable_id(reply["id"]) == reply["id"]
    assert reply["error"]["data"]["mcps_code"].startswith("MCPS-")
    signature = reply["error"]["data"]["mcps/sig"]["sig"]
    key.public_key.verify(b64u_decode(signature), signing_input(reply))  # raises McpsError unless it verifies


def refuse(raw: bytes, channel: SecureChannel | None = None) -> dict[str, Any] | None:
    decision = anyio.run((channel or server_channel()).receive_raw, raw)
    assert decision.deliver is None
    return decision.reply


# --- the reported frames and their relatives ----------------------------------------------------------------------


def ping_with_id(id_text: bytes, *, extra: bytes = b"") -> bytes:
    return b'{"jsonrpc":"2.0","id":' + id_text + b',"method":"ping"' + extra + b"}"


UNECHOABLE_ID_FRAMES = {
    "id-lone-surrogate": (ping_with_id(rb'"\ud800"'), ErrorCode.INVALID_STRING),
    "id-unsafe-integer-2^64+1": (ping_with_id(b"18446744073709551617"), ErrorCode.NUMBER_NOT_IJSON),
    "id-unsafe-integer-2^53+1": (ping_with_id(b"9007199254740993"), ErrorCode.NUMBER_NOT_IJSON),
    "id-integer-5000-digits": (ping_with_id(b"9" * 5000), ErrorCode.NUMBER_NOT_IJSON),
    "id-overflowing-double": (ping_with_id(b"1e400"), ErrorCode.NUMBER_NOT_IJSON),
    "id-nan": (ping_with_id(b"NaN"), ErrorCode.NUMBER_NOT_IJSON),
    "id-twice": (ping_with_id(b'1,"id":2'), ErrorCode.DUPLICATE_KEY),
    "id-lone-surrogate-method-twice": (ping_with_id(rb'"\udfff"', extra=b',"method":"x"'), ErrorCode.DUPLICATE_KEY),
    "id-fraction": (ping_with_id(b"1.5"), ErrorCode.NOT_JSONRPC),
    "id-true": (ping_with_id(b"true"), ErrorCode.NOT_JSONRPC),
    "id-object": (ping_with_id(b'{"a":1}'), ErrorCode.NOT_JSONRPC),
    "id-null": (ping_with_id(b"null"), ErrorCode.NOT_JSONRPC),
}


@pytest.mark.parametrize(("raw", "code"), UNECHOABLE_ID_FRAMES.values(), ids=UNECHOABLE_ID_FRAMES.keys())
def test_frame_id_that_cannot_be_echoed_is_refused_with_id_null(raw: bytes, code: ErrorCode) -> None:
    reply = refuse(raw)
    assert reply is not None
    assert reply["id"] is None
    assert reply["error"]["data"]["mcps_code"] == code.mcps
    assert reply["error"]["data"]["mcps/sig"]["aud"] == UNKNOWN_PEER
    assert_signed_refusal(reply)


def test_frame_id_lone_surrogate_does_not_stop_the_client_channel() -> None:
    reply = refuse(rb'{"jsonrpc":"2.0","id":"\ud800","method":"ping"}', client_channel())
    assert reply is not None
    assert reply["id"] is None
    assert reply["error"]["data"]["mcps/sig"]["aud"] == SERVER  # the client knows its peer
    assert_signed_refusal(reply, AGENT)


@pytest.mark.parametrize("request_id", ["x", "", "\u00e9\U0001f600", 0, -(2**53 - 1), 2**53 - 1])
def test_echoable_ids_are_echoed(request_id: str | int) -> None:
    frame = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()
    reply = refuse(frame)
    assert reply is not None
    assert reply["id"] == request_id
    assert type(reply["id"]) is type(request_id)
    assert reply["error"]["data"]["mcps_code"] == ErrorCode.SIGNATURE_MISSING.mcps
    assert_signed_refusal(reply)


def test_frame_claiming_unreadable_sig_kid_and_passport_gets_an_unbound_refusal() -> None:
    """The members a refusal is addressed and bound with are read from the refused frame only when well-formed."""
    meta = {"mcps/sig": {"sig": "\ud800", "kid": "\udfff" * 43}, "mcps/passport": "\ud800.a.b"}
    frame = json.dumps({"jsonrpc": "2.0", "id": "x", "method": "ping", "params": {"_meta": meta}}).encode()
    reply = refuse(frame)
    assert reply is not None
    block = reply["error"]["data"]["mcps/sig"]
    assert (reply["id"], block["aud"], "irt" in block) == ("x", UNKNOWN_PEER, False)
    assert_signed_refusal(reply)


def test_frame_claiming_a_huge_sig_and_a_duplicated_kid_is_refused_cheaply() -> None:
    sig = "A" * 3_000_000
    kid = AGENT.kid
    frame = (
        b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"_meta":{"mcps/sig":{"sig":"'
        + sig.encode()
        + b'","kid":"'
        + kid.encode()
        + b'","kid":"'
        + kid.encode()
        + b'"}}}}'
    )
    reply = refuse(frame)
    assert reply is not None
    block = reply["error"]["data"]["mcps/sig"]
    assert (reply["id"], block["aud"], "irt" in block) == (3, UNKNOWN_PEER, False)  # the kid is ambiguous: unused
    assert reply["error"]["data"]["mcps_code"] == ErrorCode.DUPLICATE_KEY.mcps


def test_refusal_of_an_unparsed_frame_is_bound_to_its_well_formed_sig() -> None:
    request = sign_message({"jsonrpc": "2.0", "id": 4, "method": "ping"}, AGENT, audience=SERVER, now=NOW)
    sig = request["params"]["_meta"]["mcps/sig"]["sig"]
    frame = json.dumps(request).replace('"method": "ping"', '"method": "ping", "method": "x"').encode()
    reply = refuse(frame)
    assert reply is not None
    block = reply["error"]["data"]["mcps/sig"]
    assert (reply["id"], block["aud"], block["irt"]) == (4, AGENT.kid, request_binding(sig))


# --- hypothesis: any frame gets a decision, and any refusal is a signed I-JSON message ------------------------------

_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_HOSTILE_TEXT = st.text(alphabet=st.one_of(st.characters(), _SURROGATES), max_size=20)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**53 - 2, max_value=2**70),
    st.floats(),
    _HOSTILE_TEXT,
    st.just(AGENT.kid),
    st.just(b64u_encode(bytes(64))),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_HOSTILE_TEXT, inner, max_size=3)),
    max_leaves=8,
)
_ABSENT = object()


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    """Request-like frames whose members (id, method, params, claimed sig, kid, passport) are anything."""
    frame: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "1.0"]))}
    for name, value in (
        ("id", draw(st.one_of(st.just(_ABSENT), _VALUES))),
        ("method", draw(st.one_of(st.just("ping"), _VALUES))),
    ):
        if value is not _ABSENT:
            frame[name] = value
    claimed = draw(st.dictionaries(st.sampled_from(["sig", "kid", "aud", "v"]), _VALUES, max_size=4))
    meta = {"mcps/sig": claimed, "mcps/passport": draw(_VALUES)}
    frame["params"] = draw(st.one_of(st.just({"_meta": meta}), _VALUES))
    text = json.dumps(frame)
    if draw(st.booleans()):
        member = draw(st.sampled_from(['"id": ', '"method": ', '"sig": ', '"kid": ']))
        text = text.replace(member, member + draw(st.sampled_from(["1, ", '"x", ', "null, "])) + member[:-1] + " ", 1)
    return text.encode("utf-8", "surrogatepass")


def _decide_all(channel: SecureChannel, frames: list[bytes]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        replies = []
        for frame in frames:
            decision = await channel.receive_raw(frame)
            assert decision.deliver is None  # nothing here is signed by the trusted agent
            if decision.reply is not None:
                replies.append(decision.reply)
        return replies

    return anyio.run(run)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_frames(), min_size=1, max_size=4))
def test_hostile_frames_get_signed_i_json_refusals_and_never_raise(frames: list[bytes]) -> None:
    for reply in _decide_all(server_channel(), frames):
        assert_signed_refusal(reply)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_arbitrary_bytes_never_make_the_channel_raise(frames: list[bytes]) -> None:
    for reply in _decide_all(server_channel(Limits(max_bytes=150, max_depth=4)), frames):
        assert_signed_refusal(reply)


@settings(max_examples=200, deadline=None)
@given(_VALUES)
def test_sdk_parsed_messages_with_any_id_never_make_the_channel_raise(request_id: object) -> None:
    """What an SDK transport may hand over (its parser accepts huge integers and lone surrogates) is decided too."""
    decision = anyio.run(server_channel().receive, {"jsonrpc": "2.0", "id": request_id, "method": "ping"})
    assert decision.deliver is None
    assert decision.reply is not None
    assert decision.reply["id"] == echoable_id(request_id)
    assert_signed_refusal(decision.reply)


# --- the frame readers: stdio lines and SSE events ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12), st.integers(min_value=1, max_value=32))
def test_line_reader_takes_any_chunks(chunks: list[bytes], max_bytes: int) -> None:
    source = iter(chunks)

    async def receive() -> bytes:
        return next(source, b"")

    async def read_all() -> int:
        reader, count = LineReader(receive, max_bytes), 0
        while await reader.read_line() is not None:
            count += 1
        return count

    assert anyio.run(read_all) <= sum(chunk.count(b"\n") for chunk in chunks) + 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.binary(max_size=30), st.sampled_from([b"data: ", b"\r", b"\n", b"\r\n", b"id: 1", b": c"])),
        max_size=20,
    ),
    st.integers(min_value=1, max_value=64),
    st.booleans(),
)
def test_sse_parser_takes_any_chunks(chunks: list[bytes], max_bytes: int, drop: bool) -> None:
    seen: list[str | McpsError] = []

    def rewrite(data: str | McpsError) -> str | None:
        seen.append(data)
        return None if drop or isinstance(data, McpsError) else data

    rewriter = SseRewriter(rewrite, max_bytes=max_bytes)
    out = b"".join(rewriter.feed(chunk) for chunk in chunks) + rewriter.close()
    assert isinstance(out, bytes)
    assert all(isinstance(data, McpsError) or len(data) <= max_bytes for data in seen)  # bounded by the bytes read
    for data in seen:  # what was read is what was sent, or refused with its code: never U+FFFD in its place
        if isinstance(data, McpsError):
            assert data.code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.MALFORMED_JSON)
        else:
            assert data.encode("utf-8") in b"".join(chunks).replace(b"\r", b"\n") or "\n" in data


# --- a defect of the SDK's model, or of the channel, on a verified message ---------------------------------------


async def test_sdk_model_failing_on_a_verified_message_does_not_end_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the SDK's envelope model raises for a verified message, the reader answers a request, fails a
    response's waiting request locally, and reads on."""
    client, server = client_channel(), server_channel()
    first = client.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    second = client.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    assert first is not None
    assert second is not None
    lines = [json.dumps(first).encode() + b"\n", json.dumps(second).encode() + b"\n"]
    written: list[dict[str, Any]] = []
    real = streams.to_envelope

    def broken_once(message: dict[str, Any]) -> Any:
        if message.get("id") == 1 and "method" in message:
            raise RuntimeError("a defect in the SDK's model")
        return real(message)

    monkeypatch.setattr(streams, "to_envelope", broken_once)

    async def receive() -> bytes:
        return lines.pop(0) if lines else b""

    async def send(frame: bytes) -> None:
        written.append(json.loads(frame))

    with anyio.fail_after(5):
        async with streams.secure_frame_streams(server, receive, send) as (read_stream, _write):
            item = await read_stream.receive()
    assert item.message.model_dump(exclude_unset=True)["id"] == 2  # type: ignore[union-attr]
    assert [(message["id"], message["error"]["code"]) for message in written] == [(1, INVALID_REQUEST)]
    answer = await client.receive(written[0])
    assert answer.deliver is not None
    assert answer.deliver["error"]["code"] == INVALID_REQUEST

    # A verified response the model refuses fails its waiting request locally (MCPS-025) instead of hanging.
    monkeypatch.setattr(streams, "to_envelope", lambda _message: (_ for _ in ()).throw(RuntimeError("defect")))
    request = client.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    assert request is not None
    assert (await server.receive(request)).deliver is not None
    result = server.send({"jsonrpc": "2.0", "id": 3, "result": {}})
    assert result is not None
    applied = await streams._apply(await client.receive(result), client, _no_reply, None)
    assert applied is not None
    local = applied[1].message.model_dump()
    assert (local["id"], local["error"]["data"]["mcps_code"]) == (3, ErrorCode.NOT_JSONRPC.mcps)


async def _no_reply(_message: dict[str, Any]) -> None:
    raise AssertionError("nothing to answer")


async def test_defect_in_the_channel_drops_the_message_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    channel = server_channel()

    def defect(*_args: object, **_kwargs: object) -> Any:
        raise KeyError("a defect")

    monkeypatch.setattr(channel, "_receive_request", defect)
    frame = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert await channel.receive(frame) == Inbound()
    monkeypatch.setattr(channel, "_refuse_unparsed", defect)
    assert await channel.receive_raw(b'{"id":1,"id":2}') == Inbound()
    assert [record.levelname for record in caplog.records if "internal error" in record.message] == ["ERROR"] * 2


async def test_unreadable_response_fails_its_waiting_request_instead_of_leaving_it_waiting() -> None:
    client = client_channel()
    request = client.send({"jsonrpc": "2.0", "id": 5, "method": "ping"})
    assert request is not None
    decision = await client.receive_raw(b'{"jsonrpc":"2.0","id":5,"result":{"a":1,"a":2}}')
    assert decision.deliver == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": McpsError(ErrorCode.DUPLICATE_KEY).to_jsonrpc_error(),
    }
    assert await client.receive_raw(b'{"jsonrpc":"2.0","id":5,"result":{"a":1,"a":2}}') == Inbound()  # once
