"""The ``mcps`` command line: parse arguments, call the library, print.

Each command group is a module with ``register(subparsers)``, listed in :data:`COMMAND_MODULES`; a command
stores its handler with ``parser.set_defaults(handler=...)``. Errors are turned into one line on stderr and an
exit code here, in one place:

====  ===============================================================================
0     success
1     the message was refused (``mcps verify``): ``MCPS-0xx: <message>`` on stderr
2     bad arguments or input: unreadable file, wrong key type, input that is not JSON...
130   interrupted
====  ===============================================================================
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from typing import Final, Protocol, cast

import mcps
from mcps.cli.output import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Refused,
    UsageError,
    print_error,
    stderr,
)
from mcps.core.errors import McpsError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: Final = (
    "mcps.cli.keys_cmd",
    "mcps.cli.message_cmd",
    "mcps.cli.identity_cmd",
    "mcps.cli.audit_cmd",
    "mcps.cli.pin_cmd",
    "mcps.cli.policy_cmd",
)
"""Modules that add commands: each has ``register(subparsers) -> None``. Add one line per command group."""

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
        cast(CommandModule, importlib.import_module(name)).register(subparsers)
    for command in subparsers.choices.values():
        # Also accepted after the command name; SUPPRESS keeps the top-level value when it is absent here.
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _report(error: McpsError, *, verbose: bool) -> None:
    print_error(error.diagnostics() if verbose else str(error))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mcps`` command and return its exit code (the console script passes it to ``sys.exit``)."""
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
    except ValueError as exc:  # includes json.JSONDecodeError and UnicodeDecodeError
        print_error(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        stderr().print("interrupted", style="yellow")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
