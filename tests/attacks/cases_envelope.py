"""Envelope attacks (SPEC.md §4–5): a signed message altered, re-addressed, replayed or re-timed on its way, each
refused by :class:`mcps.MessageVerifier` with the code of the first check it fails.

A case builds a :class:`Scenario`: the messages one verifier receives in order. The control is accepted whole;
in the attack every message but the last is accepted and the last is refused. Shape defects are *forged*: the
block is changed and the message signed again over it (:func:`~.pki.forge`), so the signature verifies and only the
defect can refuse it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.envelope import request_binding
from mcps.core.errors import ErrorCode as E
from mcps.core.keys import P256_ORDER, PublicKey

from .corpus import CANARY, Case, Threat, unique
from .pki import AGENT, AGENT_ES, ATTACKER, NOW, OTHER_AGENT, SERVER, SERVER_ID, call, dumps, forge, sig_of, sign


@dataclass(frozen=True)
class Step:
    raw: bytes
    in_reply_to: str | None = None


@dataclass(frozen=True)
class Scenario:
    """Messages verified in order by one verifier for ``audience`` that trusts ``keys``."""

    steps: tuple[Step, ...]
    audience: str = SERVER_ID
    keys: tuple[PublicKey, ...] = field(default=(AGENT.public_key, AGENT_ES.public_key, OTHER_AGENT.public_key))


AGENT_AUDIENCE = AGENT.kid
"""What an agent known by its key is addressed as: its kid."""


def one(message: dict[str, Any] | bytes) -> Scenario:
    return Scenario((Step(message if isinstance(message, bytes) else dumps(message)),))


def edited(message: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    changed = copy.deepcopy(message)
    edit(changed)
    return changed


def block(message: dict[str, Any]) -> dict[str, Any]:
    container = message["params"]["_meta"] if "params" in message else message["result"]["_meta"]
    return container["mcps/sig"]  # type: ignore[no-any-return]


def request(**kwargs: Any) -> dict[str, Any]:
    return sign(call(**kwargs))


def attack_on_request(edit: Callable[[dict[str, Any]], None]) -> Callable[[bool], Scenario]:
    """The control is a signed request; the attack is the same request with ``edit`` applied after signing."""
    return lambda defect: one(edited(request(), edit) if defect else request())


def forged_block(**members: Any) -> Callable[[bool], Scenario]:
    """The attack has block members set to ``members`` and is signed again over them."""
    return lambda defect: one(forge(call(), block=members) if defect else request())


def response_to(request_sig: str, *, key: Any = SERVER, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The server's result for the request whose signature is ``request_sig`` (``drop``: block members removed,
    signed again)."""
    result = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": CANARY}]}}
    if not drop:
        return sign(result, key, aud=AGENT_AUDIENCE, in_reply_to=request_sig)
    return forge(result, key, aud=AGENT_AUDIENCE, in_reply_to=request_sig, drop=drop)


def client_side(*steps: Step) -> Scenario:
    """The agent verifying what its server sent."""
    return Scenario(steps, audience=AGENT_AUDIENCE, keys=(SERVER.public_key,))


REQUEST_SIG = sig_of(sign(call(1)))
OTHER_REQUEST_SIG = sig_of(sign(call(2)))


_B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def spare_bits(text: str) -> str:
    """``text`` with its last character's unused low bit set: the same bytes, a second (non-canonical) spelling."""
    return text[:-1] + _B64U[_B64U.index(text[-1]) + 1]


def replay(defect: bool, encode: Callable[[dict[str, Any]], bytes]) -> Scenario:
    """A request, then (attack) the same request again, encoded by ``encode``, or (control) a fresh one."""
    first = request()
    return Scenario((Step(dumps(first)), Step(encode(first if defect else request()))))


def signed_error() -> dict[str, Any]:
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no", "data": CANARY}}
    return sign(error, SERVER, aud=AGENT_AUDIENCE, in_reply_to=REQUEST_SIG)


def flip_bit(text: str) -> str:
    raw = bytearray(b64u_decode(text))
    raw[10] ^= 0x01
    return b64u_encode(bytes(raw))


def high_s(message: dict[str, Any]) -> dict[str, Any]:
    """The same ES256 signature with ``s`` replaced by ``n − s``: valid for a lenient verifier."""
    raw = b64u_decode(block(message)["sig"])
    s = int.from_bytes(raw[32:], "big")
    block(message)["sig"] = b64u_encode(raw[:32] + (P256_ORDER - s).to_bytes(32, "big"))
    return message


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(message: dict[str, Any]) -> None:
        node = message
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _delete(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def edit(message: dict[str, Any]) -> None:
        node = message
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _move_block_to(where: str) -> Callable[[dict[str, Any]], None]:
    def edit(message: dict[str, Any]) -> None:
        moved = message["params"]["_meta"].pop("mcps/sig")
        if where == "params":
            message["params"]["mcps/sig"] = moved
        else:
            message["mcps/sig"] = moved

    return edit


FIRST_RESPONSE = response_to(REQUEST_SIG)
N = Threat.NETWORK
A = Threat.AGENT
U = Threat.UPSTREAM


def case(name: str, code: E, summary: str, build: Callable[[bool], Scenario], threat: Threat = N) -> Case[Scenario]:
    return Case(name, code, threat, build, summary)


CASES: list[Case[Scenario]] = unique(
    [
        # --- the block: present, an object, exact members (MCPS-026, 027, 015, 028) -----------------------------
        case(
            "sig-block-stripped",
            E.SIGNATURE_MISSING,
            "the block is removed",
            attack_on_request(_delete(("params", "_meta", "mcps/sig"))),
        ),
        case(
            "sig-block-moved-to-params",
            E.SIGNATURE_MISSING,
            "the block sits in params, not params._meta",
            attack_on_request(_move_block_to("params")),
        ),
        case(
            "sig-block-moved-to-top-level",
            E.SIGNATURE_MISSING,
            "the block sits beside jsonrpc, where SDKs drop it",
            attack_on_request(_move_block_to("top")),
        ),
        case(
            "meta-not-an-object",
            E.SIGNATURE_MISSING,
            "params._meta replaced by a string",
            attack_on_request(_set(("params", "_meta"), CANARY)),
        ),
        case(
            "sig-block-not-an-object",
            E.SIGNATURE_MALFORMED,
            "the block is a string",
            attack_on_request(_set(("params", "_meta", "mcps/sig"), CANARY)),
        ),
        case("sig-block-unknown-member", E.SIGNATURE_MALFORMED, "an extra member, signed", forged_block(ext=CANARY)),
        case(
            "sig-block-missing-nonce",
            E.SIGNATURE_MALFORMED,
            "no nonce, signed",
            lambda d: one(forge(call(), drop=["nonce"]) if d else request()),
        ),
        case(
            "sig-block-missing-aud",
            E.SIGNATURE_MALFORMED,
            "no aud, signed",
            lambda d: one(forge(call(), drop=["aud"]) if d else request()),
        ),
        case("sig-version-2", E.NO_COMMON_VERSION, "v = 2, signed: a newer format, named as such", forged_block(v=2)),
        case("sig-version-string", E.SIGNATURE_MALFORMED, 'v = "1"', forged_block(v="1")),
        case("sig-version-true", E.SIGNATURE_MALFORMED, "v = true (a bool is not an integer)", forged_block(v=True)),
        case(
            "sig-version-fraction",
            E.SIGNATURE_MALFORMED,
            "v = 1.5: a number that is no integer (1.0 would be the integer 1, SPEC §3)",
            forged_block(v=1.5),
        ),
        case("alg-none", E.ALGORITHM_MISMATCH, 'alg = "none"', forged_block(alg="none")),
        case("alg-hs256", E.ALGORITHM_MISMATCH, 'alg = "HS256"', forged_block(alg="HS256")),
        case("alg-lowercase", E.ALGORITHM_MISMATCH, 'alg = "eddsa"', forged_block(alg="eddsa")),
        case(
            "alg-es256-for-an-ed25519-key",
            E.ALGORITHM_MISMATCH,
            "alg names the other algorithm than the key's",
            forged_block(alg="ES256"),
        ),
        case("alg-not-a-string", E.ALGORITHM_MISMATCH, 'alg = ["EdDSA"]', forged_block(alg=["EdDSA"])),
        # --- the key (MCPS-029, 004) ------------------------------------------------------------------------
        case(
            "kid-unknown",
            E.UNKNOWN_KEY,
            "signed by a key nobody pinned",
            lambda d: one(sign(call(), ATTACKER if d else AGENT)),
        ),
        case(
            "kid-names-another-pinned-key",
            E.BAD_SIGNATURE,
            "kid of a pinned key, signature by another",
            lambda d: one(
                edited(request(), _set(("params", "_meta", "mcps/sig", "kid"), OTHER_AGENT.kid)) if d else request()
            ),
        ),
        case(
            "kid-padded",
            E.SIGNATURE_MALFORMED,
            "kid with base64 padding",
            attack_on_request(lambda m: block(m).update(kid=AGENT.kid + "=")),
        ),
        case(
            "kid-noncanonical-trailing-bits",
            E.SIGNATURE_MALFORMED,
            "kid's last character with non-zero spare bits",
            attack_on_request(lambda m: block(m).update(kid=spare_bits(AGENT.kid))),
        ),
        # --- the signature (MCPS-004, 027) ------------------------------------------------------------------
        case(
            "sig-bit-flip",
            E.BAD_SIGNATURE,
            "one bit of the signature flipped",
            attack_on_request(lambda m: block(m).update(sig=flip_bit(block(m)["sig"]))),
        ),
        case(
            "sig-truncated",
            E.SIGNATURE_MALFORMED,
            "63-byte signature",
            attack_on_request(lambda m: block(m).update(sig=b64u_encode(b64u_decode(block(m)["sig"])[:63]))),
        ),
        case(
            "sig-high-s",
            E.BAD_SIGNATURE,
            "ES256 signature with s > n/2 (malleated)",
            lambda d: one(high_s(sign(call(), AGENT_ES)) if d else sign(call(), AGENT_ES)),
        ),
        case(
            "sig-all-zero",
            E.BAD_SIGNATURE,
            "ES256 r = s = 0",
            lambda d: one(
                edited(sign(call(), AGENT_ES), lambda m: block(m).update(sig="A" * 85 + "A"))
                if d
                else sign(call(), AGENT_ES)
            ),
        ),
        case(
            "sig-from-another-message",
            E.BAD_SIGNATURE,
            "the signature of another request pasted in",
            attack_on_request(lambda m: block(m).update(sig=OTHER_REQUEST_SIG)),
        ),
        case(
            "nonce-too-short",
            E.SIGNATURE_MALFORMED,
            "15-byte nonce, signed",
            forged_block(nonce=b64u_encode(b"\x01" * 15)),
        ),
        case(
            "nonce-too-long",
            E.SIGNATURE_MALFORMED,
            "65-byte nonce, signed",
            forged_block(nonce=b64u_encode(b"\x01" * 65)),
        ),
        case(
            "nonce-not-canonical",
            E.SIGNATURE_MALFORMED,
            "nonce with non-zero spare bits, signed",
            forged_block(nonce="AAAAAAAAAAAAAAAAAAAAAB"),
        ),
        case("iat-true", E.SIGNATURE_MALFORMED, "iat = true, signed", forged_block(iat=True)),
        case("iat-string", E.SIGNATURE_MALFORMED, "iat as a string, signed", forged_block(iat=str(NOW))),
        case("exp-fraction", E.SIGNATURE_MALFORMED, "exp with a fraction, signed", forged_block(exp=NOW + 59.5)),
        # --- time (MCPS-006) --------------------------------------------------------------------------------
        case(
            "expired-beyond-skew",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "exp 31 s ago (the control: 30 s ago, within skew)",
            lambda d: one(sign(call(), now=NOW - (91 if d else 90))),
        ),
        case(
            "issued-in-the-future-beyond-skew",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "iat 31 s ahead (control: 30 s)",
            lambda d: one(sign(call(), now=NOW + (31 if d else 30))),
        ),
        case(
            "expired-long-ago",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "a day old",
            lambda d: one(sign(call(), now=NOW - (86_400 if d else 0))),
        ),
        case(
            "window-301-seconds",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "exp − iat = 301, signed (control: 300)",
            lambda d: one(forge(call(), block={"exp": NOW + (301 if d else 300)})),
        ),
        case(
            "window-zero",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "exp = iat, signed",
            lambda d: one(forge(call(), block={"exp": NOW + (0 if d else 1)})),
        ),
        case(
            "exp-before-iat",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "exp < iat, signed",
            lambda d: one(forge(call(), block={"exp": NOW - 1}) if d else request()),
        ),
        # --- audience (MCPS-011, 027) -----------------------------------------------------------------------
        case(
            "aud-another-server",
            E.AUDIENCE_MISMATCH,
            "signed for server B, sent to server A",
            lambda d: one(sign(call(), aud="urn:mcps:attacks:other-server" if d else SERVER_ID)),
        ),
        case(
            "aud-case-variant",
            E.AUDIENCE_MISMATCH,
            "the audience upper-cased",
            lambda d: one(sign(call(), aud=SERVER_ID.upper() if d else SERVER_ID)),
        ),
        case(
            "aud-trailing-slash",
            E.AUDIENCE_MISMATCH,
            "the audience with a trailing slash",
            lambda d: one(sign(call(), aud=SERVER_ID + "/" if d else SERVER_ID)),
        ),
        case("aud-empty", E.SIGNATURE_MALFORMED, 'aud = "", signed', forged_block(aud="")),
        case(
            "aud-too-long",
            E.SIGNATURE_MALFORMED,
            "aud of 2049 characters, signed",
            forged_block(aud=(CANARY * 200)[:2049]),
        ),
        case(
            "aud-array",
            E.SIGNATURE_MALFORMED,
            "aud as an array holding the right audience, signed",
            forged_block(aud=[SERVER_ID]),
        ),
        # --- coverage of the signature (MCPS-004) -----------------------------------------------------------
        case(
            "tampered-argument",
            E.BAD_SIGNATURE,
            "an argument changed",
            attack_on_request(_set(("params", "arguments", "text"), CANARY + "-tampered")),
        ),
        case(
            "tampered-tool-name",
            E.BAD_SIGNATURE,
            "the tool name changed",
            attack_on_request(_set(("params", "name"), "rm_rf")),
        ),
        case(
            "tampered-method", E.BAD_SIGNATURE, "the method changed", attack_on_request(_set(("method",), "tools/list"))
        ),
        case("tampered-id", E.BAD_SIGNATURE, "the request id changed", attack_on_request(_set(("id",), 2))),
        case("tampered-id-type", E.BAD_SIGNATURE, 'id 1 re-sent as "1"', attack_on_request(_set(("id",), "1"))),
        case(
            "tampered-meta-member",
            E.BAD_SIGNATURE,
            "a covered _meta member changed",
            lambda d: one(
                edited(sign(call(meta=True)), _set(("params", "_meta", "traceparent"), CANARY))
                if d
                else sign(call(meta=True))
            ),
        ),
        case(
            "added-param-member",
            E.BAD_SIGNATURE,
            "a parameter added after signing",
            attack_on_request(_set(("params", "arguments", "extra"), CANARY)),
        ),
        case(
            "removed-param-member",
            E.BAD_SIGNATURE,
            "the arguments removed after signing",
            lambda d: one(
                edited(request(arguments={"text": CANARY, "n": 1}), _delete(("params", "arguments", "n")))
                if d
                else request(arguments={"text": CANARY, "n": 1})
            ),
        ),
        case(
            "passport-added-after-signing",
            E.BAD_SIGNATURE,
            "a passport member added to a signed request",
            attack_on_request(_set(("params", "_meta", "mcps/passport"), CANARY)),
        ),
        # --- replay (MCPS-005) ------------------------------------------------------------------------------
        case("replayed-request", E.REPLAY, "the same signed request twice", lambda d: replay(d, dumps)),
        case(
            "replayed-request-reserialized",
            E.REPLAY,
            "the same request re-serialized (order, spacing)",
            lambda d: replay(d, lambda m: json.dumps(m, indent=1, sort_keys=True).encode()),
        ),
        # --- JSON-RPC shape (MCPS-025, 027) -----------------------------------------------------------------
        case("jsonrpc-version-1", E.NOT_JSONRPC, 'jsonrpc = "1.0"', attack_on_request(_set(("jsonrpc",), "1.0"))),
        case("jsonrpc-member-missing", E.NOT_JSONRPC, "no jsonrpc member", attack_on_request(_delete(("jsonrpc",)))),
        case("params-array", E.NOT_JSONRPC, "params is an array", attack_on_request(_set(("params",), [CANARY]))),
        case("request-id-null", E.NOT_JSONRPC, "a request with id null", attack_on_request(_set(("id",), None))),
        case("request-id-fraction", E.NOT_JSONRPC, "id 1.5", attack_on_request(_set(("id",), 1.5))),
        case("request-id-true", E.NOT_JSONRPC, "id true", attack_on_request(_set(("id",), True))),
        case("request-id-object", E.NOT_JSONRPC, "id is an object", attack_on_request(_set(("id",), {"a": CANARY}))),
        case("method-not-a-string", E.NOT_JSONRPC, "method 7", attack_on_request(_set(("method",), 7))),
        case(
            "request-with-result",
            E.NOT_JSONRPC,
            "a request that also carries result",
            attack_on_request(_set(("result",), {"x": CANARY})),
        ),
        case(
            "irt-on-a-request",
            E.SIGNATURE_MALFORMED,
            "a request carrying irt, signed",
            forged_block(irt=request_binding(OTHER_REQUEST_SIG)),
        ),
        # --- responses: bound to their request (MCPS-012), from the pinned server (MCPS-029) -----------------
        case(
            "response-unbound",
            E.TRANSCRIPT_MISMATCH,
            "a result without irt, signed",
            lambda d: client_side(Step(dumps(response_to(REQUEST_SIG, drop=("irt",) if d else ())), REQUEST_SIG)),
            U,
        ),
        case(
            "response-bound-to-another-request",
            E.TRANSCRIPT_MISMATCH,
            "irt names another request",
            lambda d: client_side(Step(dumps(response_to(OTHER_REQUEST_SIG if d else REQUEST_SIG)), REQUEST_SIG)),
            U,
        ),
        case(
            "response-replayed-to-a-new-request",
            E.TRANSCRIPT_MISMATCH,
            "the answer to request 1 delivered again as the answer to request 2",
            lambda d: client_side(
                Step(dumps(FIRST_RESPONSE), REQUEST_SIG),
                Step(dumps(FIRST_RESPONSE if d else response_to(OTHER_REQUEST_SIG)), OTHER_REQUEST_SIG),
            ),
        ),
        case(
            "response-signed-by-another-server",
            E.UNKNOWN_KEY,
            "a result signed by a key the agent did not pin",
            lambda d: client_side(Step(dumps(response_to(REQUEST_SIG, key=ATTACKER if d else SERVER)), REQUEST_SIG)),
            U,
        ),
        case(
            "response-result-array",
            E.NOT_JSONRPC,
            "result is an array",
            lambda d: client_side(
                Step(
                    dumps(
                        edited(response_to(REQUEST_SIG), _set(("result",), [CANARY])) if d else response_to(REQUEST_SIG)
                    ),
                    REQUEST_SIG,
                )
            ),
        ),
        case(
            "response-tampered-content",
            E.BAD_SIGNATURE,
            "the result's text changed",
            lambda d: client_side(
                Step(
                    dumps(
                        edited(
                            response_to(REQUEST_SIG),
                            _set(("result", "content"), [{"type": "text", "text": CANARY + "!"}]),
                        )
                        if d
                        else response_to(REQUEST_SIG)
                    ),
                    REQUEST_SIG,
                )
            ),
        ),
        case(
            "error-data-tampered",
            E.BAD_SIGNATURE,
            "a signed error's data replaced",
            lambda d: client_side(
                Step(
                    dumps(
                        edited(signed_error(), _set(("error", "data", "mcps/data"), CANARY + "?"))
                        if d
                        else signed_error()
                    ),
                    REQUEST_SIG,
                )
            ),
        ),
    ]
)
