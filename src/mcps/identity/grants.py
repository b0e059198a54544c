"""Per-call grants (DESIGN.md §2.5): a short-lived credential for exactly one tool call.

After policy allows a call, the gateway mints a grant and puts it in ``params._meta["mcps/grant"]`` of the request
it forwards (the member is excluded from the agent's message signature, SPEC.md §4.3). A grant is a compact JWS,
``typ: mcps-grant+jwt``, with claims

=========  =====================================================================================================
``iss``    the gateway's identity            ``sub``    the agent's id
``aud``    the upstream server's identity    ``tool``   the tool name (``params.name``)
``args``   ``b64u(H(JCS(params.arguments)))`` (an absent ``arguments`` hashes as ``{}``)
``req``    ``b64u(H(ascii(agent's sig value)))``: the agent's signed request it was minted for
``tl``     the agent's effective trust level  ``scope``  the agent's scopes (space-separated)
``jti``    ``b64u`` of 16–64 random bytes     ``iat``, ``exp``  with ``0 < exp − iat ≤ 60``
=========  =====================================================================================================

:class:`GrantVerifier` checks, in this order: size and form (MCPS-017), issuer key is trusted (MCPS-017),
signature (MCPS-017), claims (MCPS-017), lifetime and time window with skew (MCPS-017), ``aud`` is this server
(MCPS-011), ``tool``, ``args`` and ``req`` match the call and ``sub`` names the request's verified sender
(MCPS-032; the caller must say who that is, or pass ``agent=None`` explicitly when it cannot know), and last —
only for a grant that passed everything else — single use: ``jti`` is claimed in the nonce store under the
issuer's kid prefixed with ``grant.`` (MCPS-031 when already used, MCPS-030 when the store cannot answer).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_encode, is_b64u
from mcps.core.envelope import DEFAULT_SKEW, GRANT_KEY, SIG_KEY, request_binding
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey, PublicKey
from mcps.core.replay import NonceStore
from mcps.identity.jws import parse_compact, sign_compact
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import AgentId, parse_scope

__all__ = [
    "DEFAULT_GRANT_LIFETIME",
    "GRANT_TYP",
    "MAX_GRANT_BYTES",
    "MAX_GRANT_LIFETIME",
    "GrantVerifier",
    "VerifiedGrant",
    "argument_hash",
    "mint_grant",
]

GRANT_TYP: Final = "mcps-grant+jwt"
MAX_GRANT_LIFETIME: Final = 60
DEFAULT_GRANT_LIFETIME: Final = 30
MAX_GRANT_BYTES: Final = 8 * 1024
_CLAIMS: Final = ("iss", "sub", "aud", "tool", "args", "req", "tl", "scope", "jti", "iat", "exp")

Clock = Callable[[], float]


def argument_hash(arguments: Mapping[str, Any] | None) -> str:
    """``b64u(SHA-256(JCS(arguments)))``; ``None`` (no ``arguments`` member) hashes as ``{}``."""
    return b64u_encode(hashlib.sha256(canonicalize({} if arguments is None else arguments)).digest())


def mint_grant(
    key: PrivateKey,
    *,
    iss: str,
    sub: str,
    aud: str,
    tool: str,
    arguments: Mapping[str, Any] | None,
    request_sig: str,
    level: TrustLevel | int,
    scopes: Iterable[str] = (),
    now: float,
    lifetime: int = DEFAULT_GRANT_LIFETIME,
) -> str:
    """Mint a grant for one call: ``tool`` with ``arguments``, in the agent request whose ``sig`` is given."""
    if not 0 < lifetime <= MAX_GRANT_LIFETIME:
        raise ValueError(f"lifetime must be in 1..{MAX_GRANT_LIFETIME} seconds")
    issued_at = int(now)
    claims = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "tool": tool,
        "args": argument_hash(arguments),
        "req": request_binding(request_sig),
        "tl": int(TrustLevel.parse(level)),
        "scope": " ".join(sorted(set(scopes))),
        "jti": b64u_encode(os.urandom(16)),
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    return sign_compact(claims, key, typ=GRANT_TYP)


@dataclass(frozen=True, slots=True)
class VerifiedGrant:
    """A grant checked for this exactly call and now used up: what a tool function may read."""

    iss: str
    issuer_kid: KeyId
    agent_id: AgentId
    aud: str
    tool: str
    level: TrustLevel
    scopes: frozenset[str]
    jti: str
    iat: int
    exp: int


def _invalid(detail: str) -> McpsError:
    return McpsError(ErrorCode.GRANT_INVALID, detail=detail)


def _mismatch(what: str) -> McpsError:
    return McpsError(ErrorCode.GRANT_MISMATCH, detail=f"grant {what} does not match the call")


class GrantVerifier:
    """Verifies grants minted by ``issuers`` (the gateways this server trusts) for ``audience`` (this server)."""

    def __init__(
        self,
        *,
        issuers: Iterable[PublicKey],
        audience: str,
        nonces: NonceStore,
        skew: int = DEFAULT_SKEW,
        clock: Clock = time.time,
    ) -> None:
        self._issuers = {key.kid: key for key in issuers}
        if not self._issuers:
            raise ValueError("GrantVerifier needs at least one issuer key")
        if not 0 <= skew <= MAX_GRANT_LIFETIME:
            raise ValueError(f"skew must be within 0..{MAX_GRANT_LIFETIME} seconds")
        self.audience = audience
        self._nonces = nonces
        self._skew = skew
        self._clock = clock

    async def verify_request(
        self,
        message: Mapping[str, Any],
        *,
        agent: str | Collection[str] | None,
        issuer: KeyId | None = None,
        now: float | None = None,
    ) -> VerifiedGrant:
        """Verify the grant of a ``tools/call`` request (its ``_meta["mcps/grant"]``) against that very request.

        The request's agent signature should already be verified (:class:`~mcps.verifier.MessageVerifier`);
        ``agent`` is the identity it verified (agent id, or kid for a pinned key), which ``sub`` must name;
        ``None`` skips that check and must be said explicitly.
        """
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if not isinstance(params, dict) or not isinstance(meta, dict) or GRANT_KEY not in meta:
            raise McpsError(ErrorCode.GRANT_INVALID, "grant is missing")
        block = meta.get(SIG_KEY)
        request_sig = block.get("sig") if isinstance(block, dict) else None
        tool, arguments = params.get("name"), params.get("arguments")
        if not isinstance(request_sig, str) or not isinstance(tool, str) or not isinstance(arguments, dict | None):
            raise _mismatch("request (no agent signature, tool name or arguments object)")
        return await self.verify(
            meta[GRANT_KEY],
            tool=tool,
            arguments=arguments,
            request_sig=request_sig,
            agent=agent,
            issuer=issuer,
            now=now,
        )

    async def verify(
        self,
        token: object,
        *,
        tool: str,
        arguments: Mapping[str, Any] | None,
        request_sig: str,
        agent: str | Collection[str] | None,
        issuer: KeyId | None = None,
        now: float | None = None,
    ) -> VerifiedGrant:
        """Verify ``token`` for this call (and, given ``agent``, this sender) and use it up.

        Returns the grant or raises :class:`McpsError`.
        """
        at = self._clock() if now is None else now
        # 1. Size and form.
        jws = parse_compact(
            token,
            typ=GRANT_TYP,
            max_bytes=MAX_GRANT_BYTES,
            error=ErrorCode.GRANT_INVALID,
            too_large=ErrorCode.GRANT_INVALID,
            bad_signature=ErrorCode.GRANT_INVALID,
        )
        # 2. Issuer and signature.
        issuer_key = self._issuers.get(jws.kid)
        if issuer_key is None or (issuer is not None and jws.kid != issuer):
            raise _invalid("grant issuer is not trusted (or not the hop that attached it)")
        jws.verify_signature(issuer_key)
        # 3. Claims.
        claims = jws.claims
        strings = ("iss", "sub", "aud", "tool", "args", "req", "scope", "jti")
        if not all(name in claims for name in _CLAIMS) or not all(isinstance(claims[n], str) for n in strings):
            raise _invalid("missing or mistyped claims")
        iat, exp = claims["iat"], claims["exp"]
        if type(iat) is not int or type(exp) is not int or not is_b64u(claims["jti"], min_bytes=16, max_bytes=64):
            raise _invalid("iat, exp or jti badly formed")
        try:
            level, scopes = TrustLevel.parse(claims["tl"]), parse_scope(claims["scope"])
        except ValueError as exc:
            raise _invalid(f"tl or scope: {exc}") from exc
        # 4. Lifetime and window.
        if not 0 < exp - iat <= MAX_GRANT_LIFETIME:
            raise _invalid(f"exp - iat outside 1..{MAX_GRANT_LIFETIME} s")
        if iat > at + self._skew or exp < at - self._skew:
            raise McpsError(ErrorCode.GRANT_INVALID, "grant is expired or not yet valid")
        # 5. Audience: this server.
        if claims["aud"] != self.audience:
            raise McpsError(ErrorCode.AUDIENCE_MISMATCH, "grant is for another server")
        # 6. Bound to exactly this call.
        if claims["tool"] != tool:
            raise _mismatch("tool")
        if claims["args"] != argument_hash(arguments):
            raise _mismatch("arguments")
        if claims["req"] != request_binding(request_sig):
            raise _mismatch("request")
        if agent is not None and claims["sub"] not in ((agent,) if isinstance(agent, str) else agent):
            raise _mismatch("agent")
        # 7. Single use, recorded only for a grant that passed everything else.
        if not await self._nonces.claim(
            KeyId(f"grant.{jws.kid}"), claims["jti"], expires_at=exp + self._skew + 1, now=at
        ):
            raise McpsError(ErrorCode.GRANT_REPLAYED)
        return VerifiedGrant(
            iss=claims["iss"],
            issuer_kid=jws.kid,
            agent_id=AgentId(claims["sub"]),
            aud=claims["aud"],
            tool=tool,
            level=level,
            scopes=scopes,
            jti=claims["jti"],
            iat=iat,
            exp=exp,
        )
