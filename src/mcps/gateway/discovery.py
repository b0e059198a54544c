"""The gateway's discovery document (SPEC.md §12.2): which upstream is where, signed by the gateway.

``GET /.well-known/mcps-gateway`` returns a compact JWS, ``typ: mcps-gateway+jwt``, whose claims are ``iss`` (the
gateway's identity), ``iat``, ``exp`` (at most 300 s later) and ``upstreams``: ``{name, path, identity, signed}``
per upstream, plus ``kid`` for an upstream trusted by a pinned key. A client that pins the gateway's key learns
from it which identity to address at which path. It is information, not authority: every message is still
verified. :func:`read_discovery` checks one against the gateway's key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey, load_public_jwk
from mcps.gateway.config import UpstreamConfig
from mcps.identity.jws import parse_compact, sign_compact

__all__ = ["DISCOVERY_TYP", "DiscoveredUpstream", "DiscoveryDocument", "read_discovery"]

DISCOVERY_TYP: Final = "mcps-gateway+jwt"
LIFETIME: Final = 300
_REFRESH: Final = 60
_MAX_BYTES: Final = 64 * 1024


class DiscoveryDocument:
    """Signs the document on demand, re-signing at most once a minute."""

    def __init__(
        self,
        key: PrivateKey,
        identity: str,
        upstreams: Mapping[str, UpstreamConfig],
        *,
        passport: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._identity = identity
        self._clock = clock
        self._entries: list[dict[str, Any]] = []
        for name, upstream in upstreams.items():
            entry: dict[str, Any] = {
                "name": name,
                "path": f"/mcp/{name}",
                "identity": upstream.identity,
                "signed": upstream.signed,
            }
            if upstream.key is not None:
                entry["kid"] = load_public_jwk(upstream.key).kid
            self._entries.append(entry)
        self._token = ""
        self._signed_at = float("-inf")
        del passport  # carried by messages, not by this document

    def token(self) -> str:
        now = self._clock()
        if now - self._signed_at >= _REFRESH:
            issued = int(now)
            claims = {"iss": self._identity, "iat": issued, "exp": issued + LIFETIME, "upstreams": self._entries}
            self._token, self._signed_at = sign_compact(claims, self._key, typ=DISCOVERY_TYP), now
        return self._token


@dataclass(frozen=True, slots=True)
class DiscoveredUpstream:
    name: str
    path: str
    identity: str
    signed: bool
    kid: str | None


def read_discovery(
    token: object, key: PublicKey, *, now: float, skew: int = 30
) -> tuple[str, list[DiscoveredUpstream]]:
    """Verify a discovery document with the gateway's pinned key: its identity and upstreams, or MCPS errors."""
    jws = parse_compact(
        token,
        typ=DISCOVERY_TYP,
        max_bytes=_MAX_BYTES,
        error=ErrorCode.MALFORMED_JSON,
        too_large=ErrorCode.MESSAGE_TOO_LARGE,
        bad_signature=ErrorCode.BAD_SIGNATURE,
    )
    if jws.kid != key.kid:
        raise McpsError(ErrorCode.UNKNOWN_KEY, "discovery document is not signed by the pinned gateway key")
    jws.verify_signature(key)
    claims = jws.claims
    iss, iat, exp, upstreams = claims.get("iss"), claims.get("iat"), claims.get("exp"), claims.get("upstreams")
    if not isinstance(iss, str) or type(iat) is not int or type(exp) is not int or not isinstance(upstreams, list):
        raise McpsError(ErrorCode.MALFORMED_JSON, "discovery document is malformed")
    if not 0 < exp - iat <= LIFETIME or iat > now + skew or exp < now - skew:
        raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, "discovery document is outside its validity window")
    found = []
    for entry in upstreams:
        if not isinstance(entry, dict) or not {"name", "path", "identity", "signed"} <= entry.keys():
            raise McpsError(ErrorCode.MALFORMED_JSON, "discovery document is malformed")
        kid = entry.get("kid")
        if (
            not all(isinstance(entry[n], str) for n in ("name", "path", "identity"))
            or type(entry["signed"]) is not bool
        ):
            raise McpsError(ErrorCode.MALFORMED_JSON, "discovery document is malformed")
        found.append(DiscoveredUpstream(entry["name"], entry["path"], entry["identity"], entry["signed"], kid))
    return iss, found
