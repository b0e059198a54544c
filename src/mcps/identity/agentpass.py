"""AgentPass agent certificates: X.509, P-256, the trust level, scopes and issuer id in private extensions
(SPEC.md §13.8), verified against certificate anchors loaded like TLS roots.

An agent sends ``X-AgentPass-Certificate: base64(PEM)``, the PEM holding its certificate and, optionally, the
intermediates above it (at most :data:`MAX_CHAIN_CERTIFICATES` in all). Verification, in this order:

1. size (:data:`MAX_CERTIFICATE_HEADER_BYTES`), base64, PEM, DER — MCPS-037;
2. every certificate: an EC P-256 key, signed with ECDSA-SHA256 — MCPS-037;
3. the agent's certificate: the three AgentPass extensions, each a UTF8String (AgentPass's CA writes it wrapped in
   one more OCTET STRING; both forms are read), level ``L0``–``L4``, scopes comma-separated, a non-empty issuer id;
   its Common Name ``<name> (<agent id>)`` (the whole CN when there is no parenthesised id) — MCPS-037;
4. validity of every certificate at ``now`` — MCPS-002;
5. the chain to one of the anchors (``cryptography``'s RFC 5280 path validation, client-certificate profile; a
   Subject Alternative Name is not required) — MCPS-029 when it does not chain to an anchor;
6. the effective level: the lowest of the agent certificate's level, any level extension on the intermediates, and
   the anchor's cap.

:func:`issue_ca_certificate` and :func:`issue_agent_certificate` make test certificates in the same shape.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey
from mcps.identity.levels import TrustLevel
from mcps.identity.revocation import LOCAL_SCOPE, RevocationKey, RevocationKind

__all__ = [
    "ISSUER_OID",
    "LEVEL_OID",
    "MAX_CERTIFICATE_HEADER_BYTES",
    "MAX_CHAIN_CERTIFICATES",
    "SCOPES_OID",
    "CertificateAnchor",
    "CertificateAnchors",
    "VerifiedCertificateAgent",
    "issue_agent_certificate",
    "issue_ca_certificate",
    "verify_agent_certificate",
]

LEVEL_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.1")
SCOPES_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.2")
ISSUER_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.3")
MAX_CERTIFICATE_HEADER_BYTES: Final = 16 * 1024
MAX_CHAIN_CERTIFICATES: Final = 5
_MAX_EXTENSION_TEXT: Final = 1024
_LEVEL: Final = re.compile(r"L[0-4]")
_CN_ID: Final = re.compile(r"^(.*?)\s*\(([^()]+)\)\s*$")


def _invalid(detail: str) -> McpsError:
    return McpsError(ErrorCode.CERTIFICATE_INVALID, detail=detail)


def _fingerprint(certificate: x509.Certificate) -> str:
    return b64u_encode(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest())


def _check_p256(certificate: x509.Certificate, what: str) -> None:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _invalid(f"{what} key is not P-256")
    if certificate.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise _invalid(f"{what} is not signed with ECDSA-SHA256")


@dataclass(frozen=True, slots=True)
class CertificateAnchor:
    """A CA certificate trusted to vouch for agents up to ``max_level``."""

    certificate: x509.Certificate
    max_level: TrustLevel

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_level", TrustLevel.parse(self.max_level))
        _check_p256(self.certificate, "anchor")

    @property
    def fingerprint(self) -> str:
        """``b64u(SHA-256(DER))`` of the anchor certificate."""
        return _fingerprint(self.certificate)


class CertificateAnchors:
    """AgentPass CA certificates, each with the highest level it may grant, like a TLS root store."""

    def __init__(self, anchors: Iterable[CertificateAnchor]) -> None:
        self._anchors = {anchor.fingerprint: anchor for anchor in anchors}
        self._store = Store([anchor.certificate for anchor in self._anchors.values()]) if self._anchors else None

    def __len__(self) -> int:
        return len(self._anchors)

    def get(self, certificate: x509.Certificate) -> CertificateAnchor | None:
        return self._anchors.get(_fingerprint(certificate))

    @property
    def store(self) -> Store | None:
        return self._store

    @classmethod
    def load(cls, path: str | os.PathLike[str], max_level: TrustLevel | int) -> CertificateAnchors:
        """Every certificate of a PEM bundle file, each capped at ``max_level``. Combine with ``+``."""
        try:
            certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "certificate anchors are invalid", detail=f"{path}: {exc}") from None
        return cls(CertificateAnchor(certificate, TrustLevel.parse(max_level)) for certificate in certificates)

    def __add__(self, other: CertificateAnchors) -> CertificateAnchors:
        return CertificateAnchors([*self._anchors.values(), *other._anchors.values()])


@dataclass(frozen=True, slots=True)
class VerifiedCertificateAgent:
    """An agent whose certificate chained to an anchor: who it is, how far it is trusted, what it may do."""

    agent_id: str
    name: str
    key: PublicKey
    level: TrustLevel
    claimed_level: TrustLevel
    scopes: frozenset[str]
    issuer_id: str
    serial: str
    fingerprint: str
    anchor_fingerprint: str
    not_after: int

    def revocation_keys(self) -> tuple[RevocationKey, ...]:
        """The kill switch reaches a certificate agent by its id (``sub``) or by the certificate's fingerprint
        (``jti`` = ``x5t#S256:<fingerprint>``)."""
        return (
            RevocationKey(LOCAL_SCOPE, RevocationKind.SUB, self.agent_id),
            RevocationKey(LOCAL_SCOPE, RevocationKind.JTI, f"x5t#S256:{self.fingerprint}"),
        )


def _extension_text(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    try:
        value = certificate.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    text = _utf8_string(raw)
    if text is None:
        wrapped = _der_value(raw, 0x04)  # AgentPass's CA: OCTET STRING { UTF8String }
        text = _utf8_string(wrapped) if wrapped is not None else None
    if text is None or len(text) > _MAX_EXTENSION_TEXT:
        raise _invalid(f"extension {oid.dotted_string} is not a UTF8String")
    return text


def _der_value(raw: bytes, tag: int) -> bytes | None:
    """The contents of one DER TLV with ``tag`` that spans all of ``raw`` (definite length), else ``None``."""
    if len(raw) < 2 or raw[0] != tag:
        return None
    length, offset = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or len(raw) < 2 + count:
            return None
        length, offset = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
        if length < 0x80 or (count == 2 and length < 0x100):  # DER: the shortest length form
            return None
    if offset + length != len(raw):
        return None
    return raw[offset:]


def _utf8_string(raw: bytes) -> str | None:
    contents = _der_value(raw, 0x0C)
    if contents is None:
        return None
    try:
        return contents.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _parse_header(value: str) -> list[x509.Certificate]:
    if len(value) > MAX_CERTIFICATE_HEADER_BYTES:
        raise _invalid("certificate header is too large")
    try:
        pem = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _invalid("certificate header is not base64") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise _invalid("certificate header is not a PEM certificate")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise _invalid("certificate header is not a PEM certificate") from None
    if not 1 <= len(certificates) <= MAX_CHAIN_CERTIFICATES:
        raise _invalid(f"certificate header holds more than {MAX_CHAIN_CERTIFICATES} certificates")
    return certificates


def _level(text: str | None, what: str) -> TrustLevel:
    if text is None or _LEVEL.fullmatch(text) is None:
        raise _invalid(f"{what} level extension is not L0..L4")
    return TrustLevel(int(text[1]))


def _common_name(certificate: x509.Certificate) -> tuple[str, str]:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = names[0].value if len(names) == 1 and isinstance(names[0].value, str) else ""
    cn = cn.strip()
    match = _CN_ID.match(cn)
    name, agent_id = (match.group(1).strip(), match.group(2).strip()) if match else (cn, cn)
    if not agent_id or len(agent_id) > 256:
        raise _invalid("the certificate's Common Name names no agent")
    return name, agent_id


def _policy_builder(anchors: CertificateAnchors, now: float) -> PolicyBuilder:
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return (
        PolicyBuilder()
        .store(anchors.store)  # type: ignore[arg-type]  # checked by the caller: never None here
        .time(datetime.datetime.fromtimestamp(now, datetime.UTC))
        .max_chain_depth(MAX_CHAIN_CERTIFICATES)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
    )


def verify_agent_certificate(header: str, anchors: CertificateAnchors, *, now: float) -> VerifiedCertificateAgent:
    """Verify the value of an ``X-AgentPass-Certificate`` header at ``now`` (see the module docstring)."""
    # 1-2. Size, encoding, algorithms.
    leaf, *intermediates = _parse_header(header)
    for index, certificate in enumerate((leaf, *intermediates)):
        _check_p256(certificate, "agent certificate" if index == 0 else f"intermediate {index}")
    # 3. The agent's extensions and name.
    claimed = _level(_extension_text(leaf, LEVEL_OID), "agent")
    scopes_text = _extension_text(leaf, SCOPES_OID)
    issuer_id = _extension_text(leaf, ISSUER_OID)
    if scopes_text is None or not issuer_id:
        raise _invalid("the agent certificate lacks its scopes or issuer extension")
    scopes = frozenset(part.strip() for part in scopes_text.split(",") if part.strip())
    name, agent_id = _common_name(leaf)
    # 4. Validity, for a precise code (the path validation below checks it again).
    for certificate in (leaf, *intermediates):
        if not certificate.not_valid_before_utc.timestamp() <= now <= certificate.not_valid_after_utc.timestamp():
            raise McpsError(ErrorCode.PASSPORT_EXPIRED, "agent certificate is expired or not yet valid")
    # 5. The chain to an anchor.
    if anchors.store is None:
        raise McpsError(ErrorCode.UNKNOWN_KEY, "certificate issuer is not trusted", detail="no certificate anchors")
    try:
        verified = _policy_builder(anchors, now).build_client_verifier().verify(leaf, intermediates)
    except VerificationError as exc:
        raise McpsError(ErrorCode.UNKNOWN_KEY, "certificate issuer is not trusted", detail=str(exc)[:300]) from None
    anchor = anchors.get(verified.chain[-1])
    if anchor is None:  # pragma: no cover - the store holds exactly the anchors
        raise McpsError(ErrorCode.UNKNOWN_KEY, "certificate issuer is not trusted")
    # 6. The effective level.
    level = min(claimed, anchor.max_level)
    for certificate in verified.chain[1:-1]:
        text = _extension_text(certificate, LEVEL_OID)
        if text is not None:
            level = min(level, _level(text, "intermediate"))
    return VerifiedCertificateAgent(
        agent_id=agent_id,
        name=name,
        key=PublicKey.from_crypto(leaf.public_key()),  # type: ignore[arg-type]  # P-256, checked in step 2
        level=level,
        claimed_level=claimed,
        scopes=scopes,
        issuer_id=issuer_id,
        serial=format(leaf.serial_number, "x"),
        fingerprint=_fingerprint(leaf),
        anchor_fingerprint=anchor.fingerprint,
        not_after=int(min(c.not_valid_after_utc.timestamp() for c in verified.chain)),
    )


# --- issuing (tests, examples) ------------------------------------------------------------------------------------


def _utf8_extension(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 127:
        raise ValueError("extension text longer than 127 bytes")
    inner = bytes([0x0C, len(data)]) + data
    return bytes([0x04, len(inner)]) + inner  # the AgentPass form: OCTET STRING { UTF8String }


def _crypto_key(key: PrivateKey) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key._key, ec.EllipticCurvePrivateKey):
        raise ValueError("AgentPass certificates use P-256 (ES256) keys")  # noqa: TRY004 - a wrong argument value
    return key._key


def issue_ca_certificate(key: PrivateKey, name: str, *, now: float, days: int = 3650) -> x509.Certificate:
    """A self-signed AgentPass-style CA certificate (P-256), for tests and examples."""
    crypto_key = _crypto_key(key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime.fromtimestamp(now, datetime.UTC) - datetime.timedelta(hours=1)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(crypto_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(crypto_key.public_key()), critical=False)
        .sign(crypto_key, hashes.SHA256())
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue_agent_certificate(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    agent_key: PrivateKey,
    *,
    agent_id: str,
    level: int | str,
    scopes: Sequence[str],
    issuer_id: str,
    now: float,
    lifetime: int = 24 * 3600,
    name: str = "Agent",
) -> str:
    """An AgentPass-style agent certificate signed by ``ca``, as the ``X-AgentPass-Certificate`` value
    (base64 of PEM). ``level`` may be written as the extension holds it (``"L9"`` for a malformed one)."""
    start = datetime.datetime.fromtimestamp(now, datetime.UTC) - datetime.timedelta(minutes=1)
    level_text = level if isinstance(level, str) else f"L{level}"
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} ({agent_id})")]))
        .issuer_name(ca.subject)
        .public_key(_crypto_key(agent_key).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(seconds=lifetime))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(_crypto_key(ca_key).public_key()), False)
        .add_extension(x509.UnrecognizedExtension(LEVEL_OID, _utf8_extension(level_text)), critical=False)
        .add_extension(x509.UnrecognizedExtension(SCOPES_OID, _utf8_extension(",".join(scopes))), critical=False)
        .add_extension(x509.UnrecognizedExtension(ISSUER_OID, _utf8_extension(issuer_id)), critical=False)
        .sign(_crypto_key(ca_key), hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.PEM)).decode("ascii")
