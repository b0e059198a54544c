"""One set of checks behind the three request formats (SPEC.md §13.6): window, audience, the signer's key through
its credential, the signature, then — once the body's digest is known — the nonce and revocation.

:meth:`RequestVerifier.authenticate` runs the checks that need no body and no store (steps 3–8);
:meth:`RequestVerifier.admit` records the nonce and asks the revocation store (steps 10–11) and returns the
:class:`HttpCaller`. The middleware reads and checks the body in between (step 9), so a nonce is recorded only for a
request whose signature and body both verified.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from mcps.core.envelope import DEFAULT_SKEW
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.http_fields import MessageView, parse_field
from mcps.core.httpsig import (
    ATTP_TRUST,
    CERTIFICATE_HEADER,
    MAX_LIFETIME,
    PASSPORT_HEADER,
    SIGNATURE_AGENT,
    SignatureFormat,
    UnverifiedRequestSignature,
)
from mcps.core.keys import Algorithm, KeyId, PrivateKey, PublicKey
from mcps.core.replay import NonceStore
from mcps.identity.agentpass import CertificateAnchors, VerifiedCertificateAgent, verify_agent_certificate
from mcps.identity.anchors import AnchorSource
from mcps.identity.directory import SignatureAgentDirectories, inline_directory
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import AgentPublicKey, PassportResolver
from mcps.identity.revocation import LOCAL_SCOPE, RevocationKey, RevocationKind, RevocationStore
from mcps.policy.model import Principal

__all__ = ["DEFAULT_MAX_BODY", "HttpApiSecurity", "HttpCaller", "RequestVerifier", "origin_of"]

DEFAULT_MAX_BODY: Final = 4 * 1024 * 1024
DEFAULT_MAX_RESPONSE_BODY: Final = 16 * 1024 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower case, without the default port (RFC 6454 §6.2)."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    port = parts.port
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (
        f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    )


@dataclass(frozen=True)
class HttpApiSecurity:
    """Everything an HTTP API service needs to verify agents (no permissive defaults: ``nonces`` and
    ``revocations`` are required; a source of keys is needed for any agent to pass).

    ``identity`` is the service's name: the policy's server, the audit log's upstream, what a passport's ``aud``
    must contain. ``origin`` (default: ``identity`` when that is an http(s) URL) is the public origin agents send
    requests to: ``@target-uri`` is rebuilt from it, and a request whose ``Host`` names another is refused (MCPS-011).
    Keys are found through, in order: a passport (``anchors``), an AgentPass certificate (``certificate_anchors``),
    ``agent_keys`` (keys trusted as they are, each at its ``mcps_max_tl``: the JWKS an ``issuerKeysUrl`` serves),
    and ``Signature-Agent`` (inline directories at L0 when ``inline_directories``; ``directories`` at their level).
    ``key`` signs every response.
    """

    identity: str
    key: PrivateKey
    nonces: NonceStore
    revocations: RevocationStore
    anchors: AnchorSource | None = None
    certificate_anchors: CertificateAnchors | None = None
    agent_keys: AnchorSource | None = None
    directories: SignatureAgentDirectories | None = None
    inline_directories: bool = True
    origin: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    max_response_body: int = DEFAULT_MAX_RESPONSE_BODY
    skew: int = DEFAULT_SKEW
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        origin = self.origin if self.origin is not None else self.identity
        object.__setattr__(self, "origin", origin_of(origin))
        if not 0 <= self.skew <= 300 or self.max_body < 0 or self.max_response_body < 0:
            raise ValueError("skew must be within 0..300 s and the size limits non-negative")


@dataclass(frozen=True, slots=True)
class HttpCaller:
    """The verified agent of one request, as the application sees it (``request.state.mcps_caller`` /
    ``scope["state"]["mcps_caller"]``)."""

    identity: str
    kid: KeyId
    level: TrustLevel
    scopes: frozenset[str]
    issuer: str | None
    credential: str
    """``passport``, ``certificate``, ``agent-key`` or ``directory``."""
    format: SignatureFormat
    principal: Principal


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Signature, window, audience and key verified; nonce and revocation not yet (the body is not read yet)."""

    signature: UnverifiedRequestSignature
    key: PublicKey
    caller: HttpCaller
    revocation_keys: tuple[RevocationKey, ...]
    passport_key: AgentPublicKey | None


def _passport_tokens(headers: Mapping[str, Sequence[str]], fmt: SignatureFormat) -> tuple[str, list[str]] | None:
    if fmt is SignatureFormat.ATTP:
        trust = headers.get(ATTP_TRUST) or []
        if len(trust) != 1:
            raise McpsError(ErrorCode.PASSPORT_MALFORMED, detail="X-Agent-Trust must be one passport")
        return trust[0].strip(), []
    lines = headers.get(PASSPORT_HEADER)
    if not lines:
        return None
    items = parse_field(", ".join(lines), "list", name="Mcps-Passport")
    tokens = [value for value, params in items if isinstance(value, str) and not params]
    if not tokens or len(tokens) != len(items):
        raise McpsError(ErrorCode.PASSPORT_MALFORMED, detail="Mcps-Passport is not a list of strings")
    return tokens[0], tokens[1:]


class RequestVerifier:
    """Steps 3–8 and 10–11 of SPEC.md §13.6 for one service."""

    def __init__(self, security: HttpApiSecurity) -> None:
        self.security = security
        self._passports = (
            PassportResolver(
                anchors=security.anchors,
                audience=security.identity,
                revocations=security.revocations,
                min_level=TrustLevel.L0,  # the operation's minimum is checked after revocation, per operation
                skew=security.skew,
            )
            if security.anchors is not None
            else None
        )
        self._authority = urlsplit(security.origin or "").netloc

    def target_uri(self, raw_path: str) -> str:
        return f"{self.security.origin}{raw_path}"

    def _authenticate(
        self,
        signature: UnverifiedRequestSignature,
        view: MessageView,
        *,
        host: str | None,
        algorithms: frozenset[Algorithm],
        now: float,
    ) -> Authenticated:
        skew = self.security.skew
        # 4. Time window.
        if signature.expires is not None and not 0 < signature.expires - signature.created <= MAX_LIFETIME:
            raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, detail="expires - created is not in 1..300")
        if signature.created > now + skew or signature.lifetime_end < now - skew:
            raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, detail="created/expires outside the window")
        # 5. Audience: the request was sent to this service's origin.
        if host is None or host.lower() != self._authority:
            raise McpsError(ErrorCode.AUDIENCE_MISMATCH, detail="Host is not this service's origin")
        # 7. The key, through the request's credential.
        resolved = self._resolve(signature, view.headers, now)
        if signature.kid is not None and resolved.key.kid != signature.kid:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "signing key is not the credential's key")
        if algorithms and resolved.key.alg not in algorithms:
            raise McpsError(ErrorCode.ALGORITHM_MISMATCH, detail=f"{resolved.key.alg} is not the scheme's algorithm")
        # 8. The signature over the base.
        resolved.key.verify(signature.signature, signature.base(view))
        return resolved

    def _resolve(
        self, signature: UnverifiedRequestSignature, headers: Mapping[str, Sequence[str]], now: float
    ) -> Authenticated:
        fmt = signature.format
        passport = _passport_tokens(headers, fmt)
        certificate = headers.get(CERTIFICATE_HEADER)
        if passport is not None and certificate:
            raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="a passport and a certificate: which one speaks?")
        if passport is not None:
            if self._passports is None:
                raise McpsError(ErrorCode.UNKNOWN_KEY, "passport issuer is not trusted", detail="no passport anchors")
            token, chain = passport
            # Step 7 only (path and level); revocation is this recipe's own later step, after the nonce, as in §5.
            agent_key = self._passports._verify_path(token, chain or None, now=now)
            agent = agent_key.agent
            principal = Principal.from_agent(agent, agent_key.kid)
            caller = self._caller(principal, agent_key.kid, "passport", fmt)
            return Authenticated(signature, agent_key, caller, agent_key.revocation_keys, agent_key)
        if certificate:
            if self.security.certificate_anchors is None or len(certificate) != 1:
                raise McpsError(ErrorCode.UNKNOWN_KEY, "certificate issuer is not trusted")
            verified = verify_agent_certificate(certificate[0].strip(), self.security.certificate_anchors, now=now)
            principal = Principal(
                verified.agent_id,
                verified.key.kid,
                verified.level,
                verified.scopes,
                verified.issuer_id,
                _certificate_claims(verified),
            )
            caller = self._caller(principal, verified.key.kid, "certificate", fmt)
            return Authenticated(signature, verified.key, caller, verified.revocation_keys(), None)
        kid = signature.kid
        if kid is None:
            raise McpsError(ErrorCode.UNKNOWN_KEY, detail="no credential names the key")
        if self.security.agent_keys is not None:
            anchor = self.security.agent_keys.get(kid)
            if anchor is not None:
                return self._bare(signature, anchor.key, anchor.max_level, "agent-key")
        lines = headers.get(SIGNATURE_AGENT)
        if lines:
            url = parse_field(", ".join(lines), "item", name="Signature-Agent")
            if not isinstance(url[0], str) or url[1]:
                raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="Signature-Agent is not a string")
            if url[0].startswith("data:") and self.security.inline_directories:
                key = inline_directory(url[0]).get(kid)
                if key is not None:
                    return self._bare(signature, key, TrustLevel.L0, "directory")
            elif self.security.directories is not None:
                found = self.security.directories.get(url[0], kid)
                if found is not None:
                    return self._bare(signature, found.key, found.level, "directory")
        raise McpsError(ErrorCode.UNKNOWN_KEY, detail="no trusted source knows this key")

    def _bare(
        self, signature: UnverifiedRequestSignature, key: PublicKey, level: TrustLevel, credential: str
    ) -> Authenticated:
        principal = Principal(key.kid, key.kid, level)
        revocation = (RevocationKey(LOCAL_SCOPE, RevocationKind.SUB, key.kid),)
        return Authenticated(
            signature, key, self._caller(principal, key.kid, credential, signature.format), revocation, None
        )

    def _caller(self, principal: Principal, kid: KeyId, credential: str, fmt: SignatureFormat) -> HttpCaller:
        return HttpCaller(
            principal.identity, kid, principal.level, principal.scopes, principal.issuer, credential, fmt, principal
        )

    async def admit(self, authenticated: Authenticated, *, now: float) -> HttpCaller:
        """10. The nonce, recorded under the key until the end of the window; 11. revocation."""
        signature = authenticated.signature
        expires_at = signature.lifetime_end + self.security.skew + 1
        if not await self.security.nonces.claim(authenticated.key.kid, signature.nonce, expires_at=expires_at, now=now):
            raise McpsError(ErrorCode.REPLAY)
        if authenticated.passport_key is not None and self._passports is not None:
            await self._passports.check_revocation(authenticated.passport_key, now=now)
        elif await self.security.revocations.is_revoked(authenticated.revocation_keys, now=now):
            raise McpsError(ErrorCode.REVOKED, detail=f"agent {authenticated.caller.identity}")
        return authenticated.caller


def _certificate_claims(agent: VerifiedCertificateAgent) -> dict[str, Any]:
    return {
        "sub": agent.agent_id,
        "iss": agent.issuer_id,
        "agentpass_level": f"L{int(agent.claimed_level)}",
        "scope": " ".join(sorted(agent.scopes)),
        "x5t#S256": agent.fingerprint,
        "exp": agent.not_after,
        "anchor": agent.anchor_fingerprint,
        "serial": agent.serial,
        "name": agent.name,
    }
