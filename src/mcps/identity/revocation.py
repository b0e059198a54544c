"""Revocation: the ``RevocationStore`` protocol, its in-memory backend, and issuer-signed revocation lists.

An entry is a :class:`RevocationKey` ``(scope, kind, value)``: ``kind`` is ``jti`` (one passport) or ``sub`` (every
passport of one agent); ``scope`` says who revoked it:

* ``"*"`` (:data:`LOCAL_SCOPE`) — the local kill switch (``mcps revoke``): it revokes that ``jti``/``sub``
  wherever it appears on a path, whoever issued it;
* an issuer key's kid — an entry from a revocation list that key signed: it revokes only passports at or below
  that issuer on a path, so one issuer cannot revoke another's agents.

The verifier asks the store on **every** message, after the nonce (SPEC.md §5 step 10), with every key that
could revoke any passport on the agent's path (:func:`revocation_keys`). The SQLite and Redis stores cache nothing,
so a revocation written by one process takes effect on the next message in every process that shares the store
(SQLite file: :mod:`mcps.stores.revocation_sqlite`; Redis: :mod:`mcps.stores.revocation_redis`);
:mod:`mcps.stores.revocation_cache` mirrors a Redis store in memory, kept current by its change feed, and refuses
when it cannot be sure it is current (within one second). A store that cannot answer raises MCPS-030 and the
message is refused.

A revocation list is a compact JWS, ``typ: mcps-revocation+jwt``, signed by a trust anchor, with claims
``{iss, iat, exp, jti, revoked: {jti: [...], sub: [...]}}``. :func:`apply_revocation_list` verifies it against the
anchors and writes its entries, scoped to the signing key, into a store.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey
from mcps.identity.anchors import AnchorSource
from mcps.identity.chains import VerifiedAgent
from mcps.identity.jws import parse_compact, sign_compact

__all__ = [
    "LOCAL_SCOPE",
    "MAX_REVOCATION_LIST_BYTES",
    "REVOCATION_LIST_TYP",
    "MemoryRevocationStore",
    "RevocationKey",
    "RevocationKind",
    "RevocationList",
    "RevocationStore",
    "apply_revocation_list",
    "check_not_revoked",
    "issue_revocation_list",
    "revocation_keys",
    "verify_revocation_list",
]

LOCAL_SCOPE: Final = "*"
REVOCATION_LIST_TYP: Final = "mcps-revocation+jwt"
MAX_REVOCATION_LIST_BYTES: Final = 4 * 1024 * 1024
MAX_VALUE_LENGTH: Final = 256


class RevocationKind(enum.StrEnum):
    JTI = "jti"
    SUB = "sub"


@dataclass(frozen=True, slots=True)
class RevocationKey:
    """One revocation: ``value`` (a ``jti`` or a ``sub``) revoked by ``scope`` (``"*"`` or an issuer kid)."""

    scope: str
    kind: RevocationKind
    value: str

    def __post_init__(self) -> None:
        if not self.scope or ":" in self.scope:
            raise ValueError("scope must be '*' or a key id")
        if not isinstance(self.value, str) or not 0 < len(self.value) <= MAX_VALUE_LENGTH:
            raise ValueError(f"value must be a string of 1..{MAX_VALUE_LENGTH} characters")

    @classmethod
    def local(cls, kind: RevocationKind | str, value: str) -> RevocationKey:
        """A kill-switch entry."""
        return cls(LOCAL_SCOPE, RevocationKind(kind), value)


def revocation_keys(agent: VerifiedAgent) -> tuple[RevocationKey, ...]:
    """Every entry that would revoke some passport on ``agent``'s path (its ``jti`` or ``sub``, locally or by an
    issuer at or above it)."""
    keys: list[RevocationKey] = []
    for claims, issuers in agent.links():
        for scope in (LOCAL_SCOPE, *issuers):
            keys.append(RevocationKey(scope, RevocationKind.JTI, claims.jti))
            keys.append(RevocationKey(scope, RevocationKind.SUB, claims.sub))
    return tuple(dict.fromkeys(keys))


@runtime_checkable
class RevocationStore(Protocol):
    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        """Record ``key`` as revoked until ``until`` (``None``: for ever). Raises MCPS-030 when it cannot."""
        ...

    async def is_revoked(self, keys: Collection[RevocationKey], *, now: float) -> bool:
        """True when any of ``keys`` is revoked at ``now``. Raises MCPS-030 when the store cannot answer; never
        returns False in doubt."""
        ...

    async def aclose(self) -> None: ...


async def check_not_revoked(store: RevocationStore, agent: VerifiedAgent, *, now: float) -> None:
    """Return ``None`` when nothing on ``agent``'s path is revoked; MCPS-003 otherwise, MCPS-030 when in doubt."""
    if await store.is_revoked(revocation_keys(agent), now=now):
        raise McpsError(ErrorCode.REVOKED, detail=f"agent {agent.agent_id}")


class MemoryRevocationStore:
    """Revocations held in one process (tests, single-process deployments)."""

    def __init__(self) -> None:
        self._entries: dict[RevocationKey, int | None] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def _check_open(self) -> None:
        if self._closed:
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="in-memory revocation store is closed")

    async def revoke(self, key: RevocationKey, *, until: int | None = None, now: float) -> None:
        self._check_open()
        if key in self._entries:
            held = self._entries[key]
            until = None if held is None or until is None else max(held, until)
        self._entries[key] = until

    async def is_revoked(self, keys: Collection[RevocationKey], *, now: float) -> bool:
        entries = self._entries
        if not entries:
            self._check_open()
            return False
        for key in keys:
            if key in entries:
                until = entries[key]
                if until is None or until > now:
                    return True
        return False

    async def aclose(self) -> None:
        self._closed = True
        self._entries.clear()


# --- revocation lists -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevocationList:
    """A verified revocation list: its signer and the entries it revokes, scoped to the signer."""

    issuer_kid: KeyId
    iss: str
    iat: int
    exp: int
    jti: str
    entries: tuple[RevocationKey, ...]


def issue_revocation_list(
    key: PrivateKey,
    *,
    iss: str,
    jtis: Iterable[str] = (),
    subs: Iterable[str] = (),
    now: float,
    ttl: int = 24 * 3600,
) -> str:
    """Sign a revocation list of passport ids (``jtis``) and agent ids (``subs``)."""
    if ttl < 1:
        raise ValueError("ttl must be positive")
    issued_at = int(now)
    claims: dict[str, Any] = {
        "iss": iss,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": b64u_encode(os.urandom(16)),
        "revoked": {"jti": sorted(set(jtis)), "sub": sorted(set(subs))},
    }
    return sign_compact(claims, key, typ=REVOCATION_LIST_TYP)


def _malformed(detail: str) -> McpsError:
    return McpsError(ErrorCode.PASSPORT_MALFORMED, "revocation list is malformed", detail=detail)


def verify_revocation_list(token: object, *, anchors: AnchorSource, now: float, skew: int = 30) -> RevocationList:
    """Verify a list's form, signer (a trust anchor: MCPS-029 otherwise), signature and validity (MCPS-002)."""
    jws = parse_compact(
        token,
        typ=REVOCATION_LIST_TYP,
        max_bytes=MAX_REVOCATION_LIST_BYTES,
        error=ErrorCode.PASSPORT_MALFORMED,
        too_large=ErrorCode.PASSPORT_TOO_LARGE,
        bad_signature=ErrorCode.BAD_SIGNATURE,
    )
    anchor = anchors.get(jws.kid)
    if anchor is None:
        raise McpsError(ErrorCode.UNKNOWN_KEY, "revocation list signer is not a trust anchor")
    jws.verify_signature(anchor.key)
    claims = jws.claims
    iat, exp, iss, jti = claims.get("iat"), claims.get("exp"), claims.get("iss"), claims.get("jti")
    if type(iat) is not int or type(exp) is not int or not isinstance(iss, str) or not isinstance(jti, str):
        raise _malformed("iss, iat, exp and jti are required")
    if iat > now + skew or exp < now - skew:
        raise McpsError(ErrorCode.PASSPORT_EXPIRED, "revocation list is expired or not yet valid")
    revoked = claims.get("revoked")
    if not isinstance(revoked, dict) or not set(revoked) <= {"jti", "sub"}:
        raise _malformed("revoked must be {jti: [...], sub: [...]}")
    entries: list[RevocationKey] = []
    for kind in RevocationKind:
        values = revoked.get(kind.value, [])
        if not isinstance(values, list):
            raise _malformed(f"revoked.{kind.value} is not an array")
        try:
            entries.extend(RevocationKey(anchor.kid, kind, value) for value in values)
        except ValueError as exc:
            raise _malformed(f"revoked.{kind.value}: {exc}") from exc
    return RevocationList(anchor.kid, iss, iat, exp, jti, tuple(entries))


async def apply_revocation_list(
    token: object, *, anchors: AnchorSource, store: RevocationStore, now: float
) -> RevocationList:
    """Verify a revocation list and record its entries (for ever: a later list never un-revokes)."""
    verified = verify_revocation_list(token, anchors=anchors, now=now)
    for entry in verified.entries:
        await store.revoke(entry, now=now)
    return verified
