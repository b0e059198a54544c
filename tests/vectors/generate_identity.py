"""Regenerate tests/vectors/passports/ and tests/vectors/grants/ (run from the repository root):

    .venv/bin/python tests/vectors/generate_identity.py

Every key is a TEST KEY derived from a public seed — never use one in production. Signatures are deterministic
(Ed25519, RFC 6979 for ES256) but nonces and grant ids are random, so a rerun rewrites the files; commit the result
only when the format or a case changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.envelope import GRANT_KEY, sign_message
from mcps.core.keys import Algorithm, PrivateKey
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.grants import mint_grant
from mcps.identity.jws import sign_compact
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import PASSPORT_TYP, issue_passport

HERE = Path(__file__).resolve().parent
NOW = 1_763_683_200
AUDIENCE = "https://tools.example.com/mcp"
UPSTREAM = "mcp://files.internal"
WARNING = "TEST KEY — never use in production"

_SEEDS: dict[str, Algorithm] = {
    "anchor-l4": Algorithm.EDDSA,
    "anchor-l1": Algorithm.ES256,
    "agent": Algorithm.EDDSA,
    "agent-es256": Algorithm.ES256,
    "stranger": Algorithm.EDDSA,
    "gateway": Algorithm.EDDSA,
    "mallory": Algorithm.EDDSA,
    "mallory-second-key": Algorithm.EDDSA,
    **{f"intermediate-{n}": Algorithm.EDDSA for n in range(1, 6)},
}


def _key(name: str) -> tuple[PrivateKey, dict[str, str]]:
    seed = hashlib.sha256(f"mcps vector test key: {name}".encode()).digest()
    if _SEEDS[name] is Algorithm.EDDSA:
        key = PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
        d = seed
    else:
        scalar = int.from_bytes(seed, "big") % (2**256 - 2**224)  # below the P-256 order
        key = PrivateKey.from_crypto(ec.derive_private_key(scalar, ec.SECP256R1()))
        d = scalar.to_bytes(32, "big")
    return key, {**key.public_key.to_jwk(), "d": b64u_encode(d), "comment": WARNING}


KEYS = {name: _key(name) for name in _SEEDS}
K = {name: pair[0] for name, pair in KEYS.items()}
ANCHORS = TrustAnchors(
    [TrustAnchor(K["anchor-l4"].public_key, TrustLevel.L4), TrustAnchor(K["anchor-l1"].public_key, TrustLevel.L1)]
)


def passport(agent: str = "agent", issuer: str = "anchor-l4", *, may_issue: bool = False, **kw: Any) -> str:
    args: dict[str, Any] = {
        "iss": "https://issuer.example",
        "sub": "agent-1",
        "level": 2,
        "scopes": ["tools:call", "files:read"],
        "now": NOW,
        "ttl": 3600,
        "jti": "jti-agent-1",
    }
    args.update(kw)
    return issue_passport(K[issuer], agent_key=K[agent].public_key, issuer=may_issue, **args)


def issuer_passport(n: int, issuer: str = "anchor-l4", iss: str = "https://issuer.example", **kw: Any) -> str:
    """The passport of intermediate ``n`` (sub ``issuer-n``): it may issue passports unless ``may_issue=False``."""
    args: dict[str, Any] = {"iss": iss, "sub": f"issuer-{n}", "jti": f"jti-issuer-{n}", "may_issue": True} | kw
    return passport(f"intermediate-{n}", issuer, **args)


def chain(depth: int) -> tuple[str, list[str]]:
    issuer, iss, tokens = "anchor-l4", "https://issuer.example", []
    for n in range(depth - 1, 0, -1):
        tokens.append(issuer_passport(n, issuer, iss))
        issuer, iss = f"intermediate-{n}", f"issuer-{n}"
    leaf = passport("agent", issuer, iss=iss, scopes=["tools:call"])
    return leaf, list(reversed(tokens))


def request(token: str | None, chain_tokens: list[str] | None = None, *, signer: str = "agent") -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if token is not None:
        meta["mcps/passport"] = token
    if chain_tokens:
        meta["mcps/chain"] = chain_tokens
    message = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": "/srv/report.txt"}, "_meta": meta},
    }
    return sign_message(message, K[signer], audience=AUDIENCE, now=NOW)


def passport_case(description: str, message: dict[str, Any], expect: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "now": NOW,
        "skew": 30,
        "audience": AUDIENCE,
        "min_level": extra.pop("min_level", 0),
        "anchors": ANCHORS.to_jwks(),
        "revoked": extra.pop("revoked", []),
        "message": message,
        "expect": expect,
    }


def ok(level: int, depth: int = 1, scopes: tuple[str, ...] = ("files:read", "tools:call")) -> dict[str, Any]:
    return {"agent": "agent-1", "level": level, "depth": depth, "scopes": sorted(scopes)}


def err(code: str) -> dict[str, Any]:
    return {"error": code}


def oversized() -> str:
    claims = {"pad": "p" * 6800}  # about 9 KiB once encoded
    return sign_compact(claims, K["anchor-l4"], typ=PASSPORT_TYP)


def issuer_marker_not_boolean() -> str:
    claims = json.loads(b64u_decode(issuer_passport(1).split(".")[1])) | {"mcps_issuer": "true"}
    return sign_compact(claims, K["anchor-l4"], typ=PASSPORT_TYP)


def level_true() -> str:
    claims = json.loads(b64u_decode(passport(level=1).split(".")[1])) | {"mcps_tl": True}
    return sign_compact(claims, K["anchor-l4"], typ=PASSPORT_TYP)


def passports() -> dict[str, dict[str, Any]]:
    leaf3, chain3 = chain(3)
    leaf6, chain6 = chain(6)
    delegated = passport("agent", "intermediate-1", iss="issuer-1", scopes=["tools:call"])
    mallory = passport("mallory", sub="mallory", jti="jti-mallory")  # an ordinary anchored agent passport
    impersonation = passport("mallory-second-key", "mallory", iss="mallory", scopes=["tools:call"], jti="jti-forged")
    return {
        "passport-valid-l0-self-signed": passport_case(
            "self-signed, claims L0", request(passport(issuer="agent", level=0)), ok(0)
        ),
        "passport-valid-l1": passport_case(
            "from the ES256 anchor capped at L1", request(passport(issuer="anchor-l1", level=1)), ok(1)
        ),
        "passport-valid-l2": passport_case(
            "from the L4 anchor, claims L2", request(passport(level=2)), ok(2), min_level=2
        ),
        "passport-valid-l3": passport_case(
            "from the L4 anchor, claims L3", request(passport(level=3)), ok(3), min_level=3
        ),
        "passport-valid-l4-es256-agent": passport_case(
            "L4, agent key ES256", request(passport("agent-es256", level=4), signer="agent-es256"), ok(4), min_level=4
        ),
        "passport-valid-chain-depth-3": passport_case(
            "agent <- issuer-1 <- issuer-2 <- anchor", request(leaf3, chain3), ok(2, 3, ("tools:call",))
        ),
        "passport-expired": passport_case("exp + skew before now", request(passport(now=NOW - 7200)), err("MCPS-002")),
        "passport-not-yet-valid": passport_case(
            "nbf - skew after now", request(passport(now=NOW + 600)), err("MCPS-002")
        ),
        "passport-unknown-issuer": passport_case(
            "signed by a key that is no anchor", request(passport(issuer="stranger")), err("MCPS-029")
        ),
        "passport-level-above-issuer-cap": passport_case(
            "claims L3 from an anchor capped at L1: effective L1", request(passport(issuer="anchor-l1", level=3)), ok(1)
        ),
        "passport-level-above-issuer-cap-refused": passport_case(
            "claims L3 from an anchor capped at L1, verifier requires L2",
            request(passport(issuer="anchor-l1", level=3)),
            err("MCPS-009"),
            min_level=2,
        ),
        "passport-self-signed-claims-l3": passport_case(
            "self-signed claiming L3: effective L0", request(passport(issuer="agent", level=3)), ok(0)
        ),
        "passport-self-signed-claims-l3-refused": passport_case(
            "self-signed claiming L3, verifier requires L1",
            request(passport(issuer="agent", level=3)),
            err("MCPS-009"),
            min_level=1,
        ),
        "passport-chain-of-6": passport_case("six passports on the path", request(leaf6, chain6), err("MCPS-014")),
        "passport-9kib": passport_case("a 9 KiB passport", request(oversized()), err("MCPS-013")),
        "passport-revoked-by-jti": passport_case(
            "the kill switch names its jti",
            request(passport()),
            err("MCPS-003"),
            revoked=[{"scope": "*", "kind": "jti", "value": "jti-agent-1"}],
        ),
        "passport-revoked-by-sub": passport_case(
            "the anchor's revocation list names its sub",
            request(passport()),
            err("MCPS-003"),
            revoked=[{"scope": K["anchor-l4"].kid, "kind": "sub", "value": "agent-1"}],
        ),
        "passport-cnf-not-signing-key": passport_case(
            "the passport certifies another key than the one that signed",
            request(passport("stranger")),
            err("MCPS-029"),
        ),
        "passport-audience-mismatch": passport_case(
            "aud names another server", request(passport(aud=["https://other.example/mcp"])), err("MCPS-011")
        ),
        "passport-scope-widened": passport_case(
            "a delegate claims a scope its issuer lacks",
            request(
                passport("agent", "intermediate-1", iss="issuer-1", scopes=["tools:call", "admin"]),
                [issuer_passport(1, scopes=["tools:call"])],
            ),
            err("MCPS-009"),
        ),
        "passport-issued-by-a-non-issuer": passport_case(
            "agent <- issuer-1 <- anchor, but issuer-1's passport has no mcps_issuer: it may not sign passports",
            request(delegated, [issuer_passport(1, may_issue=False)]),
            err("MCPS-009"),
        ),
        "passport-for-another-agent-issued-by-an-agent": passport_case(
            "impersonation: the holder of an ordinary anchored passport (sub mallory) signs a passport for agent-1"
            " certifying a key of its own, and signs the request with that key",
            request(impersonation, [mallory], signer="mallory-second-key"),
            err("MCPS-009"),
        ),
        "passport-level-true": passport_case(
            "mcps_tl is the boolean true, not the integer 1 (SPEC §1)", request(level_true()), err("MCPS-001")
        ),
        "passport-issuer-marker-not-boolean": passport_case(
            'an intermediate\'s mcps_issuer is the string "true", not a boolean',
            request(delegated, [issuer_marker_not_boolean()]),
            err("MCPS-001"),
        ),
    }


def grants() -> dict[str, dict[str, Any]]:
    def forwarded(**kw: Any) -> dict[str, Any]:
        message = request(passport())
        params = message["params"]
        args: dict[str, Any] = {
            "iss": "https://gateway.example",
            "sub": "agent-1",
            "aud": UPSTREAM,
            "tool": params["name"],
            "arguments": params["arguments"],
            "request_sig": params["_meta"]["mcps/sig"]["sig"],
            "level": 2,
            "scopes": ["tools:call"],
            "now": NOW,
        }
        args.update(kw)
        params["_meta"][GRANT_KEY] = mint_grant(K["gateway"], **args)
        return message

    def case(
        description: str, message: dict[str, Any], expect: dict[str, Any], uses: int = 1, sender: str | None = None
    ) -> dict[str, Any]:
        body = {
            "description": description,
            "now": NOW,
            "skew": 30,
            "audience": UPSTREAM,
            "issuers": {"keys": [K["gateway"].public_key.to_jwk()]},
            "uses": uses,
            "message": message,
            "expect": expect,
        }
        if sender is not None:
            body["sender"] = sender
        return body

    wrong_tool = forwarded()
    wrong_tool["params"]["name"] = "delete_file"
    changed = forwarded()
    changed["params"]["arguments"] = {"path": "/etc/shadow"}
    other = request(passport())
    other["params"]["_meta"][GRANT_KEY] = forwarded()["params"]["_meta"][GRANT_KEY]
    valid = {"agent": "agent-1", "tool": "read_file", "level": 2, "scopes": ["tools:call"]}
    return {
        "grant-valid": case("a grant for exactly this call", forwarded(), valid),
        "grant-wrong-tool": case("the call names another tool", wrong_tool, err("MCPS-032")),
        "grant-arguments-changed": case("arguments changed after the grant was minted", changed, err("MCPS-032")),
        "grant-bound-to-another-request": case(
            "the grant was minted for another agent request", other, err("MCPS-032")
        ),
        "grant-replayed": case(
            "the same grant presented twice: the second use is refused", forwarded(), err("MCPS-031"), uses=2
        ),
        "grant-expired": case("exp + skew before now", forwarded(now=NOW - 61), err("MCPS-017")),
        "grant-wrong-audience": case(
            "minted for another upstream", forwarded(aud="mcp://other.internal"), err("MCPS-011")
        ),
        "grant-for-another-agent": case(
            "minted for agent-2, presented on a request that agent-1 signed",
            forwarded(sub="agent-2"),
            err("MCPS-032"),
            sender="agent-1",
        ),
    }


def main() -> None:
    keys = {"comment": "TEST KEYS — never use in production", "keys": {name: jwk for name, (_, jwk) in KEYS.items()}}
    for folder, cases in (("passports", passports()), ("grants", grants())):
        (HERE / folder / "keys.json").write_text(
            json.dumps(keys, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        for name, body in cases.items():
            (HERE / folder / f"{name}.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
