"""The signature envelope (SPEC.md §4–5) through MessageSigner / MessageVerifier and the private ``_authenticate``.

Covers every message kind with both algorithms, what the signature covers (and the two hop members it does
not), robustness to re-serialization, the exact window boundaries, each block defect and its code, replay, the
rule that a nonce is recorded only after the signature verifies, and that refusal messages never echo input.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from mcps.core.encoding import b64u_encode
from mcps.core.envelope import (
    MAX_LIFETIME,
    MessageKind,
    PinnedKeys,
    SignatureBlock,
    check_audience,
    check_binding,
    check_key,
    check_signature,
    check_window,
    message_kind,
    read_block,
    request_binding,
    sign_message,
    signing_input,
    without_hop_members,
)
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey
from mcps.core.strict import Limits
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageSigner, MessageVerifier, VerifiedMessage

AUD = "https://tools.example/mcp"
NOW = 1_763_683_200
SKEW = 30
_B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MARKER = "MARKER-q7Zx"  # planted in inputs; must never appear in a refusal's message

REQUEST: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {
        "name": "echo",
        "arguments": {"text": "héllo ✓ \U0001f600", "n": 100.0, "list": [1, 2, 3]},
        "_meta": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "progressToken": "p1"},
    },
}
NOTIFICATION: dict[str, Any] = {
    "jsonrpc": "2.0",
    "method": "notifications/progress",
    "params": {"progressToken": "p1", "progress": 0.5, "total": 1},
}
RESULT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "result": {"content": [{"type": "text", "text": "héllo"}], "isError": False},
}
ERROR_OBJECT_DATA: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "error": {"code": -32602, "message": "Invalid params", "data": {"field": "text"}},
}
ERROR_STRING_DATA: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "error": {"code": -32603, "message": "Internal error", "data": "database unavailable"},
}
ERROR_NO_DATA: dict[str, Any] = {"jsonrpc": "2.0", "id": "req-1", "error": {"code": -32601, "message": "nope"}}
ERROR_NULL_DATA: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32700, "message": "x", "data": None},
}
REQUEST_WITHOUT_PARAMS: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

MESSAGES: dict[str, dict[str, Any]] = {
    "request": REQUEST,
    "request-without-params": REQUEST_WITHOUT_PARAMS,
    "notification": NOTIFICATION,
    "result": RESULT,
    "error-object-data": ERROR_OBJECT_DATA,
    "error-string-data": ERROR_STRING_DATA,
    "error-no-data": ERROR_NO_DATA,
    "error-null-data": ERROR_NULL_DATA,
}
KINDS = {
    "request": MessageKind.REQUEST,
    "request-without-params": MessageKind.REQUEST,
    "notification": MessageKind.NOTIFICATION,
    "result": MessageKind.RESULT,
    "error-object-data": MessageKind.ERROR,
    "error-string-data": MessageKind.ERROR,
    "error-no-data": MessageKind.ERROR,
    "error-null-data": MessageKind.ERROR,
}


# --- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["EdDSA", "ES256"])
def key(request: pytest.FixtureRequest) -> PrivateKey:
    return PrivateKey.generate(request.param)


@pytest.fixture(scope="module")
def ed_key() -> PrivateKey:
    return PrivateKey.generate("EdDSA")


@pytest.fixture(scope="module")
def request_sig(key: PrivateKey) -> str:
    """The sig of a request that the responses in these tests answer."""
    signed = sign_message(REQUEST, key, audience="https://agent.example", now=NOW)
    sig: str = signed["params"]["_meta"]["mcps/sig"]["sig"]
    return sig


def verifier_for(key: PrivateKey, nonces: MemoryNonceStore | None = None) -> MessageVerifier:
    return MessageVerifier(
        audience=AUD,
        keys=PinnedKeys([key.public_key]),
        nonces=nonces if nonces is not None else MemoryNonceStore(),
        max_skew=SKEW,
        clock=lambda: NOW,
    )


def wire(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def sign(message: dict[str, Any], key: PrivateKey, request_sig: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Sign with the signer recipe; responses are bound to ``request_sig``."""
    in_reply_to = request_sig if message_kind(message).is_response else None
    signer = MessageSigner(key, clock=lambda: NOW)
    # A deep copy: the signed copy shares unchanged sub-objects (e.g. params.arguments) with its input.
    return copy.deepcopy(signer.sign(message, audience=AUD, in_reply_to=in_reply_to, **kwargs))


def container(message: dict[str, Any]) -> dict[str, Any]:
    """The object that holds ``mcps/sig`` in a signed message."""
    if "result" in message:
        holder: dict[str, Any] = message["result"]["_meta"]
    elif "error" in message:
        holder = message["error"]["data"]
    else:
        holder = message["params"]["_meta"]
    return holder


def block(message: dict[str, Any]) -> dict[str, Any]:
    sig_block: dict[str, Any] = container(message)["mcps/sig"]
    return sig_block


def resign(message: dict[str, Any], key: PrivateKey, **members: Any) -> dict[str, Any]:
    """A copy of a signed message with block members changed (``None`` removes one), correctly re-signed."""
    result = copy.deepcopy(message)
    sig_block = block(result)
    sig_block.pop("sig")
    for name, value in members.items():
        if value is None:
            sig_block.pop(name, None)
        else:
            sig_block[name] = value
    sig_block["sig"] = b64u_encode(key.sign(signing_input(result)))
    return result


async def refusal(
    verifier: MessageVerifier, raw: bytes, *, in_reply_to: str | None = None, now: float | None = None
) -> McpsError:
    with pytest.raises(McpsError) as caught:
        await verifier.verify(raw, in_reply_to=in_reply_to, now=now)
    return caught.value


# --- every kind, both algorithms --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MESSAGES))
async def test_sign_and_verify_every_kind(key: PrivateKey, request_sig: str, name: str) -> None:
    original = MESSAGES[name]
    before = copy.deepcopy(original)
    signed = sign(original, key, request_sig)
    assert original == before  # the input is not mutated
    kind = KINDS[name]
    in_reply_to = request_sig if kind.is_response else None
    verified = await verifier_for(key).verify(wire(signed), in_reply_to=in_reply_to)
    assert isinstance(verified, VerifiedMessage)
    assert verified.kind is kind
    assert verified.message == signed
    assert verified.kid == key.kid
    assert verified.key == key.public_key
    assert verified.sig == block(signed)["sig"]
    assert verified.block.aud == AUD
    assert (verified.block.iat, verified.block.exp) == (NOW, NOW + 60)
    assert (verified.block.irt is not None) is kind.is_response
    assert verified.id == signed.get("id")
    assert verified.method == signed.get("method")


async def test_string_error_data_is_wrapped(key: PrivateKey, request_sig: str) -> None:
    signed = sign(ERROR_STRING_DATA, key, request_sig)
    assert signed["error"]["data"]["mcps/data"] == "database unavailable"
    verified = await verifier_for(key).verify(wire(signed), in_reply_to=request_sig)
    assert verified.message["error"]["data"]["mcps/data"] == "database unavailable"
    assert set(verified.message["error"]["data"]) == {"mcps/data", "mcps/sig"}


@pytest.mark.parametrize("name", ["error-no-data", "error-null-data"])
async def test_absent_or_null_error_data_becomes_an_object(key: PrivateKey, request_sig: str, name: str) -> None:
    signed = sign(MESSAGES[name], key, request_sig)
    assert set(signed["error"]["data"]) == {"mcps/sig"}


async def test_object_error_data_keeps_its_members(key: PrivateKey, request_sig: str) -> None:
    signed = sign(ERROR_OBJECT_DATA, key, request_sig)
    assert signed["error"]["data"]["field"] == "text"


def test_block_members(key: PrivateKey) -> None:
    sig_block = block(sign(REQUEST, key))
    assert set(sig_block) == {"v", "alg", "kid", "aud", "iat", "exp", "nonce", "sig"}
    assert sig_block["v"] == 1
    assert sig_block["alg"] == key.alg.value
    assert sig_block["kid"] == key.kid
    assert len(sig_block["nonce"]) == 22  # 16 random bytes


def test_nonces_are_fresh(key: PrivateKey) -> None:
    assert block(sign(REQUEST, key))["nonce"] != block(sign(REQUEST, key))["nonce"]


def _authenticate(message: dict[str, Any], key: PrivateKey, in_reply_to: str | None = None) -> SignatureBlock:
    """Steps 3–8 of SPEC.md §5, one function each, as MessageVerifier.verify_parsed runs them."""
    kind = message_kind(message)
    block = read_block(message, kind)
    check_window(block, NOW, SKEW)
    check_audience(block, (AUD,))
    check_binding(block, kind, in_reply_to)
    public = check_key(PinnedKeys([key.public_key]).resolve(block.kid, message, now=NOW), block)
    check_signature(public, block, message, kind)
    return block


def test_steps_3_to_8_do_not_record_the_nonce(key: PrivateKey) -> None:
    signed = sign(REQUEST, key)
    for _ in range(2):  # no replay check at this layer
        assert _authenticate(signed, key).kid == key.kid


def test_steps_3_to_8_accept_every_kind(key: PrivateKey, request_sig: str) -> None:
    for name, message in MESSAGES.items():
        in_reply_to = request_sig if KINDS[name].is_response else None
        block = _authenticate(sign(message, key, request_sig), key, in_reply_to)
        assert (block.irt is not None) is KINDS[name].is_response


# --- signer arguments -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lifetime", [0, -1, MAX_LIFETIME + 1])
def test_signer_refuses_a_bad_lifetime(ed_key: PrivateKey, lifetime: int) -> None:
    with pytest.raises(ValueError):
        sign_message(REQUEST, ed_key, audience=AUD, now=NOW, lifetime=lifetime)


def test_signer_refuses_bad_arguments(ed_key: PrivateKey) -> None:
    with pytest.raises(ValueError):
        sign_message(REQUEST, ed_key, audience="", now=NOW)
    with pytest.raises(ValueError):
        sign_message(REQUEST, ed_key, audience="a" * 2049, now=NOW)
    with pytest.raises(ValueError):
        sign_message(RESULT, ed_key, audience=AUD, now=NOW)  # a result must name its request
    with pytest.raises(ValueError):
        sign_message(REQUEST, ed_key, audience=AUD, now=NOW, in_reply_to="x")
    with pytest.raises(McpsError) as caught:
        sign_message({"jsonrpc": "1.0", "method": "x"}, ed_key, audience=AUD, now=NOW)
    assert caught.value.code is ErrorCode.NOT_JSONRPC


async def test_signing_replaces_an_existing_block(ed_key: PrivateKey) -> None:
    first = sign(REQUEST, ed_key)
    second = sign_message(first, ed_key, audience=AUD, now=NOW + 1)
    assert block(second)["iat"] == NOW + 1
    await verifier_for(ed_key).verify(wire(second))


async def test_signing_a_message_that_already_has_hop_members(ed_key: PrivateKey) -> None:
    message = copy.deepcopy(REQUEST)
    message["params"]["_meta"]["mcps/grant"] = "grant-token"
    signed = sign_message(message, ed_key, audience=AUD, now=NOW)
    signed["params"]["_meta"]["mcps/grant"] = "another-grant"
    await verifier_for(ed_key).verify(wire(signed))


def test_verifier_refuses_a_bad_skew(ed_key: PrivateKey) -> None:
    for bad in (-1, 301):
        with pytest.raises(ValueError):
            MessageVerifier(audience=AUD, keys=PinnedKeys([ed_key.public_key]), nonces=MemoryNonceStore(), max_skew=bad)


# --- what the signature covers ----------------------------------------------------------------------------------

Tamper = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Tamper:
    def tamper(message: dict[str, Any]) -> None:
        node = message
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return tamper


def _delete(path: tuple[Any, ...]) -> Tamper:
    def tamper(message: dict[str, Any]) -> None:
        node = message
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]

    return tamper


REQUEST_TAMPERS: dict[str, Tamper] = {
    "param-value": _set(("params", "arguments", "text"), "rm -rf /"),
    "param-number": _set(("params", "arguments", "n"), 101),
    "param-list-item": _set(("params", "arguments", "list", 2), 4),
    "param-added": _set(("params", "arguments", "extra"), True),
    "param-removed": _delete(("params", "arguments", "list")),
    "tool-name": _set(("params", "name"), "exec"),
    "meta-traceparent": _set(
        ("params", "_meta", "traceparent"), "00-ffffffffffffffffffffffffffffffff-b7ad6b7169203331-01"
    ),
    "meta-key-removed": _delete(("params", "_meta", "progressToken")),
    "meta-key-added": _set(("params", "_meta", "io.modelcontextprotocol/related-task"), {"taskId": "1"}),
    "id": _set(("id",), 8),
    "id-type": _set(("id",), "7"),
    "method": _set(("method",), "tools/list"),
    "block-iat": lambda m: m["params"]["_meta"]["mcps/sig"].update(iat=NOW - 1),
    "block-exp": lambda m: m["params"]["_meta"]["mcps/sig"].update(exp=NOW + 59),
    "block-nonce": lambda m: m["params"]["_meta"]["mcps/sig"].update(nonce=b64u_encode(b"\x01" * 16)),
}


@pytest.mark.parametrize("tamper_name", list(REQUEST_TAMPERS))
async def test_tampered_request_is_refused(key: PrivateKey, tamper_name: str) -> None:
    signed = sign(REQUEST, key)
    REQUEST_TAMPERS[tamper_name](signed)
    assert (await refusal(verifier_for(key), wire(signed))).code is ErrorCode.BAD_SIGNATURE


def test_jsonrpc_member_is_covered(ed_key: PrivateKey) -> None:
    """``jsonrpc`` is in the signing input; any other value is refused earlier, as not JSON-RPC 2.0."""
    signed = sign(REQUEST, ed_key)
    assert b'"jsonrpc":"2.0"' in signing_input(signed)


@pytest.mark.parametrize("value", ["1.0", "2.1", None])
async def test_tampered_jsonrpc_is_refused(ed_key: PrivateKey, value: str | None) -> None:
    signed = sign(REQUEST, ed_key)
    signed["jsonrpc"] = value
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.NOT_JSONRPC


RESPONSE_TAMPERS: dict[str, tuple[dict[str, Any], Tamper]] = {
    "result-content": (RESULT, _set(("result", "content", 0, "text"), "bye")),
    "result-isError": (RESULT, _set(("result", "isError"), True)),
    "result-id": (RESULT, _set(("id",), 9)),
    "error-code": (ERROR_OBJECT_DATA, _set(("error", "code"), -32600)),
    "error-message": (ERROR_OBJECT_DATA, _set(("error", "message"), "fine")),
    "error-data": (ERROR_OBJECT_DATA, _set(("error", "data", "field"), "other")),
    "error-wrapped-data": (ERROR_STRING_DATA, _set(("error", "data", "mcps/data"), "other")),
}


@pytest.mark.parametrize("tamper_name", list(RESPONSE_TAMPERS))
async def test_tampered_response_is_refused(key: PrivateKey, request_sig: str, tamper_name: str) -> None:
    message, tamper = RESPONSE_TAMPERS[tamper_name]
    signed = sign(message, key, request_sig)
    tamper(signed)
    error = await refusal(verifier_for(key), wire(signed), in_reply_to=request_sig)
    assert error.code is ErrorCode.BAD_SIGNATURE


async def test_kid_of_another_trusted_key_is_refused(ed_key: PrivateKey) -> None:
    other = PrivateKey.generate("EdDSA")
    signed = sign(REQUEST, ed_key)
    block(signed)["kid"] = other.kid
    verifier = MessageVerifier(
        audience=AUD, keys=PinnedKeys([ed_key.public_key, other.public_key]), nonces=MemoryNonceStore()
    )
    assert (await refusal(verifier, wire(signed), now=NOW)).code is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize("name", list(MESSAGES))
async def test_hop_members_added_after_signing_do_not_break_verification(
    key: PrivateKey, request_sig: str, name: str
) -> None:
    signed = sign(MESSAGES[name], key, request_sig)
    container(signed)["mcps/via"] = [{"kid": "k", "iat": NOW, "aud": AUD, "sig": "s"}]
    container(signed)["mcps/grant"] = "eyJ0eXAiOiJtY3BzLWdyYW50K2p3dCJ9.e30.c2ln"
    in_reply_to = request_sig if KINDS[name].is_response else None
    await verifier_for(key).verify(wire(signed), in_reply_to=in_reply_to)


async def test_other_meta_keys_added_after_signing_break_verification(ed_key: PrivateKey) -> None:
    signed = sign(REQUEST, ed_key)
    container(signed)["mcps/passport"] = "eyJ.e30.c2ln"
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.BAD_SIGNATURE


def test_signing_input_shape(ed_key: PrivateKey) -> None:
    signed = sign(REQUEST, ed_key)
    container(signed)["mcps/via"] = []
    data = signing_input(signed)
    assert data.startswith(b"mcps.v1.message\n{")
    assert b'"sig"' not in data
    assert b"mcps/via" not in data
    assert b'"traceparent"' in data
    assert b'"n":100,' in data  # JCS number form


def test_signing_input_needs_a_block() -> None:
    with pytest.raises(McpsError) as caught:
        signing_input(REQUEST)
    assert caught.value.code is ErrorCode.SIGNATURE_MISSING


# --- re-serialization robustness --------------------------------------------------------------------------------


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _reverse_keys(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(item) for item in value]
    return value


RESERIALIZATIONS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "compact": lambda m: json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode(),
    "ascii-escapes": lambda m: json.dumps(m).encode("ascii"),
    "indented-reversed-keys": lambda m: json.dumps(_reverse_keys(m), indent=3, ensure_ascii=False).encode(),
    "float-1e2": lambda m: json.dumps(m).replace('"n": 100.0', '"n": 1e2').encode(),
    "float-1E+2": lambda m: json.dumps(m).replace('"n": 100.0', '"n": 1E+2').encode(),
    "integer-100": lambda m: json.dumps(m).replace('"n": 100.0', '"n": 100').encode(),
    "float-10000e-2": lambda m: json.dumps(m).replace('"n": 100.0', '"n": 10000e-2').encode(),
    "escaped-ascii-letters": lambda m: json.dumps(m).replace('"echo"', '"\\u0065\\u0063ho"').encode(),
    "escaped-slash-and-astral-pair": lambda m: (
        json.dumps(m).replace("tools/call", "tools\\/call").replace("\\ud83d\\ude00", "\\uD83D\\uDE00").encode()
    ),
    "crlf-whitespace": lambda m: json.dumps(m, indent="\t").replace("\n", "\r\n").encode(),
}


@pytest.mark.parametrize("form", list(RESERIALIZATIONS))
async def test_reserialized_message_still_verifies(key: PrivateKey, form: str) -> None:
    signed = sign(REQUEST, key)
    raw = RESERIALIZATIONS[form](signed)
    assert raw != wire(signed)
    verified = await verifier_for(key).verify(raw)
    assert verified.message["params"]["name"] == "echo"


# --- time window ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        pytest.param(-SKEW, True, id="iat=now+skew"),
        pytest.param(-SKEW - 1, False, id="iat=now+skew+1"),
        pytest.param(60 + SKEW, True, id="exp=now-skew"),
        pytest.param(60 + SKEW + 1, False, id="exp=now-skew-1"),
        pytest.param(0, True, id="iat=now"),
    ],
)
async def test_window_boundaries(key: PrivateKey, offset: int, accepted: bool) -> None:
    """Signed at NOW with exp = NOW + 60, verified at NOW + offset."""
    raw = wire(sign(REQUEST, key))
    verifier = verifier_for(key)
    if accepted:
        await verifier.verify(raw, now=NOW + offset)
    else:
        assert (await refusal(verifier, raw, now=NOW + offset)).code is ErrorCode.TIMESTAMP_OUT_OF_WINDOW


@pytest.mark.parametrize(
    ("lifetime", "accepted"), [(300, True), (301, False), (1, True), (0, False), (-60, False), (10**6, False)]
)
async def test_window_length(key: PrivateKey, lifetime: int, accepted: bool) -> None:
    signed = resign(sign(REQUEST, key), key, iat=NOW, exp=NOW + lifetime)
    verifier = verifier_for(key)
    if accepted:
        await verifier.verify(wire(signed))
    else:
        assert (await refusal(verifier, wire(signed))).code is ErrorCode.TIMESTAMP_OUT_OF_WINDOW


async def test_skew_is_configurable(ed_key: PrivateKey) -> None:
    raw = wire(sign(REQUEST, ed_key))
    strict = MessageVerifier(audience=AUD, keys=PinnedKeys([ed_key.public_key]), nonces=MemoryNonceStore(), max_skew=0)
    assert (await refusal(strict, raw, now=NOW - 1)).code is ErrorCode.TIMESTAMP_OUT_OF_WINDOW
    await strict.verify(raw, now=NOW)


async def test_clock_is_used_when_now_is_not_given(ed_key: PrivateKey) -> None:
    raw = wire(sign(REQUEST, ed_key))
    late = MessageVerifier(
        audience=AUD, keys=PinnedKeys([ed_key.public_key]), nonces=MemoryNonceStore(), clock=lambda: NOW + 1000
    )
    assert (await refusal(late, raw)).code is ErrorCode.TIMESTAMP_OUT_OF_WINDOW


# --- audience and response binding ------------------------------------------------------------------------------


async def test_wrong_audience_is_refused(key: PrivateKey) -> None:
    signed = MessageSigner(key).sign(REQUEST, audience="https://other.example/mcp", now=NOW)
    assert (await refusal(verifier_for(key), wire(signed))).code is ErrorCode.AUDIENCE_MISMATCH


async def test_audience_is_compared_exactly(ed_key: PrivateKey) -> None:
    signed = MessageSigner(ed_key).sign(REQUEST, audience=AUD + "/", now=NOW)
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.AUDIENCE_MISMATCH


@pytest.mark.parametrize("name", ["result", "error-object-data"])
async def test_response_bound_to_another_request_is_refused(key: PrivateKey, request_sig: str, name: str) -> None:
    other_request_sig = block(sign(REQUEST, key))["sig"]
    signed = sign(MESSAGES[name], key, request_sig)
    error = await refusal(verifier_for(key), wire(signed), in_reply_to=other_request_sig)
    assert error.code is ErrorCode.TRANSCRIPT_MISMATCH


@pytest.mark.parametrize("name", ["result", "error-object-data"])
async def test_response_without_in_reply_to_is_refused(key: PrivateKey, request_sig: str, name: str) -> None:
    signed = sign(MESSAGES[name], key, request_sig)
    assert (await refusal(verifier_for(key), wire(signed))).code is ErrorCode.TRANSCRIPT_MISMATCH


async def test_unbound_error_is_refused_for_a_signed_request(ed_key: PrivateKey, request_sig: str) -> None:
    signed = sign_message(ERROR_OBJECT_DATA, ed_key, audience=AUD, now=NOW)  # no irt
    assert "irt" not in block(signed)
    error = await refusal(verifier_for(ed_key), wire(signed), in_reply_to=request_sig)
    assert error.code is ErrorCode.TRANSCRIPT_MISMATCH


def test_irt_is_the_hash_of_the_request_sig(key: PrivateKey, request_sig: str) -> None:
    assert block(sign(RESULT, key, request_sig))["irt"] == request_binding(request_sig)


async def test_irt_on_a_request_is_malformed(ed_key: PrivateKey) -> None:
    signed = resign(sign(REQUEST, ed_key), ed_key, irt=request_binding("x"))
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


# --- block shape ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, -1, 999])
async def test_unknown_version_is_refused(ed_key: PrivateKey, version: int) -> None:
    signed = resign(sign(REQUEST, ed_key), ed_key, v=version)
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.NO_COMMON_VERSION


@pytest.mark.parametrize("version", ["1", True, [1], 1.5])
async def test_version_that_is_not_the_integer_1_is_malformed(ed_key: PrivateKey, version: object) -> None:
    """Regression: ``v: true`` compared equal to 1 and was accepted."""
    signed = resign(sign(REQUEST, ed_key), ed_key, v=version)
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize("member", ["v", "iat", "exp"])
def test_a_parsed_block_holding_an_integral_float_is_malformed(ed_key: PrivateKey, member: str) -> None:
    """Regression: a float ``v`` compared equal to 1. On the wire ``1.0`` is read as the integer 1 (§3), but a block
    built by other means (an SDK's parser) holding a float is refused."""
    sig_block = block(sign(REQUEST, ed_key))
    sig_block = {**sig_block, member: float(sig_block[member])}
    with pytest.raises(McpsError) as caught:
        SignatureBlock.parse(sig_block)
    assert caught.value.code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize("spelling", ["1.0", "1E0", "10e-1", "0.1e1"])
async def test_integral_block_numbers_verify_however_spelled(ed_key: PrivateKey, spelling: str) -> None:
    """``v``, ``iat`` and ``exp`` are read as the canonical form writes them (§3), which the signature covers."""
    signed = sign(REQUEST, ed_key)
    text = wire(signed).decode()
    respelled = text.replace('"v": 1,', f'"v": {spelling},', 1)
    iat = block(signed)["iat"]
    respelled = respelled.replace(f'"iat": {iat}', f'"iat": {iat}.0', 1)
    assert f'"v": {spelling},' in respelled
    verified = await verifier_for(ed_key).verify(respelled.encode())
    assert verified.block.iat == iat


@pytest.mark.parametrize("member", ["v", "alg", "kid", "aud", "iat", "exp", "nonce", "sig"])
async def test_missing_block_member_is_refused(ed_key: PrivateKey, member: str) -> None:
    signed = sign(REQUEST, ed_key)
    del block(signed)[member]
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize("member", ["typ", "crit", "Sig", "jku"])
async def test_unknown_block_member_is_refused(ed_key: PrivateKey, member: str) -> None:
    signed = resign(sign(REQUEST, ed_key), ed_key, **{member: "x"})
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("iat", NOW + 0.5),
        ("exp", True),
        ("exp", str(NOW + 60)),
        ("aud", ""),
        ("aud", "a" * 2049),
        ("aud", 7),
        ("kid", "short"),
        ("kid", b64u_encode(bytes(31))),
        ("nonce", b64u_encode(bytes(15))),
        ("nonce", b64u_encode(bytes(65))),
        ("nonce", b64u_encode(bytes(16)) + "="),
        ("irt", None),
    ],
)
async def test_malformed_block_member_is_refused(ed_key: PrivateKey, member: str, value: Any) -> None:
    signed = sign(REQUEST, ed_key)
    block(signed)[member] = value
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize(
    "bad_sig",
    [
        pytest.param(lambda sig: sig[:-1] + _B64U[_B64U.index(sig[-1]) ^ 1], id="nonzero-trailing-bits"),
        pytest.param(lambda sig: sig + "==", id="padded"),
        pytest.param(lambda sig: sig.replace(sig[0], "+", 1), id="standard-alphabet"),
        pytest.param(lambda sig: sig[:-2], id="63-bytes"),
        pytest.param(lambda sig: sig + "AA", id="65-bytes"),
        pytest.param(lambda sig: 42, id="not-a-string"),
    ],
)
async def test_sig_not_canonical_base64url_is_malformed(ed_key: PrivateKey, bad_sig: Callable[[str], Any]) -> None:
    signed = sign(REQUEST, ed_key)
    block(signed)["sig"] = bad_sig(block(signed)["sig"])
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384", "eddsa", "Ed25519", ""])
async def test_disallowed_algorithm_is_refused(ed_key: PrivateKey, alg: str) -> None:
    signed = sign(REQUEST, ed_key)
    block(signed)["alg"] = alg
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.ALGORITHM_MISMATCH


async def test_block_alg_not_matching_the_key_is_refused(key: PrivateKey) -> None:
    other_alg = "ES256" if key.alg.value == "EdDSA" else "EdDSA"
    signed = resign(sign(REQUEST, key), key, alg=other_alg)
    assert (await refusal(verifier_for(key), wire(signed))).code is ErrorCode.ALGORITHM_MISMATCH


async def test_unknown_kid_is_refused(key: PrivateKey) -> None:
    stranger = PrivateKey.generate(key.alg)
    raw = wire(sign(REQUEST, stranger))
    assert (await refusal(verifier_for(key), raw)).code is ErrorCode.UNKNOWN_KEY


@pytest.mark.parametrize(
    "unsigned",
    [
        pytest.param(REQUEST, id="request-meta-without-sig"),
        pytest.param(REQUEST_WITHOUT_PARAMS, id="request-without-params"),
        pytest.param(NOTIFICATION, id="notification-without-meta"),
        pytest.param({**REQUEST, "params": {"_meta": "text"}}, id="meta-not-an-object"),
        pytest.param(RESULT, id="result"),
        pytest.param(ERROR_STRING_DATA, id="error-string-data"),
        pytest.param(ERROR_NO_DATA, id="error-no-data"),
    ],
)
async def test_missing_block_is_refused(ed_key: PrivateKey, request_sig: str, unsigned: dict[str, Any]) -> None:
    assert (await refusal(verifier_for(ed_key), wire(unsigned), in_reply_to=request_sig)).code is (
        ErrorCode.SIGNATURE_MISSING
    )


async def test_block_that_is_not_an_object_is_malformed(ed_key: PrivateKey) -> None:
    signed = sign(REQUEST, ed_key)
    container(signed)["mcps/sig"] = "eyJhbGciOiJub25lIn0"
    assert (await refusal(verifier_for(ed_key), wire(signed))).code is ErrorCode.SIGNATURE_MALFORMED


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": None, "method": "x"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "x"},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]},
        {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": "m"}},
        {"jsonrpc": "2.0", "id": 1, "result": [1]},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": "1", "message": "m"}},
        {"jsonrpc": "2.0", "error": {"code": 1, "message": "m"}},
    ],
)
async def test_not_jsonrpc_is_refused(ed_key: PrivateKey, message: dict[str, Any]) -> None:
    assert (await refusal(verifier_for(ed_key), wire(message))).code is ErrorCode.NOT_JSONRPC


# --- replay and the nonce store ---------------------------------------------------------------------------------


async def test_replay_is_refused(key: PrivateKey) -> None:
    raw = wire(sign(REQUEST, key))
    verifier = verifier_for(key)
    await verifier.verify(raw)
    assert (await refusal(verifier, raw)).code is ErrorCode.REPLAY
    # Re-serialized, it is the same message: still a replay.
    assert (await refusal(verifier, json.dumps(json.loads(raw), indent=1).encode())).code is ErrorCode.REPLAY


async def test_replay_at_the_last_accepted_second_is_refused(key: PrivateKey) -> None:
    """Regression: at now == exp + skew the window accepts, but the nonce was stored with expiry exp + skew,
    which a store treats as already expired at that instant, so the same message was accepted twice."""
    raw = wire(sign(REQUEST, key))
    verifier = verifier_for(key)
    last_second = NOW + 60 + SKEW
    await verifier.verify(raw, now=last_second)
    assert (await refusal(verifier, raw, now=last_second)).code is ErrorCode.REPLAY


async def test_same_nonce_from_another_key_is_not_a_replay(ed_key: PrivateKey) -> None:
    other = PrivateKey.generate("EdDSA")
    first = sign(REQUEST, ed_key)
    second = resign(sign(REQUEST, other), other, nonce=block(first)["nonce"])
    nonces = MemoryNonceStore()
    verifier = MessageVerifier(
        audience=AUD, keys=PinnedKeys([ed_key.public_key, other.public_key]), nonces=nonces, clock=lambda: NOW
    )
    await verifier.verify(wire(first))
    await verifier.verify(wire(second))
    assert len(nonces) == 2


async def test_nonce_is_recorded_only_after_the_signature_verifies(key: PrivateKey) -> None:
    genuine = sign(REQUEST, key)
    forged = copy.deepcopy(genuine)
    forged["params"]["arguments"]["text"] = "rm -rf /"
    nonces = MemoryNonceStore()
    verifier = verifier_for(key, nonces)
    assert (await refusal(verifier, wire(forged))).code is ErrorCode.BAD_SIGNATURE
    assert len(nonces) == 0
    verified = await verifier.verify(wire(genuine))
    assert verified.block.nonce == block(forged)["nonce"]
    assert len(nonces) == 1


@pytest.mark.parametrize(
    "defect",
    [
        pytest.param(lambda m: m["params"].update(name="x"), id="bad-signature"),
        pytest.param(lambda m: block(m).update(aud="https://other.example"), id="wrong-aud"),
        pytest.param(lambda m: block(m).update(iat=NOW + 100, exp=NOW + 160), id="future"),
        pytest.param(lambda m: block(m).update(kid=b64u_encode(bytes(32))), id="unknown-kid"),
    ],
)
async def test_refused_messages_leave_the_store_unchanged(key: PrivateKey, defect: Tamper) -> None:
    signed = sign(REQUEST, key)
    defect(signed)
    nonces = MemoryNonceStore()
    await refusal(verifier_for(key, nonces), wire(signed))
    assert len(nonces) == 0


class _DownStore:
    async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
        raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="connection refused")

    async def aclose(self) -> None:
        return None


async def test_store_down_refuses_the_message(ed_key: PrivateKey) -> None:
    verifier = MessageVerifier(audience=AUD, keys=PinnedKeys([ed_key.public_key]), nonces=_DownStore())
    raw = wire(sign(REQUEST, ed_key))
    assert (await refusal(verifier, raw, now=NOW)).code is ErrorCode.STORE_UNAVAILABLE


async def test_nonce_is_held_until_exp_plus_skew(ed_key: PrivateKey) -> None:
    class Recording(MemoryNonceStore):
        expiries: list[int] = []  # noqa: RUF012

        async def claim(self, kid: KeyId, nonce: str, *, expires_at: int, now: float) -> bool:
            self.expiries.append(expires_at)
            return await super().claim(kid, nonce, expires_at=expires_at, now=now)

    store = Recording()
    await verifier_for(ed_key, store).verify(wire(sign(REQUEST, ed_key)))
    assert store.expiries[0] > NOW + 60 + SKEW  # held through the last second the window accepts


# --- refusal messages never echo input --------------------------------------------------------------------------


def _marked_request() -> dict[str, Any]:
    message = copy.deepcopy(REQUEST)
    message["method"] = f"tools/{MARKER}"
    message["params"]["name"] = MARKER
    message["params"]["arguments"][MARKER] = MARKER
    return message


def _with_marker(name: str, key: PrivateKey) -> bytes:
    """A message that fails in one named way, with MARKER in as many places as that failure allows."""
    signed = sign_message(_marked_request(), key, audience=AUD, now=NOW)
    raw_by_name: dict[str, bytes] = {
        "bad-signature": wire({**signed, "id": MARKER}),
        "wrong-aud": wire(sign_message(_marked_request(), key, audience=MARKER, now=NOW)),
        "expired": wire(sign_message(_marked_request(), key, audience=AUD, now=NOW - 1000)),
        "unknown-v": wire(resign(signed, key, v=2)),
        "unknown-member": wire(resign(signed, key, **{MARKER: MARKER})),
        "bad-alg": wire(resign(signed, key, alg=MARKER)),
        "bad-kid": wire(resign(signed, key, kid=MARKER)),
        "bad-aud-type": wire(resign(signed, key, aud=[MARKER])),
        "unknown-kid": wire(sign_message(_marked_request(), PrivateKey.generate("EdDSA"), audience=AUD, now=NOW)),
        "missing-block": wire(_marked_request()),
        "not-jsonrpc": wire({**_marked_request(), "jsonrpc": MARKER}),
        "duplicate-key": f'{{"jsonrpc":"2.0","{MARKER}":1,"{MARKER}":2}}'.encode(),
        "syntax": f'{{"jsonrpc":"2.0","{MARKER}"'.encode(),
        "not-utf8": MARKER.encode() + b"\xff",
        "lone-surrogate": f'{{"{MARKER}":"\\ud800{MARKER}"}}'.encode(),
        "integer": f'{{"{MARKER}":{10**20}}}'.encode(),
        "nan": f'{{"{MARKER}":NaN}}'.encode(),
        "too-large": f'{{"{MARKER}":"{"x" * 5000}"}}'.encode(),
        "too-deep": ("[" * 70 + f'"{MARKER}"' + "]" * 70).encode(),
        "batch": f'[{{"{MARKER}":1}}]'.encode(),
    }
    return raw_by_name[name]


MARKER_CASES = [
    "bad-signature", "wrong-aud", "expired", "unknown-v", "unknown-member", "bad-alg", "bad-kid", "bad-aud-type",
    "unknown-kid", "missing-block", "not-jsonrpc", "duplicate-key", "syntax", "not-utf8", "lone-surrogate",
    "integer", "nan", "too-large", "too-deep", "batch",
]  # fmt: skip


@pytest.mark.parametrize("case", MARKER_CASES)
async def test_refusal_message_never_contains_input(ed_key: PrivateKey, case: str) -> None:
    raw = _with_marker(case, ed_key)
    assert MARKER.encode() in raw
    verifier = MessageVerifier(
        audience=AUD, keys=PinnedKeys([ed_key.public_key]), nonces=MemoryNonceStore(), limits=Limits(max_bytes=4096)
    )
    error = await refusal(verifier, raw, now=NOW)
    assert MARKER not in error.message
    assert MARKER not in str(error)
    assert MARKER not in json.dumps(error.to_jsonrpc_error())


async def test_response_refusals_never_contain_input(ed_key: PrivateKey) -> None:
    result = copy.deepcopy(RESULT)
    result["result"]["content"][0]["text"] = MARKER
    signed = sign_message(result, ed_key, audience=AUD, now=NOW, in_reply_to=MARKER)
    error = await refusal(verifier_for(ed_key), wire(signed), in_reply_to="other-request-sig")
    assert error.code is ErrorCode.TRANSCRIPT_MISMATCH
    assert MARKER not in str(error)


# --- hop members (SPEC.md §9.8) -----------------------------------------------------------------------------------


def _block_holder(message: dict[str, Any], kind: MessageKind) -> dict[str, Any]:
    if kind is MessageKind.ERROR:
        holder: dict[str, Any] = message["error"]["data"]
    else:
        holder = message["result" if kind is MessageKind.RESULT else "params"]["_meta"]
    return holder


@pytest.mark.parametrize("name", list(MESSAGES))
def test_without_hop_members_removes_them_from_the_block_container_only(ed_key: PrivateKey, name: str) -> None:
    signed = sign(MESSAGES[name], ed_key, b64u_encode(bytes(64)))
    assert without_hop_members(signed) is signed  # nothing to remove: the same object
    hopped = copy.deepcopy(signed)
    _block_holder(hopped, KINDS[name]).update({"mcps/via": [{"kid": "k"}], "mcps/grant": "g.g.g", "other": 1})
    before = copy.deepcopy(hopped)
    stripped = without_hop_members(hopped)
    assert hopped == before  # the input is not modified
    assert set(_block_holder(stripped, KINDS[name])) == set(_block_holder(before, KINDS[name])) - {
        "mcps/via",
        "mcps/grant",
    }
    assert signing_input(stripped) == signing_input(hopped)  # they were outside the signature anyway


async def test_receiver_with_several_names_accepts_each_and_nothing_else(ed_key: PrivateKey) -> None:
    """SPEC §4.4, §9.2: an end is addressed by its identity or by its own key's kid."""
    other = PrivateKey.generate()
    verifier = MessageVerifier(
        audience=(AUD, other.kid), keys=PinnedKeys([ed_key.public_key]), nonces=MemoryNonceStore(), clock=lambda: NOW
    )
    signer = MessageSigner(ed_key, clock=lambda: NOW)
    for aud in (AUD, other.kid):
        await verifier.verify(wire(signer.sign(REQUEST, audience=aud)))
    elsewhere = wire(signer.sign(REQUEST, audience="urn:else"))
    assert (await refusal(verifier, elsewhere)).code is ErrorCode.AUDIENCE_MISMATCH
    with pytest.raises(ValueError, match="own name"):
        MessageVerifier(audience=(), keys=PinnedKeys([ed_key.public_key]), nonces=MemoryNonceStore())
