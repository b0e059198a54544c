"""Generate the mcps message test vectors (``keys/`` and ``messages/``) deterministically.

Run by hand from the repository root after a deliberate change to the wire format::

    .venv/bin/python tests/vectors/generate.py

Everything is fixed: the TEST keys are derived from public seeds, times are constants, nonces are derived from
the vector's name, Ed25519 signatures are deterministic and mcps signs ES256 deterministically (RFC 6979).
``tests/unit/test_vectors.py`` imports :func:`all_files` and checks that the committed files are exactly what
this script writes, so the vectors cannot drift from the code. The format is described in ``README.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.envelope import sign_message, signing_input
from mcps.core.keys import P256_ORDER, PrivateKey
from mcps.core.strict import parse_message

HERE = Path(__file__).resolve().parent
AUDIENCE = "https://tools.example/mcp"
OTHER_AUDIENCE = "https://other-tools.example/mcp"
NOW = 1_763_683_200  # 2025-11-21T00:00:00Z
SKEW = 30
LIFETIME = 60
TEST_KEY_COMMENT = "TEST KEY — published test vector key, never use in production"

# --- keys -------------------------------------------------------------------------------------------------------


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"mcps test vector key: {label}".encode()).digest()


def fixed_keys() -> dict[str, PrivateKey]:
    """The fixed TEST keys: ``ed25519`` and ``p256`` are trusted by the vectors, ``untrusted`` is not."""
    p256_scalar = int.from_bytes(_seed("p256"), "big") % (P256_ORDER - 1) + 1
    return {
        "ed25519": PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(_seed("ed25519"))),
        "p256": PrivateKey.from_crypto(ec.derive_private_key(p256_scalar, ec.SECP256R1())),
        "untrusted": PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(_seed("untrusted"))),
    }


def private_jwk(key: PrivateKey) -> dict[str, str]:
    raw = key._key
    if isinstance(raw, ed25519.Ed25519PrivateKey):
        d = raw.private_bytes_raw()
    else:
        d = raw.private_numbers().private_value.to_bytes(32, "big")
    return {"comment": TEST_KEY_COMMENT, **key.public_key.to_jwk(), "d": b64u_encode(d)}


# --- messages ---------------------------------------------------------------------------------------------------

REQUEST: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {
        "name": "get_weather",
        "arguments": {"city": "Zürich", "units": "metric", "days": 3},
        "_meta": {"progressToken": "p-7", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    },
}
NOTIFICATION: dict[str, Any] = {
    "jsonrpc": "2.0",
    "method": "notifications/progress",
    "params": {"progressToken": "p-7", "progress": 1, "total": 3, "message": "fetching"},
}
RESULT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "result": {"content": [{"type": "text", "text": "Zürich: 12 °C, light rain"}], "isError": False},
}
ERROR_OBJECT_DATA: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "error": {"code": -32602, "message": "Invalid params", "data": {"field": "city", "reason": "unknown city"}},
}
ERROR_STRING_DATA: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "error": {"code": -32603, "message": "Internal error", "data": "upstream weather service timed out"},
}
ASTRAL_AND_FLOATS: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": "call-\U0001f600",
    "method": "tools/call",
    "params": {
        "name": "measure",
        "arguments": {
            "\U0001f600 smile": "emoji key (sorts by UTF-16 code units)",
            "\ue000 private use": "sorts after the emoji key in UTF-16, before it by code point",
            "label": '𝄞 clef, \u2028 line separator, \u0007 bell, "quoted" \\ backslash',
            "ratio": 100.0,
            "tiny": 1e-7,
            "huge": 1.5e300,
            "negative_zero": -0.0,
            "third": 0.3333333333333333,
            "big_int": 9007199254740991,
        },
    },
}


def _nonce(name: str) -> str:
    return b64u_encode(hashlib.sha256(f"mcps test vector nonce: {name}".encode()).digest()[:16])


def sign_fixed(
    message: dict[str, Any],
    key: PrivateKey,
    name: str,
    *,
    audience: str = AUDIENCE,
    iat: int = NOW,
    exp: int | None = None,
    in_reply_to: str | None = None,
    block_changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sign with a fixed nonce and times: mcps places the block, then the block is set and signed again."""
    signed = copy.deepcopy(sign_message(message, key, audience=audience, now=iat, in_reply_to=in_reply_to))
    block = block_of(signed)
    del block["sig"]
    block["iat"] = iat
    block["exp"] = iat + LIFETIME if exp is None else exp
    block["nonce"] = _nonce(name)
    block.update(block_changes or {})
    block["sig"] = b64u_encode(key.sign(signing_input(signed)))
    return signed


def text(message: Any) -> str:
    """The raw wire text of a vector: not canonical on purpose (member order as built, spaces after separators)."""
    return json.dumps(message, ensure_ascii=False)


def block_of(message: dict[str, Any]) -> dict[str, Any]:
    if "result" in message:
        holder = message["result"]["_meta"]
    elif "error" in message:
        holder = message["error"]["data"]
    else:
        holder = message["params"]["_meta"]
    block: dict[str, Any] = holder["mcps/sig"]
    return block


def sig_of(message: dict[str, Any]) -> str:
    value: str = block_of(message)["sig"]
    return value


def _replace_once(raw: str, old: str, new: str) -> str:
    if raw.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r} in the message")
    return raw.replace(old, new)


# --- vectors ----------------------------------------------------------------------------------------------------

Vector = dict[str, Any]


def _vector(description: str, key: PrivateKey, raw: str, expect: str, **extra: Any) -> Vector:
    vector: Vector = {
        "description": description,
        "public_key": key.public_key.to_jwk(),
        "audience": AUDIENCE,
        "now": NOW,
        "skew": SKEW,
    }
    vector.update({name: value for name, value in extra.items() if name in ("limits", "in_reply_to")})
    vector["message"] = raw
    if expect == "valid":
        vector["signing_input"] = signing_input(parse_message(raw.encode("utf-8"))).decode("utf-8")
    vector["expect"] = expect
    return vector


def valid_vectors(keys: dict[str, PrivateKey]) -> dict[str, Vector]:
    vectors: dict[str, Vector] = {}
    for suffix, key in (("eddsa", keys["ed25519"]), ("es256", keys["p256"])):
        alg = key.alg.value
        request = sign_fixed(REQUEST, key, f"request-{suffix}")
        request_sig = sig_of(request)
        vectors[f"request-{suffix}"] = _vector(f"A tools/call request signed with {alg}.", key, text(request), "valid")
        notification = sign_fixed(NOTIFICATION, key, f"notification-{suffix}")
        vectors[f"notification-{suffix}"] = _vector(
            f"A progress notification signed with {alg}.", key, text(notification), "valid"
        )
        responses = {
            "result": (RESULT, "A tools/call result"),
            "error-object-data": (ERROR_OBJECT_DATA, "An error whose data is an object"),
            "error-string-data": (
                ERROR_STRING_DATA,
                'An error whose data was a string, moved by the signer to error.data["mcps/data"]',
            ),
        }
        for name, (message, what) in responses.items():
            signed = sign_fixed(message, key, f"{name}-{suffix}", in_reply_to=request_sig)
            vectors[f"{name}-{suffix}"] = _vector(
                f"{what}, signed with {alg}, bound (irt) to the request of request-{suffix}.json.",
                key,
                text(signed),
                "valid",
                in_reply_to=request_sig,
            )
    key = keys["ed25519"]
    signed = sign_fixed(ASTRAL_AND_FLOATS, key, "astral-and-floats-eddsa")
    raw = _replace_once(text(signed), '"ratio": 100.0', '"ratio": 1E2')
    vectors["astral-and-floats-eddsa"] = _vector(
        "Astral and private-use characters (JCS sorts keys by UTF-16 code units), control characters and "
        "escapes, and doubles (100.0 written 1E2, 1e-7, 1.5e300, -0.0) that JCS writes in ES6 form.",
        key,
        raw,
        "valid",
    )
    return vectors


def invalid_vectors(keys: dict[str, PrivateKey]) -> dict[str, Vector]:
    ed, p256 = keys["ed25519"], keys["p256"]
    request = sign_fixed(REQUEST, ed, "base-request")
    raw = text(request)

    def signed_request(name: str, **options: Any) -> str:
        return text(sign_fixed(REQUEST, ed, name, **options))

    vectors: dict[str, Vector] = {}

    def add(name: str, description: str, message: str, expect: str, key: PrivateKey = ed, **extra: Any) -> None:
        vectors[name] = _vector(description, key, message, expect, **extra)

    add(
        "tampered-param",
        'A signed request whose "city" argument was changed after signing.',
        _replace_once(raw, '"city": "Zürich"', '"city": "Bern"'),
        "MCPS-004",
    )
    add(
        "tampered-meta-key",
        "A signed request whose _meta.traceparent was changed after signing (every _meta key is covered).",
        _replace_once(raw, "b7ad6b7169203331", "b7ad6b7169203332"),
        "MCPS-004",
    )
    add(
        "wrong-aud",
        "A request signed for another server.",
        signed_request("wrong-aud", audience=OTHER_AUDIENCE),
        "MCPS-011",
    )
    add(
        "expired",
        "exp = now - skew - 1.",
        signed_request("expired", iat=NOW - SKEW - 1 - LIFETIME),
        "MCPS-006",
    )
    add("iat-in-future", "iat = now + skew + 1.", signed_request("iat-in-future", iat=NOW + SKEW + 1), "MCPS-006")
    add(
        "window-over-300s",
        "exp - iat = 301 (the limit is 300), otherwise valid now.",
        signed_request("window-over-300s", exp=NOW + 301),
        "MCPS-006",
    )
    first = sign_fixed(REQUEST, ed, "replayed-nonce")
    other = copy.deepcopy(REQUEST)
    other["id"] = 8
    second = sign_fixed(other, ed, "replayed-nonce")  # a new, correctly signed message reusing the nonce
    vectors["replayed-nonce"] = {
        "description": "A sequence for one verifier and one nonce store: a valid request, the same request again, "
        "then another correctly signed request from the same key reusing the nonce.",
        "public_key": ed.public_key.to_jwk(),
        "audience": AUDIENCE,
        "now": NOW,
        "skew": SKEW,
        "messages": [
            {"message": text(first), "expect": "valid"},
            {"message": text(first), "expect": "MCPS-005"},
            {"message": text(second), "expect": "MCPS-005"},
        ],
    }
    high = sign_fixed(REQUEST, p256, "high-s")
    sig = b64u_decode(sig_of(high))
    high_s = P256_ORDER - int.from_bytes(sig[32:], "big")
    block_of(high)["sig"] = b64u_encode(sig[:32] + high_s.to_bytes(32, "big"))
    add(
        "high-s",
        "An ES256 signature replaced by its high-S twin (r, n - s): valid for plain ECDSA, refused by mcps.",
        text(high),
        "MCPS-004",
        key=p256,
    )
    add(
        "alg-not-matching-key",
        'Signed by the Ed25519 key with block alg "ES256" (the signature itself is correct Ed25519).',
        signed_request("alg-not-matching-key", block_changes={"alg": "ES256"}),
        "MCPS-028",
    )
    add(
        "alg-none",
        'Block alg "none" (the signature is correct Ed25519 over that block).',
        signed_request("alg-none", block_changes={"alg": "none"}),
        "MCPS-028",
    )
    rm_rf = copy.deepcopy(REQUEST)
    rm_rf["params"]["name"] = "rm_rf"
    add(
        "duplicate-key",
        'params has "name" twice: "get_weather" then "rm_rf". The signature is correct for the last value, so '
        "a parser that keeps the last duplicate would accept it.",
        _replace_once(
            text(sign_fixed(rm_rf, ed, "duplicate-key")), '"name": "rm_rf"', '"name": "get_weather", "name": "rm_rf"'
        ),
        "MCPS-020",
    )
    add(
        "nan",
        "An argument is NaN (refused at parse, before the signature is looked at).",
        _replace_once(raw, '"days": 3', '"days": NaN'),
        "MCPS-021",
    )
    add(
        "integer-too-large",
        "An integer argument is 2^53 (refused at parse, before the signature is looked at).",
        _replace_once(raw, '"days": 3', '"days": 9007199254740992'),
        "MCPS-021",
    )
    add(
        "lone-surrogate",
        "An argument holds a lone high surrogate escape (refused at parse, before the signature is looked at).",
        _replace_once(raw, '"units": "metric"', '"units": "metric\\ud800"'),
        "MCPS-022",
    )
    deep = copy.deepcopy(REQUEST)
    nested: Any = "bottom"
    for _ in range(62):  # message -> params -> arguments -> 62 arrays: depth 65
        nested = [nested]
    deep["params"]["arguments"]["nested"] = nested
    add(
        "too-deep",
        "Correctly signed, but nested 65 deep (the limit is 64).",
        text(sign_fixed(deep, ed, "too-deep")),
        "MCPS-023",
    )
    large = copy.deepcopy(REQUEST)
    large["params"]["arguments"]["padding"] = "x" * 2048
    add(
        "too-large",
        "Correctly signed, but longer than the 2048-byte limit this vector sets.",
        text(sign_fixed(large, ed, "too-large")),
        "MCPS-018",
        limits={"max_bytes": 2048},
    )
    unsigned = copy.deepcopy(REQUEST)
    add("missing-block", 'A request with no "mcps/sig" in params._meta.', text(unsigned), "MCPS-026")
    add(
        "unknown-v",
        'Block "v": 2, correctly signed.',
        signed_request("unknown-v", block_changes={"v": 2}),
        "MCPS-015",
    )
    add(
        "v-true",
        'Block "v": true, correctly signed: a boolean is not the integer 1 (SPEC §1), though true == 1 in Python.',
        signed_request("v-true", block_changes={"v": True}),
        "MCPS-027",
    )
    add(
        "iat-true",
        'Block "iat": true, correctly signed: a time is an integer, never a boolean.',
        signed_request("iat-true", block_changes={"iat": True}),
        "MCPS-027",
    )
    other_request_sig = sig_of(sign_fixed(REQUEST, ed, "other-request"))
    add(
        "response-bound-to-other-request",
        "A correctly signed result whose irt names another request than the one in in_reply_to.",
        text(sign_fixed(RESULT, ed, "response-bound-to-other-request", in_reply_to=other_request_sig)),
        "MCPS-012",
        in_reply_to=sig_of(request),
    )
    add(
        "unknown-kid",
        "Correctly signed by a key the verifier does not trust (keys/untrusted.json).",
        text(sign_fixed(REQUEST, keys["untrusted"], "unknown-kid")),
        "MCPS-029",
    )
    add("batch", "A JSON-RPC batch holding one valid signed request.", "[" + raw + "]", "MCPS-024")
    bad_sig = sign_fixed(REQUEST, ed, "sig-not-canonical-base64url")
    good = sig_of(bad_sig)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    block_of(bad_sig)["sig"] = good[:-1] + alphabet[alphabet.index(good[-1]) ^ 1]
    add(
        "sig-not-canonical-base64url",
        "The sig's last character has non-zero unused bits: it decodes to the same 64 bytes, but is not canonical.",
        text(bad_sig),
        "MCPS-027",
    )
    return vectors


# --- files ------------------------------------------------------------------------------------------------------


def render(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def all_files() -> dict[str, str]:
    """Every generated file, by path relative to ``tests/vectors``, with its exact text."""
    keys = fixed_keys()
    files = {f"keys/{name}.json": render(private_jwk(key)) for name, key in keys.items()}
    builders: dict[str, Callable[[dict[str, PrivateKey]], dict[str, Vector]]] = {
        "messages/valid": valid_vectors,
        "messages/invalid": invalid_vectors,
    }
    for folder, build in builders.items():
        for name, vector in build(keys).items():
            files[f"{folder}/{name}.json"] = render(vector)
    return files


def main() -> int:
    for relative, content in all_files().items():
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
