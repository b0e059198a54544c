"""Ed25519 through libsodium (PyNaCl): the RFC 8032 §7.1 test vectors, and agreement with pyca/cryptography.

Keys are still loaded, exported and fingerprinted with pyca/cryptography; only the primitive bound to a key
changed (SPEC.md §2). Ed25519 signing is deterministic, so both backends must produce the same 64 bytes for the
same seed and message, and each must accept the other's signatures. Wycheproof runs in ``test_wycheproof.py``.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey, thumbprint

# RFC 8032 §7.1, TEST 1, TEST 2, TEST 3: (secret key, public key, message, signature), hex.
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    key = PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret)))
    assert key.public_key.to_jwk()["x"] == b64u_encode(bytes.fromhex(public))
    assert key.sign(bytes.fromhex(message)).hex() == signature
    key.public_key.verify(bytes.fromhex(signature), bytes.fromhex(message))
    tampered = bytes.fromhex(message) + b"\x00"
    with pytest.raises(McpsError) as refused:
        key.public_key.verify(bytes.fromhex(signature), tampered)
    assert refused.value.code is ErrorCode.BAD_SIGNATURE


@settings(max_examples=200, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2048))
def test_libsodium_and_openssl_make_and_accept_the_same_signatures(seed: bytes, message: bytes) -> None:
    pyca = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    key = PrivateKey.from_crypto(pyca)
    signature = key.sign(message)
    assert signature == pyca.sign(message)
    pyca.public_key().verify(signature, message)  # OpenSSL accepts libsodium's signature
    key.public_key.verify(pyca.sign(message), message)  # and libsodium OpenSSL's


@pytest.mark.parametrize("length", [0, 1, 63, 65, 128])
def test_signature_of_wrong_length_is_refused_without_borrowing_data_bytes(length: int) -> None:
    key = PrivateKey.generate("EdDSA")
    data = b"x" * 200
    joined = key.sign(data) + data  # cut anywhere but at 64, it must not verify as signature ‖ data
    with pytest.raises(McpsError) as refused:
        key.public_key.verify(joined[:length], joined[length:])
    assert refused.value.code is ErrorCode.BAD_SIGNATURE


def test_keys_pem_and_thumbprints_do_not_change_with_the_backend() -> None:
    seed = bytes.fromhex(RFC8032_VECTORS[0][0])
    pyca = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    key = PrivateKey.from_crypto(pyca)
    again = PrivateKey.from_pem(key.to_pem())
    assert again.kid == key.kid == thumbprint(key.public_key.to_jwk())
    assert again.sign(b"m") == key.sign(b"m") == pyca.sign(b"m")
    assert PublicKey.from_jwk(key.public_key.to_jwk()) == key.public_key
