"""One secured MCP connection, transport-independent: verify what comes in, sign what goes out.

A :class:`SecureChannel` sees JSON-RPC messages as plain dicts and keeps the state that binds them:

* inbound requests it let through, by id → the request's ``sig`` and its caller, so the SDK's answer is signed
  for that caller and bound to that request (``irt``, SPEC.md §4);
* outbound requests it signed, by id → their ``sig``, so a response is accepted only when bound to it.

Every inbound message becomes exactly one :class:`Inbound` decision:

* ``deliver`` — verified; hand it to the SDK (with the :class:`~mcps.bindings.caller.Caller` for requests);
* ``reply`` — a refused request: write this signed JSON-RPC error (same id, MCPS code) back to the peer. The
  SDK never sees the request, so no tool runs, and the peer is answered instead of left waiting;
* ``deliver`` of a local error (``local``) — one of our requests ends refused: its answer failed during the
  handshake, or was an unverifiable refusal (:meth:`SecureChannel._refuse_response`); the SDK gets a JSON-RPC
  error for that id (the MCPS code, never the forged content), so the waiting caller fails instead of hanging;
* nothing — a refused notification, a response that fails once the peer is verified (its request waits on for a
  verified answer: an injected frame ends nothing), or a response to nothing outstanding: dropped and logged.

Hop members (``mcps/via``, ``mcps/grant``) lie outside every signature: :func:`_without_hop_members` removes them
from whatever is delivered, after a required or carried grant was checked (SPEC.md §9.8).

Refusals are logged on the ``mcps.bindings`` logger at WARNING with their code; the detail stays local.

Deciding is total (SPEC.md §9.1): :meth:`SecureChannel.receive_raw` and :meth:`SecureChannel.receive` return a
decision for every input and raise nothing. A refusal echoes the request's ``id`` only when it can be echoed in a
signed message (:func:`echoable_id`), else ``null``; the members a refusal is addressed and bound with, read from
a message that failed, are each checked before use; and a defect of this module is logged and the message
dropped, never raised into the transport's reader.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from mcps.bindings.caller import Caller
from mcps.bindings.grants import GrantRequirement
from mcps.bindings.policy import PolicyGate, as_gate
from mcps.bindings.tools import ToolGuard
from mcps.core.encoding import b64u_decode, is_b64u
from mcps.core.envelope import (
    DEFAULT_LIFETIME,
    DEFAULT_SKEW,
    MAX_LIFETIME,
    SIG_KEY,
    KeyResolver,
    MessageKind,
    SignatureBlock,
    block_container,
    message_kind,
    signing_input,
    without_hop_members,
)
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.fastpath import parse
from mcps.core.keys import KeyId, PrivateKey, PublicKey
from mcps.core.strict import DEFAULT_LIMITS, MAX_SAFE_INTEGER, Limits
from mcps.core.tools import sign_tool
from mcps.identity.passports import parse_passport
from mcps.identity.resolver import PASSPORT_KEY, AgentPublicKey, PassportResolver, attach_passport
from mcps.policy import Policy
from mcps.stores.nonces import NonceStore
from mcps.verifier import HopTrust, MessageSigner, MessageVerifier, VerifiedMessage

__all__ = ["UNVERIFIABLE_REFUSAL_KEY", "ChannelSecurity", "Inbound", "SecureChannel", "echoable_id", "request_key"]

logger = logging.getLogger("mcps.bindings")

MAX_OUTSTANDING: Final = 10_000
"""Requests in flight per direction; beyond this a new one is refused (MCPS-010) rather than tracked."""

UNKNOWN_PEER: Final = "mcps:unverified-peer"

INTERNAL_ERROR: Final = -32603
"""JSON-RPC "Internal error": the answer sent instead of a result that cannot be signed (not I-JSON)."""

UNVERIFIABLE_REFUSAL_KEY: Final = "mcps_unverifiable_refusal"
"""Set (``true``) in the ``data`` of the local error that fails a request answered by an unverifiable refusal."""
_UNBOUND: Final = frozenset({ErrorCode.AUDIENCE_MISMATCH, ErrorCode.TRANSCRIPT_MISMATCH})
"""Audience of a refusal sent before any peer is known and without a claimed kid to address it to."""

RequestId = str | int


@dataclass(frozen=True, slots=True)
class ChannelSecurity:
    """What one end of a connection needs: its own key and identity, whom it trusts, and its replay store.

    ``identity`` is this end's own name: inbound messages must be addressed to it, or to the kid of ``key``
    (``aud``, :attr:`names`). It defaults to the passport's ``sub`` when there is a passport, else to the key's
    kid — what a peer addresses its replies to when it knows this end only by key.

    ``trusted`` resolves the peer's signing keys: :class:`~mcps.core.envelope.PinnedKeys`, or a
    :class:`~mcps.identity.PassportResolver` (trust anchors, minimum level, revocation) for peers that present
    passports. ``passport`` (and ``chain``) is this end's own passport, attached to every message it signs; its
    ``cnf`` key must be ``key``. ``grants`` makes a server require per-call grants (:mod:`mcps.bindings.grants`).
    ``policy`` (a :class:`~mcps.policy.Policy` or a :class:`~mcps.bindings.policy.PolicyGate`) decides each verified
    request and filters ``tools/list`` answers (:mod:`mcps.bindings.policy`). ``gateways`` are the intermediaries
    this end trusts to countersign what they forward (SPEC.md §12.4): their hop records are verified, a grant must
    be the one the last hop attached, and — with ``required`` — every message must have come through one.
    """

    key: PrivateKey
    trusted: KeyResolver
    nonces: NonceStore
    identity: str | None = None
    passport: str | None = None
    chain: tuple[str, ...] = ()
    grants: GrantRequirement | None = None
    policy: PolicyGate | Policy | None = None
    gateways: HopTrust | None = None
    limits: Limits = DEFAULT_LIMITS
    lifetime: int = DEFAULT_LIFETIME
    max_skew: int = DEFAULT_SKEW
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        if isinstance(self.chain, str) or not all(isinstance(token, str) for token in self.chain):
            raise ValueError("chain must be a sequence of passport tokens (strings)")
        object.__setattr__(self, "chain", tuple(self.chain))
        if self.policy is not None:
            object.__setattr__(self, "policy", as_gate(self.policy))
        if self.passport is not None:
            claims = parse_passport(self.passport).claims  # raises McpsError for a malformed passport
            if claims.key.kid != self.key.kid:
                raise ValueError("the passport's cnf key is not this end's key")
            if self.identity is None:
                object.__setattr__(self, "identity", claims.sub)
            elif self.identity != claims.sub:
                raise ValueError(f"identity {self.identity!r} is not the passport's sub {claims.sub!r}")
        elif self.chain:
            raise ValueError("a chain needs a passport")
        # What this end is addressed as must be what its passport checks and its grants name (aud).
        if isinstance(self.trusted, PassportResolver) and self.trusted.audience != self.audience:
            raise ValueError(f"trusted.audience {self.trusted.audience!r} is not this end's identity {self.audience!r}")
        if self.grants is not None and self.grants.verifier.audience != self.audience:
            raise ValueError(
                f"grants.verifier.audience {self.grants.verifier.audience!r} is not this end's identity "
                f"{self.audience!r}"
            )

    @property
    def audience(self) -> str:
        """This end's identity: its passport's ``sub``, the ``identity`` given, else its key's kid."""
        return self.identity if self.identity is not None else self.key.kid

    @property
    def names(self) -> tuple[str, ...]:
        """What a peer may address this end by (``aud``, SPEC.md §9.2): its identity and its own key's kid.

        A message addressed to the thumbprint of a key is addressed to whoever holds that key: a server that knows
        this agent only by its pinned key answers it by kid even when the agent carries a passport.
        """
        return (self.audience,) if self.audience == self.key.kid else (self.audience, self.key.kid)


@dataclass(frozen=True, slots=True)
class Inbound:
    """The decision on one inbound message: ``deliver`` (with ``caller`` for a request), or ``reply``, or neither
    for a drop. ``local`` marks a delivered JSON-RPC error made here for a refused response (never received)."""

    deliver: dict[str, Any] | None = None
    caller: Caller | None = None
    reply: dict[str, Any] | None = None
    local: bool = False


_DROP: Final = Inbound()


@dataclass(frozen=True, slots=True)
class _Answer:
    sig: str
    audience: str
    method: str
    caller: Caller | None = None


class SecureChannel:
    """The per-connection state machine. ``peer`` is the audience of what we send on our own initiative.

    A client knows its peer (the server's identity); when the server's key resolves through a passport, that
    passport's agent id must be the peer (MCPS-029 otherwise). A server passes ``peer=None``: the first verified
    caller becomes the connection's peer (its agent id, or its kid without a passport), and a later message
    signed by another key is refused (MCPS-029), so server→client requests and notifications always have one
    well-defined audience.

    Tools (SPEC.md §10): every ``tools/list`` result this end answers has each tool signed with its key. A client
    given a :class:`~mcps.bindings.tools.ToolGuard` (``tools=``) has each verified ``tools/list`` result
    filtered by it and each ``tools/call`` checked by it before sending (a refusal raises :class:`McpsError`).
    """

    failed_answer_ends_request: ClassVar[bool] = False
    """Whether a response that fails still ends the wait for its request after the handshake (it does not, by
    default: :meth:`_refuse_response`). True for the clients of :mod:`mcps.bindings.http_client` and
    :class:`~mcps.bindings.SignedTransport`, whose inner SDK transport answers a failed exchange with an unsigned
    error of its own, and on which nobody but the server (or whoever holds the exchange) writes."""

    def __init__(self, security: ChannelSecurity, *, peer: str | None, tools: ToolGuard | None = None) -> None:
        self._security = security
        self._signer = MessageSigner(security.key, lifetime=security.lifetime, clock=security.clock)
        self._verifier = MessageVerifier(
            audience=security.names,
            keys=security.trusted,
            nonces=security.nonces,
            limits=security.limits,
            max_skew=security.max_skew,
            clock=security.clock,
            hops=security.gateways,
        )
        self._peer = peer
        self._learn_peer = peer is None
        self._peer_signer: tuple[str, str] | None = None  # (kid, identity) of the first verified signer
        self._answers: dict[RequestId, _Answer] = {}  # inbound requests awaiting our answer
        self._awaiting: dict[RequestId, str] = {}  # our requests awaiting the peer's answer: id -> sig
        self._tools = tools
        self._listings: set[RequestId] = set()  # our tools/list requests awaiting their answer (with a guard)

    @property
    def limits(self) -> Limits:
        return self._security.limits

    # --- inbound ------------------------------------------------------------------------------------------------

    async def receive_raw(self, raw: bytes) -> Inbound:
        """Decide on one frame as received: size and strict parse first, so the SDK never parses refused bytes.

        Total: every frame gets a decision; nothing is raised."""
        try:
            message = parse(raw, self._security.limits)  # the strict parse (its fast path when it applies)
        except McpsError as error:
            return _total(functools.partial(self._refuse_unparsed, raw, error))
        return await self.receive(message)

    async def receive(self, message: dict[str, Any]) -> Inbound:
        """Decide on one message (strictly parsed, or as an SDK transport parsed it). Total: nothing is raised."""
        try:
            return await self._decide(message)
        except Exception:  # noqa: BLE001 - a reader is total: a defect here must not end the connection
            return _internal_error()

    async def _decide(self, message: dict[str, Any]) -> Inbound:
        try:
            kind = message_kind(message)
        except McpsError as error:
            return self._refuse_request(message, error) if _looks_like_request(message) else self._drop(error)
        if kind is MessageKind.REQUEST:
            return await self._receive_request(message)
        if kind is MessageKind.NOTIFICATION:
            return await self._receive_notification(message)
        return await self._receive_response(message)

    async def _receive_request(self, message: dict[str, Any]) -> Inbound:
        request_id: RequestId = message["id"]
        if request_id in self._answers:
            # The request holding this id gets its answer; a second answer for one id would break JSON-RPC and
            # could race the real one, so the newcomer (typically a replay) is dropped, not answered.
            return self._drop(McpsError(ErrorCode.REPLAY, detail=f"request id {_shown(request_id)} already in flight"))
        try:
            if len(self._answers) >= MAX_OUTSTANDING:
                raise McpsError(ErrorCode.RATE_LIMITED, detail="too many requests in flight")
            verified = _without_hop_members(await self._verifier.verify_parsed(message))
            caller = self._admit(verified.kid, verified)
            if self._security.grants is not None and message["method"] == "tools/call":
                # The grant as received (a hop member): checked here, handed on only as the caller's grant.
                hops = verified.hops
                grant = await self._security.grants.check(
                    message,
                    sender=(caller.identity, caller.kid),
                    issuer=hops[-1].kid if hops else None,
                    now=self._security.clock(),
                )
                caller = dataclasses.replace(caller, grant=grant)
            if self._security.policy is not None:  # MCPS-009, 010, 016 or 030: the handler never runs
                gate = as_gate(self._security.policy)
                await gate.check(message, caller, server=self._security.audience, now=self._security.clock())
        except McpsError as error:
            if error.code is ErrorCode.REPLAY:  # the original was (or is being) answered: no second answer
                return self._drop(error)
            return self._refuse_request(message, error)
        # Answers go to the connection's peer: a server learnt it from this caller, a client knows its server's.
        self._answers[request_id] = _Answer(verified.sig, self._peer or caller.audience, message["method"], caller)
        return Inbound(deliver=verified.message, caller=caller)

    async def _receive_notification(self, message: dict[str, Any]) -> Inbound:
        try:
            verified = _without_hop_members(await self._verifier.verify_parsed(message))
            caller = self._admit(verified.kid, verified)
        except McpsError as error:
            return self._drop(error)
        if message["method"] == "notifications/cancelled":  # the SDK will never answer that request
            params = message.get("params")
            cancelled = request_key(params.get("requestId") if isinstance(params, dict) else None)
            if cancelled is not None:  # `true` is not request 1 (True == 1 as a dict key in Python)
                self._answers.pop(cancelled, None)
        if self._tools is not None:
            self._tools.notification(message)
        return Inbound(deliver=verified.message, caller=caller)

    async def _receive_response(self, message: dict[str, Any]) -> Inbound:
        """A response ends the wait for its request only once it verifies, bound to that request (SPEC.md §9.1).

        Once the peer is verified, one that fails — unsigned, forged, bound to another request, replayed, from
        another key — is dropped and logged, and the request still waits for its genuine answer: otherwise anyone
        who can inject a frame with a pending id (or ``true`` for id 1) could cancel any request. Two exceptions
        (:meth:`_refuse_response`): before anything from the peer has verified, and an unverifiable refusal, an
        error signed by the peer's own key (:meth:`_signed_by_peer`), which ends the request with MCPS-012.
        """
        request_id = request_key(message.get("id"))
        request_sig = self._awaiting.get(request_id) if request_id is not None else None
        if request_id is None or request_sig is None:
            orphan = McpsError(ErrorCode.TRANSCRIPT_MISMATCH, detail=f"no request {_shown(message.get('id'))} awaiting")
            return self._drop(orphan)
        try:
            verified = _without_hop_members(await self._verifier.verify_parsed(message, in_reply_to=request_sig))
            if not verified.gateway_made:  # a gateway's refusal or filtered listing does not make it the peer
                self._admit(verified.kid, verified)
            tool_key = verified.key
            if verified.gateway_made and "result" in verified.message:
                if request_id not in self._listings:  # a gateway may refuse and filter for the server, not answer
                    raise McpsError(ErrorCode.UNKNOWN_KEY, "a gateway may not answer for this server")
                tool_key = self._tool_key(message, verified.key)
        except McpsError as error:
            if error.code in _UNBOUND and message_kind(message) is MessageKind.ERROR and self._signed_by_peer(message):
                _log_refusal(error, "response", request_id)
                self._forget_request(request_id)
                return self._unverifiable_refusal(request_id, error)
            return self._refuse_response(request_id, error)
        if self._awaiting.get(request_id) != request_sig:  # answered or cancelled while this one was verified
            return self._drop(McpsError(ErrorCode.TRANSCRIPT_MISMATCH, detail="request no longer awaiting"))
        listing = self._forget_request(request_id)  # verified: this is the answer, whatever the guard says of it
        delivered = verified.message
        if listing and self._tools is not None and "result" in delivered:
            try:
                delivered = self._tools.filter_result(delivered, tool_key)
            except McpsError as error:  # e.g. tools is not a list: the listing fails with MCPS-008
                _log_refusal(error, "response", request_id)
                return _local_error(request_id, error)
        return Inbound(deliver=delivered)

    def _tool_key(self, message: dict[str, Any], gateway_key: PublicKey) -> PublicKey:
        """The server's own key for the tools of a listing a gateway filtered and re-signed (SPEC.md §12.4a): each
        tool keeps the server's ``mcps/tool-sig``, whose key is resolved through the server's trust. When it cannot
        be (or the tools name none), the gateway's key is returned, which verifies no tool: every tool is blocked."""
        tools = (message.get("result") or {}).get("tools")
        first = tools[0] if isinstance(tools, list) and tools and isinstance(tools[0], dict) else {}
        block = (first.get("_meta") or {}).get("mcps/tool-sig") if isinstance(first.get("_meta"), dict) else None
        kid = block.get("kid") if isinstance(block, dict) else None
        if not isinstance(kid, str) or not is_b64u(kid, min_bytes=32, max_bytes=32):
            return gateway_key
        try:
            return self._security.trusted.resolve(KeyId(kid), message, now=self._security.clock())
        except McpsError as error:
            _log_refusal(error, "listing's tool key", message.get("id"))
            return gateway_key

    def _forget_request(self, request_id: RequestId) -> bool:
        """Our request ``request_id`` is answered: stop waiting. Returns whether it was a ``tools/list``."""
        self._awaiting.pop(request_id, None)
        listing = request_id in self._listings
        self._listings.discard(request_id)
        return listing

    def _refuse_response(self, request_id: RequestId, error: McpsError) -> Inbound:
        """A response to our pending request ``request_id`` that failed (SPEC.md §9.1, "Responses that fail").

        Once a message of the peer has verified on this connection, it is dropped and logged and the request waits
        on (over HTTP the POST that carried it is answered with a refusal, :class:`~mcps.bindings.http._HttpChannel`).
        Before that — the handshake, which only a client has in flight, on a connection only its server writes
        to — it fails the request at once with its code: a wrong pinned key, or a process that is no mcps server,
        must not leave ``initialize`` waiting forever, and nothing verified is there yet to protect. A channel
        whose every inbound message comes back on an exchange of its own, or is made up by the SDK's transport for
        a request whose exchange failed (:attr:`failed_answer_ends_request`), fails the request in every case.
        """
        if self._peer_signer is None or self.failed_answer_ends_request:
            self._forget_request(request_id)
            _log_refusal(error, "response", request_id)
            return _local_error(request_id, error)
        return self._drop(error, "response", request_id)

    def _signed_by_peer(self, message: dict[str, Any]) -> bool:
        """Whether ``message`` carries a well-formed block, in its time window, whose signature verifies with a key
        this end trusts for its peer. Nothing else is checked (not ``aud``, not ``irt``, no nonce): it only tells
        an unverifiable refusal by the peer from a forgery (SPEC.md §9.1); the message is never accepted."""
        try:
            container = block_container(message)
            block = SignatureBlock.parse(container.get(SIG_KEY) if container is not None else None)
            now = self._security.clock()
            skew = self._security.max_skew
            if not 0 < block.exp - block.iat <= MAX_LIFETIME or block.iat > now + skew or block.exp < now - skew:
                return False
            key = self._security.trusted.resolve(block.kid, message, now=now)
            if key.kid != block.kid or key.alg is not block.alg:
                return False
            if isinstance(key, AgentPublicKey) and not self._learn_peer and key.agent.agent_id != self._peer:
                return False
            if self._peer_signer is not None and self._peer_signer[0] != block.kid:
                return False
            key.verify(b64u_decode(block.sig), signing_input(message))
        except McpsError:
            return False
        return True

    def _unverifiable_refusal(self, request_id: RequestId, error: McpsError) -> Inbound:
        """Our request failed: the peer signed a refusal for its id that is not bound to it (SPEC.md §9.1)."""
        who = "client" if self._learn_peer else "server"
        refused = McpsError(
            ErrorCode.TRANSCRIPT_MISMATCH,
            f"the {who} refused this request (unverifiable refusal)",
            detail=f"a refusal signed by the {who} arrived for this request but is not bound to it ({error.code.mcps}):"
            " the request was probably stripped of its signature or re-signed on the way; its content is not used",
        )
        logger.warning("mcps: request id=%s: %s", _shown(request_id), refused.diagnostics())
        local = {**refused.to_jsonrpc_error()}
        local["data"] = {**local["data"], UNVERIFIABLE_REFUSAL_KEY: True}
        return Inbound(deliver={"jsonrpc": "2.0", "id": request_id, "error": local}, local=True)

    def _admit(self, kid: str, verified: VerifiedMessage) -> Caller:
        """Pin the connection to the first verified signer; refuse any other signer afterwards."""
        caller = Caller(verified.kid, verified.key, verified)
        if verified.agent is not None and not self._learn_peer and verified.agent.agent_id != self._peer:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "signer's passport is not this connection's peer")
        signer = (kid, caller.identity)
        if self._peer_signer is None:
            self._peer_signer = signer
            if self._learn_peer:
                self._peer = caller.identity
        elif signer != self._peer_signer:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "signer is not this connection's peer")
        return caller

    # --- refusals -----------------------------------------------------------------------------------------------

    def _refuse_unparsed(self, raw: bytes, error: McpsError) -> Inbound:
        """A frame that failed the strict parse. Its id, sig, kid and passport are read leniently
        (:func:`_salvage`) only to address the refusal; nothing else in it is used, and it never reaches the SDK."""
        salvaged = _salvage(raw) if len(raw) <= self._security.limits.max_bytes else {}
        if _looks_like_request(salvaged):
            return self._refuse_request(salvaged, error)
        request_id = echoable_id(salvaged.get("id"))
        if "method" not in salvaged and request_id is not None and request_id in self._awaiting:
            # A response to one of our requests that cannot be read: dropped, and the request waits on for one
            # that verifies (an injected frame must not end it).
            return self._refuse_response(request_id, error)
        return self._drop(error)

    def _refuse_request(self, message: dict[str, Any], error: McpsError) -> Inbound:
        """A signed refusal of ``message``: total for any ``message`` (SPEC.md §9.1).

        Each member used is checked first: the id is echoed only when :func:`echoable_id` allows, the claimed
        ``sig`` binds the refusal only when it is well-formed, and the audience is the verified peer or an
        identity checked by :func:`_claimed_identity`. So the refusal is always I-JSON and signing it cannot fail.
        """
        request_id = echoable_id(message.get("id"))
        _log_refusal(error, "request", message.get("id"))
        meta = _claimed_meta(message)
        claimed = meta.get(SIG_KEY)
        claimed = claimed if isinstance(claimed, dict) else {}
        claimed_sig = claimed.get("sig")
        bound_to = claimed_sig if isinstance(claimed_sig, str) and is_b64u(claimed_sig, max_bytes=64) else None
        audience = self._peer or _claimed_identity(meta.get(PASSPORT_KEY), claimed.get("kid"))
        refusal = {"jsonrpc": "2.0", "id": request_id, "error": error.to_jsonrpc_error()}
        return Inbound(reply=self._sign(refusal, audience=audience, in_reply_to=bound_to))

    def _drop(self, error: McpsError, what: str = "message", request_id: object = None) -> Inbound:
        _log_refusal(error, what, request_id)
        return _DROP

    # --- outbound -----------------------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Sign one outbound message from the SDK, or return ``None`` (logged) when it cannot be sent safely."""
        kind = message_kind(message)
        if kind.is_response:
            request_id = request_key(message.get("id"))
            answer = self._answers.get(request_id) if request_id is not None else None
            if answer is None or request_id is None:
                logger.error("mcps: not sending a response to %s: no verified request with that id", _shown(request_id))
                return None
            if answer.method == "tools/list" and kind is MessageKind.RESULT:
                if self._security.policy is not None and answer.caller is not None:  # only what this caller may call
                    gate = as_gate(self._security.policy)
                    message = gate.filter_listing(message, answer.caller, server=self._security.audience)
                message = self._sign_tools(message)
            del self._answers[request_id]
            try:
                return self._sign(message, audience=answer.audience, in_reply_to=answer.sig)
            except McpsError as error:  # e.g. a tool returned a lone surrogate (a file name read with surrogateescape)
                logger.error(  # noqa: TRY400 - the detail is the code, not a traceback
                    "mcps: the answer to request %s cannot be signed (%s); answering with an internal error",
                    _shown(request_id),
                    error.diagnostics(),
                )
                internal = {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": INTERNAL_ERROR, "message": "Internal error"},
                }
                return self._sign(internal, audience=answer.audience, in_reply_to=answer.sig)
        if self._peer is None:
            logger.error("mcps: not sending %s before a verified peer is known", message.get("method"))
            return None
        if kind is MessageKind.REQUEST and len(self._awaiting) >= MAX_OUTSTANDING:
            logger.error("mcps: not sending %s: too many requests in flight", message.get("method"))
            return None
        if kind is MessageKind.REQUEST and self._tools is not None:
            self._tools.check_request(message)  # raises McpsError: refused locally, never sent
            if message["method"] == "tools/list":
                self._listings.add(message["id"])
        signed = self._sign(message, audience=self._peer)
        if kind is MessageKind.REQUEST:
            self._awaiting[message["id"]] = signed["params"]["_meta"][SIG_KEY]["sig"]
        elif message["method"] == "notifications/cancelled":  # we stopped waiting for that answer
            params = message.get("params")
            cancelled = request_key(params.get("requestId") if isinstance(params, dict) else None)
            if cancelled is not None:
                self._forget_request(cancelled)
        return signed

    def _sign(self, message: dict[str, Any], *, audience: str, in_reply_to: str | None = None) -> dict[str, Any]:
        """Sign ``message`` for ``audience``, carrying this end's passport (and chain) when it has one."""
        passport = self._security.passport
        if passport is not None:
            message = attach_passport(message, passport, self._security.chain)
        return self._signer.sign(message, audience=audience, in_reply_to=in_reply_to)

    def _sign_tools(self, message: dict[str, Any]) -> dict[str, Any]:
        """A ``tools/list`` result with each tool definition signed by this end's key (SPEC.md §10.1)."""
        result = message["result"]
        tools = result.get("tools")
        if not isinstance(tools, list):
            return message
        now = self._security.clock()
        signed = []
        for tool in tools:
            try:
                signed.append(sign_tool(tool, self._security.key, now=now))
            except (McpsError, ValueError, TypeError, AttributeError):  # sent unsigned: clients block it
                logger.error("mcps: a tools/list entry is not a valid tool definition; sent unsigned")  # noqa: TRY400
                signed.append(tool)
        return {**message, "result": {**result, "tools": signed}}


def _local_error(request_id: RequestId, error: McpsError) -> Inbound:
    """A JSON-RPC error for our request ``request_id``, made here (unsigned, never sent): it fails that request."""
    return Inbound(deliver={"jsonrpc": "2.0", "id": request_id, "error": error.to_jsonrpc_error()}, local=True)


def _without_hop_members(verified: VerifiedMessage) -> VerifiedMessage:
    """``verified`` with its message stripped of the hop members ``mcps/via`` and ``mcps/grant`` (SPEC.md §9.8).

    The one place where a receiver deals with hop members: they lie outside every signature (§4.3) and the gateway
    that adds them is not specified yet, so nothing a hop added reaches the SDK or the application — not in
    ``_meta``, not in :attr:`Caller.message <mcps.bindings.Caller.message>`. A grant a server requires or received
    was verified from the message as received (:class:`~mcps.bindings.GrantRequirement`) and reaches the handler
    only as ``Caller.grant``. (Verifying ``mcps/via`` before removing it belongs here.)
    """
    message = without_hop_members(verified.message)
    return verified if message is verified.message else dataclasses.replace(verified, message=message)


def request_key(value: object) -> RequestId | None:
    """``value`` when it is a JSON-RPC request id — a string or an integer, never a boolean — else ``None``.

    Every table keyed by request id goes through this: in Python ``True == 1`` and ``hash(True) == hash(1)``, so a
    peer's ``true`` would otherwise find, answer or cancel request 1.
    """
    kind = type(value)
    return value if kind is str or kind is int else None  # type: ignore[return-value]


def echoable_id(value: object) -> str | int | None:
    """``value`` when a signed refusal can echo it as a JSON-RPC id, else ``None`` (SPEC.md §9.1).

    Echoable: a string without lone surrogates, or an integer (not a boolean) within ±(2^53−1) — what the
    canonical form (RFC 8785) can write. Anything else (a float, ``true``, an object, a huge integer, a string with
    a lone surrogate, an id member that appeared twice) is answered with ``null``, as JSON-RPC 2.0 does for an id
    that cannot be determined.
    """
    if type(value) is int:
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return value
    return None


def _looks_like_request(message: dict[str, Any]) -> bool:
    """Answered with a refusal: it has ``method`` and an ``id`` member (whatever their values)."""
    return "method" in message and "id" in message


class _Unreadable:
    """A member of a refused frame that the lenient reading could not read unambiguously (used for nothing)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unreadable>"


_UNREADABLE: Final = _Unreadable()


def _unambiguous(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    counts = Counter(name for name, _ in pairs)
    return {name: value if counts[name] == 1 else _UNREADABLE for name, value in pairs}


def _lenient_integer(text: str) -> int | _Unreadable:
    if len(text) > 17:  # longer than any safe integer; int() of a huge literal is slow or refused
        return _UNREADABLE
    number = int(text)
    return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else _UNREADABLE


def _lenient_float(text: str) -> float | _Unreadable:
    return _UNREADABLE if len(text) > 64 else float(text)


def _lenient_constant(_name: str) -> _Unreadable:
    return _UNREADABLE


_LENIENT: Final = json.JSONDecoder(
    object_pairs_hook=_unambiguous,
    parse_int=_lenient_integer,
    parse_float=_lenient_float,
    parse_constant=_lenient_constant,
)


def _salvage(raw: bytes) -> dict[str, Any]:
    """A frame that failed the strict parse, read leniently to address its refusal, or ``{}`` when unreadable.

    A member that appears twice in an object is unreadable, as are unsafe integers and ``NaN``; every value read
    here is still checked where it is used (:func:`echoable_id`, :func:`is_b64u`, :func:`_claimed_identity`).
    """
    try:
        salvaged = _LENIENT.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8 (a ValueError too), not JSON, or absurdly deep
        return {}
    return salvaged if isinstance(salvaged, dict) else {}


def _claimed_meta(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta if isinstance(meta, dict) else {}


def _claimed_identity(passport: object, kid: object) -> str:
    """Whom to address a refusal to before any peer is verified: the ``sub`` of the passport the refused request
    claims, else the ``kid`` it claims, else :data:`UNKNOWN_PEER`. Unverified: used for nothing but that."""
    if passport is not None:
        try:
            return parse_passport(passport).claims.sub
        except McpsError:
            pass
    if isinstance(kid, str) and is_b64u(kid, min_bytes=32, max_bytes=32):
        return kid
    return UNKNOWN_PEER


def _shown(request_id: object) -> str:
    """An id for a log line: at most 64 characters of its ``repr`` (ids come from peers)."""
    shown = repr(request_id)
    return shown if len(shown) <= 64 else shown[:60] + "...'"


def _log_refusal(error: McpsError, what: str, request_id: object) -> None:
    logger.warning("mcps refused %s id=%s: %s", what, _shown(request_id), error.diagnostics())


def _internal_error() -> Inbound:
    """A defect of the binding while deciding on a message: logged with its traceback (locally), message dropped."""
    logger.error("mcps: internal error while checking an inbound message; dropped", exc_info=True)
    return _DROP


def _total(decide: Callable[[], Inbound]) -> Inbound:
    try:
        return decide()
    except Exception:  # noqa: BLE001 - a reader is total: a defect here must not end the connection
        return _internal_error()
