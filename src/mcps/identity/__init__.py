"""Identity and least privilege: trust levels, agent passports, trust anchors and chains, revocation, grants.

Layer 2 of the design (above :mod:`mcps.core`). What applications use is exported here:

* :class:`TrustLevel` L0–L4;
* :func:`issue_passport` (and :func:`parse_passport`, which does *not* verify);
* :class:`TrustAnchors` / :class:`TrustAnchor` from JWKS files, :class:`RemoteTrustAnchors` from an
  ``issuerKeysUrl`` (cached, fail closed);
* :class:`PassportResolver` — the ``KeyResolver`` for :class:`~mcps.MessageVerifier` and the SDK bindings that
  finds a message's signer through its passport chain; it needs a revocation store (``revocations=``):
  :class:`MemoryRevocationStore` here (one process: tests and examples), SQLite and Redis in :mod:`mcps.stores`;
* revocation lists: :func:`issue_revocation_list`, :func:`apply_revocation_list`;
* per-call grants: :func:`mint_grant` and :class:`GrantVerifier`.

The modules (:mod:`~mcps.identity.jws`, :mod:`~mcps.identity.chains`, …) hold the rest. Names are imported on
first use (PEP 562), so ``import mcps.identity`` alone pulls in nothing else (not httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcps.core._exports import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from mcps.identity.anchors import TrustAnchor, TrustAnchors
    from mcps.identity.chains import VerifiedAgent
    from mcps.identity.grants import GrantVerifier, VerifiedGrant, mint_grant
    from mcps.identity.levels import TrustLevel
    from mcps.identity.passports import AgentId, issue_passport, parse_passport
    from mcps.identity.remote_anchors import RemoteTrustAnchors
    from mcps.identity.resolver import PassportResolver
    from mcps.identity.revocation import (
        MemoryRevocationStore,
        RevocationKey,
        RevocationKind,
        RevocationStore,
        apply_revocation_list,
        issue_revocation_list,
    )

__all__ = [
    "AgentId",
    "GrantVerifier",
    "MemoryRevocationStore",
    "PassportResolver",
    "RemoteTrustAnchors",
    "RevocationKey",
    "RevocationKind",
    "RevocationStore",
    "TrustAnchor",
    "TrustAnchors",
    "TrustLevel",
    "VerifiedAgent",
    "VerifiedGrant",
    "apply_revocation_list",
    "issue_passport",
    "issue_revocation_list",
    "mint_grant",
    "parse_passport",
]

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is still an error there
    __getattr__, __dir__ = _lazy_exports(
        __name__,
        {
            "AgentId": "mcps.identity.passports",
            "GrantVerifier": "mcps.identity.grants",
            "MemoryRevocationStore": "mcps.identity.revocation",
            "PassportResolver": "mcps.identity.resolver",
            "RemoteTrustAnchors": "mcps.identity.remote_anchors",
            "RevocationKey": "mcps.identity.revocation",
            "RevocationKind": "mcps.identity.revocation",
            "RevocationStore": "mcps.identity.revocation",
            "TrustAnchor": "mcps.identity.anchors",
            "TrustAnchors": "mcps.identity.anchors",
            "TrustLevel": "mcps.identity.levels",
            "VerifiedAgent": "mcps.identity.chains",
            "VerifiedGrant": "mcps.identity.grants",
            "apply_revocation_list": "mcps.identity.revocation",
            "issue_passport": "mcps.identity.passports",
            "issue_revocation_list": "mcps.identity.revocation",
            "mint_grant": "mcps.identity.grants",
            "parse_passport": "mcps.identity.passports",
        },
    )
