"""The compact JWS profile (RFC 7515 §7.1) used by passports, grants and revocation lists.

mcps implements this small profile on its own keys instead of a general JOSE library: it accepts exactly one
header shape and two algorithms, so there is nothing to configure and nothing to get wrong.

* Header: exactly ``{"alg", "typ", "kid"}``. ``alg`` is ``EdDSA`` or ``ES256`` (``none``, HMAC, RSA are refused);
  ``typ`` must equal the one the caller expects (RFC 8725 §3.11 explicit typing); ``kid`` is the signer's RFC 7638
  thumbprint. Any other member — ``crit``, ``jku``, ``x5u``, ``jwk``, ``b64``… — is refused, so no header can make
  the verifier fetch a key, skip a check or change the payload encoding.
* Payload: a JSON object. Header and payload are parsed with the strict I-JSON parser (no duplicate members).
  mcps writes both as JCS (RFC 8785), so a token is reproducible from its claims.
* Signature: over ``ascii(b64u(header) ‖ "." ‖ b64u(payload))`` (RFC 7515 §5.1); Ed25519 (RFC 8037) or ES256 as
  IEEE P1363 ``r‖s`` with low S (RFC 7518 §3.4, plus the core's malleability rule).
* Size: the token is measured before anything is decoded.

Nothing here knows what a passport or a grant means. :func:`parse_compact` returns an :class:`UnverifiedJws`
whose claims must not be trusted until :meth:`UnverifiedJws.verify_signature` has returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_decode, b64u_encode, is_b64u
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey, PublicKey
from mcps.core.strict import Limits, parse_message

__all__ = ["HEADER_MEMBERS", "UnverifiedJws", "parse_compact", "sign_compact"]

HEADER_MEMBERS: Final = frozenset({"alg", "typ", "kid"})
_COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_JSON_LIMITS: Final = Limits(max_bytes=64 * 1024, max_depth=16)


def sign_compact(claims: dict[str, Any], key: PrivateKey, *, typ: str) -> str:
    """Sign ``claims`` with ``key``; the header is ``{alg, typ, kid}`` taken from the key itself."""
    header = {"alg": key.alg.value, "typ": typ, "kid": key.kid}
    signing_input = f"{b64u_encode(canonicalize(header))}.{b64u_encode(canonicalize(claims))}"
    return f"{signing_input}.{b64u_encode(key.sign(signing_input.encode('ascii')))}"


@dataclass(frozen=True, slots=True)
class UnverifiedJws:
    """A well-formed token whose signature has **not** been checked. ``claims`` are attacker-controlled until then."""

    alg: Algorithm
    typ: str
    kid: KeyId
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    error: ErrorCode
    """The code this token's defects are reported with (MCPS-001 for passports, MCPS-017 for grants…)."""
    bad_signature: ErrorCode
    """The code a signature that does not verify is reported with (MCPS-004 for passports, MCPS-017 for grants)."""

    def verify_signature(self, key: PublicKey) -> None:
        """Return ``None`` when ``key`` — named by the header, of the header's algorithm — signed this token."""
        if key.kid != self.kid:
            raise McpsError(self.error, detail="the key is not the one the header names")
        if key.alg is not self.alg:
            raise McpsError(ErrorCode.ALGORITHM_MISMATCH, detail=f"header alg {self.alg} for a {key.alg} key")
        try:
            key.verify(self.signature, self.signing_input)
        except McpsError as exc:
            raise McpsError(self.bad_signature, detail=f"{self.typ} signature does not verify") from exc


def _decode_json(part: str, error: ErrorCode, what: str) -> dict[str, Any]:
    try:
        return parse_message(b64u_decode(part), _JSON_LIMITS)
    except (ValueError, McpsError) as exc:
        raise McpsError(error, detail=f"{what} is not a canonical base64url JSON object") from exc


def parse_compact(
    token: object, *, typ: str, max_bytes: int, error: ErrorCode, too_large: ErrorCode, bad_signature: ErrorCode
) -> UnverifiedJws:
    """Check a compact JWS's size and shape and decode it; the signature is not checked yet.

    Raises ``too_large`` when it exceeds ``max_bytes`` (measured first), and ``error`` for every defect of form:
    not three base64url parts, a header other than ``{alg, typ, kid}``, another ``typ``, an algorithm other than
    EdDSA/ES256 (MCPS-028), a payload that is not a strict I-JSON object, a signature of the wrong length.
    """
    if not isinstance(token, str):
        raise McpsError(error, detail="token is not a string")
    if len(token) > max_bytes:  # a str of ASCII is measured in bytes; a non-ASCII one fails the pattern below
        raise McpsError(too_large, detail=f"{len(token)} characters > {max_bytes}")
    if _COMPACT.fullmatch(token) is None:
        raise McpsError(error, detail="not a compact JWS (three base64url parts)")
    header_part, payload_part, signature_part = token.split(".")
    header = _decode_json(header_part, error, "header")
    if header.keys() != HEADER_MEMBERS:
        raise McpsError(error, detail="header must have exactly alg, typ and kid (crit and others are refused)")
    if header["typ"] != typ:
        raise McpsError(error, detail=f"typ is not {typ}")
    try:
        alg = Algorithm(header["alg"])
    except ValueError as exc:
        raise McpsError(ErrorCode.ALGORITHM_MISMATCH, "signature algorithm is not allowed") from exc
    if not is_b64u(header["kid"], min_bytes=32, max_bytes=32):
        raise McpsError(error, detail="kid is not a key thumbprint")
    claims = _decode_json(payload_part, error, "payload")
    try:
        signature = b64u_decode(signature_part)
    except ValueError as exc:
        raise McpsError(error, detail="signature is not canonical base64url") from exc
    if len(signature) != 64:
        raise McpsError(error, detail="signature is not 64 bytes")
    return UnverifiedJws(
        alg,
        typ,
        KeyId(header["kid"]),
        claims,
        f"{header_part}.{payload_part}".encode("ascii"),
        signature,
        error,
        bad_signature,
    )
