"""Trust anchors: the issuer keys a verifier trusts, each with the highest level it may grant (DESIGN.md §2.4).

Anchors are loaded like TLS root CAs, from a JWK Set (RFC 7517 §5) in which every key carries one extra member,
``mcps_max_tl`` (0–4)::

    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "<RFC 7638 thumbprint>", "mcps_max_tl": 2}]}

A key without ``mcps_max_tl``, with another value, or whose ``kid``/``alg`` do not match the key makes the whole
set invalid (MCPS-029): a typo never silently drops or promotes an issuer. ``kid``, when present, must be the
key's thumbprint; anchors are always looked up by thumbprint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PublicKey
from mcps.identity.levels import TrustLevel

__all__ = ["MAX_LEVEL_MEMBER", "AnchorSource", "TrustAnchor", "TrustAnchors"]

MAX_LEVEL_MEMBER: Final = "mcps_max_tl"


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """An issuer key trusted to vouch for agents up to ``max_level``."""

    key: PublicKey
    max_level: TrustLevel

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
            anchors.append(TrustAnchor(PublicKey.from_jwk(jwk), level))
        return cls(anchors)

    @classmethod
    def load(cls, *paths: str | os.PathLike[str]) -> TrustAnchors:
        """Anchors from one or more JWKS files (like a CA bundle directory); all must be valid."""
        anchors: list[TrustAnchor] = []
        for path in paths:
            try:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _invalid(f"{path} is not a JSON file") from exc
            anchors.extend(cls.from_jwks(data))
        return cls(anchors)

    def to_jwks(self) -> dict[str, Any]:
        return {"keys": [anchor.to_jwk() for anchor in self._anchors.values()]}
