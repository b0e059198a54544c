"""Agent passports (DESIGN.md §2.4): a compact JWS, ``typ: mcps-passport+jwt``, signed by an issuer.

Claims (all required unless marked optional):

=============== ================================================================================================
``iss``         the issuer's identity (a string). For a delegated passport it equals the parent passport's ``sub``.
``sub``         the agent's id.
``iat``         issued at; ``nbf`` not before; ``exp`` expires (integers, ``iat ≤ nbf < exp``).
``jti``         the passport's unique id (1–256 characters): what a revocation names.
``cnf``         ``{"jwk": <public JWK>}`` (RFC 7800 §3.2): the agent's key. Its RFC 7638 thumbprint is the ``kid``
                of every message the agent signs.
``mcps_tl``     the trust level the issuer claims, 0–4; the effective level is capped along the chain.
``scope``       space-separated scope tokens (RFC 6749 §3.3 syntax), possibly empty.
``aud``         optional: a string or a non-empty array of strings, the receivers (servers, origins) it is valid
                for.
``agent``       optional: ``{"name": str, "version": str}``, informational.
``mcps_issuer`` optional boolean: ``true`` when the passport's key may sign other passports, as an intermediate
                issuer (like X.509 ``basicConstraints`` ``CA:TRUE``); absent or ``false``, it may not.
=============== ================================================================================================

Other claims are ignored (RFC 7519 §4). This module issues passports and parses them into
:class:`PassportClaims`; trusting one is the job of :mod:`mcps.identity.chains`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, NewType, cast

from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey, PublicKey
from mcps.identity.jws import UnverifiedJws, parse_compact, sign_compact
from mcps.identity.levels import TrustLevel

__all__ = [
    "DEFAULT_PASSPORT_TTL",
    "MAX_PASSPORT_BYTES",
    "PASSPORT_TYP",
    "AgentId",
    "AgentInfo",
    "PassportClaims",
    "UnverifiedPassport",
    "issue_passport",
    "parse_passport",
    "parse_scope",
]

AgentId = NewType("AgentId", str)
"""An agent's id: a passport's ``sub``."""

PASSPORT_TYP: Final = "mcps-passport+jwt"
MAX_PASSPORT_BYTES: Final = 8 * 1024
"""A passport larger than this (8 KiB, as sent) is refused before it is decoded (MCPS-013)."""
DEFAULT_PASSPORT_TTL: Final = 24 * 3600
"""Passports are short-lived by default: one day."""
MAX_ID_LENGTH: Final = 256
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")  # RFC 6749 §3.3 scope-token


def _malformed(detail: str) -> McpsError:
    return McpsError(ErrorCode.PASSPORT_MALFORMED, detail=detail)


def parse_scope(text: object) -> frozenset[str]:
    """Scope tokens of a space-separated ``scope`` string (RFC 6749 §3.3); ``ValueError`` for another form."""
    if not isinstance(text, str):
        raise ValueError("scope is not a string")  # noqa: TRY004 - callers map ValueError to MCPS-001
    if text == "":
        return frozenset()
    tokens = text.split(" ")
    if any(_SCOPE_TOKEN.fullmatch(token) is None for token in tokens):
        raise ValueError("scope is not space-separated scope tokens")
    return frozenset(tokens)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class PassportClaims:
    """The typed claims of a passport. Constructed only from a well-formed token; not by itself trusted."""

    iss: str
    sub: AgentId
    iat: int
    nbf: int
    exp: int
    jti: str
    key: PublicKey
    """``cnf.jwk``: the agent's public key."""
    level: TrustLevel
    """``mcps_tl``, as claimed by the issuer (before caps)."""
    scopes: frozenset[str]
    aud: tuple[str, ...] | None
    agent: AgentInfo | None
    issuer: bool
    """``mcps_issuer``: this passport's key may sign other passports (SPEC.md §7.4)."""

    def check_time(self, now: float, skew: int) -> None:
        """MCPS-002 unless ``nbf − skew ≤ now ≤ exp + skew`` (the message rule, SPEC.md §4.4)."""
        if self.nbf > now + skew:
            raise McpsError(ErrorCode.PASSPORT_EXPIRED, "passport is not yet valid", detail=f"nbf={self.nbf}")
        if self.exp < now - skew:
            raise McpsError(ErrorCode.PASSPORT_EXPIRED, "passport has expired", detail=f"exp={self.exp}")

    def check_audience(self, audience: str) -> None:
        """MCPS-011 when the passport names its receivers and ``audience`` is not one of them."""
        if self.aud is not None and audience not in self.aud:
            raise McpsError(ErrorCode.AUDIENCE_MISMATCH, "passport is not valid for this receiver")


@dataclass(frozen=True, slots=True)
class UnverifiedPassport:
    """A well-formed passport: ``jws`` is the token, ``claims`` its typed claims; its signature is not checked."""

    token: str
    jws: UnverifiedJws
    claims: PassportClaims

    @property
    def issuer_kid(self) -> KeyId:
        """The kid of the key that signed it (the JWS header ``kid``)."""
        return self.jws.kid

    @property
    def self_signed(self) -> bool:
        return self.jws.kid == self.claims.key.kid


def _string(claims: dict[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or (not value and not allow_empty):
        raise _malformed(f"{name} must be a string of 1..{MAX_ID_LENGTH} characters")
    return value


def _time(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if type(value) is not int or value < 0:
        raise _malformed(f"{name} must be a non-negative integer")
    return value


def _audience(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise _malformed("aud must be a non-empty string or a non-empty array of non-empty strings")
    return tuple(items)


def _agent(value: object) -> AgentInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in ("name", "version")):
        raise _malformed("agent must be {name, version} strings")
    return AgentInfo(value["name"], value["version"])


def _issuer(claims: dict[str, Any]) -> bool:
    value = claims.get("mcps_issuer", False)
    if not isinstance(value, bool):
        raise _malformed("mcps_issuer must be a boolean")
    return value


def parse_passport(token: object) -> UnverifiedPassport:
    """Size (MCPS-013), then form and claims (MCPS-001). Nothing is verified: see :mod:`mcps.identity.chains`."""
    jws = parse_compact(
        token,
        typ=PASSPORT_TYP,
        max_bytes=MAX_PASSPORT_BYTES,
        error=ErrorCode.PASSPORT_MALFORMED,
        too_large=ErrorCode.PASSPORT_TOO_LARGE,
        bad_signature=ErrorCode.BAD_SIGNATURE,
    )
    claims = jws.claims
    iat, nbf, exp = _time(claims, "iat"), _time(claims, "nbf"), _time(claims, "exp")
    if not iat <= nbf < exp:
        raise _malformed("times must satisfy iat <= nbf < exp")
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or cnf.keys() != {"jwk"}:
        raise _malformed("cnf must be {jwk}")
    try:
        key = PublicKey.from_jwk(cnf["jwk"])
        level = TrustLevel.parse(claims.get("mcps_tl"))
        scopes = parse_scope(claims.get("scope"))
    except (McpsError, ValueError) as exc:
        raise _malformed(f"cnf.jwk, mcps_tl or scope: {exc}") from exc
    parsed = PassportClaims(
        iss=_string(claims, "iss"),
        sub=AgentId(_string(claims, "sub")),
        iat=iat,
        nbf=nbf,
        exp=exp,
        jti=_string(claims, "jti"),
        key=key,
        level=level,
        scopes=scopes,
        aud=_audience(claims.get("aud")),
        agent=_agent(claims.get("agent")),
        issuer=_issuer(claims),
    )
    return UnverifiedPassport(cast(str, token), jws, parsed)  # parse_compact refused anything but a str


def issue_passport(
    issuer_key: PrivateKey,
    *,
    iss: str,
    sub: str,
    agent_key: PublicKey,
    level: TrustLevel | int,
    scopes: Iterable[str] = (),
    now: float,
    ttl: int = DEFAULT_PASSPORT_TTL,
    aud: Iterable[str] | None = None,
    agent: AgentInfo | None = None,
    jti: str | None = None,
    issuer: bool = False,
) -> str:
    """Issue a passport for ``agent_key`` and return the compact token (checked by :func:`parse_passport`).

    ``issuer=True`` writes ``"mcps_issuer": true``: the passport may then sign other passports (delegation).
    """
    if ttl < 1:
        raise ValueError("ttl must be positive")
    scope_list = sorted(set(scopes))
    issued_at = int(now)
    claims: dict[str, Any] = {
        "iss": iss,
        "sub": sub,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl,
        "jti": jti if jti is not None else b64u_encode(os.urandom(16)),
        "cnf": {"jwk": {k: v for k, v in agent_key.to_jwk().items() if k in ("kty", "crv", "x", "y")}},
        "mcps_tl": int(TrustLevel.parse(level)),
        "scope": " ".join(scope_list),
    }
    if aud is not None:
        claims["aud"] = list(aud)
    if agent is not None:
        claims["agent"] = {"name": agent.name, "version": agent.version}
    if issuer:
        claims["mcps_issuer"] = True
    token = sign_compact(claims, issuer_key, typ=PASSPORT_TYP)
    try:
        parse_passport(token)
    except McpsError as exc:
        raise ValueError(f"cannot issue this passport: {exc.diagnostics()}") from exc
    return token
