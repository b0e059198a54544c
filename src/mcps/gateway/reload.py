"""Reload on SIGHUP: the policy, the tool pins, the agents and the upstreams, without dropping a call.

:func:`reload_gateway` re-reads the configuration file and everything it names, builds the new state beside the
running one, and only when all of it is valid swaps it in:

1. ``gateway.toml`` (:func:`~mcps.gateway.config.load_config`), the policy file, ``mcps.lock``, the agents' anchors
   and keys, each upstream's key or anchors. Any error — with the file and line where the file format has lines —
   refuses the whole reload: the running configuration stays, and the error is logged and returned.
2. Settings that a running process cannot change (its identity and key, where it listens, its stores, its limits)
   must be unchanged: a reload that changes one is refused and says which (restart for those).
3. Upstreams whose ``[upstreams.NAME]`` table is unchanged keep their app, so their sessions, children and pooled
   connections go on; new or changed ones get a new app (started before the swap); removed or replaced apps are
   retired once the requests they serve have ended, or after their ``timeout``.
4. The swap itself is synchronous (no ``await`` between its steps): a message is decided entirely under the old
   configuration or entirely under the new one. Calls under way finish as they began.

Tools that a listing had shown changed (a rug pull) stay blocked while their pins are unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from mcps.core.errors import McpsError
from mcps.core.tools import parse_lockfile
from mcps.gateway.apps import Tracked
from mcps.gateway.config import ConfigError, load_config
from mcps.gateway.discovery import DiscoveryDocument
from mcps.gateway.front import Upstream
from mcps.gateway.runtime import Gateway, build_routes, lock_path, upstream_app
from mcps.policy.engine import visible_tools
from mcps.policy.file import PolicyFile, PolicyFileError

__all__ = ["FIXED_SETTINGS", "RELOADABLE_SETTINGS", "ReloadResult", "reload_gateway"]

logger = logging.getLogger("mcps.gateway")

FIXED_SETTINGS: Final = (
    "identity", "key", "passport", "host", "port", "state_dir", "admit_unsigned", "allowed_hosts", "allowed_origins",
    "redis_url", "postgres_url", "max_message_bytes", "log_arguments", "redis_prefix", "postgres_schema", "audit_key",
    "shutdown_timeout",
)  # fmt: skip
"""Settings a reload may not change (restart the gateway for them)."""
RELOADABLE_SETTINGS: Final = frozenset({"path", "policy", "agent_anchors", "agent_keys", "upstreams"})
"""Settings a reload applies (every setting is in exactly one of the two: a test keeps it so)."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    applied: bool
    problem: str | None = None
    started: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()


async def reload_gateway(gateway: Gateway) -> ReloadResult:
    """Re-read the configuration and apply it whole, or refuse it whole (see the module docstring)."""
    async with gateway.reload_lock:
        try:
            result = await _reload(gateway)
        except (ConfigError, PolicyFileError) as exc:
            result = ReloadResult(False, str(exc))
        except McpsError as exc:
            result = ReloadResult(False, exc.diagnostics())
        except (OSError, ValueError) as exc:
            where = getattr(exc, "filename", None)
            result = ReloadResult(False, f"{where}: {exc}" if where and str(where) not in str(exc) else str(exc))
    if gateway.metrics is not None:
        gateway.metrics.reloads.labels("applied" if result.applied else "refused").inc()
    if result.applied:
        logger.info(
            "mcps gateway: reloaded %s (upstreams started %s, kept %s, retired %s)",
            gateway.config.path, list(result.started), list(result.kept), list(result.retired),
        )  # fmt: skip
    else:
        logger.error("mcps gateway: reload refused, the running configuration stays: %s", result.problem)
    return result


async def _reload(gateway: Gateway) -> ReloadResult:
    old = gateway.config
    new = load_config(old.path)
    for name in FIXED_SETTINGS:
        if getattr(new, name) != getattr(old, name):
            return ReloadResult(False, f"{new.path}: {name} cannot change on a reload: restart the gateway for it")
    if gateway.counters is None or gateway.revocations is None:
        return ReloadResult(False, "this gateway was not opened by Gateway.open")
    policy = PolicyFile.load(new.policy, counters=gateway.counters)
    lock_file = lock_path(new)
    try:
        lock = parse_lockfile(lock_file.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{lock_file}: {exc}") from None
    previous = {name: upstream.route for name, upstream in gateway.upstreams.items()}
    routes = build_routes(new, gateway.revocations, lock, previous)
    discovery = DiscoveryDocument(gateway.key, new.identity, new.upstreams)
    upstreams: dict[str, Upstream] = {}
    started: list[Tracked] = []
    kept: list[str] = []
    try:
        for name, config in new.upstreams.items():
            current = gateway.upstreams.get(name)
            if current is not None and old.upstreams.get(name) == config:
                upstreams[name] = Upstream(routes.routes[name], current.app)
                kept.append(name)
                continue
            app = Tracked(upstream_app(config, new))
            await gateway.keeper.start(app)
            started.append(app)
            upstreams[name] = Upstream(routes.routes[name], app)
    except BaseException:
        for app in started:
            await gateway.keeper.stop(app)
        raise
    # the swap: nothing below awaits until every part is in place
    retired = [
        (name, upstream.app, old.upstreams[name].timeout)
        for name, upstream in gateway.upstreams.items()
        if name not in upstreams or upstreams[name].app is not upstream.app
    ]
    gateway.relay.reconfigure(
        policy=policy,
        visible=lambda caller, server, tools: visible_tools(policy, caller, server, tools),
        pinned_agents=routes.pinned_agents,
    )
    gateway.front.reconfigure(upstreams, discovery.token)
    gateway.upstreams = upstreams
    gateway.config = new
    if gateway.metrics is not None:
        gateway.metrics.upstreams = frozenset(upstreams)
    for app in started:
        gateway._closers.append(app.inner.aclose)
    for _, replaced, bound in retired:
        task = asyncio.create_task(gateway.keeper.retire(replaced, bound=bound + 1.0), name="mcps retire upstream app")
        gateway.retiring.add(task)
        task.add_done_callback(gateway.retiring.discard)
    names = [name for name, upstream in upstreams.items() if upstream.app in started]
    return ReloadResult(True, None, tuple(names), tuple(kept), tuple(name for name, _, _ in retired))
