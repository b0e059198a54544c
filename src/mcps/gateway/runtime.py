"""One running gateway, built from a validated :class:`~mcps.gateway.config.GatewayConfig`.

:meth:`Gateway.open` loads the keys, opens the state stores (SQLite files under ``state_dir`` by default; Redis for
nonces, revocations and counters and PostgreSQL for the audit log when their URLs are set), loads the policy and
the tool pins, builds one route and one upstream app per upstream, the HTTP front and, around it, the served app
with health, readiness and metrics (:mod:`mcps.gateway.ops`). Everything that can be wrong with the files is found
here, before the gateway listens; :meth:`Gateway.aclose` releases it all.

Replicas (SPEC.md §12.9): every replica of one deployment opens the same Redis (``redis_url``, keys under
``redis_prefix``) and the same PostgreSQL log (``postgres_url``, ``postgres_schema``, signed with ``audit_key``).
Revocations are read from a local mirror of the Redis store kept current by its change feed
(:class:`~mcps.stores.revocation_cache.CachedRevocationStore`): no round trip per message, and MCPS-030 whenever the
mirror cannot be sure it is current.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcps.audit.log import AuditLog, load_or_create_log_key
from mcps.core.envelope import KeyResolver, PinnedKeys
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey, load_private_key, load_public_jwk
from mcps.core.strict import Limits
from mcps.core.tools import Lockfile
from mcps.gateway.apps import AppKeeper, Tracked
from mcps.gateway.config import GatewayConfig, UpstreamConfig
from mcps.gateway.discovery import DiscoveryDocument
from mcps.gateway.front import GatewayFront, Upstream
from mcps.gateway.metrics import GatewayMetrics
from mcps.gateway.ops import (
    CountedCounterStore,
    CountedNonceStore,
    CountedRevocationStore,
    MeteredAuditLog,
    MeteredRelay,
    OpsApp,
    ReadinessProbe,
)
from mcps.gateway.relay import PinnedAgent, Relay, Route
from mcps.gateway.sessions import SessionPins
from mcps.gateway.tools import UpstreamTools
from mcps.identity.anchors import TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import RevocationStore
from mcps.policy.engine import visible_tools
from mcps.policy.file import PolicyFile
from mcps.stores.counters import CounterStore
from mcps.stores.nonces import NonceStore

__all__ = ["Gateway", "Routes", "build_routes", "load_lock", "lock_path", "redis_namespace", "upstream_app"]

logger = logging.getLogger("mcps.gateway")

REVOCATION_STARTUP_WAIT = 2.0
"""Seconds :meth:`Gateway.open` waits for the revocation mirror to be current before it returns anyway."""


def lock_path(config: GatewayConfig) -> Path:
    """The gateway's tool pins: ``mcps.lock`` beside its configuration file."""
    return config.path.parent / "mcps.lock"


class _NoAgents:
    """The agent resolver of a gateway that trusts no signing agent (it admits only unsigned clients)."""

    def resolve(self, kid: KeyId, message: Any, *, now: float) -> Any:
        raise McpsError(ErrorCode.UNKNOWN_KEY, detail="this gateway trusts no signing agent")


@dataclass
class Gateway:
    """What one gateway process holds. Build it with :meth:`open`; serve :attr:`app` (the front with health,
    readiness and metrics) or :attr:`front` alone with any ASGI server."""

    config: GatewayConfig
    key: PrivateKey
    relay: Relay
    front: GatewayFront
    upstreams: dict[str, Upstream]
    _closers: list[Callable[[], Any]] = field(default_factory=list)
    app: OpsApp | None = None
    metrics: GatewayMetrics | None = None
    revocations: RevocationStore | None = None
    counters: CounterStore | None = None
    keeper: AppKeeper = field(default_factory=AppKeeper)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a reload (:mod:`mcps.gateway.reload`): one at a time."""
    retiring: set[asyncio.Task[None]] = field(default_factory=set)
    """Apps replaced by a reload, waiting for their requests to end."""

    @classmethod
    async def open(cls, config: GatewayConfig, *, clock: Callable[[], float] = time.time) -> Gateway:
        closers: list[Callable[[], Any]] = []
        try:
            return await cls._open(config, clock, closers)
        except BaseException:
            for close in reversed(closers):
                with contextlib.suppress(Exception):
                    await close()
            raise

    @classmethod
    async def _open(
        cls, config: GatewayConfig, clock: Callable[[], float], closers: list[Callable[[], Any]]
    ) -> Gateway:
        key = load_private_key(config.key)
        passport = config.passport.read_text(encoding="ascii").strip() if config.passport is not None else None
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        metrics = GatewayMetrics(config.upstreams)
        raw_nonces, raw_revocations, raw_counters = _stores(config)
        closers.extend([raw_nonces.aclose, raw_revocations.aclose, raw_counters.aclose])
        start = getattr(raw_revocations, "start", None)
        if start is not None:  # the revocation mirror: follow the change feed from now on
            raw_revocations.on_state = lambda up: metrics.revocation_feed_up.set(1 if up else 0)  # type: ignore[attr-defined]
            await start()
            with contextlib.suppress(McpsError):  # serve with a current mirror when Redis answers (else: /readyz)
                await raw_revocations.sync(within=REVOCATION_STARTUP_WAIT)  # type: ignore[attr-defined]
        raw_audit = _audit_log(config)
        closers.append(raw_audit.aclose)
        nonces = CountedNonceStore(raw_nonces, metrics)
        revocations = CountedRevocationStore(raw_revocations, metrics)
        counters = CountedCounterStore(raw_counters, metrics)
        audit = MeteredAuditLog(raw_audit, metrics)
        policy = PolicyFile.load(config.policy, counters=counters)
        routes = build_routes(config, revocations, load_lock(config))
        upstreams: dict[str, Upstream] = {}
        keeper = AppKeeper()
        for name, upstream in config.upstreams.items():
            app = upstream_app(upstream, config)
            closers.append(app.aclose)
            upstreams[name] = Upstream(routes.routes[name], Tracked(app))
        closers.append(keeper.stop_all)  # closed in reverse: keepers stop their apps before anything else closes
        relay = MeteredRelay(
            metrics=metrics,
            identity=config.identity,
            key=key,
            passport=passport,
            nonces=nonces,
            revocations=revocations,
            audit=audit,
            policy=policy,
            visible=lambda caller, server, tools: visible_tools(policy, caller, server, tools),
            pinned_agents=routes.pinned_agents,
            admit_unsigned=config.admit_unsigned,
            limits=Limits(max_bytes=config.max_message_bytes),
            log_arguments=config.log_arguments,
            clock=clock,
        )
        discovery = DiscoveryDocument(key, config.identity, config.upstreams, passport=passport, clock=clock)

        async def lifespan(phase: str) -> None:
            """Upstream apps that need a task of their own start with the server, each in a keeper task that also
            stops it (:class:`~mcps.gateway.apps.AppKeeper`), and stop with the server."""
            if phase == "startup":
                for upstream in gateway.upstreams.values():
                    await keeper.start(upstream.app)
            elif phase == "shutdown":
                await keeper.stop_all()

        pins = _session_pins(config, metrics)
        closers.append(pins.aclose)
        front = GatewayFront(
            relay,
            upstreams,
            allowed_hosts=config.allowed_hosts,
            allowed_origins=config.allowed_origins,
            discovery=discovery.token,
            on_lifespan=lifespan,
            pins=pins,
        )
        gateway = cls(config, key, relay, front, upstreams, closers, None, metrics, revocations, counters, keeper)
        probe = ReadinessProbe(
            stores={"nonce": nonces, "revocation": revocations, "counter": counters, "audit": audit},
            upstreams=lambda: gateway.config.upstreams,
            metrics=metrics,
        )
        names = lambda: gateway.upstreams.keys()  # noqa: E731, PLW0108 - the dict is replaced on a reload
        gateway.app = OpsApp(front, metrics=metrics, readiness=probe, upstream_names=names)
        return gateway

    async def aclose(self) -> None:
        """Stop the upstreams and close every store (the audit log last but one: it flushes its batch)."""
        for task in list(self.retiring):
            task.cancel()
        for task in list(self.retiring):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.keeper.stop_all()
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:
                logger.exception("mcps gateway: error while closing")
        self._closers.clear()


@dataclass(frozen=True, slots=True)
class Routes:
    """What the relay knows of each upstream and of the agents: rebuilt whole on a reload."""

    routes: dict[str, Route]
    pinned_agents: dict[KeyId, PinnedAgent]
    lock: Lockfile


def build_routes(
    config: GatewayConfig,
    revocations: RevocationStore,
    lock: Lockfile,
    previous: Mapping[str, Route] | None = None,
) -> Routes:
    """One :class:`Route` per upstream (its agents' resolver, its own trust, its tools under ``lock``) and the pinned
    agents; with ``previous`` (a reload), an upstream's blocked tools stay blocked while their pins are unchanged."""
    anchors = TrustAnchors.load(*config.agent_anchors) if config.agent_anchors else None
    pinned = {load_public_jwk(agent.key): agent for agent in config.agent_keys}
    pinned_keys = PinnedKeys(pinned) if pinned else None
    routes: dict[str, Route] = {}
    for name, upstream in config.upstreams.items():
        pins = lock.server(upstream.identity)
        before = (previous or {}).get(name)
        same_upstream = before is not None and before.identity == upstream.identity
        routes[name] = Route(
            name=name,
            identity=upstream.identity,
            agents=_agent_resolver(anchors, pinned_keys, upstream.identity, revocations),
            trust=_upstream_trust(upstream, revocations, config.identity),
            tools=before.tools.reloaded(pins) if before is not None and same_upstream else UpstreamTools(name, pins),
        )
    agents = {
        public.kid: PinnedAgent(agent.name, agent.level, frozenset(agent.scopes)) for public, agent in pinned.items()
    }
    return Routes(routes, agents, lock)


def redis_namespace(config: GatewayConfig) -> str:
    """The prefix of the gateway's own Redis keys: ``<redis_prefix>mcps-gateway:<hash of its identity>:``.

    One namespace per gateway identity: a gateway and the upstreams behind it must never share nonces (an agent's
    nonce is claimed once by the gateway and once by the upstream); replicas of one gateway share it."""
    space = hashlib.sha256(config.identity.encode("utf-8")).hexdigest()[:16]
    return f"{config.redis_prefix}mcps-gateway:{space}:"


def _stores(config: GatewayConfig) -> tuple[NonceStore, RevocationStore, CounterStore]:
    state = config.state_dir
    if config.redis_url is not None:
        from mcps.stores.redis_counters import RedisCounterStore  # noqa: PLC0415 - only with Redis configured
        from mcps.stores.redis_nonces import RedisNonceStore  # noqa: PLC0415
        from mcps.stores.revocation_cache import CachedRevocationStore  # noqa: PLC0415
        from mcps.stores.revocation_redis import DEFAULT_PREFIX, RedisRevocationStore  # noqa: PLC0415

        # Revocations are not namespaced by identity: `mcps revoke --store redis://… --redis-prefix P` reaches every
        # gateway (and every mcps server) of the deployment.
        space = redis_namespace(config)
        revocations = RedisRevocationStore.from_url(config.redis_url, prefix=config.redis_prefix + DEFAULT_PREFIX)
        return (
            RedisNonceStore.from_url(config.redis_url, prefix=f"{space}nonce:"),
            CachedRevocationStore(revocations),
            RedisCounterStore.from_url(config.redis_url, prefix=f"{space}counter:"),
        )
    from mcps.stores.revocation_sqlite import SqliteRevocationStore  # noqa: PLC0415
    from mcps.stores.sqlite_counters import SqliteCounterStore  # noqa: PLC0415
    from mcps.stores.sqlite_nonces import SqliteNonceStore  # noqa: PLC0415

    return (
        SqliteNonceStore(state / "nonces.db"),
        SqliteRevocationStore(state / "revocations.db"),
        SqliteCounterStore(state / "counters.db"),
    )


def _session_pins(config: GatewayConfig, metrics: GatewayMetrics) -> SessionPins:
    if config.redis_url is None:
        return SessionPins()
    from mcps.gateway.sessions import RedisSessionPins  # noqa: PLC0415 - only with Redis configured
    from mcps.stores.redis_nonces import fail_fast_client  # noqa: PLC0415

    return RedisSessionPins(
        fail_fast_client(config.redis_url),
        prefix=redis_namespace(config),
        on_error=lambda: metrics.store_error("session"),
    )


def _audit_log(config: GatewayConfig) -> AuditLog:
    if config.postgres_url is not None:
        from mcps.audit.postgres_log import PostgresAuditLog  # noqa: PLC0415 - only with PostgreSQL configured

        return PostgresAuditLog(
            config.postgres_url, key=load_or_create_log_key(config.audit_key_path), schema=config.postgres_schema
        )
    from mcps.audit.sqlite_log import SqliteAuditLog  # noqa: PLC0415

    if config.audit_key is not None:
        return SqliteAuditLog(config.state_dir / "audit.db", key=load_or_create_log_key(config.audit_key))
    return SqliteAuditLog(config.state_dir / "audit.db")


def load_lock(config: GatewayConfig) -> Lockfile:
    from mcps.core.tools import parse_lockfile  # noqa: PLC0415

    path = lock_path(config)
    if not path.exists():
        logger.warning("mcps gateway: no %s: no tool is pinned, every call is refused until `mcps gateway pin`", path)
        return Lockfile()
    return parse_lockfile(path.read_bytes())


def _agent_resolver(
    anchors: TrustAnchors | None, pinned: PinnedKeys | None, audience: str, revocations: RevocationStore
) -> KeyResolver:
    if anchors is not None:
        return PassportResolver(
            anchors=anchors, audience=audience, revocations=revocations, min_level=TrustLevel.L0, pinned=pinned
        )
    return pinned if pinned is not None else _NoAgents()


def _upstream_trust(upstream: UpstreamConfig, revocations: RevocationStore, gateway: str) -> KeyResolver | None:
    if upstream.key is not None:
        return PinnedKeys([load_public_jwk(upstream.key)])
    if upstream.anchors:
        return PassportResolver(
            anchors=TrustAnchors.load(*upstream.anchors),
            audience=gateway,
            revocations=revocations,
            min_level=TrustLevel.L0,
        )
    return None


def upstream_app(upstream: UpstreamConfig, config: GatewayConfig) -> Any:
    """The ASGI app that reaches ``upstream``: a reverse proxy for a URL, a stdio adapter for a command."""
    limit = config.max_message_bytes
    if upstream.url is not None:
        from mcps.gateway.http_upstream import HttpUpstreamApp  # noqa: PLC0415

        return HttpUpstreamApp(upstream.url, call_timeout=upstream.timeout, max_bytes=limit)
    from mcps.gateway.stdio_upstream import StdioUpstreamApp  # noqa: PLC0415

    return StdioUpstreamApp(
        list(upstream.command or ()),
        env=dict(upstream.env),
        cwd=upstream.cwd,
        call_timeout=upstream.timeout,
        max_bytes=limit,
    )
