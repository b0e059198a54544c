"""The compact JWS profile: one header shape, two algorithms, explicit typ, strict JSON, size first."""

from __future__ import annotations

import json

import pytest

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm
from mcps.identity.jws import parse_compact, sign_compact

from .pki import ANCHOR, LOW_ANCHOR, make_key

TYP = "mcps-test+jwt"
ERR = ErrorCode.PASSPORT_MALFORMED


def parse(token: object, *, max_bytes: int = 8192) -> object:
    return parse_compact(
        token,
        typ=TYP,
        max_bytes=max_bytes,
        error=ERR,
        too_large=ErrorCode.PASSPORT_TOO_LARGE,
        bad_signature=ErrorCode.BAD_SIGNATURE,
    )


def forge(
    header: object, claims: object = None, signature: bytes = bytes(64), *, raw_header: bytes | None = None
) -> str:
    head = raw_header if raw_header is not None else json.dumps(header).encode()
    body = json.dumps({"a": 1} if claims is None else claims).encode()
    return f"{b64u_encode(head)}.{b64u_encode(body)}.{b64u_encode(signature)}"


def code_of(token: object, **kwargs: int) -> ErrorCode:
    with pytest.raises(McpsError) as caught:
        parse(token, **kwargs)
    return caught.value.code


@pytest.mark.parametrize("key", [ANCHOR, LOW_ANCHOR], ids=["EdDSA", "ES256"])
def test_round_trip_both_algorithms(key: object) -> None:
    token = sign_compact({"hello": "world"}, ANCHOR if key is ANCHOR else LOW_ANCHOR, typ=TYP)
    jws = parse_compact(
        token,
        typ=TYP,
        max_bytes=8192,
        error=ERR,
        too_large=ErrorCode.PASSPORT_TOO_LARGE,
        bad_signature=ErrorCode.BAD_SIGNATURE,
    )
    signer = ANCHOR if key is ANCHOR else LOW_ANCHOR
    jws.verify_signature(signer.public_key)
    assert jws.claims == {"hello": "world"}
    assert jws.alg is signer.alg
    assert jws.kid == signer.kid


def test_header_is_jcs_with_exactly_alg_typ_kid() -> None:
    token = sign_compact({"b": 1, "a": 2}, ANCHOR, typ=TYP)
    header = json.loads(b64u_decode(token.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": ANCHOR.kid, "typ": TYP}


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": TYP, "kid": ANCHOR.kid, "crit": ["b64"], "b64": False},  # unknown crit
        {"alg": "EdDSA", "typ": TYP, "kid": ANCHOR.kid, "jku": "https://evil.example/keys"},  # extra member
        {"alg": "EdDSA", "typ": TYP, "kid": ANCHOR.kid, "jwk": ANCHOR.public_key.to_jwk()},  # embedded key
        {"alg": "EdDSA", "typ": TYP},  # no kid
        {"alg": "EdDSA", "typ": "JWT", "kid": ANCHOR.kid},  # wrong typ
        {"alg": "EdDSA", "typ": "MCPS-TEST+JWT", "kid": ANCHOR.kid},  # typ compared exactly
        {"alg": "EdDSA", "typ": TYP, "kid": "not-a-thumbprint"},
        ["alg", "EdDSA"],
    ],
)
def test_header_defects_are_refused(header: object) -> None:
    assert code_of(forge(header)) is ERR


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES256K", "eddsa"])
def test_other_algorithms_are_refused(alg: str) -> None:
    assert code_of(forge({"alg": alg, "typ": TYP, "kid": ANCHOR.kid})) is ErrorCode.ALGORITHM_MISMATCH


def test_alg_none_with_empty_signature_is_refused() -> None:
    token = forge({"alg": "none", "typ": TYP, "kid": ANCHOR.kid}).rsplit(".", 1)[0] + "."
    assert code_of(token) is ERR


def test_duplicate_header_member_is_refused() -> None:
    raw = f'{{"alg":"EdDSA","typ":"{TYP}","kid":"{ANCHOR.kid}","alg":"none"}}'.encode()
    assert code_of(forge(None, raw_header=raw)) is ERR


@pytest.mark.parametrize(
    "token",
    [42, "a.b", "a.b.c.d", "a..c", "a.b.c=", "YQ.YQ.YQ", " " + "a.b.c", "é.b.c"],
)
def test_not_compact_jws_is_malformed(token: object) -> None:
    assert code_of(token) is ERR


def test_size_is_checked_before_decoding() -> None:
    assert code_of("x" * 8193) is ErrorCode.PASSPORT_TOO_LARGE
    token = sign_compact({"pad": "y" * 9000}, ANCHOR, typ=TYP)
    assert code_of(token) is ErrorCode.PASSPORT_TOO_LARGE


def test_payload_must_be_a_strict_object() -> None:
    header = {"alg": "EdDSA", "typ": TYP, "kid": ANCHOR.kid}
    assert code_of(forge(header, [1, 2])) is ERR
    head = b64u_encode(json.dumps(header).encode())
    dup = b64u_encode(b'{"sub":"a","sub":"b"}')
    assert code_of(f"{head}.{dup}.{b64u_encode(bytes(64))}") is ERR


def test_signature_must_be_64_bytes() -> None:
    assert code_of(forge({"alg": "EdDSA", "typ": TYP, "kid": ANCHOR.kid}, signature=bytes(63))) is ERR


def test_signature_by_another_key_or_tampered_payload_does_not_verify() -> None:
    token = sign_compact({"a": 1}, ANCHOR, typ=TYP)
    jws = parse(token)
    with pytest.raises(McpsError) as caught:
        jws.verify_signature(LOW_ANCHOR.public_key)  # type: ignore[attr-defined]
    assert caught.value.code is ERR  # not the key the header names
    head, _, sig = token.split(".")
    body = b64u_encode(b'{"a":2}')
    tampered = parse(f"{head}.{body}.{sig}")
    with pytest.raises(McpsError) as caught:
        tampered.verify_signature(ANCHOR.public_key)  # type: ignore[attr-defined]
    assert caught.value.code is ErrorCode.BAD_SIGNATURE


def test_header_alg_must_match_the_key() -> None:
    ec_key = make_key("ec", Algorithm.ES256)
    token = sign_compact({"a": 1}, ec_key, typ=TYP)
    _head, body, sig = token.split(".")
    lying = b64u_encode(json.dumps({"alg": "EdDSA", "typ": TYP, "kid": ec_key.kid}).encode())
    jws = parse(f"{lying}.{body}.{sig}")
    with pytest.raises(McpsError) as caught:
        jws.verify_signature(ec_key.public_key)  # type: ignore[attr-defined]
    assert caught.value.code is ErrorCode.ALGORITHM_MISMATCH
