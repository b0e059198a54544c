"""SPEC.md §13.3–12.5 and the signature base: RFC 9421's own example, strict structured fields, and total readers
(hypothesis: no header value makes a parser raise anything but McpsError)."""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from mcps import McpsError, PublicKey
from mcps.core.http_fields import MessageView, check_content_digest, parse_field, signature_base
from mcps.core.httpsig import parse_request_signature, parse_response_signature
from mcps.identity.agentpass import CertificateAnchors, verify_agent_certificate
from mcps.identity.directory import inline_directory

RFC9421_ED25519 = (  # RFC 9421 B.1.4, test-key-ed25519
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    b"-----END PUBLIC KEY-----\n"
)


def test_signature_base_matches_rfc9421_appendix_b_2_6() -> None:
    """RFC 9421 B.2.6 (test-key-ed25519): our base and the RFC's signature agree byte for byte."""
    view = MessageView(
        "POST",
        "https://example.com/foo?param=Value&Pet=dog",
        {"date": ["Tue, 20 Apr 2021 02:07:55 GMT"], "content-type": ["application/json"], "content-length": ["18"]},
    )
    inputs = parse_field(
        b'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473'
        b';keyid="test-key-ed25519"',
        "dictionary",
    )
    items, params = inputs["sig-b26"]
    base = signature_base(view, items, params)
    assert base.decode().splitlines()[1:4] == ['"@method": POST', '"@path": /foo', '"@authority": example.com']
    signature = base64.b64decode(
        "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
    )
    PublicKey.from_crypto(load_pem_public_key(RFC9421_ED25519)).verify(signature, base)  # type: ignore[arg-type]


def test_duplicate_structured_field_keys_are_refused() -> None:
    with pytest.raises(McpsError) as caught:
        parse_field(b"sha-256=:AAAA:, sha-256=:BBBB:", "dictionary")
    assert caught.value.code.mcps == "MCPS-027"
    with pytest.raises(McpsError):
        check_content_digest("sha-256=:AAAA:, sha-256=:BBBB:", b"\0" * 32)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["signature-input", "signature", "agent-signature", "x-agent-signature",
                                        "x-agent-nonce", "x-agent-timestamp", "x-agent-trust", "x-attp-version"]),
                       st.lists(st.text(max_size=80), min_size=1, max_size=2)))  # fmt: skip
def test_request_signature_reader_is_total(headers: dict[str, list[str]]) -> None:
    with contextlib.suppress(McpsError):
        parse_request_signature(headers)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_response_signature_reader_is_total(signature_input: str, signature: str) -> None:
    binding = ("signature", {"req": True, "key": "sig1"})
    with contextlib.suppress(McpsError):
        parse_response_signature({"signature-input": [signature_input], "signature": [signature]}, binding)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))
def test_certificate_and_directory_readers_are_total(value: str) -> None:
    with contextlib.suppress(McpsError):
        verify_agent_certificate(value, CertificateAnchors([]), now=0)
    with contextlib.suppress(McpsError):
        inline_directory("data:application/http-message-signatures-directory+json;base64," + value)
