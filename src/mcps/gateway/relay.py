"""What the gateway does with each message, in both directions (SPEC.md §12.5–12.7), independent of HTTP.

From a client (:meth:`Relay.from_client`): authenticate → session peer → tool pins → policy → audit → grant →
countersign. Each stage either passes or raises one :class:`~mcps.core.errors.McpsError`; a refusal becomes a
reply to the client (signed by the gateway) and never reaches the upstream. From an upstream
(:meth:`Relay.from_upstream`): verify (or sign on an unsigned upstream's behalf) → tools filter → audit →
countersign; a failed answer becomes the gateway's refusal for that request, anything else failed is dropped.

The session state (:class:`Session`) binds the two directions: requests forwarded and awaiting the upstream's
answer, the upstream's requests awaiting the client's answer, and the session's one verified peer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mcps.audit.entry import AuditEvent, json_hash
from mcps.audit.log import AuditLog
from mcps.bindings.channel import echoable_id
from mcps.core.encoding import is_b64u
from mcps.core.envelope import (
    GRANT_KEY,
    SIG_KEY,
    VIA_KEY,
    KeyResolver,
    MessageKind,
    block_container,
    copy_with_container,
    message_kind,
    sign_message,
)
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.hops import countersign
from mcps.core.keys import KeyId, PrivateKey
from mcps.core.strict import Limits
from mcps.gateway.tools import UpstreamTools
from mcps.identity.grants import mint_grant
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import CHAIN_KEY, PASSPORT_KEY, attach_passport
from mcps.identity.revocation import RevocationKey, RevocationStore
from mcps.policy.model import CallContext, Decision, Policy, Principal
from mcps.stores.nonces import NonceStore
from mcps.verifier import MessageVerifier, VerifiedMessage

__all__ = ["UNSIGNED_IDENTITY", "ClientOutcome", "Exchange", "Peer", "Relay", "Route", "Session"]

logger = logging.getLogger("mcps.gateway")

UNSIGNED_IDENTITY: Final = "mcps:unsigned"
"""The identity of an unsigned client a gateway admits (SPEC.md §12.7)."""
MAX_IN_FLIGHT: Final = 10_000
RequestId = str | int
MCPS_PREFIX: Final = "mcps/"


@dataclass(frozen=True, slots=True)
class Peer:
    """The verified client of a session: who it is to the policy, and the names the upstream may address it by."""

    principal: Principal
    address: str
    """What answers to this client are addressed to (``aud``): its agent id, its kid, or the gateway itself."""
    names: frozenset[str]
    """Every ``aud`` that names this client (§9.2: its identity and its key's kid)."""

    @property
    def signed(self) -> bool:
        return self.principal.signed


@dataclass(slots=True)
class Exchange:
    """One request forwarded to the upstream, awaiting its answer."""

    request_id: RequestId
    method: str
    tool: str | None
    peer: Peer
    client_sig: str | None
    """The ``sig`` the client's request carried (``None`` for an unsigned client): what our answer binds to."""
    forwarded_sig: str | None
    """The ``sig`` of the request as forwarded: what the upstream's answer binds to."""
    started: float
    args_hash: str | None = None


@dataclass(slots=True)
class Session:
    """One client session on one upstream (a 2025-11-25 session, or a single 2026-07-28 exchange)."""

    peer: Peer | None = None
    exchanges: dict[RequestId, Exchange] = field(default_factory=dict)
    upstream_requests: dict[RequestId, str] = field(default_factory=dict)
    """The upstream's requests to the client, by id → the ``sig`` the client's answer must be bound to."""


@dataclass(frozen=True, slots=True)
class Route:
    """One upstream as the relay sees it."""

    name: str
    identity: str
    agents: KeyResolver
    """How the gateway resolves the keys of this upstream's clients (passports with ``aud`` = ``identity``)."""
    trust: KeyResolver | None
    """How the gateway resolves the upstream's keys; ``None`` for an unsigned upstream."""
    tools: UpstreamTools

    @property
    def signed(self) -> bool:
        return self.trust is not None


@dataclass(frozen=True, slots=True)
class ClientOutcome:
    """Either ``forward`` (the message for the upstream) or ``reply`` (a refusal for the client)."""

    forward: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    error: McpsError | None = None


@dataclass(frozen=True, slots=True)
class PinnedAgent:
    """What the gateway grants an agent known by a pinned key."""

    name: str | None
    level: int
    scopes: frozenset[str]


class Relay:
    """The gateway's message logic, shared by every front and upstream."""

    def __init__(
        self,
        *,
        identity: str,
        key: PrivateKey,
        passport: str | None,
        nonces: NonceStore,
        revocations: RevocationStore,
        audit: AuditLog,
        policy: Policy,
        visible: Callable[[Principal, str, list[dict[str, Any]]], list[dict[str, Any]]],
        pinned_agents: Mapping[KeyId, PinnedAgent],
        admit_unsigned: bool,
        limits: Limits,
        skew: int = 30,
        log_arguments: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.key = key
        self._passport = passport
        self._nonces = nonces
        self._revocations = revocations
        self._audit = audit
        self._policy = policy
        self._visible = visible
        self._pinned = dict(pinned_agents)
        self._admit_unsigned = admit_unsigned
        self.limits = limits
        self._skew = skew
        self._log_arguments = log_arguments
        self._clock = clock
        self._self_peer_names = frozenset({identity, key.kid})

    def reconfigure(
        self,
        *,
        policy: Policy,
        visible: Callable[[Principal, str, list[dict[str, Any]]], list[dict[str, Any]]],
        pinned_agents: Mapping[KeyId, PinnedAgent],
    ) -> None:
        """A reload (SIGHUP): messages decided from now on use these; decisions under way finish as they began."""
        self._policy, self._visible, self._pinned = policy, visible, dict(pinned_agents)

    # --- from a client ------------------------------------------------------------------------------------------

    async def from_client(self, route: Route, session: Session, message: dict[str, Any]) -> ClientOutcome:
        """Decide on one strictly parsed message from a client of ``route``."""
        try:
            kind = message_kind(message)
        except McpsError as error:
            return self._refused(route, session, message, None, error)
        container = block_container(message) or {}
        try:
            if VIA_KEY in container or GRANT_KEY in container:
                raise McpsError(ErrorCode.HOP_INVALID, detail="a client's message carries hop members")
            in_reply_to = None
            if kind.is_response:
                answered = message.get("id")
                bound = session.upstream_requests.get(answered) if type(answered) in (str, int) else None  # type: ignore[arg-type]
                if bound is None:
                    raise McpsError(ErrorCode.TRANSCRIPT_MISMATCH, detail="answer to no request of the upstream")
                in_reply_to = bound or None  # "" for a request that was not signed: nothing to bind to
            if SIG_KEY in container:
                peer, client_sig = await self._authenticate(route, message, in_reply_to), container[SIG_KEY]["sig"]
            elif self._admit_unsigned:
                peer, client_sig = self._unsigned_peer(), None
            else:
                raise McpsError(ErrorCode.SIGNATURE_MISSING)
            self._pin_peer(session, peer)
            if kind.is_response:
                session.upstream_requests.pop(message["id"], None)  # answered: only a verified answer consumes it
            exchange, receipt = None, None
            if kind is MessageKind.REQUEST:
                exchange, receipt = await self._authorize(route, session, message, peer, client_sig)
            forward = self._forwarded(route, message, peer, exchange, receipt)
        except _AuditedRefusal as refusal:
            return self._refused(route, session, message, kind, refusal.error, receipt=refusal.receipt)
        except McpsError as error:
            if error.code is ErrorCode.REVOKED:  # an authenticated refusal: the kill switch at work is recorded
                await self._record_refusal(route, message, error)
            return self._refused(route, session, message, kind, error)
        if exchange is not None:
            exchange.forwarded_sig = _sig_of(forward)
            session.exchanges[exchange.request_id] = exchange
        return ClientOutcome(forward=forward)

    async def _authenticate(self, route: Route, message: dict[str, Any], in_reply_to: str | None) -> Peer:
        verifier = MessageVerifier(
            audience=route.identity,
            keys=route.agents,
            nonces=self._nonces,
            limits=self.limits,
            max_skew=self._skew,
            clock=self._clock,
        )
        verified = await verifier.verify_parsed(message, in_reply_to=in_reply_to)
        return await self._peer_of(verified)

    async def _peer_of(self, verified: VerifiedMessage) -> Peer:
        kid = verified.kid
        agent = verified.agent
        if agent is not None:
            principal = Principal.from_agent(agent, kid)
            return Peer(principal, agent.agent_id, frozenset({agent.agent_id, kid}))
        pinned = self._pinned.get(kid)
        if pinned is None:  # pragma: no cover - the resolver only resolves configured keys
            raise McpsError(ErrorCode.UNKNOWN_KEY)
        name = pinned.name or kid
        now = self._clock()
        local = [RevocationKey.local("sub", name), RevocationKey.local("sub", kid)]
        if await self._revocations.is_revoked(local, now=now):  # the kill switch reaches pinned agents too
            raise McpsError(ErrorCode.REVOKED, detail=f"pinned agent {name}")
        principal = Principal(identity=name, kid=kid, level=TrustLevel(pinned.level), scopes=pinned.scopes)
        return Peer(principal, kid, frozenset({kid}))

    def _unsigned_peer(self) -> Peer:
        return Peer(Principal.unsigned(UNSIGNED_IDENTITY), self.identity, self._self_peer_names)

    @staticmethod
    def _pin_peer(session: Session, peer: Peer) -> None:
        if session.peer is None:
            session.peer = peer
        elif (session.peer.principal.kid, session.peer.address) != (peer.principal.kid, peer.address):
            raise McpsError(ErrorCode.UNKNOWN_KEY, "signer is not this session's peer")

    async def _authorize(
        self, route: Route, session: Session, message: dict[str, Any], peer: Peer, client_sig: str | None
    ) -> tuple[Exchange, dict[str, Any]]:
        """Tool pins and policy for one request; the decision is in the audit log before this returns."""
        if len(session.exchanges) >= MAX_IN_FLIGHT:
            raise McpsError(ErrorCode.RATE_LIMITED, detail="too many requests in flight on this session")
        method: str = message["method"]
        params = message.get("params") or {}
        tool = params.get("name") if method == "tools/call" else None
        arguments = params.get("arguments") if method == "tools/call" else None
        arguments = arguments if isinstance(arguments, dict) else {}
        exchange = Exchange(message["id"], method, tool if isinstance(tool, str) else None, peer, client_sig, None, 0.0)
        if method == "tools/call":
            exchange.args_hash = json_hash(arguments)
        try:
            if method == "tools/call":
                route.tools.check_call(tool)
            call = CallContext(peer.principal, route.name, method, exchange.tool, arguments)
            decision = await self._policy.decide(call, now=self._clock())
        except McpsError as error:
            decision = Decision.deny(error.code, error.message, error.detail or "", ())
        receipt = await self._record(route, peer, exchange, decision, arguments)
        if not decision.allowed:
            raise _AuditedRefusal(decision.error(), receipt)
        exchange.started = time.monotonic()
        return exchange, receipt

    def _forwarded(
        self,
        route: Route,
        message: dict[str, Any],
        peer: Peer,
        exchange: Exchange | None,
        receipt: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The message as sent upstream: signed on an unsigned client's behalf, granted, countersigned."""
        now = self._clock()
        if not route.signed:
            return _without_mcps_members(message)
        on_behalf = not peer.signed
        forward = (
            self._sign_own(message, audience=route.identity, in_reply_to=None, now=now, passport=True)
            if on_behalf
            else message
        )
        grant = None
        if exchange is not None and exchange.method == "tools/call" and exchange.tool is not None:
            arguments = (message.get("params") or {}).get("arguments")
            grant = mint_grant(
                self.key,
                iss=self.identity,
                sub=peer.address,
                aud=route.identity,
                tool=exchange.tool,
                arguments=arguments if isinstance(arguments, dict) else None,
                request_sig=_sig_of(forward) or "",
                level=peer.principal.level,
                scopes=peer.principal.scopes,
                now=now,
            )
            forward, container = copy_with_container(forward)
            container[GRANT_KEY] = grant
        return countersign(
            forward,
            self.key,
            identity=self.identity,
            audience=route.identity,
            now=now,
            on_behalf=on_behalf,
            grant=grant,
            receipt=receipt,
        )

    # --- from an upstream ---------------------------------------------------------------------------------------

    async def from_upstream(self, route: Route, session: Session, message: Any) -> dict[str, Any] | None:
        """What to release to the client for one message from the upstream, or ``None`` to drop it."""
        try:
            kind = message_kind(message) if isinstance(message, dict) else None
        except McpsError:
            kind = None
        if kind is None:
            logger.warning(
                "mcps gateway: upstream %r sent something that is not a JSON-RPC message; dropped", route.name
            )
            return None
        exchange = session.exchanges.pop(message.get("id"), None) if kind.is_response else None
        if kind.is_response and exchange is None:
            logger.warning("mcps gateway: upstream %r answered no forwarded request; dropped", route.name)
            return None
        peer = exchange.peer if exchange is not None else session.peer
        if peer is None:
            logger.warning("mcps gateway: upstream %r spoke before any client was verified; dropped", route.name)
            return None
        try:
            released = await self._from_upstream(route, session, message, kind, exchange=exchange, peer=peer)
        except McpsError as error:
            if exchange is None:
                logger.warning("mcps gateway dropped a message from %r: %s", route.name, error.diagnostics())
                return None
            return await self._upstream_failed(route, exchange, error)
        return released

    async def _from_upstream(
        self,
        route: Route,
        session: Session,
        message: dict[str, Any],
        kind: MessageKind,
        *,
        exchange: Exchange | None,
        peer: Peer,
    ) -> dict[str, Any] | None:
        now = self._clock()
        signer = None
        if route.signed:
            if VIA_KEY in (block_container(message) or {}):
                raise McpsError(ErrorCode.HOP_INVALID, detail="upstream's message carries hop records")
            signer = await self._verify_upstream(route, message, peer, exchange)
        made_block = not route.signed
        if exchange is not None and exchange.method == "tools/list" and kind is MessageKind.RESULT:
            message, changed = self._listing(route, message, peer, signer=signer, now=now)
            made_block = made_block or changed
        if kind is MessageKind.NOTIFICATION and message.get("method") == "notifications/tools/list_changed":
            route.tools.list_changed()
        receipt = None
        if exchange is not None:
            receipt = await self._record_answer(route, exchange, message, kind, upstream_signed=route.signed)
        if kind is MessageKind.REQUEST and not peer.signed:
            session.upstream_requests[message["id"]] = ""  # the unsigned client's answer is bound to nothing
        if not peer.signed:
            return _without_mcps_members(message) if not route.signed else message
        if made_block:
            binding = exchange.client_sig if exchange is not None else None
            keep = route.signed  # a filtered listing keeps the upstream's passport: its tools' key is found there
            message = self._sign_own(message, audience=peer.address, in_reply_to=binding, now=now, keep_identity=keep)
        if kind is MessageKind.REQUEST:
            session.upstream_requests[message["id"]] = _sig_of(message) or ""
        return countersign(
            message,
            self.key,
            identity=self.identity,
            audience=peer.address,
            now=now,
            on_behalf=made_block,
            receipt=receipt,
        )

    async def _verify_upstream(
        self, route: Route, message: dict[str, Any], peer: Peer, exchange: Exchange | None
    ) -> Any:
        names = peer.names if peer.signed else self._self_peer_names
        verifier = MessageVerifier(
            audience=sorted(names),
            keys=route.trust,  # type: ignore[arg-type]
            nonces=self._nonces,
            limits=self.limits,
            max_skew=self._skew,
            clock=self._clock,
        )
        binding = exchange.forwarded_sig if exchange is not None else None
        verified = await verifier.verify_parsed(message, in_reply_to=binding)
        if verified.agent is not None and verified.agent.agent_id != route.identity:
            raise McpsError(ErrorCode.UNKNOWN_KEY, "upstream's passport is not the upstream's identity")
        return verified.key

    def _listing(
        self, route: Route, message: dict[str, Any], peer: Peer, *, signer: Any, now: float
    ) -> tuple[dict[str, Any], bool]:
        """A ``tools/list`` result filtered by the pins and the policy; ``True`` when tools were removed."""
        result = message["result"]
        tools = result.get("tools")
        if not isinstance(tools, list):
            raise McpsError(ErrorCode.TOOL_CHANGED, "tool list is malformed", detail="result.tools is not a list")
        resign = self.key if not route.signed else None
        kept = route.tools.filter(tools, signer=signer, complete=not result.get("nextCursor"), resign=resign, now=now)
        kept = self._visible(peer.principal, route.name, kept)
        if resign is None and len(kept) == len(tools):
            return message, False
        return {**message, "result": {**result, "tools": kept}}, True

    async def _upstream_failed(self, route: Route, exchange: Exchange, error: McpsError) -> dict[str, Any] | None:
        """An answer that failed verification: the client gets the gateway's refusal for its request instead."""
        logger.warning("mcps gateway refused an answer from %r: %s", route.name, error.diagnostics())
        failure = {"jsonrpc": "2.0", "id": exchange.request_id, "error": error.to_jsonrpc_error()}
        receipt = await self._record_answer(route, exchange, failure, MessageKind.ERROR, upstream_signed=route.signed)
        return self.refusal_for(exchange.peer, failure, exchange.client_sig, receipt=receipt)

    async def answer_failed(
        self, route: Route, session: Session, request_id: object, error: McpsError
    ) -> dict[str, Any] | None:
        """The refusal for a forwarded request whose answer never came or could not be read (MCPS-035, 018–025).

        ``None`` when no forwarded request has that id (nothing is waiting for it).
        """
        exchange = session.exchanges.pop(request_id, None) if isinstance(request_id, str | int) else None
        if exchange is None:
            return None
        return await self._upstream_failed(route, exchange, error)

    def pending(self, session: Session, request_id: object) -> bool:
        """Whether a forwarded request with this id still awaits the upstream's answer."""
        return isinstance(request_id, str | int) and request_id in session.exchanges

    # --- refusals, signing, audit -------------------------------------------------------------------------------

    def _refused(
        self,
        route: Route,
        session: Session,
        message: dict[str, Any],
        kind: MessageKind | None,
        error: McpsError,
        *,
        receipt: dict[str, Any] | None = None,
    ) -> ClientOutcome:
        logger.warning("mcps gateway refused a %s for %r: %s", kind or "message", route.name, error.diagnostics())
        request_id = echoable_id(message.get("id")) if kind is MessageKind.REQUEST else None
        failure = {"jsonrpc": "2.0", "id": request_id, "error": error.to_jsonrpc_error()}
        container = block_container(message) if kind is not None else None
        claimed = (container or {}).get(SIG_KEY)
        claimed_sig = claimed.get("sig") if isinstance(claimed, dict) else None
        if not isinstance(claimed_sig, str) or not is_b64u(claimed_sig, max_bytes=64):
            return ClientOutcome(reply=failure, error=error)  # nothing to bind to: an unsigned refusal
        peer = session.peer or Peer(
            Principal.unsigned(UNSIGNED_IDENTITY), _claimed_address(container or {}, claimed or {}), frozenset()
        )
        return ClientOutcome(reply=self.refusal_for(peer, failure, claimed_sig, receipt=receipt), error=error)

    def refusal_for(
        self, peer: Peer, failure: dict[str, Any], client_sig: str | None, *, receipt: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``failure`` signed by the gateway for ``peer``, with its hop record (and the audit receipt of the
        decision, when it was recorded); as is for an unsigned client, which checks nothing."""
        if client_sig is None:
            return failure
        now = self._clock()
        signed = self._sign_own(failure, audience=peer.address, in_reply_to=client_sig, now=now)
        return countersign(
            signed, self.key, identity=self.identity, audience=peer.address, now=now, on_behalf=True, receipt=receipt
        )

    def _sign_own(
        self,
        message: dict[str, Any],
        *,
        audience: str,
        in_reply_to: str | None,
        now: float,
        passport: bool = False,
        keep_identity: bool = False,
    ) -> dict[str, Any]:
        """``message`` signed by the gateway itself, every ``mcps/`` member of its container replaced.

        ``passport`` attaches the gateway's own passport (requests it makes for an unsigned client, which the
        upstream may verify through anchors). ``keep_identity`` keeps the other end's ``mcps/passport`` and
        ``mcps/chain`` (a listing the gateway filtered: the client finds the tools' key in them, SPEC.md §12.4a).
        """
        kept = (PASSPORT_KEY, CHAIN_KEY) if keep_identity else ()
        clean = _without_mcps_members(message, keep=kept)
        if passport and self._passport is not None:
            clean = attach_passport(clean, self._passport)
        return sign_message(clean, self.key, audience=audience, in_reply_to=in_reply_to, now=now)

    async def _record(
        self, route: Route, peer: Peer, exchange: Exchange, decision: Decision, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        principal = peer.principal
        event = AuditEvent(
            event="call" if decision.allowed else "deny",
            agent=principal.identity,
            kid=principal.kid,
            trust_level=int(principal.level),
            method=exchange.method,
            tool=exchange.tool,
            request_id=exchange.request_id,
            args_hash=exchange.args_hash,
            decision="allow" if decision.allowed else "deny",
            code=decision.code.mcps if decision.code is not None else None,
            upstream=route.name,
            arguments=dict(arguments) if self._log_arguments and exchange.method == "tools/call" else None,
            data={"rules": list(decision.rules), "agent_signed": principal.signed},
        )
        receipt = await self._audit.append(event)  # raises MCPS-030: nothing is forwarded that is not logged
        return receipt.to_json()

    async def _record_refusal(self, route: Route, message: dict[str, Any], error: McpsError) -> None:
        """A refusal after authentication (a revoked agent): recorded, with what the message claims of its sender."""
        params = message.get("params")
        method = message.get("method")
        tool = params.get("name") if isinstance(params, dict) and method == "tools/call" else None
        claimed = (block_container(message) or {}).get(SIG_KEY)
        kid = claimed.get("kid") if isinstance(claimed, dict) else None
        event = AuditEvent(
            event="deny",
            kid=kid if isinstance(kid, str) and len(kid) <= 64 else None,
            method=method if isinstance(method, str) and len(method) <= 256 else None,
            tool=tool if isinstance(tool, str) and len(tool) <= 256 else None,
            decision="deny",
            code=error.code.mcps,
            upstream=route.name,
        )
        try:
            await self._audit.append(event)
        except McpsError as failure:  # the refusal stands either way
            logger.error("mcps gateway could not record a refusal: %s", failure.diagnostics())  # noqa: TRY400

    async def _record_answer(
        self, route: Route, exchange: Exchange, message: dict[str, Any], kind: MessageKind, *, upstream_signed: bool
    ) -> dict[str, Any]:
        principal = exchange.peer.principal
        body = message.get("result") if kind is MessageKind.RESULT else message.get("error")
        code = None
        if kind is MessageKind.ERROR and isinstance(body, dict):
            data = body.get("data")
            mcps_code = data.get("mcps_code") if isinstance(data, dict) else None
            code = mcps_code if isinstance(mcps_code, str) and len(mcps_code) == 8 else None
        event = AuditEvent(
            event="result" if kind is MessageKind.RESULT else "error",
            agent=principal.identity,
            kid=principal.kid,
            trust_level=int(principal.level),
            method=exchange.method,
            tool=exchange.tool,
            request_id=exchange.request_id,
            args_hash=exchange.args_hash,
            result_hash=json_hash(_without_mcps_members(message).get("result") or body or {}),
            code=code if code is not None and code.startswith("MCPS-") and code[5:].isdigit() else None,
            upstream=route.name,
            latency_ms=max(0, int((time.monotonic() - exchange.started) * 1000)) if exchange.started else None,
            data={"upstream_signed": upstream_signed},
        )
        receipt = await self._audit.append(event)
        return receipt.to_json()


class _AuditedRefusal(Exception):
    """A refusal whose decision is already in the audit log: the receipt travels back in the hop record."""

    def __init__(self, error: McpsError, receipt: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.receipt = receipt


def _sig_of(message: Mapping[str, Any]) -> str | None:
    container = block_container(message) or {}
    block = container.get(SIG_KEY)
    sig = block.get("sig") if isinstance(block, dict) else None
    return sig if isinstance(sig, str) else None


def _without_mcps_members(message: Mapping[str, Any], *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of ``message`` whose block container holds no ``mcps/`` member but those in ``keep``."""
    container = block_container(message)
    drop = [name for name in container or () if name.startswith(MCPS_PREFIX) and name not in keep]
    if not drop:
        return dict(message)
    copy, copied = copy_with_container(message)
    for name in drop:
        del copied[name]
    return copy


def _claimed_address(container: Mapping[str, Any], claimed: Mapping[str, Any]) -> str:
    """Whom to address a refusal to before any peer is verified: the claimed passport's ``sub`` or ``kid``."""
    from mcps.identity.passports import parse_passport  # noqa: PLC0415 - only on this refusal path

    passport = container.get(PASSPORT_KEY)
    if passport is not None:
        try:
            return parse_passport(passport).claims.sub
        except McpsError:
            pass
    kid = claimed.get("kid")
    if isinstance(kid, str) and is_b64u(kid, min_bytes=32, max_bytes=32):
        return kid
    return "mcps:unverified-peer"
