"""Grant attacks (SPEC.md §7.6, §9.6): a per-call grant missing, forged, stretched, or moved to another call,
request, agent, server or replica. The defender is the upstream server's channel (:class:`SecureChannel` with a
:class:`GrantRequirement`: ``rm_rf`` needs a grant from the gateway): it refuses the request with a signed error
and no tool runs.

A case builds a :class:`GrantScenario`: requests, each sent to one of two replicas (which share the grant store,
not the message nonces); every one but the last must be delivered with its grant verified, the last is the attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_encode
from mcps.core.envelope import request_binding
from mcps.core.errors import ErrorCode as E
from mcps.core.keys import PrivateKey
from mcps.identity.grants import argument_hash, mint_grant

from .cases_identity import flip_signature, jws
from .corpus import CANARY, Case, Threat, unique
from .pki import AGENT, GATEWAY, GATEWAY_ID, NOW, OTHER_AGENT, ROGUE_GATEWAY, SERVER_ID, call, dumps, sig_of, sign

GRANT_TYP = "mcps-grant+jwt"


@dataclass(frozen=True)
class Sent:
    raw: bytes
    replica: int = 0


@dataclass(frozen=True)
class GrantScenario:
    sent: tuple[Sent, ...]
    store_down: bool = False
    """The grant store cannot answer (the message nonce store can)."""


_ids = iter(range(1, 1_000_000))


def request(tool: str = "rm_rf", arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """An agent's signed tools/call (a fresh id and nonce each time)."""
    return sign(call(next(_ids), name=tool, arguments=arguments if arguments is not None else {"text": CANARY}))


def grant(request_: dict[str, Any], *, key: PrivateKey = GATEWAY, now: float = NOW, **changes: Any) -> str:
    """The gateway's grant for exactly ``request_``; ``changes`` bind it to something else."""
    params = request_["params"]
    bound: dict[str, Any] = {
        "iss": GATEWAY_ID,
        "sub": AGENT.kid,
        "aud": SERVER_ID,
        "tool": params["name"],
        "arguments": params.get("arguments"),
        "request_sig": sig_of(request_),
    }
    bound.update(changes)
    return mint_grant(key, level=2, now=now, **bound)


def claims(request_: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A grant's claims for ``request_``, changed; a member set to ``None`` is removed."""
    params = request_["params"]
    base: dict[str, Any] = {
        "iss": GATEWAY_ID,
        "sub": AGENT.kid,
        "aud": SERVER_ID,
        "tool": params["name"],
        "args": argument_hash(params.get("arguments")),
        "req": request_binding(sig_of(request_)),
        "tl": 2,
        "scope": "",
        "jti": b64u_encode(CANARY.encode() + b"-0123456"),
        "iat": NOW,
        "exp": NOW + 30,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def carrying(request_: dict[str, Any], token: object) -> bytes:
    """``request_`` with ``token`` added as ``mcps/grant`` (outside the agent's signature, as a gateway adds it)."""
    meta = dict(request_["params"].get("_meta") or {})
    meta["mcps/grant"] = token
    return dumps({**request_, "params": {**request_["params"], "_meta": meta}})


def granted(make: Callable[[dict[str, Any]], object]) -> Callable[[bool], GrantScenario]:
    """Control: a request with its own grant. Attack: a request with ``make(request)`` as its grant."""

    def build(defect: bool) -> GrantScenario:
        wanted = request()
        return GrantScenario((Sent(carrying(wanted, make(wanted) if defect else grant(wanted))),))

    return build


def forged(**changes: Any) -> Callable[[bool], GrantScenario]:
    """The attack's grant is signed by the gateway over claims with ``changes``; the control's over the right ones."""
    return lambda defect: GrantScenario(
        (
            Sent(
                carrying(r := request(), jws(claims(r, **changes) if defect else claims(r), key=GATEWAY, typ=GRANT_TYP))
            ),
        )
    )


def reused(second_request: Callable[[], dict[str, Any]]) -> Callable[[bool], GrantScenario]:
    """A granted call goes through; then (attack) its grant is reused on ``second_request()``."""

    def build(defect: bool) -> GrantScenario:
        first = request()
        first_grant = grant(first)
        second = second_request()
        return GrantScenario(
            (
                Sent(carrying(first, first_grant)),
                Sent(carrying(second, first_grant if defect else grant(second))),
            )
        )

    return build


def replica_replay(defect: bool) -> GrantScenario:
    """One granted request sent to replica 0, then (attack) the very same bytes to replica 1."""
    first = request()
    raw = carrying(first, grant(first))
    other = request()
    return GrantScenario((Sent(raw, 0), Sent(raw if defect else carrying(other, grant(other)), 1)))


def gateway_call(defect: bool) -> GrantScenario:
    wanted = request()
    if not defect:
        return GrantScenario((Sent(carrying(wanted, grant(wanted))),))
    forged_call = sign(call(next(_ids), name="rm_rf", arguments={"text": CANARY}), GATEWAY)
    return GrantScenario((Sent(carrying(forged_call, grant(forged_call, sub=GATEWAY.kid))),))


def store_down(defect: bool) -> GrantScenario:
    wanted = request()
    return GrantScenario((Sent(carrying(wanted, grant(wanted))),), store_down=defect)


def missing(defect: bool) -> GrantScenario:
    wanted = request()
    return GrantScenario((Sent(dumps(wanted) if defect else carrying(wanted, grant(wanted))),))


N = Threat.NETWORK
G = Threat.GATEWAY
A = Threat.AGENT


def case(
    name: str, code: E, summary: str, build: Callable[[bool], GrantScenario], threat: Threat = N
) -> Case[GrantScenario]:
    return Case(name, code, threat, build, summary)


CASES: list[Case[GrantScenario]] = unique(
    [
        case("grant-missing", E.GRANT_INVALID, "a call to a tool that needs a grant, without one", missing, A),
        case(
            "grant-replay-other-args",
            E.GRANT_MISMATCH,
            "a used grant reused on a call with other arguments",
            reused(lambda: request(arguments={"text": CANARY + "-other"})),
        ),
        case(
            "grant-replay-same-args-new-request",
            E.GRANT_MISMATCH,
            "a used grant reused on a new signed request with the same tool and arguments",
            reused(request),
        ),
        case(
            "grant-for-another-tool",
            E.GRANT_MISMATCH,
            "a grant for echo on a call to rm_rf",
            granted(lambda r: grant(r, tool="echo")),
            G,
        ),
        case(
            "grant-for-other-arguments",
            E.GRANT_MISMATCH,
            "a grant minted for other arguments",
            granted(lambda r: grant(r, arguments={"text": "harmless"})),
            G,
        ),
        case(
            "grant-for-another-request",
            E.GRANT_MISMATCH,
            "a grant bound to another agent request",
            granted(lambda r: grant(r, request_sig=sig_of(request()))),
            G,
        ),
        case(
            "grant-for-another-agent",
            E.GRANT_MISMATCH,
            "a grant naming another agent",
            granted(lambda r: grant(r, sub=OTHER_AGENT.kid)),
            G,
        ),
        case(
            "grant-for-another-server",
            E.AUDIENCE_MISMATCH,
            "a grant minted for another upstream",
            granted(lambda r: grant(r, aud="urn:mcps:attacks:other-server")),
            G,
        ),
        case(
            "grant-expired-beyond-skew",
            E.GRANT_INVALID,
            "exp 31 s ago (control: 30 s)",
            lambda d: GrantScenario((Sent(carrying(r := request(), grant(r, now=NOW - (61 if d else 60)))),)),
        ),
        case(
            "grant-not-yet-valid",
            E.GRANT_INVALID,
            "iat 31 s ahead (control: 30 s)",
            lambda d: GrantScenario((Sent(carrying(r := request(), grant(r, now=NOW + (31 if d else 30)))),)),
        ),
        case(
            "grant-lifetime-61-seconds",
            E.GRANT_INVALID,
            "exp − iat = 61 (control: 60)",
            lambda d: GrantScenario(
                (
                    Sent(
                        carrying(
                            r := request(), jws(claims(r, exp=NOW + (61 if d else 60)), key=GATEWAY, typ=GRANT_TYP)
                        )
                    ),
                )
            ),
        ),
        case(
            "grant-from-an-untrusted-gateway",
            E.GRANT_INVALID,
            "minted by a key the server does not trust",
            granted(lambda r: grant(r, key=ROGUE_GATEWAY)),
            G,
        ),
        case(
            "grant-signature-bit-flip",
            E.GRANT_INVALID,
            "one bit of the grant's signature flipped",
            granted(lambda r: flip_signature(grant(r))),
        ),
        case(
            "grant-typ-passport",
            E.GRANT_INVALID,
            "a passport-typed token as a grant",
            granted(lambda r: jws(claims(r), key=GATEWAY, typ="mcps-passport+jwt")),
            A,
        ),
        case(
            "grant-alg-none",
            E.ALGORITHM_MISMATCH,
            'header alg "none"',
            granted(
                lambda r: jws(claims(r), key=GATEWAY, header={"alg": "none", "typ": GRANT_TYP, "kid": GATEWAY.kid})
            ),
            A,
        ),
        case(
            "grant-header-x5u",
            E.GRANT_INVALID,
            "an x5u header",
            granted(
                lambda r: jws(
                    claims(r),
                    key=GATEWAY,
                    header={
                        "alg": "EdDSA",
                        "typ": GRANT_TYP,
                        "kid": GATEWAY.kid,
                        "x5u": f"https://{CANARY}.example/cert",
                    },
                )
            ),
            A,
        ),
        case("grant-jti-too-short", E.GRANT_INVALID, "a 15-byte jti", forged(jti=b64u_encode(b"x" * 15))),
        case("grant-level-true", E.GRANT_INVALID, "tl = true", forged(tl=True)),
        case("grant-iat-fraction", E.GRANT_INVALID, "iat with a fraction", forged(iat=NOW + 0.5)),
        case("grant-req-missing", E.GRANT_INVALID, "no req claim", forged(req=None)),
        case(
            "grant-payload-dup-tool",
            E.GRANT_INVALID,
            "two tool claims: echo, then rm_rf",
            lambda d: GrantScenario(
                (
                    Sent(
                        carrying(
                            r := request(),
                            jws(
                                canonicalize(claims(r)).replace(
                                    b'"tool":', b'"tool":"echo","tool":' if d else b'"tooi":"echo","tool":'
                                ),
                                key=GATEWAY,
                                typ=GRANT_TYP,
                            ),
                        )
                    ),
                )
            ),
        ),
        case(
            "grant-over-8-kib",
            E.GRANT_INVALID,
            "a grant of more than 8192 characters",
            granted(lambda r: jws(claims(r, scope=" ".join([CANARY] * 700)), key=GATEWAY, typ=GRANT_TYP)),
        ),
        case("grant-not-a-string", E.GRANT_INVALID, "mcps/grant is an object", granted(lambda r: {"jti": CANARY}), A),
        case(
            "grant-forged-on-a-tool-that-needs-none",
            E.GRANT_INVALID,
            "a junk grant on a call to echo (no grant needed): verified anyway, never handed to the tool",
            lambda d: GrantScenario((Sent(carrying(request("echo"), CANARY) if d else dumps(request("echo"))),)),
        ),
        case(
            "gateway-signs-a-call-itself",
            E.UNKNOWN_KEY,
            "the gateway makes up a call, signs it with its own key and grants it: it is no agent the server trusts",
            gateway_call,
            G,
        ),
        case(
            "grant-replayed-to-a-replica",
            E.GRANT_REPLAYED,
            "the same granted request sent to a second replica that shares only the grant store",
            replica_replay,
        ),
        case("grant-store-down", E.STORE_UNAVAILABLE, "the grant store cannot answer: refused", store_down),
    ]
)
