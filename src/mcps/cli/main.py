"""The ``mcps`` command line: parse arguments, call the library, print.

Each command group is a module with ``register(subparsers)``, listed in :data:`COMMAND_MODULES`; a command
stores its handler with ``parser.set_defaults(handler=...)``. Errors are turned into one line on stderr and an
exit code here, in one place:

====  ===============================================================================
0     success
1     the message was refused (``mcps verify``): ``MCPS-0xx: <message>`` on stderr
2     bad arguments or input: unreadable file, wrong key type, input that is not JSON...
3     an unexpected error inside mcps (a bug): one line, the traceback only with ``-v``
130   interrupted
====  ===============================================================================

A user never sees a traceback without ``-v``: whatever a command raises ends here as one line and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Final, Protocol, cast

import mcps
from mcps.cli.output import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Refused,
    UsageError,
    print_error,
    stderr,
)
from mcps.core.errors import ErrorCode, McpsError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: Final = (
    "mcps.cli.keys_cmd",
    "mcps.cli.message_cmd",
    "mcps.cli.identity_cmd",
    "mcps.cli.audit_cmd",
    "mcps.cli.pin_cmd",
    "mcps.cli.policy_cmd",
    "mcps.cli.gateway_cmd",
    "mcps.cli.call_cmd",
)
"""Modules that add commands: each has ``register(subparsers) -> None``. Add one line per command group."""

DISTRIBUTION: Final = "mcps-security"
"""The name mcps is installed under (``pip install mcps-security``); the package and the command are ``mcps``."""

OPTIONAL_EXTRAS: Final = {
    "mcp": "mcp",
    "mcp_types": "mcp",
    "httpx2": "mcp",
    "uvicorn": "mcp",
    "aiohttp": "gateway",
}
"""Top-level modules a command group may need that come with an extra: without them the group's commands say which
extra to install instead of the whole CLI failing to start."""

Handler = Callable[[argparse.Namespace], int]


class CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def _version(_args: argparse.Namespace) -> int:
    print(f"mcps {mcps.__version__}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcps", description="Message-layer security for MCP.")
    parser.add_argument("--version", action="version", version=f"mcps {mcps.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print local diagnostics with errors")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    subparsers.add_parser("version", help="print the version").set_defaults(handler=_version)
    for name in COMMAND_MODULES:
        try:
            module = cast(CommandModule, importlib.import_module(name))
        except ModuleNotFoundError as exc:
            extra = OPTIONAL_EXTRAS.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            _register_missing(subparsers, name, extra)
            continue
        module.register(subparsers)
    for command in subparsers.choices.values():
        if command.prefix_chars != "-":  # a command whose extra is missing takes no options
            continue
        # Also accepted after the command name; SUPPRESS keeps the top-level value when it is absent here.
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    _describe_commands(parser)
    return parser


def _register_missing(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], module: str, extra: str) -> None:
    """A command whose module needs an extra that is not installed: it exists, and says what to install."""
    command = module.rpartition(".")[2].removesuffix("_cmd")

    def missing(_args: argparse.Namespace) -> int:
        raise UsageError(f"mcps {command} needs the {extra!r} extra: pip install '{DISTRIBUTION}[{extra}]'")

    # No option prefix: every argument, --help included, is taken as is and the handler explains.
    parser = subparsers.add_parser(
        command, help=f"(needs: pip install '{DISTRIBUTION}[{extra}]')", add_help=False, prefix_chars="\0"
    )
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    parser.set_defaults(handler=missing)


def _describe_commands(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command without a description its one-line help as one, so ``--help`` always says what
    the command does. Walks the tree of subparsers."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, command in action.choices.items():
            text = helps.get(name)
            if command.description is None and text:
                command.description = f"{text[0].upper()}{text[1:]}."
            _describe_commands(command)


def _report(error: McpsError, *, verbose: bool) -> None:
    # A store that cannot answer is a local fault, not a verdict on the message: say which store and why.
    local = error.code is ErrorCode.STORE_UNAVAILABLE
    print_error(error.diagnostics() if verbose or local else str(error))


def _internal_error(exc: Exception, *, verbose: bool) -> int:
    """Anything no handler expected: one line (never the exception's text), the traceback only with -v."""
    if verbose:
        stderr().print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    hint = "" if verbose else "; run with -v for the traceback"
    print_error(f"error: unexpected internal error ({type(exc).__name__}){hint}. Please report it.")
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mcps`` command and return its exit code (the console script passes it to ``sys.exit``)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(arguments)
    except KeyboardInterrupt:
        stderr().print("interrupted", style="yellow")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the safety net: no traceback reaches a user without -v
        return _internal_error(exc, verbose=bool({"-v", "--verbose"} & set(arguments)))


def _run(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors; return the code instead
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        return EXIT_USAGE
    handler = cast(Handler, args.handler)
    verbose = bool(args.verbose)
    try:
        return handler(args)
    except Refused as exc:
        _report(exc.error, verbose=verbose)
        return EXIT_REFUSED
    except McpsError as exc:  # bad input, not a refusal: the local details help the user fix it
        _report(exc, verbose=True)
        return EXIT_USAGE
    except UsageError as exc:
        print_error(f"error: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename is not None else ""
        print_error(f"error: {exc.strerror or type(exc).__name__}{where}")
        return EXIT_USAGE
    except (ValueError, argparse.ArgumentTypeError) as exc:  # includes json.JSONDecodeError, UnicodeDecodeError
        print_error(f"error: {exc}")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
