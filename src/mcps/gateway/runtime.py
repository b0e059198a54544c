"""One running gateway, built from a validated :class:`~mcps.gateway.config.GatewayConfig`.

:meth:`Gateway.open` loads the keys, opens the state stores (SQLite files under ``state_dir`` by default; Redis for
nonces, revocations and counters and PostgreSQL for the audit log when their URLs are set), loads the policy and
the tool pins, builds one route and one upstream app per upstream, and the HTTP front. Everything that can be
wrong with the files is found here, before the gateway listens; :meth:`Gateway.aclose` releases it all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcps.audit.log import AuditLog, load_or_create_log_key
from mcps.core.envelope import KeyResolver, PinnedKeys
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PrivateKey, load_private_key, load_public_jwk
from mcps.core.strict import Limits
from mcps.core.tools import Lockfile
from mcps.gateway.config import GatewayConfig, UpstreamConfig
from mcps.gateway.discovery import DiscoveryDocument
from mcps.gateway.front import GatewayFront, Upstream
from mcps.gateway.relay import PinnedAgent, Relay, Route
from mcps.gateway.tools import UpstreamTools
from mcps.identity.anchors import TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import RevocationStore
from mcps.policy.engine import visible_tools
from mcps.policy.file import PolicyFile
from mcps.stores.counters import CounterStore
from mcps.stores.nonces import NonceStore

__all__ = ["Gateway", "lock_path"]

logger = logging.getLogger("mcps.gateway")


def lock_path(config: GatewayConfig) -> Path:
    """The gateway's tool pins: ``mcps.lock`` beside its configuration file."""
    return config.path.parent / "mcps.lock"


class _NoAgents:
    """The agent resolver of a gateway that trusts no signing agent (it admits only unsigned clients)."""

    def resolve(self, kid: KeyId, message: Any, *, now: float) -> Any:
        raise McpsError(ErrorCode.UNKNOWN_KEY, detail="this gateway trusts no signing agent")


@dataclass
class Gateway:
    """What one gateway process holds. Build it with :meth:`open`; serve :attr:`front` with any ASGI server."""

    config: GatewayConfig
    key: PrivateKey
    relay: Relay
    front: GatewayFront
    upstreams: dict[str, Upstream]
    _closers: list[Callable[[], Any]] = field(default_factory=list)

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
        nonces, revocations, counters = _stores(config)
        closers.extend([nonces.aclose, revocations.aclose, counters.aclose])
        audit = _audit_log(config)
        closers.append(audit.aclose)
        policy = PolicyFile.load(config.policy, counters=counters)
        lock = _load_lock(config)
        anchors = TrustAnchors.load(*config.agent_anchors) if config.agent_anchors else None
        pinned = {load_public_jwk(agent.key): agent for agent in config.agent_keys}
        pinned_keys = PinnedKeys(pinned) if pinned else None
        upstreams: dict[str, Upstream] = {}
        for name, upstream in config.upstreams.items():
            route = Route(
                name=name,
                identity=upstream.identity,
                agents=_agent_resolver(anchors, pinned_keys, upstream.identity, revocations),
                trust=_upstream_trust(upstream, revocations, config.identity),
                tools=UpstreamTools(name, lock.server(upstream.identity)),
            )
            app = _upstream_app(upstream, config)
            closers.append(app.aclose)
            upstreams[name] = Upstream(route, app)
        relay = Relay(
            identity=config.identity,
            key=key,
            passport=passport,
            nonces=nonces,
            revocations=revocations,
            audit=audit,
            policy=policy,
            visible=lambda caller, server, tools: visible_tools(policy, caller, server, tools),
            pinned_agents={
                public.kid: PinnedAgent(agent.name, agent.level, frozenset(agent.scopes))
                for public, agent in pinned.items()
            },
            admit_unsigned=config.admit_unsigned,
            limits=Limits(max_bytes=config.max_message_bytes),
            log_arguments=config.log_arguments,
            clock=clock,
        )
        discovery = DiscoveryDocument(key, config.identity, config.upstreams, passport=passport, clock=clock)

        async def lifespan(phase: str) -> None:
            """Upstream apps that need a task of their own start with the server and stop with it, in the same task
            (the server's lifespan task); :meth:`Gateway.aclose` closes them again (a no-op) and everything else."""
            for upstream in upstreams.values():
                start, stop = getattr(upstream.app, "start", None), getattr(upstream.app, "aclose", None)
                if start is None or stop is None:
                    continue
                if phase == "startup":
                    await start()
                elif phase == "shutdown":
                    await stop()

        front = GatewayFront(
            relay,
            upstreams,
            allowed_hosts=config.allowed_hosts,
            allowed_origins=config.allowed_origins,
            discovery=discovery.token,
            on_lifespan=lifespan,
        )
        return cls(config, key, relay, front, upstreams, closers)

    async def aclose(self) -> None:
        """Stop the upstreams and close every store (the audit log last but one: it flushes its batch)."""
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:
                logger.exception("mcps gateway: error while closing")
        self._closers.clear()


def _stores(config: GatewayConfig) -> tuple[NonceStore, RevocationStore, CounterStore]:
    state = config.state_dir
    if config.redis_url is not None:
        from mcps.stores.redis_counters import RedisCounterStore  # noqa: PLC0415 - only with Redis configured
        from mcps.stores.redis_nonces import RedisNonceStore  # noqa: PLC0415
        from mcps.stores.revocation_redis import RedisRevocationStore  # noqa: PLC0415

        # One namespace per gateway identity: a gateway and the upstreams behind it must never share nonces (an
        # agent's nonce is claimed once by the gateway and once by the upstream).
        space = hashlib.sha256(config.identity.encode("utf-8")).hexdigest()[:16]
        return (
            RedisNonceStore.from_url(config.redis_url, prefix=f"mcps-gateway:{space}:nonce:"),
            RedisRevocationStore.from_url(config.redis_url),
            RedisCounterStore.from_url(config.redis_url, prefix=f"mcps-gateway:{space}:counter:"),
        )
    from mcps.stores.revocation_sqlite import SqliteRevocationStore  # noqa: PLC0415
    from mcps.stores.sqlite_counters import SqliteCounterStore  # noqa: PLC0415
    from mcps.stores.sqlite_nonces import SqliteNonceStore  # noqa: PLC0415

    return (
        SqliteNonceStore(state / "nonces.db"),
        SqliteRevocationStore(state / "revocations.db"),
        SqliteCounterStore(state / "counters.db"),
    )


def _audit_log(config: GatewayConfig) -> AuditLog:
    if config.postgres_url is not None:
        from mcps.audit.postgres_log import PostgresAuditLog  # noqa: PLC0415 - only with PostgreSQL configured

        return PostgresAuditLog(config.postgres_url, key=load_or_create_log_key(config.state_dir / "audit.key"))
    from mcps.audit.sqlite_log import SqliteAuditLog  # noqa: PLC0415

    return SqliteAuditLog(config.state_dir / "audit.db")


def _load_lock(config: GatewayConfig) -> Lockfile:
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


def _upstream_app(upstream: UpstreamConfig, config: GatewayConfig) -> Any:
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
