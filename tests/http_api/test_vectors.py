"""Run every vector in tests/vectors/http/ (format: tests/vectors/http/README.md) through the same checks the
middleware and the client use, in the order of SPEC.md §13.6 and §13.7."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mcps import MemoryNonceStore, PrivateKey, PublicKey
from mcps.core.errors import McpsError
from mcps.core.http_fields import MessageView, check_content_digest
from mcps.core.httpsig import parse_request_signature, parse_response_signature
from mcps.http_api import HttpApiSecurity, RequestVerifier
from mcps.identity import MemoryRevocationStore, TrustAnchors
from mcps.identity.agentpass import CertificateAnchor, CertificateAnchors

VECTORS = sorted((Path(__file__).resolve().parents[1] / "vectors" / "http").glob("*.json"))
CASES = [path for path in VECTORS if path.name != "keys.json"]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def headers_of(fields: list[list[str]]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        headers.setdefault(name.lower(), []).append(value)
    return headers


async def run_request(vector: dict[str, Any], verifier: RequestVerifier, now: float) -> dict[str, Any]:
    request = vector["request"]
    headers = headers_of(request["headers"])
    view = MessageView(request["method"], vector["origin"] + request["target"], headers)
    signature = parse_request_signature(headers)
    if signature is None:
        raise McpsError.__new__(McpsError)  # pragma: no cover - every vector carries a signature
    authenticated = verifier._authenticate(signature, view, host=headers["host"][0], algorithms=frozenset(), now=now)
    body = request["body"].encode("utf-8")
    check_content_digest(", ".join(headers.get("content-digest", [])) or None, hashlib.sha256(body).digest())
    caller = await verifier.admit(authenticated, now=now)
    return {"identity": caller.identity, "level": int(caller.level), "credential": caller.credential}


def test_every_format_has_positive_and_negative_vectors() -> None:
    names = {path.stem for path in CASES}
    for prefix in ("rfc9421-", "agent-signature-", "attp-", "response-"):
        found = {name for name in names if name.startswith(prefix)}
        assert any("valid" in name for name in found), prefix
        assert any("valid" not in name for name in found), prefix


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
async def test_vector(path: Path) -> None:
    vector = load(path)
    expect = vector["expect"]
    now = vector["now"]
    if vector.get("kind") == "response":
        headers = headers_of(vector["response"]["headers"])
        request_headers = headers_of(vector["request"]["headers"])
        binding = (vector["binding"][0], vector["binding"][1])
        key = PublicKey.from_jwk(vector["server_key"])
        try:
            signature = parse_response_signature(headers, binding)
            assert signature.kid == key.kid
            body = vector["response"]["body"].encode()
            check_content_digest(headers["content-digest"][0], hashlib.sha256(body).digest())
            request = vector["request"]
            sent = MessageView(request["method"], vector["origin"] + request["target"], request_headers)
            view = MessageView(status=vector["response"]["status"], headers=headers, request=sent)
            key.verify(signature.signature, signature.base(view))
            result: dict[str, Any] = {"valid": True}
        except McpsError as error:
            result = {"error": error.code.mcps}
        assert result == expect
        return
    trust = vector["trust"]
    certificates = CertificateAnchors(
        CertificateAnchor(x509.load_pem_x509_certificate(entry["pem"].encode()), entry["max_level"])
        for entry in trust["certificate_anchors"]
    )
    security = HttpApiSecurity(
        identity=vector["identity"],
        key=PrivateKey.generate("ES256"),
        nonces=MemoryNonceStore(),
        revocations=MemoryRevocationStore(),
        anchors=TrustAnchors.from_jwks(trust["anchors"]),
        agent_keys=TrustAnchors.from_jwks(trust["agent_keys"]),
        certificate_anchors=certificates,
        skew=vector["skew"],
    )
    verifier = RequestVerifier(security)
    outcome: dict[str, Any] = {}
    for _ in range(vector.get("uses", 1)):
        try:
            outcome = await run_request(vector, verifier, now)
        except McpsError as error:
            outcome = {"error": error.code.mcps}
    assert outcome == expect
