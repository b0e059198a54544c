# ruff: noqa: E501 - case tables read best one case per line
"""Regenerate tests/vectors/http/ (run from the repository root):

    .venv/bin/python tests/vectors/generate_http.py

Every key is a TEST KEY derived from a public seed — never use one in production. Request and response signatures
are deterministic (fixed times and nonces; Ed25519, RFC 6979 for ES256); the AgentPass certificates are not (ECDSA in
X.509 uses random nonces and serials), so a rerun rewrites the certificate vectors. Commit the result only when the
format or a case changes. tests/http_api/test_vectors.py runs every file.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from mcps.core.encoding import b64u_encode
from mcps.core.http_fields import MessageView, content_digest
from mcps.core.httpsig import SignatureFormat, sign_request, sign_response
from mcps.core.keys import Algorithm, PrivateKey
from mcps.identity.agentpass import issue_agent_certificate, issue_ca_certificate
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport

HERE = Path(__file__).resolve().parent / "http"
NOW = 1_763_683_200
ORIGIN = "https://api.example"
WARNING = "TEST KEY — never use in production"
NONCE = b64u_encode(hashlib.sha256(b"mcps http vector nonce").digest()[:16])
_SEEDS = {
    "agent": Algorithm.ES256,
    "agent-eddsa": Algorithm.EDDSA,
    "issuer": Algorithm.EDDSA,
    "service": Algorithm.ES256,
    "ca": Algorithm.ES256,
    "stranger": Algorithm.ES256,
}


def _key(name: str) -> tuple[PrivateKey, dict[str, str]]:
    seed = hashlib.sha256(f"mcps http vector test key: {name}".encode()).digest()
    if _SEEDS[name] is Algorithm.EDDSA:
        key = PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
        d = seed
    else:
        scalar = int.from_bytes(seed, "big") % (2**256 - 2**224)
        key = PrivateKey.from_crypto(ec.derive_private_key(scalar, ec.SECP256R1()))
        d = scalar.to_bytes(32, "big")
    return key, {**key.public_key.to_jwk(), "d": b64u_encode(d), "comment": WARNING}


KEYS = {name: _key(name) for name in _SEEDS}
K = {name: pair[0] for name, pair in KEYS.items()}
CA = issue_ca_certificate(K["ca"], "Vector AgentPass CA", now=NOW - 86400)
TRUST = {
    "anchors": TrustAnchors([TrustAnchor(K["issuer"].public_key, TrustLevel.L3)]).to_jwks(),
    "agent_keys": TrustAnchors([TrustAnchor(K["agent-eddsa"].public_key, TrustLevel.L1)]).to_jwks(),
    "certificate_anchors": [{"pem": CA.public_bytes(Encoding.PEM).decode("ascii"), "max_level": 2}],
}
PASSPORT = issue_passport(
    K["issuer"], iss="https://issuer.example", sub="agent-7", agent_key=K["agent"].public_key, level=2,
    scopes=["payments:write"], now=NOW - 60, jti="vector-passport-1",
)  # fmt: skip


def request(fmt: SignatureFormat, key: str = "agent", *, credential: str = "passport", body: str = '{"amount":25}',
            target: str = "/payments", method: str = "POST") -> dict[str, Any]:  # fmt: skip
    headers: dict[str, list[str]] = {"host": ["api.example"], "content-type": ["application/json"]}
    headers["content-digest"] = [content_digest(hashlib.sha256(body.encode()).digest())]
    if credential == "passport":
        headers["x-agent-trust" if fmt is SignatureFormat.ATTP else "mcps-passport"] = [
            PASSPORT if fmt is SignatureFormat.ATTP else f'"{PASSPORT}"'
        ]
    elif credential == "certificate":
        cert = issue_agent_certificate(K["ca"], CA, K[key], agent_id="agent-cert-1", level=4, scopes=["screen"],
                                       issuer_id="dev-001", now=NOW - 60)  # fmt: skip
        headers["x-agentpass-certificate"] = [cert]
    view = MessageView(method, ORIGIN + target, headers)
    extra = ["content-type"] if fmt is SignatureFormat.RFC9421 else []
    signed = sign_request(fmt, K[key], view, now=NOW, nonce=NONCE, tag="agent-instance-1", extra_components=extra)
    for name, value in signed.items():
        headers[name.lower()] = [value]
    return {"method": method, "target": target, "headers": [[n, v] for n, vs in headers.items() for v in vs],
            "body": body}  # fmt: skip


def case(
    description: str, fmt: SignatureFormat, req: dict[str, Any], expect: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {"description": description, "format": fmt.value, "now": NOW, "skew": 30, "origin": ORIGIN,
            "identity": ORIGIN, "trust": TRUST, "request": req, "expect": expect, **extra}  # fmt: skip


def edit(req: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(req)
    change(copied)
    return copied


def set_header(name: str, value: str | None) -> Callable[[dict[str, Any]], None]:
    def change(req: dict[str, Any]) -> None:
        req["headers"] = [[n, v] for n, v in req["headers"] if n != name]
        if value is not None:
            req["headers"].append([name, value])

    return change


def header(req: dict[str, Any], name: str) -> str:
    return next(v for n, v in req["headers"] if n == name)


def build() -> dict[str, dict[str, Any]]:
    R, A, T = SignatureFormat.RFC9421, SignatureFormat.AGENT_SIGNATURE, SignatureFormat.ATTP
    ok = {"identity": "agent-7", "level": 2, "credential": "passport"}
    rfc = request(R)
    agent_sig = request(A)
    attp = request(T)
    cases: dict[str, dict[str, Any]] = {}
    cases["rfc9421-valid-passport"] = case("RFC 9421, SEP-2752 profile, ES256 agent with a passport", R, rfc, ok)
    cases["rfc9421-valid-agent-key"] = case(
        "RFC 9421, Ed25519 key listed in the agent keys (L1), no credential", R,
        request(R, "agent-eddsa", credential="none"), {"identity": K["agent-eddsa"].kid, "level": 1,
                                                       "credential": "agent-key"})  # fmt: skip
    cases["rfc9421-alg-parameter-is-ignored"] = case(
        "alg=\"hmac-sha256\" is present and ignored (SEP-2752 §2.2): the key decides", R,
        edit(rfc, lambda r: None), ok)  # fmt: skip
    # The alg case needs a signature over a base that has the alg parameter: re-sign by hand.
    cases["rfc9421-alg-parameter-is-ignored"]["request"] = _with_alg(rfc)
    cases["rfc9421-tampered-body"] = case("body changed after signing", R, edit(rfc, lambda r: r.update(body='{"amount":2500}')), {"error": "MCPS-036"})  # fmt: skip
    cases["rfc9421-tampered-query"] = case("query added after signing", R, edit(rfc, lambda r: r.update(target="/payments?to=mallory")), {"error": "MCPS-004"})  # fmt: skip
    cases["rfc9421-tampered-covered-header"] = case("content-type changed after signing", R, edit(rfc, set_header("content-type", "text/plain")), {"error": "MCPS-004"})  # fmt: skip
    cases["rfc9421-content-digest-not-covered"] = case(
        "Signature-Input leaves out content-digest", R,
        edit(rfc, set_header("signature-input", header(rfc, "signature-input").replace(' "content-digest"', ""))),
        {"error": "MCPS-027"})  # fmt: skip
    cases["rfc9421-passport-not-covered"] = case(
        "the passport header is not covered", R,
        edit(rfc, set_header("signature-input", header(rfc, "signature-input").replace(' "mcps-passport"', ""))),
        {"error": "MCPS-027"})  # fmt: skip
    cases["rfc9421-two-signatures"] = case(
        "a second signature label", R,
        edit(rfc, lambda r: r.update(headers=[[n, v + (", " + v.replace("sig1", "sig2") if n in ("signature", "signature-input") else "")] for n, v in r["headers"]])),
        {"error": "MCPS-027"})  # fmt: skip
    cases["rfc9421-duplicate-parameter"] = case(
        "created twice in Signature-Input (a structured field would keep the last)", R,
        edit(rfc, set_header("signature-input", header(rfc, "signature-input") + f";created={NOW + 100}")),
        {"error": "MCPS-027"})  # fmt: skip
    cases["rfc9421-missing-content-digest"] = case("no Content-Digest header", R, edit(rfc, set_header("content-digest", None)), {"error": "MCPS-027"})  # fmt: skip
    cases["rfc9421-expired"] = case("now is past expires + skew", R, rfc, {"error": "MCPS-006"}, now=NOW + 60 + 31)
    cases["rfc9421-created-in-future"] = case("created > now + skew", R, rfc, {"error": "MCPS-006"}, now=NOW - 31)
    cases["rfc9421-wrong-host"] = case("Host names another service", R, edit(rfc, set_header("host", "api.other.example")), {"error": "MCPS-011"})  # fmt: skip
    cases["rfc9421-unknown-keyid"] = case("a key no source trusts", R, request(R, "stranger", credential="none"), {"error": "MCPS-029"})  # fmt: skip
    cases["rfc9421-keyid-not-the-passport-key"] = case(
        "signed by a key that is not the passport's cnf", R, _resign_with(rfc, "stranger"), {"error": "MCPS-029"})  # fmt: skip
    cases["rfc9421-replayed"] = case("the same request twice", R, rfc, {"error": "MCPS-005"}, uses=2)
    cases["agent-signature-valid"] = case("Agent-Signature, ES256, passport", A, agent_sig, ok)
    cases["agent-signature-valid-certificate"] = case(
        "Agent-Signature with an AgentPass certificate claiming L4 from a CA capped at L2", A,
        request(A, credential="certificate"), {"identity": "agent-cert-1", "level": 2, "credential": "certificate"},
        regenerated=True)  # fmt: skip
    cases["agent-signature-extra-member"] = case(
        "an unknown member alg", A,
        edit(agent_sig, set_header("agent-signature", header(agent_sig, "agent-signature") + ', alg="none"')),
        {"error": "MCPS-027"})  # fmt: skip
    cases["agent-signature-keyid-not-thumbprint"] = case(
        "keyid is a name, not an RFC 7638 thumbprint", A,
        edit(agent_sig, set_header("agent-signature", _replace_keyid(header(agent_sig, "agent-signature")))),
        {"error": "MCPS-027"})  # fmt: skip
    cases["agent-signature-tampered-method"] = case(
        "method changed after signing", A, edit(agent_sig, lambda r: r.update(method="PUT")), {"error": "MCPS-004"})  # fmt: skip
    cases["agent-signature-window-over-300s"] = case(
        "expires - created = 301", A, _agent_signature_window(agent_sig), {"error": "MCPS-006"})  # fmt: skip
    cases["attp-valid"] = case("ATTP X-Agent-* headers with the passport in X-Agent-Trust", T, attp, ok)
    cases["attp-missing-nonce"] = case("no X-Agent-Nonce", T, edit(attp, set_header("x-agent-nonce", None)), {"error": "MCPS-027"})  # fmt: skip
    cases["attp-unknown-version"] = case("X-ATTP-Version: 2", T, edit(attp, set_header("x-attp-version", "2")), {"error": "MCPS-015"})  # fmt: skip
    cases["attp-passport-swapped"] = case(
        "X-Agent-Trust replaced by another valid passport for the same key", T,
        edit(attp, set_header("x-agent-trust", issue_passport(K["issuer"], iss="https://issuer.example", sub="agent-7",
             agent_key=K["agent"].public_key, level=3, now=NOW - 60, jti="vector-passport-2"))),
        {"error": "MCPS-004"})  # fmt: skip
    cases["mixed-formats"] = case(
        "Agent-Signature and Signature-Input together", R,
        edit(rfc, lambda r: r["headers"].append(["agent-signature", header(agent_sig, "agent-signature")])),
        {"error": "MCPS-027"})  # fmt: skip
    cases["response-valid"] = response_case("a response bound to its request", rfc, rfc, {"valid": True})
    cases["response-bound-to-another-request"] = response_case(
        "the answer to another request (same key, same operation)", request(R, body='{"amount":1}'), rfc,
        {"error": "MCPS-004"})  # fmt: skip
    return cases


def _with_alg(req: dict[str, Any]) -> dict[str, Any]:
    from mcps.core.http_fields import parse_field, serialize_inner_list, signature_base  # noqa: PLC0415

    copied = copy.deepcopy(req)
    items, params = parse_field(header(req, "signature-input"), "dictionary")["sig1"]
    params = {**params, "alg": "hmac-sha256"}
    headers: dict[str, list[str]] = {}
    for n, v in copied["headers"]:
        headers.setdefault(n, []).append(v)
    view = MessageView(req["method"], ORIGIN + req["target"], headers)
    signature = K["agent"].sign(signature_base(view, items, params))
    set_header("signature-input", f"sig1={serialize_inner_list(items, params)}")(copied)
    set_header("signature", f"sig1=:{base64.b64encode(signature).decode()}:")(copied)
    return copied


def _resign_with(req: dict[str, Any], key: str) -> dict[str, Any]:
    from mcps.core.http_fields import parse_field, serialize_inner_list, signature_base  # noqa: PLC0415

    copied = copy.deepcopy(req)
    items, params = parse_field(header(req, "signature-input"), "dictionary")["sig1"]
    params = {**params, "keyid": K[key].kid}
    headers: dict[str, list[str]] = {}
    for n, v in copied["headers"]:
        headers.setdefault(n, []).append(v)
    signature = K[key].sign(signature_base(MessageView(req["method"], ORIGIN + req["target"], headers), items, params))
    set_header("signature-input", f"sig1={serialize_inner_list(items, params)}")(copied)
    set_header("signature", f"sig1=:{base64.b64encode(signature).decode()}:")(copied)
    return copied


def _replace_keyid(value: str) -> str:
    start = value.index('keyid="') + 7
    return value[:start] + "agent-key-1" + value[value.index('"', start) :]


def _agent_signature_window(req: dict[str, Any]) -> dict[str, Any]:
    from mcps.core.http_fields import signature_base  # noqa: PLC0415

    copied = copy.deepcopy(req)
    headers: dict[str, list[str]] = {}
    for n, v in copied["headers"]:
        if n != "agent-signature":
            headers.setdefault(n, []).append(v)
    components = [("@method", {}), ("@target-uri", {}), ("content-digest", {}), ("mcps-passport", {})]
    params = {"created": NOW, "expires": NOW + 301, "nonce": NONCE, "keyid": K["agent"].kid, "tag": "x-agent-trust"}
    signature = K["agent"].sign(
        signature_base(MessageView(req["method"], ORIGIN + req["target"], headers), components, params)
    )
    value = (f"sig=:{base64.b64encode(signature).decode()}:, keyid=\"{K['agent'].kid}\", created={NOW}, "
             f"expires={NOW + 301}, nonce=\"{NONCE}\"")  # fmt: skip
    set_header("agent-signature", value)(copied)
    return copied


def response_case(
    description: str, answered: dict[str, Any], sent: dict[str, Any], expect: dict[str, Any]
) -> dict[str, Any]:
    body = '{"paid":25}'
    digest = content_digest(hashlib.sha256(body.encode()).digest())
    headers: dict[str, list[str]] = {}
    for n, v in answered["headers"]:
        headers.setdefault(n, []).append(v)
    request_view = MessageView(answered["method"], ORIGIN + answered["target"], headers)
    view = MessageView(status=200, headers={"content-digest": [digest]}, request=request_view)
    signed = sign_response(K["service"], view, ("signature", {"req": True, "key": "sig1"}), now=NOW, nonce=NONCE)
    response = {
        "status": 200,
        "headers": [["content-digest", digest], *([k.lower(), v] for k, v in signed.items())],
        "body": body,
    }
    return {"description": description, "kind": "response", "now": NOW, "skew": 30, "origin": ORIGIN,
            "server_key": K["service"].public_key.to_jwk(), "request": sent, "response": response,
            "binding": ["signature", {"req": True, "key": "sig1"}], "expect": expect}  # fmt: skip


def main() -> None:
    HERE.mkdir(exist_ok=True)
    (HERE / "keys.json").write_text(
        json.dumps({"comment": WARNING, "keys": {n: jwk for n, (_, jwk) in KEYS.items()}}, indent=2) + "\n",
        encoding="utf-8",
    )
    for name, data in build().items():
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
