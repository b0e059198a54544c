"""TEST KEYS and builders for the attack corpus. Every key here is derived from a public seed: never use in
production. One fixed clock (:data:`NOW`) for every in-process surface, so cases are deterministic."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mcps.core.encoding import b64u_encode
from mcps.core.envelope import SIG_KEY, block_container, sign_message, signing_input
from mcps.core.keys import Algorithm, PrivateKey
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import CHAIN_KEY, PASSPORT_KEY

from .corpus import CANARY

NOW: Final = 1_763_683_200
SERVER_ID: Final = "urn:mcps:attacks:server"
GATEWAY_ID: Final = "urn:mcps:attacks:gateway"
ISSUER_ID: Final = "https://issuer.attacks.example"
AGENT_ID: Final = "agent-attacks-1"
PROTOCOL_META: Final = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "attacks", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
"""Per-request envelope of protocol 2026-07-28: a request carrying it is served without a handshake."""


def make_key(name: str, alg: Algorithm = Algorithm.EDDSA) -> PrivateKey:
    """TEST KEY — never use in production: derived from a public seed."""
    seed = hashlib.sha256(f"mcps attack corpus TEST KEY: {name}".encode()).digest()
    if alg is Algorithm.EDDSA:
        return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    return PrivateKey.from_crypto(ec.derive_private_key(int.from_bytes(seed, "big"), ec.SECP256R1()))


AGENT: Final = make_key("agent")
AGENT_ES: Final = make_key("agent es256", Algorithm.ES256)
OTHER_AGENT: Final = make_key("other agent")
SERVER: Final = make_key("server")
OTHER_SERVER: Final = make_key("other server")
GATEWAY: Final = make_key("gateway")
ROGUE_GATEWAY: Final = make_key("rogue gateway")
ATTACKER: Final = make_key("attacker")
ANCHOR: Final = make_key("anchor")  # cap L3
LOW_ANCHOR: Final = make_key("low anchor", Algorithm.ES256)  # cap L1
ROGUE_ISSUER: Final = make_key("rogue issuer")
INTERMEDIATE: Final = make_key("intermediate")
ANCHORS: Final = TrustAnchors(
    [TrustAnchor(ANCHOR.public_key, TrustLevel.L3), TrustAnchor(LOW_ANCHOR.public_key, TrustLevel.L1)]
)


def dumps(message: Any) -> bytes:
    """Compact JSON bytes, non-ASCII kept as UTF-8 (the encoding every transport carries)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def call(
    request_id: int | str = 1, *, name: str = "echo", arguments: Mapping[str, Any] | None = None, meta: bool = False
) -> dict[str, Any]:
    """A ``tools/call`` request whose arguments carry the canary (the echo tool's ``text``)."""
    params: dict[str, Any] = {"name": name, "arguments": dict(arguments) if arguments is not None else {"text": CANARY}}
    if meta:
        params["_meta"] = dict(PROTOCOL_META)
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def sign(
    message: Mapping[str, Any],
    key: PrivateKey = AGENT,
    *,
    aud: str = SERVER_ID,
    now: float = NOW,
    in_reply_to: str | None = None,
    lifetime: int = 60,
) -> dict[str, Any]:
    return sign_message(message, key, audience=aud, now=now, in_reply_to=in_reply_to, lifetime=lifetime)


def forge(
    message: Mapping[str, Any],
    key: PrivateKey = AGENT,
    *,
    aud: str = SERVER_ID,
    now: float = NOW,
    in_reply_to: str | None = None,
    block: Mapping[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> dict[str, Any]:
    """Sign ``message``, then set (``block``) or remove (``drop``) members of its block and sign it again over the
    result: a validly signed message whose block has exactly the given defect."""
    signed = sign(message, key, aud=aud, now=now, in_reply_to=in_reply_to)
    container = block_container(signed)
    assert container is not None
    sig_block = container[SIG_KEY]
    sig_block.update(block or {})
    for member in drop:
        sig_block.pop(member, None)
    sig_block.pop("sig", None)
    sig_block["sig"] = b64u_encode(key.sign(signing_input(signed)))
    return signed


def sig_of(message: Mapping[str, Any]) -> str:
    container = block_container(message)
    assert container is not None
    return str(container[SIG_KEY]["sig"])


def passport(
    agent: PrivateKey = AGENT,
    *,
    issuer: PrivateKey = ANCHOR,
    iss: str = ISSUER_ID,
    sub: str = AGENT_ID,
    level: int = 2,
    scopes: Iterable[str] = ("tools:call",),
    now: float = NOW,
    ttl: int = 3600,
    aud: Iterable[str] | None = None,
    may_issue: bool = False,
    jti: str | None = None,
) -> str:
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


def with_passport(message: Mapping[str, Any], token: object, chain: object = None) -> dict[str, Any]:
    """``message`` (a request) carrying ``token`` (and ``chain``) in ``params._meta``, unsigned."""
    params = dict(message.get("params") or {})
    meta = dict(params.get("_meta") or {})
    meta[PASSPORT_KEY] = token
    if chain is not None:
        meta[CHAIN_KEY] = chain
    params["_meta"] = meta
    return {**message, "params": params}
