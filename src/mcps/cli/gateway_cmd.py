"""``mcps gateway``: run the gateway, write a starter, check a configuration, pin the upstreams' tools.

::

    mcps gateway init --upstream-command "python server.py" --dir gw   # keys, gateway.toml, policy.toml, pins
    mcps gateway check-config gw/gateway.toml                          # validate every file; nothing starts
    mcps gateway pin --config gw/gateway.toml [--check]                # list each upstream's tools into mcps.lock
    mcps gateway run --config gw/gateway.toml                          # serve on the configured address
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path
from typing import Any

import anyio

from mcps.cli.output import EXIT_OK, EXIT_REFUSED, UsageError, print_json, stderr
from mcps.cli.pin_cmd import translate_sdk_error
from mcps.core.errors import McpsError
from mcps.gateway.config import ConfigError, GatewayConfig, load_config
from mcps.gateway.setup import check_config, list_upstream_tools, pin_upstreams, write_starter

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run mcps gateway in front of existing MCP servers",
        description=(
            "A security gateway in front of MCP servers you already run (stdio commands or Streamable HTTP URLs): "
            "every message verified, every tool call decided by policy with a per-call grant, every hop "
            "countersigned, every decision in a tamper-evident audit log."
        ),
    )
    commands = parser.add_subparsers(title="gateway commands", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="serve the gateway",
        description=(
            "Serve the gateway until SIGTERM or SIGINT (graceful: calls in flight finish within shutdown_timeout, "
            "the audit log is flushed, stdio upstreams are ended; exit 0). SIGHUP reloads the policy, tool pins, "
            "agents and upstreams without dropping a call; a bad file is refused and logged, the old one kept. "
            "Also served: /healthz, /readyz and /metrics (Prometheus)."
        ),
    )
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="the gateway's TOML configuration")
    run.add_argument("--port", type=int, help="listen on this port instead of the configured one (0: any free port)")
    run.add_argument(
        "--stdio",
        metavar="UPSTREAM",
        help="serve this upstream on stdin/stdout (for clients that start a command) instead of listening",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line, with the request id and trace context (default text)",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration and every file it names",
        description="Load the configuration, its keys, anchors, policy and tool pins; start nothing.",
    )
    check.add_argument("config", type=Path, metavar="FILE")
    check.set_defaults(handler=_check)

    pin = commands.add_parser(
        "pin",
        help="record each upstream's tools in the gateway's mcps.lock (or --check them)",
        description=(
            "Connect to each upstream (or the one named) directly, list its tools, verify their signatures when the "
            "upstream signs, and record their pin hashes in mcps.lock beside the configuration; with --check, "
            "compare instead and exit 1 on any difference."
        ),
    )
    pin.add_argument("--config", required=True, type=Path, metavar="FILE")
    pin.add_argument("--upstream", metavar="NAME", help="only this upstream")
    pin.add_argument("--check", action="store_true", help="compare with mcps.lock instead of writing it")
    pin.set_defaults(handler=_pin)

    init = commands.add_parser(
        "init",
        help="write a working starter for one upstream command",
        description=(
            "Write, in --dir: the gateway's key, a test issuer (anchors.jwks) with one agent key and passport, "
            "gateway.toml for one stdio upstream, a policy that allows the upstream's tools to L2 agents, and the "
            "tools' pins. Review policy.toml before production use."
        ),
    )
    init.add_argument("--upstream-command", required=True, metavar="COMMAND", help="the stdio MCP server to front")
    init.add_argument("--name", default="main", help="the upstream's name, and its path /mcp/NAME (default main)")
    init.add_argument("--dir", type=Path, default=Path("gateway"), help="where to write (default ./gateway)")
    init.add_argument("--listen", default="127.0.0.1:8787", help="host:port (default 127.0.0.1:8787)")
    init.set_defaults(handler=_init)


def _load(path: Path) -> GatewayConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from mcps.gateway.logs import configure_logging  # noqa: PLC0415 - only needed to run
    from mcps.gateway.runtime import Gateway  # noqa: PLC0415
    from mcps.gateway.serve import serve_gateway  # noqa: PLC0415

    config = _load(args.config)
    if args.stdio is not None and args.stdio not in config.upstreams:
        raise UsageError(f"no upstream named {args.stdio!r} in {args.config}")
    configure_logging(args.log_format)  # to stderr: with --stdio, stdout carries MCP
    logger = logging.getLogger("mcps.gateway")

    def started(port: int) -> None:
        logger.info("mcps gateway %s listening on http://%s:%d", config.identity, config.host, port)

    async def serve() -> None:
        gateway = await Gateway.open(config)
        if args.stdio is not None:
            from mcps.gateway.stdio_front import bridge_stdio, serving_on_loopback  # noqa: PLC0415

            try:
                async with serving_on_loopback(gateway.front) as port:
                    await bridge_stdio(f"http://127.0.0.1:{port}/mcp/{args.stdio}", gateway.relay.limits)
            finally:
                await gateway.aclose()
            return
        port = config.port if args.port is None else args.port
        await serve_gateway(gateway, host=config.host, port=port, on_started=started)

    try:
        anyio.run(serve)
    except McpsError:
        raise
    except (OSError, ValueError) as exc:
        raise UsageError(f"the gateway could not start: {exc}") from None
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    problems = check_config(config)
    summary: dict[str, Any] = {
        "config": str(args.config),
        "identity": config.identity,
        "upstreams": sorted(config.upstreams),
        "problems": problems,
    }
    print_json(summary)
    console = stderr()
    for problem in problems:
        console.print(problem, markup=False, style="red")
    if problems:
        return EXIT_REFUSED
    console.print(f"[green]✓[/] {args.config} is valid ({len(config.upstreams)} upstreams)")
    return EXIT_OK


def _pin(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.upstream is not None and args.upstream not in config.upstreams:
        raise UsageError(f"no upstream named {args.upstream!r} in {args.config}")
    names = [args.upstream] if args.upstream is not None else sorted(config.upstreams)
    results = anyio.run(pin_upstreams, config, names, args.check)
    print_json(results)
    console = stderr()
    dirty = False
    for result in results:
        for status in ("changed", "new", "removed", "invalid"):
            for name in result.get(status, []):
                dirty = True
                console.print(f"{result['upstream']}: {status}: {name}", markup=False, style="red")
        if not args.check:
            console.print(f"[green]✓[/] pinned {len(result['tools'])} tools of {result['upstream']}")
    return EXIT_REFUSED if dirty else EXIT_OK


def _init(args: argparse.Namespace) -> int:
    command = shlex.split(args.upstream_command)
    if not command:
        raise UsageError("--upstream-command needs a command")
    if (args.dir / "gateway.toml").exists():
        raise UsageError(f"{args.dir / 'gateway.toml'} exists already: init writes a new gateway, never over one")
    try:
        tools = anyio.run(list_upstream_tools, command)
    except BaseException as exc:  # the SDK raises groups from its task groups: say what happened in one line
        translated = translate_sdk_error(exc, where=repr(args.upstream_command), timeout=60, connected=False)
        if translated is exc:
            raise
        raise translated from None
    written = write_starter(args.dir, name=args.name, command=command, listen=args.listen, tools=tools)
    print_json(
        {
            "dir": str(args.dir),
            "files": [str(path) for path in written],
            "tools": sorted(tool["name"] for tool in tools),
        }
    )
    console = stderr()
    console.print(f"[green]✓[/] wrote a gateway for {len(tools)} tools in {args.dir}")
    config = args.dir / "gateway.toml"
    console.print(f"run it:   mcps gateway run --config {shlex.quote(str(config))}", markup=False)
    console.print(f"call it:  see {shlex.quote(str(args.dir / 'README.txt'))}", markup=False)
    return EXIT_OK
