"""The gateway's configuration: one TOML file, validated whole before anything starts.

::

    [gateway]
    identity = "urn:mcps:gateway:demo"      # what clients and upstreams pin; hop records name it
    key = "keys/gateway.pem"                # its signing key (PKCS#8 PEM, mode 0600)
    listen = "127.0.0.1:8787"
    state_dir = "state"                     # nonces, revocations, counters, audit log, tool pins
    policy = "policy.toml"                  # mcps.policy file (required: no policy, no gateway)
    admit_unsigned = false                  # unsigned clients, as L0 callers (SPEC.md §12.7)
    # replicas share state: every replica of one deployment names the same servers, prefix, schema and audit key
    # redis_url = "redis://redis:6379/0"    # nonces, counters, revocations, session pins
    # redis_prefix = "prod:"                # before every Redis key (deployments sharing one Redis)
    # postgres_url = "postgresql://…"       # the audit log
    # postgres_schema = "mcps_audit"        # the log's tables
    # audit_key = "secrets/audit.pem"       # the log's signing key (default: state_dir/audit.key)
    shutdown_timeout = 20                   # seconds SIGTERM waits for calls in flight

    [agents]
    anchors = ["anchors.jwks"]              # agents with passports from these issuers

    [[agents.keys]]                         # agents known by a pinned key
    key = "keys/agent.pub.jwk"
    name = "ops-bot"
    level = 2
    scopes = ["payments:read"]

    [upstreams.payments]
    identity = "urn:example:payments"        # the aud agents sign for
    command = ["python", "server.py"]        # a stdio server, or: url = "http://127.0.0.1:9000/mcp"
    trust = "unsigned"                       # or key = "payments.pub.jwk", or anchors = ["servers.jwks"]

Paths are relative to the file. Every error names the file, the line and the setting (:class:`ConfigError`),
and nothing is started until the whole file is valid.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["AgentKeyConfig", "ConfigError", "GatewayConfig", "UpstreamConfig", "load_config"]

DEFAULT_HOSTS: Final = ("127.0.0.1", "localhost", "[::1]")
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LISTEN: Final = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")
_REDIS_PREFIX: Final = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_SCHEMA: Final = re.compile(r"[a-z_][a-z0-9_]{0,47}")
DEFAULT_SCHEMA: Final = "mcps_audit"


class ConfigError(ValueError):
    """A configuration error: ``str()`` is ``file:line: setting: what is wrong``."""

    def __init__(self, path: Path, line: int | None, setting: str, problem: str) -> None:
        self.path, self.line, self.setting, self.problem = path, line, setting, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {setting}: {problem}")


@dataclass(frozen=True, slots=True)
class AgentKeyConfig:
    """An agent known by a pinned key: the gateway gives it ``name``, ``level`` and ``scopes``."""

    key: Path
    name: str | None
    level: int
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream server: how to reach it, the identity agents address, and how its messages are trusted."""

    name: str
    identity: str
    command: tuple[str, ...] | None = None
    url: str | None = None
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    key: Path | None = None
    anchors: tuple[Path, ...] = ()
    timeout: float = 30.0

    @property
    def signed(self) -> bool:
        return self.key is not None or bool(self.anchors)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole validated configuration."""

    path: Path
    identity: str
    key: Path
    passport: Path | None
    host: str
    port: int
    state_dir: Path
    policy: Path
    admit_unsigned: bool
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    agent_anchors: tuple[Path, ...]
    agent_keys: tuple[AgentKeyConfig, ...]
    upstreams: Mapping[str, UpstreamConfig]
    redis_url: str | None = None
    postgres_url: str | None = None
    max_message_bytes: int = 4 * 1024 * 1024
    log_arguments: bool = False
    redis_prefix: str = ""
    """Put before every Redis key and channel the gateway uses, so deployments (and tests) sharing one Redis never
    collide. Every replica of one deployment uses the same prefix, and ``mcps revoke --redis-prefix`` too."""
    postgres_schema: str = DEFAULT_SCHEMA
    audit_key: Path | None = None
    """The audit log's signing key; ``None``: ``state_dir/audit.key`` (created on first use). Replicas sharing a
    PostgreSQL log must all load the same key."""
    shutdown_timeout: float = 20.0
    """Seconds a SIGTERM waits for calls in flight before it cancels them."""

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key if self.audit_key is not None else self.state_dir / "audit.key"


class _Reader:
    """Typed access to one table of the parsed file, with errors pointing at the line of the setting."""

    def __init__(self, path: Path, text: str, table: Mapping[str, Any], where: tuple[str, ...]) -> None:
        self.path, self._text, self.table, self.where = path, text, table, where

    def error(self, key: str | None, problem: str) -> ConfigError:
        setting = ".".join((*self.where, key) if key else self.where) or "(top level)"
        return ConfigError(self.path, _line_of(self._text, self.where, key), setting, problem)

    def sub(self, key: str) -> _Reader:
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return _Reader(self.path, self._text, value, (*self.where, key))

    def only(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.error(key, f"unknown setting (allowed: {', '.join(sorted(allowed))})")

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.table.get(key)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string")
        return value

    def path_of(self, key: str, *, required: bool = False) -> Path | None:
        value = self.string(key, required=required)
        return None if value is None else (self.path.parent / value)

    def paths(self, key: str) -> tuple[Path, ...]:
        return tuple(self.path.parent / item for item in self.strings(key))

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.table.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self.error(key, "must be an array of non-empty strings")
        return tuple(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if type(value) is not bool:
            raise self.error(key, "must be true or false")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.table.get(key, default)
        if type(value) is not int or not low <= value <= high:
            raise self.error(key, f"must be an integer from {low} to {high}")
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.table.get(key, default)
        if type(value) not in (int, float) or not low <= value <= high:
            raise self.error(key, f"must be a number from {low} to {high}")
        return float(value)


def _line_of(text: str, where: tuple[str, ...], key: str | None) -> int | None:
    """The line of ``key`` inside the table ``where`` (or of the table's header), found in the source text.

    tomllib keeps no positions, so this reads the text: the header ``[a.b]`` (or ``[[a.b]]``) of the table, then
    the first ``key =`` after it. Good enough to point a person at the right line; ``None`` when not found.
    """
    lines = text.splitlines()
    start = 0
    header = ".".join(where)
    if header:
        pattern = re.compile(r"\s*\[\[?\s*" + re.escape(header).replace(r"\.", r"\s*\.\s*") + r"\s*\]\]?\s*(#.*)?$")
        found = next((number for number, line in enumerate(lines) if pattern.fullmatch(line)), None)
        if found is None:
            return None
        start = found
    if key is None:
        return start + 1
    assignment = re.compile(r"\s*" + re.escape(key) + r"\s*=")
    for number in range(start + (1 if header else 0), len(lines)):
        if number > start and header and lines[number].lstrip().startswith("["):
            break
        if assignment.match(lines[number]):
            return number + 1
    return start + 1 if header else None


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate the file; raise :class:`ConfigError` (or ``OSError`` when it cannot be read)."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError(file, int(line.group(1)) if line else None, "(syntax)", "not valid TOML") from None
    top = _Reader(file, text, data, ())
    top.only({"gateway", "agents", "upstreams"})
    gateway = top.sub("gateway")
    gateway.only(
        {
            "identity", "key", "passport", "listen", "state_dir", "policy", "admit_unsigned", "allowed_hosts",
            "allowed_origins", "redis_url", "postgres_url", "max_message_bytes", "log_arguments", "redis_prefix",
            "postgres_schema", "audit_key", "shutdown_timeout",
        }
    )  # fmt: skip
    listen = gateway.string("listen", default="127.0.0.1:8787") or ""
    match = _LISTEN.fullmatch(listen)
    if match is None or not 0 <= int(match["port"]) < 65536:
        raise gateway.error("listen", "must be host:port, e.g. 127.0.0.1:8787")
    identity = gateway.string("identity", required=True) or ""
    if len(identity) > 2048:
        raise gateway.error("identity", "must be at most 2048 characters")
    hosts = gateway.strings("allowed_hosts", DEFAULT_HOSTS)
    redis_prefix = gateway.table.get("redis_prefix", "")
    if not isinstance(redis_prefix, str) or _REDIS_PREFIX.fullmatch(redis_prefix) is None:
        raise gateway.error("redis_prefix", "must be at most 64 of A-Z a-z 0-9 _ . : -")
    schema = gateway.string("postgres_schema", default=DEFAULT_SCHEMA) or DEFAULT_SCHEMA
    if _SCHEMA.fullmatch(schema) is None:
        raise gateway.error("postgres_schema", "must be a lower-case SQL identifier (a-z 0-9 _, at most 48)")
    return GatewayConfig(
        path=file,
        identity=identity,
        key=gateway.path_of("key", required=True) or file,
        passport=gateway.path_of("passport"),
        host=match["host"].strip("[]"),
        port=int(match["port"]),
        state_dir=gateway.path_of("state_dir") or file.parent / "state",
        policy=gateway.path_of("policy", required=True) or file,
        admit_unsigned=gateway.boolean("admit_unsigned", False),
        allowed_hosts=hosts,
        allowed_origins=gateway.strings(
            "allowed_origins", tuple(f"{scheme}://{host}" for host in hosts for scheme in ("http", "https"))
        ),
        agent_anchors=_agents(top)[0],
        agent_keys=_agents(top)[1],
        upstreams=_upstreams(top),
        redis_url=gateway.string("redis_url"),
        postgres_url=gateway.string("postgres_url"),
        max_message_bytes=gateway.integer("max_message_bytes", 4 * 1024 * 1024, low=1024, high=64 * 1024 * 1024),
        log_arguments=gateway.boolean("log_arguments", False),
        redis_prefix=redis_prefix,
        postgres_schema=schema,
        audit_key=gateway.path_of("audit_key"),
        shutdown_timeout=gateway.number("shutdown_timeout", 20.0, low=0.0, high=3600.0),
    )


def _agents(top: _Reader) -> tuple[tuple[Path, ...], tuple[AgentKeyConfig, ...]]:
    agents = top.sub("agents")
    agents.only({"anchors", "keys"})
    entries = agents.table.get("keys", [])
    if not isinstance(entries, list):
        raise agents.error("keys", "must be an array of tables ([[agents.keys]])")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise agents.error("keys", "must be an array of tables ([[agents.keys]])")
        reader = _Reader(agents.path, agents._text, entry, ("agents", "keys"))
        reader.only({"key", "name", "level", "scopes"})
        if "level" not in entry:
            raise reader.error("level", "is required: the trust level (0-4) this pinned agent gets")
        keys.append(
            AgentKeyConfig(
                key=reader.path_of("key", required=True) or agents.path,
                name=reader.string("name"),
                level=reader.integer("level", 0, low=0, high=4),
                scopes=reader.strings("scopes"),
            )
        )
    return agents.paths("anchors"), tuple(keys)


def _upstreams(top: _Reader) -> dict[str, UpstreamConfig]:
    upstreams = top.sub("upstreams")
    if not upstreams.table:
        raise upstreams.error(None, "at least one upstream is required ([upstreams.NAME])")
    result = {}
    for name in upstreams.table:
        entry = upstreams.sub(name)
        if _NAME.fullmatch(name) is None:
            raise entry.error(None, "upstream names are 1-64 of a-z 0-9 _ - (they become the path /mcp/NAME)")
        entry.only({"identity", "command", "url", "cwd", "env", "trust", "key", "anchors", "timeout"})
        command = entry.strings("command") or None
        url = entry.string("url")
        if (command is None) == (url is None):
            raise entry.error(None, "give exactly one of command (a stdio server) or url (Streamable HTTP)")
        if url is not None and not url.startswith(("http://", "https://")):
            raise entry.error("url", "must be an http:// or https:// URL")
        env = entry.table.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise entry.error("env", "must be a table of strings")
        trust = entry.string("trust")
        key, anchors = entry.path_of("key"), entry.paths("anchors")
        if (trust == "unsigned") == (key is not None or bool(anchors)) or trust not in (None, "unsigned"):
            raise entry.error(
                "trust", 'say how its messages are trusted: key = FILE, anchors = [...], or trust = "unsigned"'
            )
        result[name] = UpstreamConfig(
            name=name,
            identity=entry.string("identity", required=True) or name,
            command=command,
            url=url,
            cwd=entry.path_of("cwd"),
            env=dict(env),
            key=key,
            anchors=anchors,
            timeout=entry.number("timeout", 30.0, low=0.1, high=3600.0),
        )
    return result
