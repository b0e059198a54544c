"""``mcps pin``: record a server's signed tool definitions in ``mcps.lock``, or check them against it (SPEC §8).

::

    mcps pin --server "python server.py" --server-identity urn:example:files \\
             --key agent.pem --server-key server.pem.pub.jwk            # writes mcps.lock
    mcps pin --check --server "python server.py" ...                    # exit 1 on any change

The command connects as a signed agent (stdio: ``--server COMMAND``, run with this environment; Streamable
HTTP: ``--url URL``), lists every tool (all pages), verifies each tool's signature against the pinned server
key, and either records the pin hashes (replacing that server's entry; nothing is written when a tool is
unsigned or badly signed) or compares them with the lock: changed, new, renamed, removed and invalid tools are
listed on stderr and in the JSON summary on stdout, and any of them makes the exit status 1.

Connecting, listing and closing are bounded by ``--timeout``. A server started with ``--server`` writes its stderr
(its own log lines) nowhere unless ``-v`` is given. A process that does not answer ``initialize`` as a signed MCP
server (``cat``, a plain unsigned server) is reported as such rather than by the code of the first refusal.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import tempfile
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from mcps.bindings._sdk import TransportStreams
from mcps.bindings.channel import ChannelSecurity
from mcps.bindings.mcp_client import signed_stdio_client
from mcps.bindings.tools import ToolGuard, ToolReport, load_lockfile, save_lockfile
from mcps.cli.identity_cmd import read_passport_file
from mcps.cli.output import (
    EXIT_OK,
    EXIT_REFUSED,
    Refused,
    UsageError,
    print_json,
    read_private_key,
    read_public_key,
    stderr,
)
from mcps.core.envelope import SIG_KEY, PinnedKeys
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey
from mcps.core.tools import ServerPins, ToolFinding, ToolStatus
from mcps.stores.nonces import MemoryNonceStore

__all__ = ["register", "translate_sdk_error"]

DEFAULT_LOCK = Path("mcps.lock")
DEFAULT_TIMEOUT = 30.0
"""Seconds ``mcps pin`` waits for the server to connect and list its tools (``--timeout``)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pin",
        help="record a server's signed tools in mcps.lock, or --check them",
        description=(
            "Connect to an MCP server as a signed agent and list its tools. Without --check: record each tool's "
            "pin hash in the lock file (replacing that server's entry). With --check: compare with the lock file "
            "and exit 1 when any tool changed, is new, was renamed, removed, or is not validly signed."
        ),
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="COMMAND", help="start the server with this command (stdio)")
    where.add_argument("--url", help="the server's Streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument("--server-identity", required=True, metavar="ID", help="the server's identity (aud)")
    parser.add_argument("--key", required=True, type=Path, metavar="PATH", help="the agent's private key PEM")
    parser.add_argument(
        "--server-key", required=True, type=Path, metavar="PUB.jwk", help="the server's pinned public JWK"
    )
    parser.add_argument(
        "--passport",
        type=Path,
        metavar="PATH",
        help="the agent's passport file (mcps passport issue), for a server that trusts agents by passport",
    )
    parser.add_argument(
        "--out",
        "--lock",
        dest="lock",
        type=Path,
        default=DEFAULT_LOCK,
        metavar="PATH",
        help=f"the lock file (default {DEFAULT_LOCK})",
    )
    parser.add_argument("--check", action="store_true", help="compare with the lock file instead of writing it")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up when the server has not connected and listed its tools by then (default {DEFAULT_TIMEOUT:g})",
    )
    parser.set_defaults(handler=pin_command)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def pin_command(args: argparse.Namespace) -> int:
    agent_key = read_private_key(args.key, option="--key")
    server_key = read_public_key(args.server_key, option="--server-key")
    new_lock = not args.check and not Path(args.lock).exists()
    try:
        lock = load_lockfile(args.lock, create=not args.check)  # recording may start a lock file; checking may not
    except FileNotFoundError:
        raise UsageError(f"{args.lock} does not exist; run mcps pin without --check first to create it") from None
    pins = lock.server(args.server_identity)
    if args.check and pins is None:
        raise UsageError(f"{args.lock} has no pins for {args.server_identity}; run mcps pin without --check first")
    reports: list[ToolReport] = []
    # Recording starts from nothing (every verified tool approved); checking holds anything not pinned.
    approve_all = not args.check
    guard = ToolGuard(pins if args.check else None, approve=lambda _finding: approve_all, on_report=reports.append)
    verbose = bool(getattr(args, "verbose", False))
    _quiet_bindings_log(verbose=verbose)
    # Without -v the server's own stderr (its log lines) goes to a file nobody shows: pin's stderr stays ours.
    with tempfile.TemporaryFile() as server_stderr:
        anyio.run(_list_tools, args, agent_key, server_key, guard, None if verbose else server_stderr)
    findings = [decision.finding for report in reports for decision in report.decisions]
    removed = list(reports[-1].removed) if reports else []
    if args.check:
        return _report_check(args.server_identity, findings, removed)
    invalid = [finding for finding in findings if finding.status is ToolStatus.INVALID]
    if invalid:
        for finding in invalid:
            stderr().print(f"invalid: {finding.name} ({finding.detail})", markup=False, style="red")
        raise Refused(McpsError(ErrorCode.TOOL_CHANGED, detail="some tools are not validly signed"))
    recorded = dict(guard.allowed)
    save_lockfile(lock.with_server(args.server_identity, ServerPins(server_key.kid, recorded)), args.lock)
    print_json({"server": args.server_identity, "kid": server_key.kid, "tools": sorted(recorded)})
    where = f"a new lock file, {args.lock}" if new_lock else str(args.lock)
    stderr().print(f"✓ pinned {len(recorded)} tools of {args.server_identity} in {where}", markup=False, style="green")
    return EXIT_OK


def _report_check(server: str, findings: list[ToolFinding], removed: list[str]) -> int:
    def named(status: ToolStatus) -> list[str]:
        return [finding.name for finding in findings if finding.status is status]

    renamed = [{"from": f.previous, "to": f.name} for f in findings if f.status is ToolStatus.RENAMED]
    summary: dict[str, Any] = {
        "server": server,
        "pinned": named(ToolStatus.PINNED),
        "changed": named(ToolStatus.CHANGED),
        "new": named(ToolStatus.NEW),
        "renamed": renamed,
        "removed": removed,
        "invalid": named(ToolStatus.INVALID),
    }
    clean = not any(summary[key] for key in ("changed", "new", "renamed", "removed", "invalid"))
    summary["ok"] = clean
    print_json(summary)
    console = stderr()
    for status in ("changed", "new", "removed", "invalid"):
        for name in summary[status]:
            console.print(f"{status}: {name}", markup=False, style="red")
    for rename in renamed:
        console.print(f"renamed: {rename['from']} -> {rename['to']}", markup=False, style="red")
    if clean:
        console.print(f"[green]✓[/] {len(summary['pinned'])} tools match the lock")
        return EXIT_OK
    return EXIT_REFUSED


async def _list_tools(
    args: argparse.Namespace,
    agent_key: PrivateKey,
    server_key: PublicKey,
    guard: ToolGuard,
    server_stderr: IO[bytes] | None,
) -> None:
    passport, chain = read_passport_file(args.passport) if args.passport is not None else (None, [])
    try:
        security = ChannelSecurity(
            key=agent_key,
            passport=passport,
            chain=tuple(chain),
            trusted=PinnedKeys([server_key]),
            nonces=MemoryNonceStore(),
        )
    except ValueError as exc:
        raise UsageError(f"--passport: {exc}") from exc
    connected = False
    try:
        with anyio.fail_after(args.timeout):
            async with Client(_transport(args, security, guard, server_stderr)) as client:
                connected = True
                cursor: str | None = None
                while True:
                    page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                    cursor = page.next_cursor
                    if not cursor:
                        break
    except BaseException as exc:  # the SDK raises groups from its task groups; find the refusal in them
        translated = _translate(exc, args, connected=connected)
        if translated is exc:
            raise
        raise translated from exc


def _transport(
    args: argparse.Namespace, security: ChannelSecurity, guard: ToolGuard, server_stderr: IO[bytes] | None
) -> AbstractAsyncContextManager[TransportStreams]:
    if args.url is not None:
        from mcps.bindings.http_client import signed_streamable_http_client  # noqa: PLC0415 - only with --url

        return signed_streamable_http_client(args.url, security, server_identity=args.server_identity, tools=guard)
    command = shlex.split(args.server)
    if not command:
        raise UsageError("--server needs a command")
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    return signed_stdio_client(
        params, security, server_identity=args.server_identity, tools=guard, stderr=server_stderr
    )


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _refusal(leaf: BaseException) -> tuple[McpsError, bool] | None:
    """The MCPS refusal an SDK error carries, and whether the server signed it (else this end refused what came)."""
    if not isinstance(leaf, MCPError) or not isinstance(leaf.error.data, dict):
        return None
    code = leaf.error.data.get("mcps_code")
    if not isinstance(code, str):
        return None
    try:
        error = McpsError(ErrorCode.from_mcps(code), detail=leaf.error.message)
    except ValueError:
        return None
    return error, SIG_KEY in leaf.error.data


def _translate(exc: BaseException, args: argparse.Namespace, *, connected: bool) -> BaseException:
    where = args.url if args.url is not None else repr(args.server)
    return translate_sdk_error(exc, where=where, timeout=args.timeout, connected=connected)


def translate_sdk_error(exc: BaseException, *, where: str, timeout: float, connected: bool) -> BaseException:
    """The refusal (MCPS code) or usage error inside what the SDK raised; anything else unchanged.

    Before the handshake completes, an answer this end refused (other than one signed by an untrusted key) or a
    connection closed without an answer means the process is not an MCP server signing with mcps: that is what
    the user is told, not the code of the first refusal (``cat`` echoes the request back: MCPS-011).
    """
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, McpsError):
            return Refused(leaf)
        refusal = _refusal(leaf)
        if refusal is None:
            continue
        error, signed_by_server = refusal
        if connected or signed_by_server or error.code is ErrorCode.UNKNOWN_KEY:
            return Refused(error)
        return UsageError(
            f"{where} is not an MCP server signing with mcps: its answer to initialize was refused ({error})"
        )
    for leaf in leaves:
        if isinstance(leaf, TimeoutError):  # before OSError: TimeoutError is one
            return UsageError(f"no answer from {where} within {timeout:g} s (--timeout)")
        if isinstance(leaf, UsageError | OSError | KeyboardInterrupt):
            return leaf
        if isinstance(leaf, httpx2.HTTPStatusError):
            return UsageError(f"{where} answered HTTP {leaf.response.status_code}: not an MCP endpoint")
        if isinstance(leaf, httpx2.HTTPError):
            return UsageError(f"cannot reach {where} ({type(leaf).__name__})")
        if isinstance(leaf, MCPError) and not connected and leaf.error.code == CONNECTION_CLOSED:
            return UsageError(
                f"{where} closed the connection without answering initialize: not an MCP server, or it failed to "
                "start (-v shows its stderr)"
            )
        if isinstance(leaf, MCPError):
            return UsageError(f"the server failed: {leaf.error.message}")
    return exc


def _quiet_bindings_log(*, verbose: bool) -> None:
    """Without -v, the guard's log lines would repeat what this command prints."""
    bindings_log = logging.getLogger("mcps.bindings")
    if not verbose and not any(isinstance(handler, logging.NullHandler) for handler in bindings_log.handlers):
        bindings_log.addHandler(logging.NullHandler())
