"""SPEC.md §13.8: AgentPass certificates — both extension encodings, chains, caps, algorithms, validity."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcps import McpsError, PrivateKey
from mcps.identity import TrustLevel
from mcps.identity.agentpass import (
    LEVEL_OID,
    CertificateAnchor,
    CertificateAnchors,
    issue_agent_certificate,
    issue_ca_certificate,
    verify_agent_certificate,
)

NOW = 1_763_683_200.0


def _ca() -> tuple[PrivateKey, x509.Certificate]:
    key = PrivateKey.generate("ES256")
    return key, issue_ca_certificate(key, "CA", now=NOW)


def test_level_is_capped_by_the_anchor_and_read_with_scopes_and_issuer() -> None:
    ca_key, ca = _ca()
    agent = PrivateKey.generate("ES256")
    header = issue_agent_certificate(ca_key, ca, agent, agent_id="agent-001", level=4, scopes=["a", " b ", ""],
                                     issuer_id="dev-001", now=NOW, name="Screening bot")  # fmt: skip
    verified = verify_agent_certificate(header, CertificateAnchors([CertificateAnchor(ca, TrustLevel.L2)]), now=NOW)
    assert (verified.agent_id, verified.name) == ("agent-001", "Screening bot")
    assert (verified.level, verified.claimed_level) == (TrustLevel.L2, TrustLevel.L4)
    assert verified.scopes == {"a", "b"}
    assert verified.issuer_id == "dev-001"
    assert verified.key.kid == agent.kid


def test_plain_utf8string_extension_is_read_too() -> None:
    """The issue's reading ("each a UTF8String") and AgentPass's CA's (wrapped in an OCTET STRING) both work."""
    ca_key, ca = _ca()
    agent = PrivateKey.generate("ES256")
    crypto_ca_key = ca_key._key
    assert isinstance(crypto_ca_key, ec.EllipticCurvePrivateKey)
    start = datetime.datetime.fromtimestamp(NOW - 60, datetime.UTC)
    plain = lambda text: bytes([0x0C, len(text)]) + text.encode()  # noqa: E731
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bot-9")]))
        .issuer_name(ca.subject)
        .public_key(agent._key.public_key())  # type: ignore[arg-type]
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(crypto_ca_key.public_key()), critical=False)
        .add_extension(x509.UnrecognizedExtension(LEVEL_OID, plain("L1")), critical=False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.2"), plain("x")), False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.3"), plain("i")), False)
    )
    cert = builder.sign(crypto_ca_key, hashes.SHA256())
    header = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    verified = verify_agent_certificate(header, CertificateAnchors([CertificateAnchor(ca, TrustLevel.L4)]), now=NOW)
    assert (verified.agent_id, verified.level) == ("bot-9", TrustLevel.L1)  # a CN without "(id)" is the id


@pytest.mark.parametrize(
    ("defect", "code"),
    [("expired", "MCPS-002"), ("unknown-ca", "MCPS-029"), ("not-base64", "MCPS-037"), ("ed25519-ca", "MCPS-037")],
)
def test_defects(defect: str, code: str) -> None:
    ca_key, ca = _ca()
    agent = PrivateKey.generate("ES256")
    anchors = CertificateAnchors([CertificateAnchor(ca, TrustLevel.L3)])
    header = issue_agent_certificate(ca_key, ca, agent, agent_id="a", level=2, scopes=[], issuer_id="i", now=NOW)
    now = NOW
    if defect == "expired":
        now = NOW + 2 * 86400
    elif defect == "unknown-ca":
        anchors = CertificateAnchors([CertificateAnchor(_ca()[1], TrustLevel.L3)])
    elif defect == "not-base64":
        header = "-----BEGIN CERTIFICATE-----"
    elif defect == "ed25519-ca":
        with pytest.raises(ValueError):
            issue_ca_certificate(PrivateKey.generate("EdDSA"), "CA", now=NOW)
        header = "!" + header
    with pytest.raises(McpsError) as caught:
        verify_agent_certificate(header, anchors, now=now)
    assert caught.value.code.mcps == code
