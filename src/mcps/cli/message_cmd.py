"""``mcps sign`` and ``mcps verify``: one JSON-RPC message on stdin, the result on stdout (SPEC.md §4–5)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from mcps.cli import identity_cmd
from mcps.cli.output import (
    EXIT_OK,
    Refused,
    UsageError,
    print_json,
    read_private_key,
    read_public_key,
    read_stdin,
    stderr,
)
from mcps.core.envelope import DEFAULT_LIFETIME, DEFAULT_SKEW, MAX_LIFETIME, PinnedKeys
from mcps.core.errors import McpsError
from mcps.core.keys import PublicKey
from mcps.core.strict import parse_message
from mcps.identity.resolver import attach_passport
from mcps.stores.nonces import MemoryNonceStore, NonceStore
from mcps.verifier import MessageSigner, MessageVerifier, VerifiedMessage

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sign = subparsers.add_parser(
        "sign",
        help="sign a JSON-RPC message read from stdin",
        description=(
            "Read one JSON-RPC message on stdin, sign it, print it as one line of compact JSON. The signature is "
            f"valid from now for --lifetime seconds (default {DEFAULT_LIFETIME}); a receiver also allows its clock "
            f"skew (default {DEFAULT_SKEW} s), so by default it is refused (MCPS-006) about "
            f"{DEFAULT_LIFETIME + DEFAULT_SKEW} s after signing."
        ),
    )
    sign.add_argument("--key", required=True, type=Path, metavar="PATH", help="private key PEM (from mcps keygen)")
    sign.add_argument("--aud", required=True, help="identity of the receiver, e.g. mcp://payments.example")
    sign.add_argument("--in-reply-to", metavar="SIG", help="for a result or error: the sig value of the request")
    sign.add_argument(
        "--lifetime",
        type=int,
        default=DEFAULT_LIFETIME,
        metavar="SECONDS",
        help=f"exp - iat, 1..{MAX_LIFETIME} (default {DEFAULT_LIFETIME})",
    )
    sign.set_defaults(handler=sign_command)
    identity_cmd.add_sign_options(sign)

    verify = subparsers.add_parser(
        "verify",
        help="verify a signed JSON-RPC message read from stdin",
        description=(
            "Read one signed message on stdin and verify it. Exit 0 and print a JSON summary when it is accepted; "
            "exit 1 with its MCPS code on stderr when it is refused."
        ),
    )
    verify.add_argument("--key", type=Path, metavar="PUB.jwk", help="the signer's public JWK (or use --trust)")
    verify.add_argument("--aud", required=True, help="this receiver's own identity")
    verify.add_argument(
        "--nonce-db",
        type=Path,
        metavar="PATH",
        help=(
            "SQLite file remembering nonces. Without it nonces are kept in memory for this one invocation only, "
            "so a replay across invocations is NOT detected."
        ),
    )
    verify.add_argument("--in-reply-to", metavar="SIG", help="for a result or error: the sig value of the request")
    verify.add_argument(
        "--skew", type=int, default=DEFAULT_SKEW, metavar="SECONDS", help=f"allowed clock skew (default {DEFAULT_SKEW})"
    )
    verify.set_defaults(handler=verify_command)
    identity_cmd.add_verify_options(verify)


def sign_command(args: argparse.Namespace) -> int:
    signer = MessageSigner(read_private_key(args.key, option="--key"), lifetime=args.lifetime)
    message = parse_message(read_stdin())
    if args.passport is not None:
        message = attach_passport(message, *identity_cmd.read_passport_file(args.passport))
    print_json(signer.sign(message, audience=args.aud, in_reply_to=args.in_reply_to))
    return EXIT_OK


def _open_nonce_store(path: Path | None) -> NonceStore:
    if path is None:
        return MemoryNonceStore()
    from mcps.stores.sqlite_nonces import SqliteNonceStore  # noqa: PLC0415 - only needed with --nonce-db

    return SqliteNonceStore(path)


async def _verify(args: argparse.Namespace, key: PublicKey | None, raw: bytes) -> VerifiedMessage:
    pinned = PinnedKeys([key]) if key is not None else None
    resolver = identity_cmd.resolver_from_args(args, pinned) if args.trust else None
    keys = resolver or pinned
    if keys is None:
        raise UsageError("verify needs --key PUB.jwk, --trust ANCHORS.jwks, or both")
    nonces = _open_nonce_store(args.nonce_db)
    try:
        verifier = MessageVerifier(audience=args.aud, keys=keys, nonces=nonces, max_skew=args.skew)
        return await verifier.verify(raw, in_reply_to=args.in_reply_to)
    finally:
        await nonces.aclose()
        if resolver is not None:
            await resolver.revocations.aclose()


def summary(verified: VerifiedMessage) -> dict[str, Any]:
    """What ``mcps verify`` prints on stdout for an accepted message."""
    block = verified.block
    return {
        "kind": verified.kind.value,
        "method": verified.method,
        "id": verified.id,
        "kid": block.kid,
        "alg": block.alg.value,
        "aud": block.aud,
        "iat": block.iat,
        "exp": block.exp,
    }


def verify_command(args: argparse.Namespace) -> int:
    # A bad key file is an input error (exit 2).
    key = read_public_key(args.key, option="--key") if args.key is not None else None
    try:
        verified = asyncio.run(_verify(args, key, read_stdin()))
    except McpsError as exc:
        raise Refused(exc) from exc
    print_json(summary(verified) | ({"agent": identity_cmd.agent_summary(verified.agent)} if verified.agent else {}))
    stderr().print(f"[green]✓ accepted[/] {verified.kind.value} signed by [bold]{verified.kid}[/]")
    return EXIT_OK
