"""Signing keys: Ed25519 (``EdDSA``) and ECDSA P-256 (``ES256``), nothing else (SPEC.md §2).

* The algorithm is a property of the key. A verifier never takes ``alg`` from the wire without checking that
  it names the algorithm of the key it resolved.
* ES256 signatures are IEEE P1363 ``r‖s`` (64 bytes). Signing is deterministic (RFC 6979) and emits low-S;
  verification refuses high-S, so a signature has one valid form.
* A key's id is its RFC 7638 JWK thumbprint (SHA-256, base64url). Public keys travel as JWK (RFC 8037 for
  Ed25519); private keys are stored as PKCS#8 PEM files with mode 0600 and refused when others can read them.

Backends: keys are loaded, exported and fingerprinted with pyca/cryptography (PEM, JWK, thumbprints), and each key
binds its signature primitive once, when it is loaded: Ed25519 signs and verifies through libsodium (PyNaCl's
``crypto_sign``/``crypto_sign_open``, about half the verify time of the OpenSSL binding), ES256 through OpenSSL.
Both Ed25519 backends implement RFC 8032; ``tests/unit/test_wycheproof.py`` and the RFC 8032 vectors pin what
libsodium accepts.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import Limits, parse_file

__all__ = [
    "P256_ORDER",
    "Algorithm",
    "KeyId",
    "PrivateKey",
    "PublicKey",
    "jwks",
    "load_jwks",
    "load_private_key",
    "load_public_jwk",
    "save_private_key",
    "thumbprint",
]

KeyId = NewType("KeyId", str)
"""An RFC 7638 JWK thumbprint (SHA-256, base64url): the only way mcps names a key."""

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = P256_ORDER // 2
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_ECDSA_VERIFY = ec.ECDSA(hashes.SHA256())
_MAX_JWK_FILE_BYTES = 64 * 1024


class Algorithm(enum.StrEnum):
    """The two signature algorithms of wire format v1 (JOSE names)."""

    EDDSA = "EdDSA"
    ES256 = "ES256"


def thumbprint(jwk: dict[str, Any]) -> KeyId:
    """RFC 7638 thumbprint of a public JWK: SHA-256 over its required members, sorted, compact."""
    if jwk.get("kty") == "OKP":
        required = {"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}
    elif jwk.get("kty") == "EC":
        required = {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
    else:
        raise ValueError("unsupported kty")
    text = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return KeyId(b64u_encode(hashlib.sha256(text.encode("ascii")).digest()))


def _key_error(message: str) -> McpsError:
    return McpsError(ErrorCode.UNKNOWN_KEY, "key is not a valid EdDSA or ES256 key", detail=message)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A verification key with its algorithm and thumbprint. Build with :meth:`from_jwk` or from a private key."""

    alg: Algorithm
    kid: KeyId
    _key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey = field(repr=False, compare=False)
    _jwk: dict[str, str] = field(repr=False, compare=False)
    _check: Callable[[bytes, bytes], None] = field(repr=False, compare=False)
    """The primitive, bound when the key was loaded: returns ``None`` or raises MCPS-004."""

    @classmethod
    def from_crypto(cls, key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> PublicKey:
        check: Callable[[bytes, bytes], None]
        if isinstance(key, ed25519.Ed25519PublicKey):
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)}
            alg = Algorithm.EDDSA
            check = _ed25519_verifier(raw)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            numbers = key.public_numbers()
            jwk = {
                "kty": "EC",
                "crv": "P-256",
                "x": b64u_encode(numbers.x.to_bytes(32, "big")),
                "y": b64u_encode(numbers.y.to_bytes(32, "big")),
            }
            alg = Algorithm.ES256
            check = _es256_verifier(key)
        else:
            raise _key_error("only Ed25519 and P-256 keys are supported")
        return cls(alg, thumbprint(jwk), key, jwk, check)

    @classmethod
    def from_jwk(cls, jwk: object) -> PublicKey:
        """Load a public JWK. ``alg`` and ``kid``, when present, must agree with the key itself."""
        if not isinstance(jwk, dict):
            raise _key_error("JWK is not an object")
        try:
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                raw = b64u_decode(jwk["x"])
                if len(raw) != 32:
                    raise ValueError("Ed25519 x must be 32 bytes")
                key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey = ed25519.Ed25519PublicKey.from_public_bytes(
                    raw
                )
            elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                x, y = b64u_decode(jwk["x"]), b64u_decode(jwk["y"])
                if len(x) != 32 or len(y) != 32:
                    raise ValueError("P-256 coordinates must be 32 bytes")
                key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
            else:
                raise ValueError("unsupported kty/crv")
        except (KeyError, TypeError, ValueError) as exc:
            raise _key_error(f"bad public JWK: {exc}") from exc
        public = cls.from_crypto(key)
        if "alg" in jwk and jwk["alg"] != public.alg:
            raise McpsError(ErrorCode.ALGORITHM_MISMATCH, detail="JWK alg does not match its key type")
        if "kid" in jwk and jwk["kid"] != public.kid:
            raise _key_error("JWK kid is not the key's RFC 7638 thumbprint")
        return public

    def to_jwk(self) -> dict[str, str]:
        """The public JWK with ``kid`` (thumbprint), ``alg`` and ``use``."""
        return {**self._jwk, "kid": self.kid, "alg": self.alg.value, "use": "sig"}

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return ``None`` when ``signature`` is valid over ``data``; raise MCPS-004 otherwise."""
        self._check(signature, data)


def _ed25519_verifier(public: bytes) -> Callable[[bytes, bytes], None]:
    """libsodium's Ed25519 verify (``crypto_sign_open`` over ``signature ‖ data``), bound to one 32-byte key."""
    if len(public) != 32:  # PyNaCl's binding passes the buffer to libsodium without checking its length
        raise _key_error("an Ed25519 public key is 32 bytes")

    def check(signature: bytes, data: bytes) -> None:
        # The length first: crypto_sign_open reads the first 64 bytes of its input as the signature, so a shorter
        # signature would borrow bytes of the data.
        if len(signature) != 64:
            raise McpsError(ErrorCode.BAD_SIGNATURE, detail="an Ed25519 signature is 64 bytes")
        try:
            crypto_sign_open(bytes(signature) + bytes(data), public)
        except BadSignatureError:
            raise McpsError(ErrorCode.BAD_SIGNATURE) from None

    return check


def _es256_verifier(key: ec.EllipticCurvePublicKey) -> Callable[[bytes, bytes], None]:
    """OpenSSL's ECDSA P-256 verify of a low-S P1363 signature, bound to one key."""
    verify = key.verify

    def check(signature: bytes, data: bytes) -> None:
        try:
            verify(_p1363_to_der(signature), data, _ECDSA_VERIFY)
        except InvalidSignature:
            raise McpsError(ErrorCode.BAD_SIGNATURE) from None

    return check


def _p1363_to_der(signature: bytes) -> bytes:
    if len(signature) != 64:
        raise InvalidSignature
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < P256_ORDER and 0 < s <= _HALF_ORDER):  # high-S refused: one valid form per signature
        raise InvalidSignature
    return encode_dss_signature(r, s)


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A signing key. Its ``public_key`` carries the algorithm and the kid."""

    public_key: PublicKey
    _key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    _sign: Callable[[bytes], bytes] = field(repr=False, compare=False)
    """The primitive, bound when the key was loaded: 64 bytes for both algorithms."""

    @property
    def alg(self) -> Algorithm:
        return self.public_key.alg

    @property
    def kid(self) -> KeyId:
        return self.public_key.kid

    @classmethod
    def generate(cls, alg: Algorithm | str = Algorithm.EDDSA) -> PrivateKey:
        alg = Algorithm(alg)
        key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
        if alg is Algorithm.EDDSA:
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        return cls.from_crypto(key)

    @classmethod
    def from_crypto(cls, key: object) -> PrivateKey:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            public = PublicKey.from_crypto(key.public_key())
            return cls(public, key, _ed25519_signer(key, public))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            public = PublicKey.from_crypto(key.public_key())
            return cls(public, key, _es256_signer(key))
        raise _key_error("only Ed25519 and P-256 private keys are supported")

    @classmethod
    def from_pem(cls, pem: bytes) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise _key_error("not an unencrypted PKCS#8 PEM private key") from exc
        return cls.from_crypto(key)

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> PrivateKey:
        """Load a private JWK (with ``d``). Used for the fixed test keys in ``tests/vectors``."""
        try:
            d = b64u_decode(jwk["d"])
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = (
                    ed25519.Ed25519PrivateKey.from_private_bytes(d)
                )
            elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                key = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
            else:
                raise ValueError("unsupported kty/crv")
        except (KeyError, TypeError, ValueError) as exc:
            raise _key_error(f"bad private JWK: {exc}") from exc
        private = cls.from_crypto(key)
        if PublicKey.from_jwk({k: v for k, v in jwk.items() if k != "d"}).kid != private.kid:
            raise _key_error("private JWK d does not match its public members")
        return private

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: 64 bytes for both algorithms (ES256 as low-S P1363 ``r‖s``)."""
        return self._sign(data)


def _ed25519_signer(key: ed25519.Ed25519PrivateKey, public: PublicKey) -> Callable[[bytes], bytes]:
    """libsodium's Ed25519 sign (``crypto_sign``, the 64-byte signature of its output), bound to one key."""
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    derived, secret = crypto_sign_seed_keypair(seed)
    if b64u_encode(derived) != public._jwk["x"]:  # pragma: no cover - both implement RFC 8032 key generation
        raise _key_error("libsodium derived another public key from this seed")

    def sign(data: bytes) -> bytes:
        return bytes(crypto_sign(bytes(data), secret)[:64])

    return sign


def _es256_signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    """OpenSSL's deterministic (RFC 6979) ECDSA P-256, as low-S P1363 ``r‖s``, bound to one key."""
    ecdsa_sign = key.sign

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(ecdsa_sign(data, _ECDSA))
        if s > _HALF_ORDER:
            s = P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def save_private_key(key: PrivateKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` as PKCS#8 PEM, created with mode 0600. Refuses to overwrite an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem())


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load a PEM private key, refusing one that group or others may read (like OpenSSH does)."""
    file = Path(path)
    mode = file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise McpsError(
            ErrorCode.UNKNOWN_KEY,
            "private key file is readable by others",
            detail=f"{file} has mode {stat.S_IMODE(mode):04o}; run: chmod 600 {file}",
        )
    return PrivateKey.from_pem(file.read_bytes())


def load_public_jwk(path: str | os.PathLike[str]) -> PublicKey:
    """Load one public JWK from a file, parsed as strictly as a message (a duplicate member is refused)."""
    try:
        data = parse_file(path, Limits(max_bytes=_MAX_JWK_FILE_BYTES))
    except McpsError as exc:
        raise _key_error(f"{os.fspath(path)} is not a strict JSON object: {exc.diagnostics()}") from exc
    return PublicKey.from_jwk(data)


def jwks(keys: list[PublicKey]) -> dict[str, Any]:
    """A JWK Set (RFC 7517 §5) of public keys."""
    return {"keys": [key.to_jwk() for key in keys]}


def load_jwks(data: object) -> list[PublicKey]:
    """Keys of a JWK Set; refuses the whole set when one key is invalid."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise _key_error("not a JWK Set")
    return [PublicKey.from_jwk(jwk) for jwk in data["keys"]]
