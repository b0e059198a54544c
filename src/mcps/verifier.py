"""The recipes applications use: :class:`MessageSigner` and :class:`MessageVerifier`.

``MessageVerifier.verify`` runs the whole verification order of SPEC.md §5 — size, strict parse, block shape,
time window, audience, response binding, key, signature, and only then the nonce — and returns a
:class:`VerifiedMessage` or raises :class:`~mcps.core.errors.McpsError`. It has no permissive defaults: the
caller chooses the audience, the trusted keys and the nonce store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mcps.core.envelope import (
    DEFAULT_LIFETIME,
    DEFAULT_SKEW,
    VIA_KEY,
    KeyResolver,
    MessageKind,
    SignatureBlock,
    block_container,
    check_audience,
    check_binding,
    check_key,
    check_signature,
    check_window,
    message_kind,
    read_block,
    sign_message,
)
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.fastpath import parse_fast
from mcps.core.hops import VerifiedHop, verify_hops
from mcps.core.keys import KeyId, PrivateKey, PublicKey
from mcps.core.replay import NonceStore
from mcps.core.strict import DEFAULT_LIMITS, Limits, parse_message
from mcps.identity.chains import VerifiedAgent
from mcps.identity.resolver import AgentPublicKey, PassportResolver

__all__ = ["HopKey", "HopTrust", "MessageSigner", "MessageVerifier", "VerifiedMessage"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class HopTrust:
    """The intermediaries (gateways) a receiver trusts to countersign what they forward (SPEC.md §12.4).

    ``keys`` resolves their keys; with ``required`` every message must carry a valid hop record (MCPS-034).
    """

    keys: KeyResolver
    required: bool = True


@dataclass(frozen=True, slots=True)
class HopKey(PublicKey):
    """A block key resolved only through :class:`HopTrust`: the block was made by a gateway (SPEC.md §12.4a)."""

    @classmethod
    def of(cls, key: PublicKey) -> HopKey:
        return cls(key.alg, key.kid, key._key, key._jwk, key._check)  # same key, marked as a gateway's


class _BlockKeys:
    """Resolves a block's key through the peer's trust, or — for a block a trusted gateway says it made (its
    first hop record is ``on_behalf`` and names the block's key) and that the peer's trust does not know — through
    the hop trust, marked :class:`HopKey`."""

    def __init__(self, peers: KeyResolver, hops: HopTrust) -> None:
        self._peers = peers
        self._hops = hops

    def resolve(self, kid: KeyId, message: Mapping[str, Any], *, now: float) -> PublicKey:
        if not _made_by_hop(message, kid):
            return self._peers.resolve(kid, message, now=now)
        try:
            return self._peers.resolve(kid, message, now=now)  # the gateway is also trusted as the other end
        except McpsError:
            return HopKey.of(self._hops.keys.resolve(kid, message, now=now))


def _made_by_hop(message: Mapping[str, Any], kid: KeyId) -> bool:
    via = (block_container(message) or {}).get(VIA_KEY)
    first = via[0] if isinstance(via, list) and via else None
    return isinstance(first, dict) and first.get("on_behalf") is True and first.get("kid") == kid


@dataclass(frozen=True, slots=True)
class VerifiedMessage:
    """A message whose signature, window, audience, binding and freshness (nonce) have all been verified."""

    message: dict[str, Any]
    kind: MessageKind
    block: SignatureBlock
    key: PublicKey
    agent: VerifiedAgent | None = None
    """Who signed, when the key was resolved through a passport (:class:`~mcps.identity.PassportResolver`)."""
    hops: tuple[VerifiedHop, ...] = ()
    """The verified hop records (gateways it passed), when the verifier has a :class:`HopTrust`."""

    @property
    def gateway_made(self) -> bool:
        """Whether the block was made by a trusted gateway rather than by the other end (SPEC.md §12.4a)."""
        return isinstance(self.key, HopKey)

    @property
    def kid(self) -> KeyId:
        return self.block.kid

    @property
    def sig(self) -> str:
        """The signature value: what a response to this message must be bound to (``in_reply_to``)."""
        return self.block.sig

    @property
    def method(self) -> str | None:
        method = self.message.get("method")
        return method if isinstance(method, str) else None

    @property
    def id(self) -> str | int | None:
        value = self.message.get("id")
        return value if isinstance(value, str) or type(value) is int else None


class MessageSigner:
    """Signs messages with one private key. ``clock`` is injectable; ``lifetime`` is ``exp − iat`` (≤ 300 s)."""

    def __init__(self, key: PrivateKey, *, lifetime: int = DEFAULT_LIFETIME, clock: Clock = time.time) -> None:
        self.key = key
        self._lifetime = lifetime
        self._clock = clock

    def sign(
        self,
        message: Mapping[str, Any],
        *,
        audience: str,
        in_reply_to: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        return sign_message(
            message,
            self.key,
            audience=audience,
            in_reply_to=in_reply_to,
            now=self._clock() if now is None else now,
            lifetime=self._lifetime,
        )


class MessageVerifier:
    """Verifies messages addressed to ``audience`` from signers that ``keys`` trusts.

    Every argument that decides security is required. ``audience`` is the receiver's own name, or its names: its
    identity and the kid of its own key, either of which a peer may address it by (SPEC.md §4.4, §9.2).
    ``max_skew`` is the clock skew allowed on ``iat`` and ``exp``; nonces are held until ``exp + max_skew``.
    """

    def __init__(
        self,
        *,
        audience: str | Collection[str],
        keys: KeyResolver,
        nonces: NonceStore,
        limits: Limits = DEFAULT_LIMITS,
        max_skew: int = DEFAULT_SKEW,
        clock: Clock = time.time,
        hops: HopTrust | None = None,
    ) -> None:
        if not 0 <= max_skew <= 300:
            raise ValueError("max_skew must be within 0..300 seconds")
        self.audience: tuple[str, ...] = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self.audience:
            raise ValueError("a verifier needs the receiver's own name (audience)")
        self._peer_keys = keys
        self._keys: KeyResolver = keys if hops is None else _BlockKeys(keys, hops)
        self._hops = hops
        self._nonces = nonces
        self._limits = limits
        self._skew = max_skew
        # Seconds past exp a nonce is held: the window accepts now == exp + skew, and a store forgets an entry
        # once now >= expires_at, so one second longer than the skew.
        self._hold = max_skew + 1
        self._clock = clock

    def _signed_by_hop(self, message: dict[str, Any], block: SignatureBlock, key: PublicKey, now: float) -> bool:
        """Whether the block itself was made with a trusted hop's key: a gateway speaking for itself has passed
        the gateway, so a required hop record is not missing (SPEC.md §12.4 step 1)."""
        if self._hops is None or isinstance(key, HopKey):
            return isinstance(key, HopKey)
        try:
            return self._hops.keys.resolve(block.kid, message, now=now).kid == block.kid
        except McpsError:
            return False

    async def verify(self, raw: bytes, *, in_reply_to: str | None = None, now: float | None = None) -> VerifiedMessage:
        """Verify a message as received (bytes): steps 1–2 (size, strict parse), then :meth:`verify_parsed`.

        The common message is parsed by :func:`~mcps.core.fastpath.parse_fast`, which returns what the strict
        parse would or hands the bytes to it (it never refuses anything itself), and its canonical form needs no
        type walk; every other message takes :func:`~mcps.core.strict.parse_message` as before.
        """
        message = parse_fast(raw, self._limits)
        if message is None:
            return await self.verify_parsed(parse_message(raw, self._limits), in_reply_to=in_reply_to, now=now)
        return await self.verify_parsed(message, in_reply_to=in_reply_to, now=now, _plain=True)

    async def verify_parsed(
        self,
        message: dict[str, Any],
        *,
        in_reply_to: str | None = None,
        now: float | None = None,
        _plain: bool = False,
    ) -> VerifiedMessage:
        """Verify a message already parsed by :func:`mcps.core.strict.parse_message` (steps 3–10).

        ``_plain`` is internal to :meth:`verify`: the message came from ``parse_fast`` and nobody else holds it.
        """
        at = self._clock() if now is None else now
        kind = message_kind(message)  # 2. the JSON-RPC shape (rest of step 2: the caller's strict parse)
        block = read_block(message, kind)  # 3. block shape
        check_window(block, at, self._skew)  # 4. time window
        check_audience(block, self.audience)  # 5. audience
        check_binding(block, kind, in_reply_to)  # 6. response binding
        key = check_key(self._keys.resolve(block.kid, message, now=at), block)  # 7. key by kid, algorithm match
        check_signature(key, block, message, kind, plain=_plain)  # 8. signature over the canonical form
        hops = self._check_hops(message, kind, block, key, at)  # 8b. hop records, before anything is recorded
        if not await self._nonces.claim(block.kid, block.nonce, expires_at=block.exp + self._hold, now=at):
            raise McpsError(ErrorCode.REPLAY)  # 9. nonce, recorded only now that the signature is known good
        agent = await self._revocation(key, at) if isinstance(key, AgentPublicKey) else None  # 10. revocation
        return VerifiedMessage(message, kind, block, key, agent, hops)

    def _check_hops(
        self, message: dict[str, Any], kind: MessageKind, block: SignatureBlock, key: PublicKey, at: float
    ) -> tuple[VerifiedHop, ...]:
        """Step 8b: the hop records (SPEC.md §12.4), and a gateway-made block only on a response."""
        hops: tuple[VerifiedHop, ...] = ()
        if self._hops is not None:
            required = self._hops.required and not self._signed_by_hop(message, block, key, at)
            hops = verify_hops(
                message, keys=self._hops.keys, names=self.audience, now=at, skew=self._skew, required=required
            )
        if isinstance(key, HopKey) and not kind.is_response:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "a gateway may only answer on the other end's behalf")
        return hops

    async def _revocation(self, key: AgentPublicKey, at: float) -> VerifiedAgent:
        """Step 10: anything on the passport path revoked? Asked of the store on every message (kill switch)."""
        if not isinstance(self._peer_keys, PassportResolver):
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="passport-resolved key without a revocation store")
        await self._peer_keys.check_revocation(key, now=at)
        return key.agent
