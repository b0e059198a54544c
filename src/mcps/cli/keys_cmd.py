"""``mcps keygen``: create a signing key (PKCS#8 PEM, mode 0600) and its public JWK (SPEC.md §2)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mcps.cli.output import EXIT_OK, UsageError, stderr
from mcps.core.keys import Algorithm, PrivateKey, save_private_key

__all__ = ["public_jwk_path", "register"]

PUBLIC_SUFFIX = ".pub.jwk"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="create a signing key and its public JWK",
        description=(
            "Write a new private key to PATH (PKCS#8 PEM, mode 0600) and its public JWK to PATH.pub.jwk. "
            "Prints the key id (RFC 7638 thumbprint) on stdout. Never overwrites a file."
        ),
    )
    parser.add_argument("--alg", choices=[alg.value for alg in Algorithm], default=Algorithm.EDDSA.value)
    parser.add_argument("--out", required=True, type=Path, metavar="PATH", help="where to write the private key")
    parser.set_defaults(handler=keygen)


def public_jwk_path(private_path: Path) -> Path:
    """Where ``keygen`` puts the public JWK of the key written to ``private_path``."""
    return private_path.with_name(private_path.name + PUBLIC_SUFFIX)


def keygen(args: argparse.Namespace) -> int:
    out: Path = args.out
    public_path = public_jwk_path(out)
    for path in (out, public_path):
        if path.exists():
            raise UsageError(f"{path} already exists; refusing to overwrite it")
    key = PrivateKey.generate(args.alg)
    save_private_key(key, out)
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(key.public_key.to_jwk(), indent=2) + "\n")
    print(key.kid)
    console = stderr()
    console.print(f"[green]✓[/] {key.alg.value} key [bold]{key.kid}[/]")
    console.print(f"  private key  {out}  (mode 0600, keep it secret)", markup=False)
    console.print(f"  public JWK   {public_path}  (give this to verifiers)", markup=False)
    return EXIT_OK
