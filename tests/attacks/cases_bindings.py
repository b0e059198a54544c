"""Binding attacks (SPEC.md §9): frames a peer or a relay writes to an mcps server — on stdio (a real subprocess),
in-process under the SDK, and over Streamable HTTP (a real uvicorn on 127.0.0.1) — and responses a malicious
server writes to an mcps agent under the SDK's ``ClientSession``.

A frame case builds the frames written to the server (:mod:`.frame_server`); the last is the attack, or, in the
control, the same frame without the defect, which must be answered by the tool. ``expect`` says what the attack
must get on each surface (``"*"``: every surface): a signed refusal with a code and an ``id`` (:class:`Refused`),
no answer at all (:class:`Dropped`: stdio and in-process; HTTP answers every POST), or a tool answer with a given
text (:class:`Delivered`). After every attack the runner sends one more call and requires its answer: no frame may
stop the server.

Every frame is a 2026-07-28 request (per-request envelope, no handshake), signed by the agent for the server.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.errors import ErrorCode as E

from .corpus import CANARY, Case, Threat, unique
from .pki import AGENT, ATTACKER, NOW, SERVER, SERVER_ID, call, dumps, forge, sign

ECHO_ID: Final = object()
"""In :class:`Refused`: the refusal carries the attack frame's own id."""


@dataclass(frozen=True)
class Refused:
    code: E
    id: object = ECHO_ID
    """``ECHO_ID``, or ``None`` for ``id: null``."""


@dataclass(frozen=True)
class Dropped:
    """Not answered (SPEC.md §9.1): the next thing the server writes is the answer to the following call."""


@dataclass(frozen=True)
class Delivered:
    """Answered by the tool; its text must be ``text``."""

    text: str


Outcome = Refused | Dropped | Delivered


@dataclass(frozen=True)
class Frames:
    frames: tuple[bytes, ...]
    attack_id: object = None
    """The id the attack frame claims (what an ``ECHO_ID`` refusal must carry)."""
    call_id: str = ""
    """The id of the last frame's request, whose answer the control waits for."""


_ids = itertools.count(1)


def next_id() -> str:
    return f"a-{next(_ids)}"


def frame(message: Mapping[str, Any]) -> bytes:
    return dumps(message)


def signed_call(
    request_id: str | None = None, *, name: str = "echo", arguments: Mapping[str, Any] | None = None, **sign_args: Any
) -> dict[str, Any]:
    """A 2026-07-28 tools/call from the agent, signed for the server."""
    return sign(call(request_id or next_id(), name=name, arguments=arguments, meta=True), **sign_args)


def one(raw: bytes, request_id: object) -> Frames:
    return Frames((raw,), request_id, request_id if isinstance(request_id, str) else "")


def raw_edit(
    change: Callable[[bytes], bytes], *, name: str = "echo", arguments: Mapping[str, Any] | None = None
) -> Callable[[bool], Frames]:
    """The attack is a signed call's bytes changed by ``change``; the control is the call's bytes as signed."""

    def build(defect: bool) -> Frames:
        request_id = next_id()
        raw = frame(signed_call(request_id, name=name, arguments=arguments))
        return one(change(raw) if defect else raw, request_id)

    return build


def message_edit(change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Callable[[bool], Frames]:
    def build(defect: bool) -> Frames:
        request_id = next_id()
        message = signed_call(request_id)
        if defect:
            message = change(json.loads(json.dumps(message))) or message
        return one(frame(message), request_id)

    return build


def signed_with(**attack: Any) -> Callable[[bool], Frames]:
    """The attack signed with ``attack`` (key, aud, now…), the control as usual."""

    def build(defect: bool) -> Frames:
        request_id = next_id()
        return one(frame(signed_call(request_id, **(attack if defect else {}))), request_id)

    return build


def forged_block(**members: Any) -> Callable[[bool], Frames]:
    """The attack's signature block has ``members`` and is signed again over them."""

    def build(defect: bool) -> Frames:
        request_id = next_id()
        message = forge(call(request_id, meta=True), block=members) if defect else signed_call(request_id)
        return one(frame(message), request_id)

    return build


def replayed(defect: bool) -> Frames:
    first = next_id()
    raw = frame(signed_call(first))
    if defect:
        return Frames((raw, raw), first, first)
    second = next_id()
    return Frames((raw, frame(signed_call(second))), second, second)


def unsigned(message: dict[str, Any]) -> dict[str, Any]:
    del message["params"]["_meta"]["mcps/sig"]
    return message


def replace_id(new_id: bytes) -> Callable[[bool], Frames]:
    """The attack claims the id ``new_id`` (raw JSON text), unsigned: nothing verifies before the strict parse."""

    def build(defect: bool) -> Frames:
        request_id = next_id()
        raw = frame(signed_call(request_id))
        attack = raw.replace(f'"id":"{request_id}"'.encode(), b'"id":' + new_id, 1)
        return one(attack if defect else raw, request_id)

    return build


def with_hop_members(message: dict[str, Any]) -> dict[str, Any]:
    meta = message["params"]["_meta"]
    meta["mcps/via"] = [{"kid": ATTACKER.kid, "iat": NOW, "aud": SERVER_ID, "sig": CANARY}]
    meta["mcps/grant"] = CANARY
    return message


def hop_members(defect: bool) -> Frames:
    request_id = next_id()
    message = signed_call(request_id, name="meta", arguments={})
    return Frames((frame(with_hop_members(message) if defect else message),), request_id, request_id)


def respelled(value: bytes, spelling: bytes) -> Callable[[bool], Frames]:
    """A signed call to ``number`` with ``value``; the attack respells it (same canonical form, still verifies)."""

    def build(defect: bool) -> Frames:
        request_id = next_id()
        raw = frame(signed_call(request_id, name="number", arguments={"value": json.loads(value), "c": CANARY}))
        return one(raw.replace(b'"value":' + value, b'"value":' + spelling) if defect else raw, request_id)

    return build


def oversize(defect: bool) -> Frames:
    request_id = next_id()
    padding = "x" * (4 * 1024 * 1024 - 300 if defect else 1000)
    return one(frame(signed_call(request_id, arguments={"text": CANARY, "pad": padding})), request_id)


def notification(defect: bool) -> Frames:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": CANARY}}
    signed = sign(message)
    if defect:
        del signed["params"]["_meta"]["mcps/sig"]
        return Frames((frame(signed),), None, "")
    request_id = next_id()
    return Frames((frame(signed), frame(signed_call(request_id))), request_id, request_id)


def response_to_nothing(defect: bool) -> Frames:
    result = {"jsonrpc": "2.0", "id": "never-asked", "result": {"content": [{"type": "text", "text": CANARY}]}}
    if defect:
        return Frames((frame(sign(result, in_reply_to="A" * 86)),), None, "")
    request_id = next_id()
    return one(frame(signed_call(request_id)), request_id)


N = Threat.NETWORK
A = Threat.AGENT

STREAMS: Final = ("stdio", "sdk")
EVERYWHERE: Final = ("stdio", "sdk", "http")


def case(
    name: str,
    code: E | None,
    summary: str,
    build: Callable[[bool], Frames],
    expect: Mapping[str, Outcome],
    *,
    threat: Threat = N,
    xfail: str | None = None,
    surfaces: tuple[str, ...] = EVERYWHERE,
    isolated: bool = False,
) -> Case[Frames]:
    return Case(
        name,
        code,
        threat,
        build,
        summary,
        expect=dict(expect),
        xfail=xfail,
        surfaces=surfaces,
        tags=("isolated",) if isolated else (),
    )


def refused(code: E, request_id: object = ECHO_ID) -> dict[str, Outcome]:
    return {"*": Refused(code, request_id)}


def dropped(code: E, http_id: object = None) -> dict[str, Outcome]:
    """Not answered on a stream; on HTTP (one answer per POST) refused with ``id`` ``http_id``."""
    return {"stdio": Dropped(), "sdk": Dropped(), "http": Refused(code, http_id)}


FRAME_CASES: list[Case[Frames]] = unique(
    [
        case(
            "frame-dup-key-tool-name",
            E.DUPLICATE_KEY,
            '{"name":"echo","name":"rm_rf"} in a signed call',
            raw_edit(lambda b: b.replace(b'"name":"echo"', b'"name":"echo","name":"rm_rf"', 1)),
            refused(E.DUPLICATE_KEY),
        ),
        case(
            "frame-dup-key-unicode-escape",
            E.DUPLICATE_KEY,
            'the second name spelt "n\\u0061me"',
            raw_edit(lambda b: b.replace(b'"name":"echo"', b'"name":"echo","n\\u0061me":"rm_rf"', 1)),
            refused(E.DUPLICATE_KEY),
        ),
        case(
            "frame-id-lone-surrogate",
            E.INVALID_STRING,
            'an unsigned frame with id "\\ud800": answered with id null',
            replace_id(b'"\\ud800"'),
            refused(E.INVALID_STRING, None),
            isolated=True,
        ),
        case(
            "frame-id-beyond-2p53",
            E.NUMBER_NOT_IJSON,
            "an unsigned frame with id 18446744073709551617",
            replace_id(b"18446744073709551617"),
            refused(E.NUMBER_NOT_IJSON, None),
            isolated=True,
        ),
        case(
            "frame-id-true",
            E.NOT_JSONRPC,
            "id true: not a request; answered with id null, never as request 1 (SPEC §9.1)",
            replace_id(b"true"),
            refused(E.NOT_JSONRPC, None),
        ),
        case(
            "frame-over-4-mib",
            E.MESSAGE_TOO_LARGE,
            "a 4 MiB + line: discarded while reading",
            oversize,
            dropped(E.MESSAGE_TOO_LARGE),
        ),
        case(
            "frame-not-utf8",
            E.MALFORMED_JSON,
            "a Latin-1 byte in a signed call",
            raw_edit(lambda b: b.replace(CANARY.encode(), CANARY.encode() + b"\xe9", 1)),
            dropped(E.MALFORMED_JSON),
        ),
        case(
            "frame-nan-argument",
            E.NUMBER_NOT_IJSON,
            "NaN in the arguments",
            raw_edit(
                lambda b: b.replace(b'"value":1', b'"value":NaN', 1), name="number", arguments={"value": 1, "c": CANARY}
            ),
            refused(E.NUMBER_NOT_IJSON),
        ),
        case(
            "frame-batch",
            E.BATCH_REJECTED,
            "the signed call wrapped in a batch",
            raw_edit(lambda b: b"[" + b + b"]"),
            dropped(E.BATCH_REJECTED),
        ),
        case(
            "frame-two-messages-on-one-line",
            E.MALFORMED_JSON,
            "two JSON objects on one line",
            raw_edit(lambda b: b + b),
            dropped(E.MALFORMED_JSON),
        ),
        case(
            "frame-too-deep",
            E.TOO_DEEP,
            "65 levels of nesting in the arguments",
            raw_edit(lambda b: b.replace(b'"text":', b'"deep":' + b'{"a":' * 62 + b"1" + b"}" * 62 + b',"text":', 1)),
            refused(E.TOO_DEEP),
        ),
        case(
            "frame-tampered-argument",
            E.BAD_SIGNATURE,
            "the text argument changed in transit",
            raw_edit(lambda b: b.replace(CANARY.encode(), CANARY.encode() + b"!", 1)),
            refused(E.BAD_SIGNATURE),
        ),
        case(
            "frame-tool-swapped",
            E.BAD_SIGNATURE,
            "echo swapped for rm_rf in transit",
            raw_edit(lambda b: b.replace(b'"name":"echo"', b'"name":"rm_rf"', 1)),
            refused(E.BAD_SIGNATURE),
        ),
        case(
            "frame-unsigned",
            E.SIGNATURE_MISSING,
            "the signature block stripped",
            message_edit(unsigned),
            refused(E.SIGNATURE_MISSING),
        ),
        case(
            "frame-wrong-audience",
            E.AUDIENCE_MISMATCH,
            "signed for another server",
            signed_with(aud="urn:mcps:attacks:other-server"),
            refused(E.AUDIENCE_MISMATCH),
        ),
        case(
            "frame-expired",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "signed two minutes ago",
            signed_with(now=NOW - 120),
            refused(E.TIMESTAMP_OUT_OF_WINDOW),
        ),
        case(
            "frame-signed-by-another-key",
            E.UNKNOWN_KEY,
            "signed by a key the server does not trust",
            signed_with(key=ATTACKER),
            refused(E.UNKNOWN_KEY),
        ),
        case(
            "frame-sig-version-2", E.NO_COMMON_VERSION, "v = 2, signed", forged_block(v=2), refused(E.NO_COMMON_VERSION)
        ),
        case(
            "frame-alg-none",
            E.ALGORITHM_MISMATCH,
            'alg "none", signed',
            forged_block(alg="none"),
            refused(E.ALGORITHM_MISMATCH),
        ),
        case(
            "frame-params-array",
            E.NOT_JSONRPC,
            "params is an array",
            message_edit(lambda m: {**m, "params": [CANARY]}),
            refused(E.NOT_JSONRPC),
        ),
        case(
            "frame-jsonrpc-1",
            E.NOT_JSONRPC,
            'jsonrpc "1.0"',
            message_edit(lambda m: {**m, "jsonrpc": "1.0"}),
            refused(E.NOT_JSONRPC),
        ),
        case(
            "frame-replayed",
            E.REPLAY,
            "the same signed call twice: the tool runs once",
            replayed,
            {"stdio": Dropped(), "sdk": Dropped(), "http": Refused(E.REPLAY)},
        ),
        case(
            "frame-unsigned-notification",
            E.SIGNATURE_MISSING,
            "a notification without a signature",
            notification,
            dropped(E.SIGNATURE_MISSING),
        ),
        case(
            "frame-response-to-nothing",
            E.TRANSCRIPT_MISMATCH,
            "a signed result no request asked for",
            response_to_nothing,
            dropped(E.TRANSCRIPT_MISMATCH),
            threat=A,
        ),
        case(
            "frame-hop-members-injected",
            None,
            "mcps/via and mcps/grant added in transit reach no tool",
            hop_members,
            {
                "*": Delivered(
                    '["io.modelcontextprotocol/clientCapabilities", '
                    '"io.modelcontextprotocol/clientInfo", '
                    '"io.modelcontextprotocol/protocolVersion", "mcps/sig"]'
                )
            },
        ),
        case(
            "frame-number-respelled-exponent",
            None,
            "a signed 125 respelled 1.25E2 reaches the tool as 125",
            respelled(b"125", b"1.25E2"),
            {"*": Delivered("int:125")},
        ),
        case(
            "frame-number-respelled-fraction",
            None,
            "a signed 1 respelled 1.0 reaches the tool as 1",
            respelled(b"1", b"1.0"),
            {"*": Delivered("int:1")},
        ),
        case(
            "frame-number-respelled-negative-zero",
            None,
            "a signed 0 respelled -0.0 reaches the tool as 0",
            respelled(b"0", b"-0.0"),
            {"*": Delivered("int:0")},
        ),
    ]
)


# --- a malicious server answering an mcps agent (SDK ClientSession, in process) ----------------------------------


@dataclass(frozen=True)
class Answer:
    """How the fake server answers the agent's ``tools/call``: ``respond(request)`` returns the frames to write.

    Every attack is a stray frame before the genuine answer, and the call must still get that answer: a stray
    server→client request is refused with a signed error the agent sends back; a forged answer to the call is
    refused (logged with its code) and dropped, and ends nothing (SPEC.md §9.1, responses that fail)."""

    respond: Callable[[dict[str, Any]], list[bytes]]
    answer: bool = False
    """The stray frame is an answer to the call: refused by the agent alone, nothing is sent back."""


CLIENT_SURFACE: Final = ("sdk-client",)
U = Threat.UPSTREAM
_RESULT: Final = {"content": [{"type": "text", "text": f"echo: {CANARY}"}], "isError": False}


def result_for(
    request: dict[str, Any], *, key: Any = None, result: Mapping[str, Any] | None = None, request_sig: str | None = None
) -> dict[str, Any]:
    sig = request_sig or request["params"]["_meta"]["mcps/sig"]["sig"]
    message = {"jsonrpc": "2.0", "id": request["id"], "result": dict(result or _RESULT)}
    return sign(message, key or SERVER, aud=AGENT.kid, in_reply_to=sig)


def answering(attack: Callable[[dict[str, Any]], list[bytes]]) -> Callable[[bool], Answer]:
    """``attack(request)``'s frames, then the genuine answer; the control: the genuine answer alone."""
    genuine: Callable[[dict[str, Any]], list[bytes]] = lambda r: [frame(result_for(r))]  # noqa: E731
    return lambda defect: Answer((lambda r: [*attack(r), *genuine(r)]) if defect else genuine)


def forged_answer(forge: Callable[[dict[str, Any]], bytes]) -> Callable[[bool], Answer]:
    """A forged answer to the call, ``forge(request)``, injected before the genuine one."""
    build = answering(lambda r: [forge(r)])
    return lambda defect: Answer(build(defect).respond, answer=True)


def client_case(
    name: str, code: E, summary: str, build: Callable[[bool], Answer], *, threat: Threat = U, xfail: str | None = None
) -> Case[Answer]:
    return Case(name, code, threat, build, summary, xfail=xfail, surfaces=CLIENT_SURFACE)


CLIENT_CASES: list[Case[Answer]] = unique(
    [
        client_case(
            "client-result-unsigned",
            E.SIGNATURE_MISSING,
            "a copy of the result without its signature, injected before it",
            forged_answer(lambda r: frame(strip(result_for(r)))),
            threat=N,
        ),
        client_case(
            "client-result-tampered",
            E.BAD_SIGNATURE,
            "a copy of the result with its text changed, injected before it",
            forged_answer(lambda r: frame(result_for(r)).replace(CANARY.encode(), CANARY.encode() + b"!", 1)),
            threat=N,
        ),
        client_case(
            "client-result-from-another-key",
            E.UNKNOWN_KEY,
            "a result signed by a key the agent did not pin, before the real one",
            forged_answer(lambda r: frame(result_for(r, key=ATTACKER))),
        ),
        client_case(
            "client-result-bound-to-another-request",
            E.TRANSCRIPT_MISMATCH,
            "a result whose irt names another request, before the real one",
            forged_answer(lambda r: frame(result_for(r, request_sig="B" * 85 + "A"))),
        ),
        client_case(
            "client-result-dup-key",
            E.DUPLICATE_KEY,
            'a copy of the result with "isError":false,"isError":true, before it',
            forged_answer(
                lambda r: frame(result_for(r)).replace(b'"isError":false', b'"isError":false,"isError":true', 1)
            ),
            threat=N,
        ),
        client_case(
            "client-result-lone-surrogate",
            E.INVALID_STRING,
            "a copy of the result with a lone surrogate in its text, before it",
            forged_answer(lambda r: frame(result_for(r)).replace(CANARY.encode(), CANARY.encode() + b"\\ud800", 1)),
            threat=N,
        ),
        client_case(
            "client-server-request-id-lone-surrogate",
            E.INVALID_STRING,
            'an unsigned server→client request with id "\\ud800" before the real answer: refused with id '
            "null, and the session lives on",
            answering(
                lambda _r: [
                    b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping","params":{"c":"' + CANARY.encode() + b'"}}'
                ],
            ),
            threat=N,
        ),
        client_case(
            "client-server-request-unsigned",
            E.SIGNATURE_MISSING,
            "an unsigned server→client request before the real answer: refused, the session lives on",
            answering(
                lambda _r: [frame({"jsonrpc": "2.0", "id": "s-1", "method": "ping", "params": {"c": CANARY}})],
            ),
            threat=N,
        ),
    ]
)


def strip(message: dict[str, Any]) -> dict[str, Any]:
    del message["result"]["_meta"]["mcps/sig"]
    return message


# --- HTTP only: requests that are not one message ----------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    body: bytes | None = None
    headers: Mapping[str, str] | None = None
    chunked: bool = False
    """Send the body in 64 KiB chunks without a content-length."""


@dataclass(frozen=True)
class HttpRefusal:
    status: int
    code: E | None
    """``None``: refused by HTTP alone (no JSON-RPC body)."""


def _call_body() -> bytes:
    return frame(signed_call())


def http_case(
    name: str, code: E | None, summary: str, build: Callable[[bool], HttpRequest], status: int, *, threat: Threat = N
) -> Case[HttpRequest]:
    return Case(name, code, threat, build, summary, expect=HttpRefusal(status, code), surfaces=("http",))


HTTP_CASES: list[Case[HttpRequest]] = unique(
    [
        http_case(
            "http-unknown-session",
            E.TRANSCRIPT_MISMATCH,
            "a signed call naming a session never opened",
            lambda d: HttpRequest("POST", _call_body(), {"mcp-session-id": CANARY} if d else {}),
            404,
        ),
        http_case(
            "http-get-without-session",
            E.TRANSCRIPT_MISMATCH,
            "a GET stream for a session never opened",
            lambda d: (
                HttpRequest("GET", headers={"mcp-session-id": CANARY} if d else None)
                if d
                else HttpRequest("POST", _call_body())
            ),
            404,
        ),
        http_case(
            "http-method-put",
            None,
            "PUT on the MCP endpoint",
            lambda d: HttpRequest("PUT" if d else "POST", _call_body()),
            405,
        ),
        http_case(
            "http-chunked-body-over-4-mib",
            E.MESSAGE_TOO_LARGE,
            "a chunked body without length, over 4 MiB",
            lambda d: HttpRequest(
                "POST",
                frame(signed_call(arguments={"text": CANARY, "pad": "x" * (4 * 1024 * 1024 if d else 1000)})),
                chunked=True,
            ),
            413,
        ),
    ]
)
