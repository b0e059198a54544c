"""Before the gateway runs: check a configuration, pin the upstreams' tools, write a starter.

* :func:`check_config` loads every file a configuration names (keys, passport, anchors, policy, tool pins) and
  returns the problems found, each naming the file; nothing is started or written.
* :func:`pin_upstreams` connects to each upstream directly — a plain MCP client for an unsigned upstream, a signed
  one with the gateway's key for a signed upstream (its tools' signatures verified) — lists every tool and records
  their pin hashes in the gateway's ``mcps.lock``, or compares them with it.
* :func:`write_starter` writes a working gateway for one stdio upstream: keys, a test issuer and agent passport,
  ``gateway.toml``, ``policy.toml`` and the tools' pins.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcps.core.envelope import PinnedKeys
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey, jwks, load_private_key, load_public_jwk, save_private_key
from mcps.core.tools import Lockfile, ServerPins, ToolStatus, compare_tools, parse_lockfile, pin_hash, removed_tools
from mcps.gateway.config import GatewayConfig, UpstreamConfig
from mcps.gateway.runtime import lock_path
from mcps.identity.anchors import TrustAnchors
from mcps.identity.passports import issue_passport
from mcps.policy.file import PolicyFile
from mcps.stores.counters import MemoryCounterStore

__all__ = ["check_config", "list_upstream_tools", "pin_upstreams", "write_starter"]

LIST_TIMEOUT = 60.0


def check_config(config: GatewayConfig) -> list[str]:
    """Every problem with the files ``config`` names, as ``file: what`` lines (empty when all is well)."""
    problems: list[str] = []

    def attempt(path: Path | None, load: Any) -> None:
        if path is None:
            return
        try:
            load(path)
        except (OSError, ValueError, McpsError) as exc:
            what = exc.diagnostics() if isinstance(exc, McpsError) else str(exc)
            problems.append(f"{path}: {what}")

    attempt(config.key, load_private_key)
    attempt(config.passport, lambda path: path.read_text(encoding="ascii"))
    for anchors in config.agent_anchors:
        attempt(anchors, TrustAnchors.load)
    for agent in config.agent_keys:
        attempt(agent.key, load_public_jwk)
    for upstream in config.upstreams.values():
        attempt(upstream.key, load_public_jwk)
        for anchors in upstream.anchors:
            attempt(anchors, TrustAnchors.load)
    attempt(config.policy, lambda path: PolicyFile.load(path, counters=MemoryCounterStore()))
    lock = lock_path(config)
    if lock.exists():
        attempt(lock, lambda path: parse_lockfile(path.read_bytes()))
    else:
        problems.append(f"{lock}: missing: no tool is pinned; run `mcps gateway pin --config {config.path}`")
    return problems


async def list_upstream_tools(command: Sequence[str], *, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The tools of an unsigned stdio server (every page), as their JSON definitions."""
    params = StdioServerParameters(command=command[0], args=list(command[1:]), env=env)
    return await _list(Client(params))


async def _list(client: Client) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    with anyio.fail_after(LIST_TIMEOUT):
        async with client:
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                tools.extend(tool.model_dump(by_alias=True, mode="json", exclude_unset=True) for tool in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools


async def _signed_tools(config: GatewayConfig, upstream: UpstreamConfig) -> tuple[list[dict[str, Any]], KeyId | None]:
    """A signed upstream's tools, listed as the gateway (its key and identity), signatures verified and kept."""
    from mcps.bindings.channel import ChannelSecurity  # noqa: PLC0415 - only for signed upstreams
    from mcps.bindings.tools import ToolGuard  # noqa: PLC0415
    from mcps.stores.nonces import MemoryNonceStore  # noqa: PLC0415

    if upstream.key is None:
        raise McpsError(ErrorCode.UNKNOWN_KEY, detail=f"pin upstream {upstream.name} by key: anchors are not supported")
    upstream_key = load_public_jwk(upstream.key)
    security = ChannelSecurity(
        key=load_private_key(config.key),
        identity=config.identity,
        trusted=PinnedKeys([upstream_key]),
        nonces=MemoryNonceStore(),
    )
    guard = ToolGuard(None, approve=lambda _finding: True)
    if upstream.url is not None:
        from mcps.bindings.http_client import signed_streamable_http_client  # noqa: PLC0415

        transport: Any = signed_streamable_http_client(
            upstream.url, security, server_identity=upstream.identity, tools=guard
        )
    else:
        from mcps.bindings.mcp_client import signed_stdio_client  # noqa: PLC0415

        params = _stdio_params(upstream)
        transport = signed_stdio_client(params, security, server_identity=upstream.identity, tools=guard)
    tools = await _list(Client(transport))
    return tools, upstream_key.kid


def _stdio_params(upstream: UpstreamConfig) -> StdioServerParameters:
    command = list(upstream.command or ())
    env = {**os.environ, **upstream.env} if upstream.env else None
    cwd = str(upstream.cwd) if upstream.cwd is not None else None
    return StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=cwd)


async def pin_upstreams(config: GatewayConfig, names: Sequence[str], check: bool) -> list[dict[str, Any]]:
    """Record (or with ``check`` compare) the tools of the upstreams ``names`` in the gateway's lock."""
    path = lock_path(config)
    lock = parse_lockfile(path.read_bytes()) if path.exists() else Lockfile()
    results = []
    for name in names:
        upstream = config.upstreams[name]
        if upstream.signed:
            tools, kid = await _signed_tools(config, upstream)
        elif upstream.url is not None:
            tools, kid = await _list(Client(upstream.url)), None
        else:
            tools, kid = await _list(Client(_stdio_params(upstream))), None
        pins = lock.server(upstream.identity)
        findings = compare_tools(pins, tools, kid=kid)
        result: dict[str, Any] = {"upstream": name, "identity": upstream.identity}
        if check:
            for status in ToolStatus:
                result[status.value] = [f.name for f in findings if f.status is status]
            result["removed"] = removed_tools(pins, findings)
        else:
            recorded = {tool["name"]: pin_hash(tool) for tool in tools}
            lock = lock.with_server(upstream.identity, ServerPins(kid, recorded))
            result["tools"] = sorted(recorded)
        results.append(result)
    if not check:
        from mcps.bindings.tools import save_lockfile  # noqa: PLC0415

        save_lockfile(lock, path)
    return results


_POLICY = """\
# mcps policy for the gateway (SPEC.md §11). Written by `mcps gateway init`: review it before production use.
mcps_policy = 1

[servers.{name}]
default = "deny"          # a tool no rule below names is refused
min_level = 2             # agents verified by a trust anchor (L2) or better
{rules}
"""

_RULE = """
[[servers.{name}.tools]]
match = "{tool}"
rate = ["60/minute per agent"]
"""

_CONFIG = """\
# mcps gateway configuration, written by `mcps gateway init` (SPEC.md §12).
[gateway]
identity = "urn:mcps:gateway:{name}"
key = "gateway.pem"
listen = "{listen}"
state_dir = "state"
policy = "policy.toml"

[agents]
anchors = ["anchors.jwks"]   # TEST issuer written by init; replace with your own issuers' keys

[upstreams.{name}]
identity = "urn:mcps:upstream:{name}"
command = {command}
trust = "unsigned"
"""

_README = """\
Written by `mcps gateway init`. TEST keys: replace issuer.pem and the agent's passport before production use.

  mcps gateway run --config gateway.toml
  mcps call --gateway http://{listen} --upstream {name} --key agent.pem --passport agent.passport \\
            --gateway-key gateway.pem.pub.jwk TOOL '{{"arg": "value"}}'
"""


def write_starter(
    directory: Path, *, name: str, command: Sequence[str], listen: str, tools: list[dict[str, Any]]
) -> list[Path]:
    """Write a working gateway for one stdio upstream into ``directory``; refuse to overwrite a configuration."""
    import json  # noqa: PLC0415

    if (directory / "gateway.toml").exists():
        raise FileExistsError(0, "a gateway configuration exists already", str(directory / "gateway.toml"))
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(filename: str, text: str) -> None:
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)

    gateway_key, issuer_key, agent_key = (PrivateKey.generate(Algorithm.EDDSA) for _ in range(3))
    for filename, key in (("gateway.pem", gateway_key), ("issuer.pem", issuer_key), ("agent.pem", agent_key)):
        save_private_key(key, directory / filename)
        write(f"{filename}.pub.jwk", json.dumps(key.public_key.to_jwk()) + "\n")
        written.append(directory / filename)
    anchors = jwks([issuer_key.public_key])
    anchors["keys"][0]["mcps_max_tl"] = 3
    write("anchors.jwks", json.dumps(anchors, indent=2) + "\n")
    passport = issue_passport(
        issuer_key,
        iss="urn:mcps:issuer:test",
        sub="agent-1",
        agent_key=agent_key.public_key,
        level=2,
        scopes=[],
        now=time.time(),
    )
    write("agent.passport", passport + "\n")
    rules = "".join(_RULE.format(name=name, tool=tool["name"]) for tool in tools)
    write("policy.toml", _POLICY.format(name=name, rules=rules))
    write("gateway.toml", _CONFIG.format(name=name, listen=listen, command=json.dumps(list(command))))
    write("README.txt", _README.format(name=name, listen=listen))
    lock = Lockfile().with_server(
        f"urn:mcps:upstream:{name}", ServerPins(None, {t["name"]: pin_hash(t) for t in tools})
    )
    from mcps.bindings.tools import save_lockfile  # noqa: PLC0415

    save_lockfile(lock, directory / "mcps.lock")
    written.append(directory / "mcps.lock")
    return written
