"""A small test PKI: deterministic TEST KEYS (never use in production), anchors, passports, chains, requests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mcps.core.envelope import sign_message
from mcps.core.keys import Algorithm, PrivateKey
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import CHAIN_KEY, PASSPORT_KEY

NOW = 1_763_683_200
AUDIENCE = "https://tools.example.com/mcp"
ISSUER = "https://issuer.example"


def make_key(name: str, alg: Algorithm = Algorithm.EDDSA) -> PrivateKey:
    """TEST KEY — never use in production: derived from a public seed."""
    seed = hashlib.sha256(f"mcps identity test key: {name}".encode()).digest()
    if alg is Algorithm.EDDSA:
        return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    return PrivateKey.from_crypto(ec.derive_private_key(int.from_bytes(seed, "big"), ec.SECP256R1()))


ANCHOR = make_key("anchor")  # cap L3
LOW_ANCHOR = make_key("low anchor", Algorithm.ES256)  # cap L1
AGENT = make_key("agent")
ANCHORS = TrustAnchors(
    [TrustAnchor(ANCHOR.public_key, TrustLevel.L3), TrustAnchor(LOW_ANCHOR.public_key, TrustLevel.L1)]
)


def passport(
    agent: PrivateKey = AGENT,
    *,
    issuer: PrivateKey = ANCHOR,
    iss: str = ISSUER,
    sub: str = "agent-1",
    level: int = 2,
    scopes: Iterable[str] = ("tools:call", "files:read"),
    now: float = NOW,
    ttl: int = 3600,
    aud: Iterable[str] | None = None,
    jti: str | None = None,
    may_issue: bool = False,
) -> str:
    """A passport for ``agent`` signed by ``issuer``; ``may_issue`` marks it as an issuer (``mcps_issuer``)."""
    return issue_passport(
        issuer,
        iss=iss,
        sub=sub,
        agent_key=agent.public_key,
        level=level,
        scopes=scopes,
        now=now,
        ttl=ttl,
        aud=aud,
        jti=jti,
        issuer=may_issue,
    )


def delegated(depth: int, *, agent: PrivateKey = AGENT, level: int = 2) -> tuple[str, list[str]]:
    """A path of ``depth`` passports: the agent's, issued by intermediate ``depth-1``, …, down from ANCHOR.

    Each intermediate's passport carries ``mcps_issuer``: it may sign the passport below it.
    """
    issuer, iss = ANCHOR, ISSUER
    tokens: list[str] = []
    for n in range(depth - 1, 0, -1):
        intermediate = make_key(f"intermediate {n}")
        tokens.append(
            passport(
                intermediate, issuer=issuer, iss=iss, sub=f"issuer-{n}", level=level, jti=f"jti-i{n}", may_issue=True
            )
        )
        issuer, iss = intermediate, f"issuer-{n}"
    leaf = passport(agent, issuer=issuer, iss=iss, level=level, scopes=("tools:call",), jti="jti-leaf")
    return leaf, list(reversed(tokens))


def request(method: str = "tools/call", *, params: dict[str, Any] | None = None, id_: int = 7) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": method,
        "params": params if params is not None else {"name": "read_file", "arguments": {"path": "/tmp/x"}},
    }


def signed_request(
    token: str | None,
    chain: list[str] | None = None,
    *,
    key: PrivateKey = AGENT,
    audience: str = AUDIENCE,
    now: float = NOW,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A request carrying ``token`` (and ``chain``) in ``params._meta``, signed by ``key``."""
    message = message if message is not None else request()
    meta = dict(message["params"].get("_meta", {}))
    if token is not None:
        meta[PASSPORT_KEY] = token
    if chain:
        meta[CHAIN_KEY] = chain
    message = {**message, "params": {**message["params"], "_meta": meta}}
    return sign_message(message, key, audience=audience, now=now)
