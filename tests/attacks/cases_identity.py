"""Identity attacks (SPEC.md §7): forged, stretched, borrowed, widened or revoked passports and chains; anchors that
change under a cache; trust-on-first-use fooled. Each is a signed request carried to a verifier that resolves the
signer through its passport (:class:`mcps.identity.PassportResolver`, minimum level L2, anchors capped at L3/L1).

A case builds an :class:`IdScenario`: requests verified in order (the last is the attack), the resolver's settings,
revocations recorded first, and an optional ``before_last`` step (an anchor refresh, the clock moving on).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from mcps.bindings.tofu import UnsafeTrustOnFirstUse
from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.envelope import KeyResolver
from mcps.core.errors import ErrorCode as E
from mcps.core.keys import PrivateKey
from mcps.identity.anchors import AnchorSource, TrustAnchor, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.remote_anchors import RemoteTrustAnchors
from mcps.identity.revocation import RevocationKey, RevocationKind

from .corpus import CANARY, Case, Threat, unique
from .pki import (
    AGENT,
    AGENT_ID,
    ANCHOR,
    ANCHORS,
    INTERMEDIATE,
    ISSUER_ID,
    LOW_ANCHOR,
    NOW,
    OTHER_AGENT,
    OTHER_SERVER,
    ROGUE_ISSUER,
    SERVER,
    SERVER_ID,
    call,
    dumps,
    make_key,
    passport,
    sign,
    with_passport,
)


class Clock:
    """The verifier's clock, moved on by a scenario."""

    def __init__(self) -> None:
        self.now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class IdScenario:
    messages: tuple[bytes, ...]
    min_level: TrustLevel = TrustLevel.L2
    anchors: AnchorSource = ANCHORS
    revoked: tuple[RevocationKey, ...] = ()
    store_down: bool = False
    clock: Clock = field(default_factory=Clock)
    setup: Callable[[], Awaitable[None]] | None = None
    """Run before the first message (a first anchor fetch)."""
    before_last: Callable[[], Awaitable[None]] | None = None
    """Run before the last message (an anchor refresh, the clock moving on)."""
    resolver: Callable[[], KeyResolver] | None = None
    """Makes the resolver used instead of a PassportResolver (trust on first use)."""
    audience: str = SERVER_ID


def agent_request(token: object = None, chain: object = None, *, key: PrivateKey = AGENT) -> bytes:
    """A tools/call from ``key`` carrying ``token`` (and ``chain``), signed; the canary is in the arguments."""
    message = call() if token is None else with_passport(call(), token, chain)
    return dumps(sign(message, key))


def good() -> bytes:
    return agent_request(passport())


def one(message: bytes, **kwargs: Any) -> IdScenario:
    return IdScenario((message,), **kwargs)


def passports(attack: Callable[[], object], control: Callable[[], object] = passport) -> Callable[[bool], IdScenario]:
    """Control: the agent with ``control()``'s passport; attack: with ``attack()``'s."""
    return lambda defect: one(agent_request(attack() if defect else control()))


# --- hand-made tokens --------------------------------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    """The claims :func:`~.pki.passport` writes, changed; a member set to ``None`` is removed."""
    jwk = {k: v for k, v in AGENT.public_key.to_jwk().items() if k in ("kty", "crv", "x", "y")}
    base: dict[str, Any] = {
        "iss": ISSUER_ID,
        "sub": AGENT_ID,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 3600,
        "jti": "jti-" + CANARY,
        "cnf": {"jwk": jwk},
        "mcps_tl": 2,
        "scope": "tools:call",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def jws(
    payload: dict[str, Any] | bytes,
    *,
    key: PrivateKey = ANCHOR,
    header: dict[str, Any] | bytes | None = None,
    typ: str = "mcps-passport+jwt",
) -> str:
    """A compact JWS signed by ``key`` over exactly the given header and payload (bytes are used as they are)."""
    if header is None:
        header = {"alg": key.alg.value, "typ": typ, "kid": key.kid}
    head = b64u_encode(header if isinstance(header, bytes) else canonicalize(header))
    body = b64u_encode(payload if isinstance(payload, bytes) else canonicalize(payload))
    return f"{head}.{body}.{b64u_encode(key.sign(f'{head}.{body}'.encode()))}"


def flip_signature(token: str) -> str:
    head, body, sig = token.split(".")
    raw = bytearray(b64u_decode(sig))
    raw[5] ^= 1
    return f"{head}.{body}.{b64u_encode(bytes(raw))}"


def chain(depth: int, **leaf: Any) -> tuple[str, list[str]]:
    """A path of ``depth`` passports down from ANCHOR through intermediates that may issue."""
    issuer, iss, tokens = ANCHOR, ISSUER_ID, []
    for n in range(depth - 1, 0, -1):
        key = make_key(f"intermediate {n}")
        tokens.append(
            passport(
                key, issuer=issuer, iss=iss, sub=f"issuer-{n}", scopes=("tools:call", "files:read"), may_issue=True
            )
        )
        issuer, iss = key, f"issuer-{n}"
    arguments: dict[str, Any] = {"issuer": issuer, "iss": iss, **leaf}
    return passport(**arguments), list(reversed(tokens))


def chained(depth: int = 2, **leaf: Any) -> bytes:
    token, path = chain(depth, **leaf)
    return agent_request(token, path)


def delegated(
    *, parent: dict[str, Any] | None = None, leaf: dict[str, Any] | None = None, extra: tuple[str, ...] = ()
) -> bytes:
    """Agent ← INTERMEDIATE ← ANCHOR, with the intermediate's and the leaf's passport arguments changed."""
    parent_args: dict[str, Any] = {
        "agent": INTERMEDIATE,
        "issuer": ANCHOR,
        "sub": "issuer-x",
        "scopes": ("tools:call",),
        "may_issue": True,
    }
    parent_args.update(parent or {})
    leaf_args: dict[str, Any] = {"issuer": INTERMEDIATE, "iss": "issuer-x"}
    leaf_args.update(leaf or {})
    return agent_request(passport(**leaf_args), [passport(**parent_args), *extra])


def stripped_passport() -> bytes:
    message = json.loads(good())
    del message["params"]["_meta"]["mcps/passport"]
    return dumps(message)


def upgraded_passport() -> bytes:
    message = json.loads(good())
    message["params"]["_meta"]["mcps/passport"] = passport(level=3)
    return dumps(message)


# --- anchors that change ----------------------------------------------------------------------------------------


def remote_anchors(clock: Clock, *, documents: list[bytes]) -> RemoteTrustAnchors:
    """Anchors from an issuerKeysUrl that serves ``documents[0]`` (the list may be changed between fetches)."""

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=documents[0])

    return RemoteTrustAnchors(
        "https://issuer.attacks.example/.well-known/agent-trust-keys",
        transport=httpx.MockTransport(handler),
        clock=clock,
        refresh_interval=60,
        max_stale=600,
    )


ANCHORS_DOCUMENT = json.dumps(ANCHORS.to_jwks()).encode()
WITHOUT_ANCHOR = json.dumps(TrustAnchors([TrustAnchor(LOW_ANCHOR.public_key, TrustLevel.L1)]).to_jwks()).encode()


def issuer_pulled(defect: bool, *, cached: bool) -> IdScenario:
    """Two requests from one passport; between them the issuer's key is dropped from the anchors (attack)."""
    clock = Clock()
    documents = [ANCHORS_DOCUMENT]
    anchors = remote_anchors(clock, documents=documents)
    token = passport()

    async def refresh() -> None:
        if defect:
            documents[0] = WITHOUT_ANCHOR
        await anchors.refresh()

    messages = (agent_request(token), agent_request(token))
    return IdScenario(
        messages if cached else messages[1:], anchors=anchors, clock=clock, setup=anchors.refresh, before_last=refresh
    )


def anchors_gone_stale(defect: bool, *, cached: bool) -> IdScenario:
    """Two requests from one passport; between them the anchors go unrefreshed past max_stale (attack)."""
    clock = Clock()
    anchors = remote_anchors(clock, documents=[ANCHORS_DOCUMENT])
    token = passport(ttl=7200)

    async def time_passes() -> None:
        clock.now = NOW + (601 if defect else 600)

    first, second = agent_request(token), dumps(sign(with_passport(call(2), token), now=NOW + 600))
    return IdScenario(
        (first, second) if cached else (second,),
        anchors=anchors,
        clock=clock,
        setup=anchors.refresh,
        before_last=time_passes,
    )


# --- trust on first use -----------------------------------------------------------------------------------------


def server_message(key: PrivateKey, passport_sub: str = SERVER_ID) -> bytes:
    """A notification from a server signed by ``key``, carrying a self-signed passport for ``passport_sub``."""
    token = passport(key, issuer=key, iss=passport_sub, sub=passport_sub, level=0)
    note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": CANARY}}
    return dumps(sign(with_passport(note, token), key, aud=AGENT.kid))


def tofu(*messages: bytes) -> IdScenario:
    """An agent that trusts its server on first use (UNSAFE) receives ``messages``."""
    return IdScenario(messages, resolver=lambda: UnsafeTrustOnFirstUse(SERVER_ID), audience=AGENT.kid)


A = Threat.AGENT
G = Threat.GATEWAY
U = Threat.UPSTREAM
N = Threat.NETWORK


def case(
    name: str,
    code: E,
    summary: str,
    build: Callable[[bool], IdScenario],
    *,
    threat: Threat = A,
    xfail: str | None = None,
) -> Case[IdScenario]:
    return Case(name, code, threat, build, summary, xfail=xfail)


CASES: list[Case[IdScenario]] = unique(
    [
        # --- time (MCPS-002) ---------------------------------------------------------------------------------
        case(
            "passport-expired-beyond-skew",
            E.PASSPORT_EXPIRED,
            "exp 31 s ago (control: 30 s, within skew)",
            passports(lambda: passport(now=NOW - 3631), lambda: passport(now=NOW - 3630)),
        ),
        case(
            "passport-not-yet-valid",
            E.PASSPORT_EXPIRED,
            "nbf 31 s ahead (control: 30 s)",
            passports(lambda: passport(now=NOW + 31), lambda: passport(now=NOW + 30)),
        ),
        case(
            "chain-intermediate-expired",
            E.PASSPORT_EXPIRED,
            "the issuer's own passport expired",
            lambda d: one(delegated(parent={"now": NOW - (7200 if d else 0)})),
        ),
        # --- form (MCPS-001, 013, 028) -----------------------------------------------------------------------
        case(
            "passport-typ-grant",
            E.PASSPORT_MALFORMED,
            "a grant presented as a passport (typ)",
            passports(lambda: jws(claims(), typ="mcps-grant+jwt"), lambda: jws(claims())),
        ),
        case(
            "passport-typ-jwt",
            E.PASSPORT_MALFORMED,
            'typ "JWT"',
            passports(lambda: jws(claims(), typ="JWT"), lambda: jws(claims())),
        ),
        case(
            "passport-alg-none",
            E.ALGORITHM_MISMATCH,
            'header alg "none"',
            passports(
                lambda: jws(claims(), header={"alg": "none", "typ": "mcps-passport+jwt", "kid": ANCHOR.kid}),
                lambda: jws(claims()),
            ),
        ),
        case(
            "passport-header-jku",
            E.PASSPORT_MALFORMED,
            "a jku header pointing at the attacker's keys",
            passports(
                lambda: jws(
                    claims(),
                    header={
                        "alg": "EdDSA",
                        "typ": "mcps-passport+jwt",
                        "kid": ANCHOR.kid,
                        "jku": f"https://{CANARY}.example/keys",
                    },
                ),
                lambda: jws(claims()),
            ),
        ),
        case(
            "passport-header-embedded-jwk",
            E.PASSPORT_MALFORMED,
            "a jwk header: the token names its own key",
            passports(
                lambda: jws(
                    claims(),
                    key=ROGUE_ISSUER,
                    header={
                        "alg": "EdDSA",
                        "typ": "mcps-passport+jwt",
                        "kid": ANCHOR.kid,
                        "jwk": ROGUE_ISSUER.public_key.to_jwk(),
                    },
                ),
                lambda: jws(claims()),
            ),
        ),
        case(
            "passport-header-crit",
            E.PASSPORT_MALFORMED,
            'crit: ["exp"]',
            passports(
                lambda: jws(
                    claims(), header={"alg": "EdDSA", "typ": "mcps-passport+jwt", "kid": ANCHOR.kid, "crit": ["exp"]}
                ),
                lambda: jws(claims()),
            ),
        ),
        case(
            "passport-header-dup-kid",
            E.PASSPORT_MALFORMED,
            "two kids in the header: the anchor's, the rogue's",
            passports(
                lambda: jws(
                    claims(),
                    key=ROGUE_ISSUER,
                    header=(
                        f'{{"alg":"EdDSA","kid":"{ANCHOR.kid}","kid":"{ROGUE_ISSUER.kid}","typ":"mcps-passport+jwt"}}'
                    ).encode(),
                ),
                lambda: jws(claims()),
            ),
        ),
        case(
            "passport-payload-dup-sub",
            E.PASSPORT_MALFORMED,
            "two subs in the claims",
            passports(
                lambda: jws(canonicalize(claims()).replace(b'"sub":', b'"sub":"victim","sub":', 1)),
                lambda: jws(canonicalize(claims()).replace(b'"sub":', b'"suc":"victim","sub":', 1)),
            ),
        ),
        case(
            "passport-over-8-kib",
            E.PASSPORT_TOO_LARGE,
            "just over 8192 bytes (control: just under)",
            passports(lambda: passport_near_limit(over=True), lambda: passport_near_limit(over=False)),
        ),
        case(
            "passport-not-a-string",
            E.PASSPORT_MALFORMED,
            "mcps/passport is an object",
            passports(lambda: {"token": CANARY}),
        ),
        case(
            "passport-two-parts",
            E.PASSPORT_MALFORMED,
            "header.payload, no signature",
            passports(lambda: jws(claims()).rsplit(".", 1)[0]),
        ),
        case(
            "passport-base64-padding",
            E.PASSPORT_MALFORMED,
            "a padded signature part",
            passports(lambda: jws(claims()) + "=="),
        ),
        case(
            "passport-signature-bit-flip",
            E.BAD_SIGNATURE,
            "one bit of the issuer's signature flipped",
            passports(lambda: flip_signature(jws(claims())), lambda: jws(claims())),
        ),
        case(
            "passport-claims-edited",
            E.BAD_SIGNATURE,
            "mcps_tl raised in a token signed for L1",
            passports(lambda: edited_claims(jws(claims(mcps_tl=1)), mcps_tl=3), lambda: jws(claims(mcps_tl=2))),
        ),
        # --- claims (MCPS-001) -------------------------------------------------------------------------------
        case(
            "passport-level-true",
            E.PASSPORT_MALFORMED,
            "mcps_tl = true",
            passports(lambda: jws(claims(mcps_tl=True)), lambda: jws(claims())),
        ),
        case(
            "passport-level-5",
            E.PASSPORT_MALFORMED,
            "mcps_tl = 5",
            passports(lambda: jws(claims(mcps_tl=5)), lambda: jws(claims(mcps_tl=3))),
        ),
        case(
            "passport-level-fraction",
            E.PASSPORT_MALFORMED,
            "mcps_tl = 2.5",
            passports(lambda: jws(claims(mcps_tl=2.5)), lambda: jws(claims())),
        ),
        case(
            "passport-iat-after-nbf",
            E.PASSPORT_MALFORMED,
            "iat > nbf",
            passports(lambda: jws(claims(iat=NOW + 1)), lambda: jws(claims())),
        ),
        case(
            "passport-exp-missing",
            E.PASSPORT_MALFORMED,
            "no exp",
            passports(lambda: jws(claims(exp=None)), lambda: jws(claims())),
        ),
        case(
            "passport-scope-with-quote",
            E.PASSPORT_MALFORMED,
            'a scope token with "',
            passports(lambda: jws(claims(scope='tools:call "' + CANARY)), lambda: jws(claims())),
        ),
        case(
            "passport-issuer-flag-string",
            E.PASSPORT_MALFORMED,
            'mcps_issuer = "true"',
            passports(lambda: jws(claims(mcps_issuer="true")), lambda: jws(claims(mcps_issuer=False))),
        ),
        case(
            "passport-cnf-extra-member",
            E.PASSPORT_MALFORMED,
            "cnf carries a second key (jku)",
            passports(lambda: jws(claims(cnf={**claims()["cnf"], "jku": CANARY})), lambda: jws(claims())),
        ),
        case(
            "passport-cnf-jwk-kid-mismatch",
            E.PASSPORT_MALFORMED,
            "cnf.jwk names another kid",
            passports(
                lambda: jws(claims(cnf={"jwk": {**claims()["cnf"]["jwk"], "kid": OTHER_AGENT.kid}})),
                lambda: jws(claims(cnf={"jwk": {**claims()["cnf"]["jwk"], "kid": AGENT.kid}})),
            ),
        ),
        case(
            "passport-cnf-rsa-key",
            E.PASSPORT_MALFORMED,
            "cnf.jwk is an RSA key",
            passports(
                lambda: jws(claims(cnf={"jwk": {"kty": "RSA", "n": CANARY, "e": "AQAB"}})), lambda: jws(claims())
            ),
        ),
        case(
            "passport-sub-too-long",
            E.PASSPORT_MALFORMED,
            "sub of 257 characters",
            passports(lambda: jws(claims(sub=(CANARY * 30)[:257])), lambda: jws(claims(sub=(CANARY * 30)[:256]))),
        ),
        # --- who signed, and for whom (MCPS-029, 011, 009) ---------------------------------------------------
        case(
            "passport-for-another-key",
            E.UNKNOWN_KEY,
            "a valid passport for key B on a message signed by key A",
            passports(lambda: passport(OTHER_AGENT)),
        ),
        case(
            "passport-unknown-issuer",
            E.UNKNOWN_KEY,
            "signed by an issuer that is no anchor",
            passports(lambda: passport(issuer=ROGUE_ISSUER)),
        ),
        case(
            "passport-self-signed-claims-l4",
            E.INSUFFICIENT_TRUST,
            "self-signed, claims L4: it is L0",
            passports(lambda: passport(issuer=AGENT, level=4)),
        ),
        case(
            "passport-for-another-server",
            E.AUDIENCE_MISMATCH,
            "aud names another server",
            passports(lambda: passport(aud=["urn:mcps:attacks:other-server"]), lambda: passport(aud=[SERVER_ID])),
        ),
        case(
            "passport-level-below-minimum",
            E.INSUFFICIENT_TRUST,
            "L1 where L2 is the minimum",
            passports(lambda: passport(level=1)),
        ),
        case(
            "passport-capped-by-a-low-anchor",
            E.INSUFFICIENT_TRUST,
            "L3 claimed under an anchor capped at L1",
            passports(lambda: passport(issuer=LOW_ANCHOR, level=3), lambda: passport(level=3)),
        ),
        case(
            "passport-stripped-in-transit",
            E.UNKNOWN_KEY,
            "a hop removes the passport: no key to resolve",
            lambda d: one(stripped_passport() if d else good()),
            threat=G,
        ),
        case(
            "passport-upgraded-in-transit",
            E.BAD_SIGNATURE,
            "a hop swaps the agent's L2 passport for an L3 one "
            "for the same key: the passport is covered by the signature",
            lambda d: one(upgraded_passport() if d else good()),
            threat=G,
        ),
        # --- chains (MCPS-014, 001, 009, 011) ----------------------------------------------------------------
        case(
            "chain-six-deep",
            E.CHAIN_TOO_DEEP,
            "six passports on the path (control: five)",
            lambda d: one(chained(6 if d else 5)),
        ),
        case(
            "chain-not-an-array",
            E.PASSPORT_MALFORMED,
            "mcps/chain is a string",
            lambda d: one(agent_request(chain(2)[0], chain(2)[1][0] if d else chain(2)[1])),
        ),
        case(
            "chain-parent-not-an-issuer",
            E.INSUFFICIENT_TRUST,
            "the intermediate's passport lacks mcps_issuer",
            lambda d: one(delegated(parent={"may_issue": not d})),
        ),
        case(
            "chain-scopes-widened",
            E.INSUFFICIENT_TRUST,
            "the agent's scopes exceed its issuer's",
            lambda d: one(delegated(leaf={"scopes": ("tools:call", "admin:" + CANARY) if d else ("tools:call",)})),
        ),
        case(
            "chain-iss-not-parent-sub",
            E.PASSPORT_MALFORMED,
            "iss names someone else than the parent's sub",
            lambda d: one(delegated(leaf={"iss": "issuer-y" if d else "issuer-x"})),
        ),
        case(
            "chain-parent-certifies-another-key",
            E.PASSPORT_MALFORMED,
            "the parent passport certifies a key other than the one that signed the agent's",
            lambda d: one(delegated(parent={"agent": make_key("not the intermediate")} if d else {})),
        ),
        case(
            "chain-passport-after-the-anchor",
            E.PASSPORT_MALFORMED,
            "an extra passport after the anchor-signed one",
            lambda d: one(delegated(extra=[passport(make_key("spare"))] if d else [])),
        ),
        case(
            "chain-after-self-signed",
            E.PASSPORT_MALFORMED,
            "passports after a self-signed one",
            lambda d: one(
                agent_request(passport(issuer=AGENT, level=0), [passport()] if d else None), min_level=TrustLevel.L0
            ),
        ),
        case(
            "chain-intermediate-for-another-server",
            E.AUDIENCE_MISMATCH,
            "the issuer's passport names another aud",
            lambda d: one(delegated(parent={"aud": ["urn:mcps:attacks:other-server" if d else SERVER_ID]})),
        ),
        case(
            "agent-mints-a-passport-for-another-agent",
            E.INSUFFICIENT_TRUST,
            "an ordinary agent passport signs a passport with sub 'victim'",
            lambda d: one(
                agent_request(
                    passport(make_key("victim"), issuer=OTHER_AGENT, iss="other", sub="victim"),
                    [passport(OTHER_AGENT, sub="other", may_issue=not d)],
                    key=make_key("victim"),
                )
            ),
        ),
        # --- revocation (MCPS-003, 030) ----------------------------------------------------------------------
        case(
            "revoked-passport-jti",
            E.REVOKED,
            "the kill switch names the passport's jti",
            lambda d: one(
                agent_request(passport(jti="jti-" + CANARY)),
                revoked=(RevocationKey.local(RevocationKind.JTI, "jti-" + CANARY if d else "jti-other"),),
            ),
        ),
        case(
            "revoked-agent-sub",
            E.REVOKED,
            "the kill switch names the agent",
            lambda d: one(good(), revoked=(RevocationKey.local(RevocationKind.SUB, AGENT_ID if d else "agent-other"),)),
        ),
        case(
            "revoked-intermediate",
            E.REVOKED,
            "the issuer's passport is revoked by its anchor",
            lambda d: one(
                delegated(), revoked=(RevocationKey(ANCHOR.kid, RevocationKind.SUB, "issuer-x" if d else "issuer-z"),)
            ),
        ),
        case(
            "revocation-store-down",
            E.STORE_UNAVAILABLE,
            "the revocation store cannot answer: refused",
            lambda d: one(good(), store_down=d),
            threat=N,
        ),
        # --- anchors that change (MCPS-029, 007) -------------------------------------------------------------
        case(
            "issuer-pulled-from-anchors",
            E.UNKNOWN_KEY,
            "the refreshed issuerKeysUrl drops the issuer",
            lambda d: issuer_pulled(d, cached=False),
            threat=G,
        ),
        case(
            "issuer-pulled-while-passport-cached",
            E.UNKNOWN_KEY,
            "the issuer is dropped after its passport was verified (and cached)",
            lambda d: issuer_pulled(d, cached=True),
            threat=G,
        ),
        case(
            "anchors-stale",
            E.TRUST_AUTHORITY_UNREACHABLE,
            "no fresh anchors for 601 s (max_stale 600)",
            lambda d: anchors_gone_stale(d, cached=False),
            threat=N,
        ),
        case(
            "anchors-stale-while-passport-cached",
            E.TRUST_AUTHORITY_UNREACHABLE,
            "anchors go stale after the passport was verified (and cached)",
            lambda d: anchors_gone_stale(d, cached=True),
            threat=N,
        ),
        # --- trust on first use (MCPS-029) -------------------------------------------------------------------
        case(
            "tofu-second-key",
            E.UNKNOWN_KEY,
            "after the first key is pinned, another key signs for the server",
            lambda d: tofu(server_message(SERVER), server_message(OTHER_SERVER if d else SERVER)),
            threat=U,
        ),
        case(
            "tofu-passport-for-another-identity",
            E.UNKNOWN_KEY,
            "the first key comes with a passport for someone else than the server addressed",
            lambda d: tofu(server_message(SERVER, "urn:mcps:attacks:" + CANARY if d else SERVER_ID)),
            threat=U,
        ),
    ]
)


def passport_near_limit(*, over: bool, limit: int = 8192) -> str:
    """The largest validly signed passport of at most ``limit`` characters, or (``over``) the next larger one
    (padding in the informational ``agent`` claim)."""

    def token(pad: int) -> str:
        return jws(claims(agent={"name": CANARY + "x" * pad, "version": "1"}))

    pad = (limit - len(token(0))) * 3 // 4
    while len(token(pad)) > limit:
        pad -= 1
    while len(token(pad + 1)) <= limit:
        pad += 1
    return token(pad + 1) if over else token(pad)


def edited_claims(token: str, **changes: Any) -> str:
    """``token`` with its payload changed, header and signature kept."""
    head, body, sig = token.split(".")
    payload = json.loads(b64u_decode(body))
    payload.update(changes)
    return f"{head}.{b64u_encode(canonicalize(payload))}.{sig}"
