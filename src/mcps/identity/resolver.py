"""``PassportResolver``: the :class:`~mcps.core.envelope.KeyResolver` that finds a message's signer through its
passport (DESIGN.md §2.4), with the verification cache.

For a message whose container (``params._meta`` for requests and notifications, ``result._meta`` for results,
``error.data`` for errors) holds ``"mcps/passport"``:

1. the passport and ``"mcps/chain"`` are verified (``mcps.identity.chains._verify_chain``) — or found in the
   cache, keyed by ``SHA-256`` of the exact tokens, and re-checked only for time;
2. the passport's ``cnf`` key must be the message's signing key: its thumbprint equals the block ``kid``
   (MCPS-029 otherwise);
3. the effective level must be at least ``min_level`` (MCPS-009).

A message without a passport is resolved through ``pinned`` keys when given (as before), and refused (MCPS-029)
otherwise. The resolved key is an :class:`AgentPublicKey`: a :class:`~mcps.core.keys.PublicKey` that also carries
the :class:`~mcps.identity.chains.VerifiedAgent`, which :class:`~mcps.verifier.MessageVerifier` hands to the
application in ``VerifiedMessage.agent`` after checking revocation in ``revocations`` (step 10, after the nonce).

Cache: an entry lives until the earliest ``exp`` on its path (plus skew). Every hit asks the anchors again, for
every signer on the path, and uses the entry only when they answer as they did when it was verified: the anchor at
the top is still an anchor with the same key and cap, and no key below it has become one. Otherwise the entry is
dropped and the path verified afresh, so a hit can never accept what a resolver without a cache would refuse:
an issuer pulled from a refreshed ``issuerKeysUrl`` document, or from an anchors file loaded again and assigned to
:attr:`PassportResolver.anchors`, is refused on the next message, and a source past its maximum age refuses the
hit itself (MCPS-007). The entry is never trusted for revocation either — the store is asked on every message — so
a revocation takes effect at once without invalidating anything. Failures are not cached. The cache is bounded
(``cache_size`` entries; expired ones first, then the oldest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.envelope import DEFAULT_SKEW, ERROR_DATA_KEY, SIG_KEY, KeyResolver, block_container
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PublicKey
from mcps.identity.anchors import AnchorSource
from mcps.identity.chains import VerifiedAgent, _verify_chain
from mcps.identity.levels import DEFAULT_MIN_LEVEL, TrustLevel
from mcps.identity.revocation import RevocationKey, RevocationStore, revocation_keys

__all__ = ["CHAIN_KEY", "DEFAULT_CACHE_SIZE", "PASSPORT_KEY", "AgentPublicKey", "PassportResolver", "attach_passport"]

PASSPORT_KEY: Final = "mcps/passport"
CHAIN_KEY: Final = "mcps/chain"
DEFAULT_CACHE_SIZE: Final = 10_000


@dataclass(frozen=True, slots=True)
class AgentPublicKey(PublicKey):
    """The agent's key as resolved through its passport, carrying who the agent is."""

    agent: VerifiedAgent
    revocation_keys: tuple[RevocationKey, ...]

    @classmethod
    def for_agent(cls, agent: VerifiedAgent) -> AgentPublicKey:
        key = agent.key  # the same key (and bound primitive), with more context
        return cls(key.alg, key.kid, key._key, key._jwk, key._check, agent, revocation_keys(agent))


def attach_passport(message: Mapping[str, Any], passport: str, chain: Sequence[str] = ()) -> dict[str, Any]:
    """A copy of ``message`` carrying ``passport`` (and ``chain``) in the member its signature will cover.

    Call it before signing: requests and notifications get ``params._meta``, results ``result._meta``, errors
    ``error.data`` (a non-object ``data`` is moved to ``"mcps/data"`` inside it, as signing does, SPEC.md §4.1).
    """
    copy = dict(message)
    if "method" in copy:
        parent_key, member = "params", "_meta"
    elif "result" in copy:
        parent_key, member = "result", "_meta"
    else:
        parent_key, member = "error", "data"
    parent = dict(copy.get(parent_key) or {})
    holder = parent.get(member)
    if holder is not None and not isinstance(holder, dict):
        if parent_key != "error":
            raise ValueError(f"{parent_key}.{member} is not an object")
        holder = {ERROR_DATA_KEY: holder}
    holder = dict(holder or {})
    holder[PASSPORT_KEY] = passport
    if chain:
        holder[CHAIN_KEY] = list(chain)
    else:
        holder.pop(CHAIN_KEY, None)
    parent[member] = holder
    copy[parent_key] = parent
    return copy


class PassportResolver:
    """Resolves the signing key of a message from its passport (or ``pinned`` keys when it carries none).

    ``audience`` is this receiver's identity (checked against each passport's ``aud``); ``revocations`` is where
    revocations are looked up on every message; ``min_level`` defaults to L2, the production minimum. ``anchors``
    may be replaced at any time (say, by an anchors file loaded again): the next message is checked against the
    new set, cached or not.
    """

    def __init__(
        self,
        *,
        anchors: AnchorSource,
        audience: str,
        revocations: RevocationStore,
        min_level: TrustLevel = DEFAULT_MIN_LEVEL,
        pinned: KeyResolver | None = None,
        skew: int = DEFAULT_SKEW,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self.anchors = anchors
        self.audience = audience
        self.revocations = revocations
        self.min_level = TrustLevel.parse(min_level)  # a bool is refused, not read as L1
        self._pinned = pinned
        self._skew = skew
        self._cache_size = cache_size
        self._cache: dict[bytes, AgentPublicKey] = {}

    def resolve(self, kid: KeyId, message: Mapping[str, Any], *, now: float) -> PublicKey:
        """:class:`~mcps.core.envelope.KeyResolver`: the passport's key, checked at the verifier's ``now``."""
        container = block_container(message)
        if container is None or SIG_KEY not in container or container.get(PASSPORT_KEY) is None:
            if self._pinned is None:
                raise McpsError(ErrorCode.UNKNOWN_KEY, detail="no passport and no pinned key")
            return self._pinned.resolve(kid, message, now=now)
        key = self._verify_path(container[PASSPORT_KEY], container.get(CHAIN_KEY), now=now)
        if key.kid != kid:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "signing key is not the passport's key")
        return key

    async def verify_passport(self, passport: object, chain: object, *, now: float) -> AgentPublicKey:
        """The recipe for a passport on its own (``mcps passport verify``): its path (cached), the minimum level,
        and revocation of anything on the path (MCPS-003; MCPS-030 when the store cannot say). The agent's key
        with its identity. (A message is verified by :class:`~mcps.verifier.MessageVerifier`, which resolves the
        passport in step 7 and checks revocation in step 10, after the nonce.)"""
        key = self._verify_path(passport, chain, now=now)
        await self.check_revocation(key, now=now)
        return key

    def _verify_path(self, passport: object, chain: object, *, now: float) -> AgentPublicKey:
        """Verify a passport path (cached) and the minimum level — no revocation: step 7 of a message's
        verification, whose step 10 checks it. Private, as every primitive that skips a step of a recipe."""
        digest = _cache_key(passport, chain)
        cached = self._cache.get(digest) if digest is not None else None
        if digest is not None and cached is not None:
            cached.agent.check_time(now, self._skew)
            if self._anchors_unchanged(cached.agent):  # MCPS-007 when the source is too old to answer
                return cached
            del self._cache[digest]  # the anchors moved: verify afresh, as without a cache
        agent = _verify_chain(passport, chain, anchors=self.anchors, audience=self.audience, now=now, skew=self._skew)
        if agent.level < self.min_level:
            raise McpsError(
                ErrorCode.INSUFFICIENT_TRUST, detail=f"effective level {agent.level} < minimum {self.min_level}"
            )
        key = AgentPublicKey.for_agent(agent)
        if digest is not None and self._cache_size:
            self._remember(digest, key, now)
        return key

    def _anchors_unchanged(self, agent: VerifiedAgent) -> bool:
        """Whether every signer on the path resolves now as it did when the path was verified (SPEC.md §7.4):
        the anchor at the top with the same key and cap, every signer below it still not an anchor."""
        for claims, signer in zip(agent.path, agent.signers, strict=True):
            if signer == claims.key.kid:  # self-signed: the path ended here without asking the anchors
                return True
            anchor = self.anchors.get(signer)
            if signer == agent.anchor:
                return anchor is not None and anchor.kid == signer and anchor.max_level == agent.anchor_cap
            if anchor is not None:
                return False
        return False  # unreachable for a verified path: it ends at an anchor or a self-signed passport

    def _remember(self, digest: bytes, key: AgentPublicKey, now: float) -> None:
        cache = self._cache
        if len(cache) >= self._cache_size:
            for stale in [d for d, k in cache.items() if k.agent.expires < now - self._skew]:
                del cache[stale]
            while len(cache) >= self._cache_size:
                del cache[next(iter(cache))]
        cache[digest] = key

    def clear_cache(self) -> None:
        self._cache.clear()

    async def check_revocation(self, key: AgentPublicKey, *, now: float) -> None:
        """Step 10: MCPS-003 when anything on the agent's path is revoked; MCPS-030 when the store cannot say."""
        if await self.revocations.is_revoked(key.revocation_keys, now=now):
            raise McpsError(ErrorCode.REVOKED, detail=f"agent {key.agent.agent_id}")


def _cache_key(passport: object, chain: object) -> bytes | None:
    """SHA-256 over the exact tokens; ``None`` (not cacheable) for input that is not strings."""
    items: list[object] = [passport] if chain is None else [passport, *chain] if isinstance(chain, list) else []
    tokens = [item for item in items if isinstance(item, str) and "\n" not in item]
    if not tokens or len(tokens) != len(items):
        return None
    # A valid token is base64url and dots: with newlines excluded, the joined text is unambiguous.
    return hashlib.sha256("\n".join(tokens).encode("utf-8", "surrogatepass")).digest()
