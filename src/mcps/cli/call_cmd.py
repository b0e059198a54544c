"""``mcps call``: call one tool through a gateway (or any signed server) as a signed agent, for a quick test.

::

    mcps call http://127.0.0.1:8787/mcp/main get_balance --key agent.pem --passport agent.passport \\
              --gateway-key gateway.pem.pub.jwk
    mcps call URL transfer_funds '{"amount": 5, "currency": "USD", "to": "a", "counterparty": "b"}' ...

With ``--gateway-key`` the command reads the gateway's signed discovery document (``/.well-known/mcps-gateway``,
SPEC.md §12.2) to learn the identity to address at that path and whether the upstream signs; it then trusts the
upstream's key (``--server-key``, required when the upstream signs) end to end and the gateway as a hop that must
countersign every answer. Without a gateway, give ``--server-identity`` and ``--server-key``. The tool's result is
printed as JSON on stdout; a refusal prints its MCPS code on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from mcps.cli.identity_cmd import read_passport_file
from mcps.cli.output import EXIT_OK, Refused, UsageError, print_json, stderr
from mcps.core.envelope import PinnedKeys
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PublicKey, load_private_key, load_public_jwk
from mcps.core.strict import parse_message

__all__ = ["register"]

TIMEOUT = 60.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "call",
        help="call one tool through a gateway as a signed agent",
        description=(
            "Connect to an MCP endpoint as a signed agent (through mcps gateway, or to a signed server), list its "
            "tools, call one, and print the result as JSON. Refusals print their MCPS code and exit 1."
        ),
    )
    parser.add_argument("url", help="the endpoint, e.g. http://127.0.0.1:8787/mcp/payments")
    parser.add_argument("tool", help="the tool to call")
    parser.add_argument("arguments", nargs="?", default="{}", help="the tool's arguments as a JSON object")
    parser.add_argument("--key", required=True, type=Path, metavar="PATH", help="the agent's private key PEM")
    parser.add_argument("--passport", type=Path, metavar="PATH", help="the agent's passport file")
    parser.add_argument("--gateway-key", type=Path, metavar="PUB.jwk", help="the gateway's pinned public key")
    parser.add_argument("--server-key", type=Path, metavar="PUB.jwk", help="the server's pinned public key")
    parser.add_argument("--server-identity", metavar="ID", help="the server's identity (default: from the gateway)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds to wait (default {TIMEOUT:.0f})")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the endpoint to accept connections",
    )
    parser.set_defaults(handler=call_command)


def call_command(args: argparse.Namespace) -> int:
    arguments = parse_message(args.arguments.encode("utf-8"))  # strict: duplicate keys, I-JSON numbers; an object
    if args.gateway_key is None and (args.server_key is None or args.server_identity is None):
        raise UsageError("give --gateway-key, or --server-key and --server-identity for a server without a gateway")
    if args.wait > 0:
        _wait_for(args.url, args.wait)
    gateway = load_public_jwk(args.gateway_key) if args.gateway_key is not None else None
    server = load_public_jwk(args.server_key) if args.server_key is not None else None
    identity, upstream_signed = args.server_identity, server is not None
    if gateway is not None and identity is None:
        identity, upstream_signed = anyio.run(_discover, args.url, gateway)
    if upstream_signed and server is None:
        raise UsageError("this upstream signs its answers: give its key with --server-key")
    result = anyio.run(_call, args, arguments, identity, server if upstream_signed else gateway, gateway)
    print_json(result)
    return EXIT_OK


def _wait_for(url: str, seconds: float) -> None:
    """Block until ``url``'s host accepts a TCP connection (a gateway just started), or ``seconds`` have passed."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise UsageError(f"nothing accepts connections at {parts.netloc} after {seconds:g} s") from None
            time.sleep(0.1)


async def _discover(url: str, gateway: PublicKey) -> tuple[str, bool]:
    import httpx  # noqa: PLC0415 - only to read the discovery document

    from mcps.gateway.discovery import read_discovery  # noqa: PLC0415

    parts = urlsplit(url)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{parts.scheme}://{parts.netloc}/.well-known/mcps-gateway")
    if response.status_code != 200:
        raise UsageError(f"no gateway discovery document at {parts.netloc} (HTTP {response.status_code})")
    _, upstreams = read_discovery(response.text, gateway, now=time.time())
    for upstream in upstreams:
        if upstream.path.rstrip("/") == parts.path.rstrip("/"):
            return upstream.identity, upstream.signed
    raise UsageError(f"the gateway serves no upstream at {parts.path}")


async def _call(
    args: argparse.Namespace, arguments: dict[str, Any], identity: str, trusted: Any, gateway: PublicKey | None
) -> dict[str, Any]:
    from mcp import Client  # noqa: PLC0415 - the SDK is only needed here

    from mcps.bindings import ChannelSecurity  # noqa: PLC0415
    from mcps.bindings.http_client import signed_streamable_http_client  # noqa: PLC0415
    from mcps.cli.pin_cmd import translate_sdk_error  # noqa: PLC0415
    from mcps.stores.nonces import MemoryNonceStore  # noqa: PLC0415
    from mcps.verifier import HopTrust  # noqa: PLC0415

    passport, chain = read_passport_file(args.passport) if args.passport is not None else (None, [])
    security = ChannelSecurity(
        key=load_private_key(args.key),
        passport=passport,
        chain=tuple(chain),
        trusted=PinnedKeys([trusted]),
        gateways=HopTrust(PinnedKeys([gateway])) if gateway is not None else None,
        nonces=MemoryNonceStore(),
    )
    stderr().print(f"calling {args.tool} on {identity} at {args.url}", markup=False)
    try:
        with anyio.fail_after(args.timeout):
            async with Client(signed_streamable_http_client(args.url, security, server_identity=identity)) as client:
                await client.list_tools()
                result = await client.call_tool(args.tool, arguments)
    except BaseException as exc:  # the SDK raises groups from its task groups; find the refusal in them
        translated = translate_sdk_error(exc, where=args.url, timeout=args.timeout, connected=True)
        if translated is exc:
            raise
        raise translated from None
    answer: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    answer.pop("_meta", None)
    if result.is_error:
        raise Refused(McpsError(ErrorCode.POLICY_DENIED, "the tool reported an error", detail=json.dumps(answer)))
    return answer
