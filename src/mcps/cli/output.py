"""What every command shares: exit codes, plain JSON on stdout, human text on stderr (with ``rich``).

Machine output (a kid, a signed message, a verification summary) goes to stdout as plain text or one line of
compact JSON, so it can be piped. Everything meant for a person goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from mcps.core.errors import McpsError
from mcps.core.keys import PrivateKey, PublicKey, load_private_key, load_public_jwk
from mcps.core.strict import read_limited

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Refused",
    "UsageError",
    "print_error",
    "print_json",
    "read_private_key",
    "read_public_key",
    "read_stdin",
    "stderr",
]

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
"""A message was refused (verification failed)."""
EXIT_USAGE: Final = 2
"""Bad arguments or bad input: a missing file, a wrong key type, input that is not JSON..."""
EXIT_INTERNAL: Final = 3
"""An unexpected error inside mcps (a bug): one line on stderr, the traceback only with ``-v``."""
EXIT_INTERRUPTED: Final = 130


class Refused(Exception):
    """Raised by a command when the message under test is refused; ``main`` exits with :data:`EXIT_REFUSED`.

    Any other :class:`McpsError` reaching ``main`` is an input error (exit :data:`EXIT_USAGE`).
    """

    def __init__(self, error: McpsError) -> None:
        super().__init__(str(error))
        self.error = error


class UsageError(Exception):
    """A one-line explanation of what the user got wrong; ``main`` exits with :data:`EXIT_USAGE`."""


def stderr() -> Console:
    """A console on the current ``sys.stderr`` that never wraps lines (errors stay on one line)."""
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def print_error(text: str) -> None:
    """Print ``text`` (not markup: it may hold paths or brackets) as one red line on stderr."""
    stderr().print(text, style="bold red", markup=False)


def print_json(value: Any) -> None:
    """Print ``value`` as compact JSON on one line of stdout."""
    sys.stdout.write(json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_stdin() -> bytes:
    """Read all of stdin as bytes, refusing (MCPS-018) more than the default message size limit."""
    return read_limited(sys.stdin.buffer)


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(64).lstrip()


def read_public_key(path: Path, *, option: str) -> PublicKey:
    """The public JWK named by ``option``; a PEM file there gets a hint instead of a bare MCPS-029."""
    head = _head(path)
    if head.startswith(b"-----BEGIN") and b"PRIVATE KEY" in head:
        raise UsageError(f"{option} {path} is a private key; give its public JWK (mcps keygen wrote {path}.pub.jwk)")
    if head.startswith(b"-----BEGIN"):
        raise UsageError(f"{option} {path} is a PEM file; give the public JWK that mcps keygen writes (*.pub.jwk)")
    return load_public_jwk(path)


def read_private_key(path: Path, *, option: str) -> PrivateKey:
    """The private key PEM named by ``option``; a JWK there gets a hint instead of a bare MCPS-029."""
    if _head(path).startswith(b"{"):
        raise UsageError(f"{option} {path} looks like a JWK; this needs the private key PEM written by mcps keygen")
    return load_private_key(path)
