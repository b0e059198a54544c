"""Verify a passport and its delegation chain down to a trust anchor (DESIGN.md §2.4).

The *path* is the agent's passport followed by ``_meta["mcps/chain"]``: an array of compact passports in which
``chain[0]`` certifies the key that signed the agent's passport, ``chain[1]`` the key that signed ``chain[0]``,
and so on. The path ends at the first passport that is signed by a trust anchor, or that is self-signed. Its
length, the *depth*, is at most :data:`MAX_CHAIN_DEPTH` (5).

Checks, in this order (each refusal has one code):

1. depth ≤ 5, counted before anything is decoded — MCPS-014; ``mcps/chain``, when present, is an array of
   strings — MCPS-001;
2. every passport: size ≤ 8 KiB — MCPS-013; form and claims — MCPS-001;
3. for each passport, from the agent's upwards:

   a. ``nbf``/``exp`` with the skew — MCPS-002; ``aud``, when present, names this receiver — MCPS-011;
   b. its signer: itself (self-signed: the path ends, level L0), a trust anchor (the path ends, cap = the
      anchor's ``mcps_max_tl``), or else the next passport, whose ``cnf`` key must be the signing key and whose
      ``sub`` must equal this passport's ``iss`` — MCPS-001; no next passport — unknown issuer, MCPS-029;
      passports left over after the path ended — MCPS-001;
   c. a parent that signed it must be an issuer: its passport carries ``"mcps_issuer": true`` — MCPS-009. Trust
      anchors are issuers by being anchors; a self-signed passport needs no marker to sign itself, only to sign
      the passport below it. Without this rule any passport holder could certify a key of its own under any
      ``sub`` (another agent's, a server's);
   d. the signature — MCPS-004;
   e. a delegated passport's scopes must be a subset of its parent's: scopes only narrow — MCPS-009.

4. The effective level is the lowest of every passport's claimed ``mcps_tl`` and the anchor's cap; L0 when the
   path ends at a self-signed passport, whatever it claims.

Revocation is not checked here: it needs a store and runs after the message nonce (SPEC.md §5 step 10), on every
message, using :meth:`VerifiedAgent.links`. That is why :func:`_verify_chain` is private (pyca's ``hazmat`` rule:
a primitive that skips steps of the recipe is not public): the recipes are
:class:`~mcps.verifier.MessageVerifier` for messages and :meth:`PassportResolver.verify_passport
<mcps.identity.resolver.PassportResolver.verify_passport>` for a passport on its own, revocation included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PublicKey
from mcps.identity.anchors import AnchorSource
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import AgentId, PassportClaims, UnverifiedPassport, parse_passport

__all__ = ["MAX_CHAIN_DEPTH", "VerifiedAgent"]

MAX_CHAIN_DEPTH: Final = 5


@dataclass(frozen=True, slots=True)
class VerifiedAgent:
    """An agent whose passport path was verified: who it is, how far it is trusted, what it may do."""

    agent_id: AgentId
    key: PublicKey
    """The agent's key (its passport's ``cnf.jwk``)."""
    level: TrustLevel
    """The effective trust level (capped along the path)."""
    scopes: frozenset[str]
    passport: PassportClaims
    path: tuple[PassportClaims, ...]
    """The agent's passport first, then each issuer's."""
    signers: tuple[KeyId, ...]
    """``signers[i]`` is the kid of the key that signed ``path[i]``."""
    anchor: KeyId | None
    """The trust anchor the path ends at; ``None`` for a self-signed path."""
    anchor_cap: TrustLevel | None
    """That anchor's ``mcps_max_tl`` when the path was verified; ``None`` for a self-signed path."""
    not_before: int
    """The latest ``nbf`` on the path."""
    expires: int
    """The earliest ``exp`` on the path: the whole verification is valid until then."""

    @property
    def depth(self) -> int:
        return len(self.path)

    def links(self) -> tuple[tuple[PassportClaims, tuple[KeyId, ...]], ...]:
        """Each passport with the kids of every issuer at or above it (who may revoke it by a list)."""
        return tuple((claims, self.signers[i:]) for i, claims in enumerate(self.path))

    def check_time(self, now: float, skew: int) -> None:
        """MCPS-002 unless every passport on the path is within its validity window at ``now``."""
        if self.not_before > now + skew:
            raise McpsError(ErrorCode.PASSPORT_EXPIRED, "passport is not yet valid")
        if self.expires < now - skew:
            raise McpsError(ErrorCode.PASSPORT_EXPIRED, "passport has expired")


def _malformed(detail: str) -> McpsError:
    return McpsError(ErrorCode.PASSPORT_MALFORMED, detail=detail)


def _verify_chain(
    passport: object, chain: object, *, anchors: AnchorSource, audience: str, now: float, skew: int
) -> VerifiedAgent:
    """Verify an agent's passport and its chain (``None`` when there is none) as received by ``audience``.

    Steps 1–4 only: no minimum level, no revocation. Not a recipe (see the module docstring)."""
    # 1. Depth, before decoding anything.
    if chain is None:
        chain = []
    if not isinstance(chain, list):
        raise _malformed("mcps/chain is not an array")
    if 1 + len(chain) > MAX_CHAIN_DEPTH:
        raise McpsError(ErrorCode.CHAIN_TOO_DEEP, detail=f"{1 + len(chain)} passports > {MAX_CHAIN_DEPTH}")
    # 2. Size and form of every passport.
    links: list[UnverifiedPassport] = [parse_passport(token) for token in [passport, *chain]]
    # 3. Walk from the agent upwards.
    level = TrustLevel.L4
    anchor_kid: KeyId | None = None
    anchor_cap: TrustLevel | None = None
    for index, link in enumerate(links):
        claims = link.claims
        # 3a. Time and audience.
        claims.check_time(now, skew)
        claims.check_audience(audience)
        level = min(level, claims.level)
        last = index == len(links) - 1
        # 3b. The signer; 3d. the signature.
        if link.self_signed:
            if not last:
                raise _malformed("passports follow a self-signed one in mcps/chain")
            link.jws.verify_signature(claims.key)
            level = TrustLevel.L0
            break
        anchor = anchors.get(link.issuer_kid)
        if anchor is not None:
            if not last:
                raise _malformed("passports follow the anchor-signed one in mcps/chain")
            link.jws.verify_signature(anchor.key)
            level = min(level, anchor.max_level)
            anchor_kid, anchor_cap = anchor.kid, anchor.max_level
            break
        if last:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "passport issuer is not trusted", detail=f"kid {link.issuer_kid}")
        parent = links[index + 1].claims
        if parent.key.kid != link.issuer_kid:
            raise _malformed(f"mcps/chain[{index}] does not certify the key that signed the passport below it")
        if parent.sub != claims.iss:
            raise _malformed(f"iss of passport {index} is not the sub of its issuer's passport")
        # 3c. Only an issuer may sign a passport, before anything it certified is used.
        if not parent.issuer:
            raise McpsError(
                ErrorCode.INSUFFICIENT_TRUST,
                "passport was signed by a passport that may not issue",
                detail=f"mcps/chain[{index}] (sub {parent.sub!r}) has no mcps_issuer: true",
            )
        link.jws.verify_signature(parent.key)
        # 3e. Scopes only narrow.
        if not claims.scopes <= parent.scopes:
            raise McpsError(
                ErrorCode.INSUFFICIENT_TRUST,
                "delegated scopes exceed the issuer's",
                detail=f"passport {index} adds {sorted(claims.scopes - parent.scopes)}",
            )
    path = tuple(link.claims for link in links)
    leaf = path[0]
    return VerifiedAgent(
        agent_id=leaf.sub,
        key=leaf.key,
        level=level,
        scopes=leaf.scopes,
        passport=leaf,
        path=path,
        signers=tuple(link.issuer_kid for link in links),
        anchor=anchor_kid,
        anchor_cap=anchor_cap,
        not_before=max(claims.nbf for claims in path),
        expires=min(claims.exp for claims in path),
    )
