"""Trust anchors: the issuer keys a verifier trusts, each with the highest level it may grant (DESIGN.md §2.4).

Anchors are loaded like TLS root CAs, from a JWK Set (RFC 7517 §5) in which every key carries one extra member,
``mcps_max_tl`` (0–4)::

    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "<RFC 7638 thumbprint>", "mcps_max_tl": 2}]}

A key without ``mcps_max_tl``, with another value, or whose ``kid``/``alg`` do not match the key makes the whole
set invalid (MCPS-029): a typo never silently drops or promotes an issuer. ``kid``, when present, must be the
key's thumbprint; anchors are always looked up by thumbprint. Files are parsed as strictly as messages and as the
remote document (I-JSON, at most :data:`MAX_JWKS_BYTES`): ``"mcps_max_tl":1,"mcps_max_tl":4`` is a duplicate key,
refused, not read as L4.

Every defect of a set is MCPS-029, an ``alg`` that does not match its key included: the set is configuration, not a
signature, and what a verifier cannot do with it is resolve the issuer. (MCPS-028 is for a token or a message whose
``alg`` does not match the key that resolved it.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PublicKey
from mcps.core.strict import Limits, parse_file
from mcps.identity.levels import TrustLevel

__all__ = ["MAX_JWKS_BYTES", "MAX_LEVEL_MEMBER", "AnchorSource", "TrustAnchor", "TrustAnchors"]

MAX_LEVEL_MEMBER: Final = "mcps_max_tl"
MAX_JWKS_BYTES: Final = 1024 * 1024
"""The largest anchors document, file or ``issuerKeysUrl`` (SPEC.md §7.4)."""


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """An issuer key trusted to vouch for agents up to ``max_level``."""

    key: PublicKey
    max_level: TrustLevel

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_level", TrustLevel.parse(self.max_level))  # 0..4, never a bool

    @property
    def kid(self) -> KeyId:
        return self.key.kid

    def to_jwk(self) -> dict[str, Any]:
        return {**self.key.to_jwk(), MAX_LEVEL_MEMBER: int(self.max_level)}


class AnchorSource(Protocol):
    """Where a verifier looks up issuer keys: :class:`TrustAnchors` (files) or
    :class:`~mcps.identity.remote_anchors.RemoteTrustAnchors` (an ``issuerKeysUrl``)."""

    def get(self, kid: KeyId) -> TrustAnchor | None:
        """The anchor with this kid, ``None`` when there is none; MCPS-007 when the source cannot say."""
        ...


def _invalid(detail: str) -> McpsError:
    return McpsError(ErrorCode.UNKNOWN_KEY, "trust anchors are invalid", detail=detail)


class TrustAnchors:
    """An immutable set of :class:`TrustAnchor`, looked up by kid. May be empty (then only L0 self-signed
    passports can be verified)."""

    def __init__(self, anchors: Iterable[TrustAnchor]) -> None:
        self._anchors: dict[KeyId, TrustAnchor] = {}
        for anchor in anchors:
            if anchor.kid in self._anchors and self._anchors[anchor.kid] != anchor:
                raise _invalid(f"key {anchor.kid} is listed twice with different levels")
            self._anchors[anchor.kid] = anchor

    def get(self, kid: KeyId) -> TrustAnchor | None:
        return self._anchors.get(kid)

    def __iter__(self) -> Iterator[TrustAnchor]:
        return iter(self._anchors.values())

    def __len__(self) -> int:
        return len(self._anchors)

    @classmethod
    def from_jwks(cls, data: object) -> TrustAnchors:
        """Anchors from a parsed JWK Set; every key must carry ``mcps_max_tl``."""
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise _invalid("not a JWK Set")
        anchors = []
        for jwk in data["keys"]:
            if not isinstance(jwk, dict):
                raise _invalid("a key is not an object")
            try:
                level = TrustLevel.parse(jwk.get(MAX_LEVEL_MEMBER))
            except ValueError as exc:
                raise _invalid(f"every key needs {MAX_LEVEL_MEMBER} 0..4") from exc
            try:
                key = PublicKey.from_jwk(jwk)
            except McpsError as exc:  # a bad key, or kid/alg not matching it: the set is invalid (MCPS-029)
                raise _invalid(exc.diagnostics()) from exc
            anchors.append(TrustAnchor(key, level))
        return cls(anchors)

    @classmethod
    def load(cls, *paths: str | os.PathLike[str]) -> TrustAnchors:
        """Anchors from one or more JWKS files (like a CA bundle directory), each parsed strictly; all must be
        valid (MCPS-029 naming the file otherwise)."""
        anchors: list[TrustAnchor] = []
        for path in paths:
            try:
                anchors.extend(cls.from_jwks(parse_file(path, Limits(max_bytes=MAX_JWKS_BYTES))))
            except McpsError as exc:
                raise _invalid(f"{os.fspath(path)}: {exc.diagnostics()}") from exc
        return cls(anchors)

    def to_jwks(self) -> dict[str, Any]:
        return {"keys": [anchor.to_jwk() for anchor in self._anchors.values()]}
