"""``mcps policy check`` and ``mcps policy explain``: for operators who must know what a policy allows, and why.

::

    mcps policy check policy.toml                    # validate; the rules as a table; exit 2 with every error
    mcps policy explain policy.toml --agent agent-7 --level 2 --scopes payments:write \\
        --tool transfer_funds --args '{"amount": 250, "currency": "USD"}'   # exit 0 allowed, 1 denied

``explain`` runs the same chain as the policy does for a call (SPEC.md §11.3), as a dry run: counters are read
(from ``--counters``, by default an empty in-memory store) but never taken. The steps go to stderr as a table; the
decision goes to stdout as one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcps.cli.output import EXIT_OK, EXIT_REFUSED, UsageError, print_error, print_json, stderr
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import parse_message
from mcps.identity.levels import TrustLevel
from mcps.policy import CallContext, Decision, PolicyFile, Principal
from mcps.policy.engine import ServerRules, ToolRule
from mcps.stores.counters import CounterStore, MemoryCounterStore
from mcps.stores.redis_counters import RedisCounterStore
from mcps.stores.sqlite_counters import SqliteCounterStore

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("policy", help="check a policy file, or explain its decision for a call")
    commands = parser.add_subparsers(title="policy commands", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="validate a policy file and print its rules",
        description="Load and validate a policy file (every error with its line and rule); print its rules.",
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=_check)

    explain = commands.add_parser(
        "explain",
        help="the decision for one call, and each rule that produced it",
        description=(
            "Run the policy for one call as a dry run (counters are read, never taken) and show each step. "
            "Exit 0 when the call would be allowed, 1 when denied."
        ),
    )
    explain.add_argument("file", type=Path, metavar="FILE")
    explain.add_argument("--server", help="the server the call is for (default: the policy's only server)")
    explain.add_argument("--tool", help="the tool called (tools/call)")
    explain.add_argument("--method", default="tools/call", help="the JSON-RPC method (default tools/call)")
    explain.add_argument("--args", default="{}", metavar="JSON", help="the call's arguments, a JSON object")
    who = explain.add_mutually_exclusive_group()
    who.add_argument("--agent", default="agent", metavar="ID", help="the caller's agent id (default 'agent')")
    who.add_argument("--unsigned", metavar="ID", help="an unsigned client with this identity (always L0)")
    explain.add_argument("--level", type=int, default=0, choices=range(5), help="the caller's trust level (0-4)")
    explain.add_argument("--scopes", default="", help="the caller's scopes, space- or comma-separated")
    explain.add_argument("--issuer", help="the caller's passport issuer (iss)")
    explain.add_argument("--now", type=float, metavar="EPOCH", help="the time of the call (default: now)")
    explain.add_argument(
        "--counters",
        metavar="URL",
        help="read the limits' counters from redis://… or a SQLite file (default: an empty in-memory store)",
    )
    explain.set_defaults(handler=_explain)


def _load(path: Path, counters: CounterStore) -> PolicyFile:
    if not path.is_file():
        raise UsageError(f"{path}: no such policy file")
    return PolicyFile.load(path, counters=counters)  # PolicyFileError (a ValueError) names every problem


def _check(args: argparse.Namespace) -> int:
    policy = _load(args.file, MemoryCounterStore())
    table = Table(title=escape(str(args.file)))
    for column in ("rule", "line", "applies to", "effect", "who", "when", "limits", "hooks"):
        table.add_column(column, overflow="fold")
    servers = policy.servers
    count = 0
    for server in servers.values():
        table.add_row(*map(escape, _server_row(server)), style="bold")
        for rule in server.tools:
            table.add_row(*map(escape, _tool_row(rule)))
            count += 1
    _wide().print(table)
    print_json({"file": str(args.file), "valid": True, "servers": len(servers), "tool_rules": count})
    return EXIT_OK


def _server_row(server: ServerRules) -> list[str]:
    return [
        server.id,
        str(server.line or ""),
        "every call to the server",
        f"default {server.default.value}",
        _who(server.identity),
        server.when.source if server.when else "",
        "\n".join(rate.text for rate in server.rates),
        "\n".join(hook.path for hook in server.hooks),
    ]


def _tool_row(rule: ToolRule) -> list[str]:
    limits = [rate.text for rate in rule.rates]
    if rule.spend is not None:
        for tier in rule.spend.tiers:
            caps = [f"{name} {cap}" for name, cap in (("per call", tier.per_call), ("per day", tier.per_day)) if cap]
            currency = f" {rule.spend.currency}" if rule.spend.currency else ""
            limits.append(f"spend L{tier.level}+: " + ", ".join(caps) + currency)
    return [
        f"  {rule.id}",
        str(rule.line or ""),
        f"tool {rule.match}",
        rule.effect.value,
        _who(rule.identity),
        rule.when.source if rule.when else "",
        "\n".join(limits),
        "\n".join(hook.path for hook in rule.hooks),
    ]


def _who(identity: Any) -> str:
    parts = []
    if identity.min_level is not None:
        parts.append(f"≥ {identity.min_level}")
    if identity.scopes_all:
        parts.append("all of " + " ".join(sorted(identity.scopes_all)))
    if identity.scopes_any:
        parts.append("any of " + " ".join(sorted(identity.scopes_any)))
    for name in ("agents", "issuers"):
        allowed = getattr(identity, name)
        if allowed is not None:
            parts.append(f"{name}: " + " ".join(sorted(allowed)))
        denied = getattr(identity, f"deny_{name}")
        if denied:
            parts.append(f"not {name}: " + " ".join(sorted(denied)))
    return "\n".join(parts)


def _wide() -> Console:
    """stderr, at least 160 columns wide: rule ids and globs stay whole when the output is not a terminal."""
    console = stderr()
    console.width = max(console.width, 160)
    return console


def _open_counters(url: str | None) -> CounterStore:
    if url is None:
        return MemoryCounterStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCounterStore.from_url(url)
    path = Path(url.removeprefix("sqlite://"))
    if not path.is_file():
        raise UsageError(f"{path}: no such counter database")
    return SqliteCounterStore(path)


def _arguments(text: str) -> dict[str, Any]:
    """``--args``, parsed as strictly as a message's arguments (SPEC §3), so that what is explained is what a call
    with these arguments would get — and so that no input ends in a RecursionError."""
    try:
        return parse_message(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("--args is not UTF-8 text") from None
    except McpsError as exc:
        if exc.code in (ErrorCode.BATCH_REJECTED, ErrorCode.NOT_JSONRPC):
            raise UsageError("--args must be a JSON object") from None
        if exc.code is ErrorCode.DUPLICATE_KEY:
            raise UsageError("--args has a duplicate key") from None
        raise UsageError(f"--args is not JSON that mcps accepts ({exc.diagnostics()})") from None


def _explain(args: argparse.Namespace) -> int:
    arguments = _arguments(args.args)
    if args.method == "tools/call" and not args.tool:
        raise UsageError("--tool is required for tools/call")
    counters = _open_counters(args.counters)
    try:
        policy = _load(args.file, counters)
        server = args.server
        if server is None:
            if len(policy.servers) != 1:
                names = ", ".join(sorted(policy.servers)) or "none"
                raise UsageError(f"--server is required: the policy has these servers: {names}")
            server = next(iter(policy.servers))
        if args.unsigned is not None:
            caller = Principal.unsigned(args.unsigned)
        else:
            scopes = frozenset(args.scopes.replace(",", " ").split())
            caller = Principal(args.agent, f"kid-of-{args.agent}", TrustLevel(args.level), scopes, args.issuer)
        call = CallContext(caller, server, args.method, args.tool, arguments)
        now = args.now if args.now is not None else time.time()
        explanation = asyncio.run(policy.explain(call, now=now))
    finally:
        asyncio.run(counters.aclose())
    _print_steps(explanation.steps)
    decision = explanation.decision
    print_json(_summary(decision))
    if decision.code is not None:
        print_error(f"{decision.code.mcps}: {decision.reason}")
    return EXIT_OK if decision.allowed else EXIT_REFUSED


def _print_steps(steps: Any) -> None:
    table = Table(title="policy explain")
    for column in ("#", "rule", "check", "outcome", "note"):
        table.add_column(column, overflow="fold")
    styles = {"pass": "green", "allow": "bold green", "deny": "bold red"}
    for index, step in enumerate(steps, start=1):
        cells = map(escape, (str(index), step.rule, step.check, step.outcome, step.note))
        table.add_row(*cells, style=styles.get(step.outcome))
    _wide().print(table)


def _summary(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.effect.value,
        "code": decision.code.mcps if decision.code is not None else None,
        "reason": decision.reason,
        "detail": decision.detail,
        "rules": list(decision.rules),
    }
