"""``mcps passport``, ``mcps anchors``, ``mcps revoke`` and ``mcps revocation-list`` (identity section of SPEC.md).

A *passport file* holds one compact passport per line: the agent's first, then its chain (the issuer's passport,
then that issuer's issuer's…). ``mcps passport issue`` prints exactly that, so its output can be given to
``mcps sign --passport``.

A *store URL* names the revocation store shared by verifiers: ``redis://host:port/db`` (replicas), or
``sqlite:///path/file.sqlite3`` or a plain path (processes on one machine). Without ``--store``, the SQLite file
``revocations.sqlite3`` in ``$MCPS_STATE_DIR`` (default ``~/.local/state/mcps``) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

from mcps.cli.output import (
    EXIT_OK,
    Refused,
    UsageError,
    print_json,
    read_private_key,
    read_public_key,
    stderr,
)
from mcps.core.encoding import b64u_decode
from mcps.core.envelope import PinnedKeys
from mcps.core.errors import McpsError
from mcps.core.keys import PrivateKey
from mcps.core.strict import parse_message
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.chains import VerifiedAgent
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport, parse_passport
from mcps.identity.resolver import PassportResolver
from mcps.identity.revocation import (
    MemoryRevocationStore,
    RevocationKey,
    RevocationKind,
    RevocationStore,
    apply_revocation_list,
    issue_revocation_list,
)

__all__ = [
    "add_sign_options",
    "add_verify_options",
    "agent_summary",
    "open_revocation_store",
    "parse_duration",
    "read_passport_file",
    "register",
    "resolver_from_args",
]

_DURATION = re.compile(r"([1-9][0-9]*)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``24h``, ``7d`` → seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 3600, 15m, 24h, 7d)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _level(text: str) -> TrustLevel:
    try:
        return TrustLevel.parse(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("a trust level is 0, 1, 2, 3 or 4") from exc


def read_passport_file(path: Path) -> tuple[str, list[str]]:
    """The agent's passport and its chain from a passport file (one compact token per line)."""
    tokens = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not tokens:
        raise UsageError(f"{path} holds no passport")
    return tokens[0], tokens[1:]


def _signing_key(path: Path) -> PrivateKey:
    return read_private_key(path, option="--issuer-key")


def default_store_path() -> Path:
    state = os.environ.get("MCPS_STATE_DIR") or str(Path.home() / ".local" / "state" / "mcps")
    return Path(state) / "revocations.sqlite3"


def open_revocation_store(url: str | None, *, redis_prefix: str = "") -> RevocationStore:
    """A revocation store from a store URL (see the module docstring); ``redis_prefix`` is a deployment's
    ``redis_prefix`` (the gateway setting), put before the store's keys in Redis."""
    if url is not None and url.startswith(("redis://", "rediss://", "unix://")):
        from mcps.stores.revocation_redis import DEFAULT_PREFIX, RedisRevocationStore  # noqa: PLC0415 - Redis only

        return RedisRevocationStore.from_url(url, prefix=redis_prefix + DEFAULT_PREFIX)
    from mcps.stores.revocation_sqlite import SqliteRevocationStore  # noqa: PLC0415

    if url is None:
        return SqliteRevocationStore(default_store_path())
    if "://" in url and not url.startswith("sqlite:///"):
        raise UsageError(f"unsupported store URL {url!r}: use redis://…, sqlite:///path or a path")
    return SqliteRevocationStore(url.removeprefix("sqlite://"))


def agent_summary(agent: VerifiedAgent) -> dict[str, Any]:
    return {
        "agent": agent.agent_id,
        "level": int(agent.level),
        "scopes": sorted(agent.scopes),
        "expires": agent.expires,
        "depth": agent.depth,
        "anchor": agent.anchor,
    }


# --- options shared with mcps sign / mcps verify -------------------------------------------------------------------


def add_sign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passport", type=Path, metavar="FILE", help="carry this passport file (from mcps passport issue)"
    )


def add_verify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust", type=Path, action="append", metavar="ANCHORS.jwks", help="resolve the signer through its passport"
    )
    parser.add_argument(
        "--min-level", type=_level, default=TrustLevel.L2, metavar="N", help="minimum level (default 2)"
    )
    parser.add_argument("--store", metavar="URL", help="revocation store (default: the local SQLite file)")


def resolver_from_args(args: argparse.Namespace, pinned: PinnedKeys | None) -> PassportResolver:
    """The resolver ``mcps verify --trust`` uses. The caller closes ``resolver.revocations``."""
    return PassportResolver(
        anchors=TrustAnchors.load(*args.trust),
        audience=args.aud,
        revocations=open_revocation_store(args.store),
        min_level=args.min_level,
        pinned=pinned,
        skew=args.skew,
    )


# --- commands ------------------------------------------------------------------------------------------------------


def passport_issue(args: argparse.Namespace) -> int:
    issuer = _signing_key(args.issuer_key)
    chain: list[str] = []
    iss = args.iss
    if args.chain:
        leaf, rest = read_passport_file(args.chain)
        chain = [leaf, *rest]
        parent = parse_passport(leaf).claims
        if parent.key.kid != issuer.kid:
            raise UsageError("the --chain passport does not certify --issuer-key")
        if not parent.issuer:
            raise UsageError("the --chain passport may not issue passports (it was not issued with --may-issue)")
        iss = iss or parent.sub
    token = issue_passport(
        issuer,
        iss=iss or issuer.kid,
        sub=args.sub,
        agent_key=read_public_key(args.agent_key, option="--agent-key"),
        level=args.level,
        scopes=args.scope.split(),
        now=time.time(),
        ttl=args.ttl,
        aud=args.aud or None,
        issuer=args.may_issue,
    )
    print("\n".join([token, *chain]))
    return EXIT_OK


def passport_inspect(args: argparse.Namespace) -> int:
    leaf, chain = read_passport_file(args.file)
    decoded = []
    for token in [leaf, *chain]:
        parts = token.split(".")
        if len(parts) != 3:
            raise UsageError("not a compact JWS")
        try:  # decoded for display only, but as strictly as a verifier reads them (no RecursionError either)
            header, claims = parse_message(b64u_decode(parts[0])), parse_message(b64u_decode(parts[1]))
        except ValueError:
            raise UsageError("not a compact JWS (a part is not base64url)") from None
        decoded.append({"header": header, "claims": claims})
    print_json({"verified": False, "passports": decoded})
    stderr().print("[yellow]NOT VERIFIED[/]: decoded only; use mcps passport verify --trust ANCHORS.jwks")
    return EXIT_OK


async def _verify_passport(args: argparse.Namespace) -> VerifiedAgent:
    leaf, chain = read_passport_file(args.file)
    anchors = TrustAnchors.load(*args.trust)
    store = open_revocation_store(args.store) if args.store is not None else MemoryRevocationStore()
    resolver = PassportResolver(
        anchors=anchors, audience=args.aud or "", revocations=store, min_level=args.min_level, cache_size=0
    )
    try:
        now = time.time()
        key = await resolver.verify_passport(leaf, chain or None, now=now)  # revocation included
    except McpsError as exc:
        raise Refused(exc) from exc
    finally:
        await store.aclose()
    return key.agent


def passport_verify(args: argparse.Namespace) -> int:
    agent = asyncio.run(_verify_passport(args))
    print_json(agent_summary(agent))
    stderr().print(f"[green]✓ verified[/] agent [bold]{escape(agent.agent_id)}[/] at {agent.level}")
    return EXIT_OK


def anchors_command(args: argparse.Namespace) -> int:
    anchors = []
    for path, level in args.anchor:
        try:
            max_level = _level(level)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--anchor {path} {level}: {exc}") from exc
        anchors.append(TrustAnchor(read_public_key(Path(path), option="--anchor"), max_level))
    print_json(TrustAnchors(anchors).to_jwks())
    return EXIT_OK


async def _revoke(args: argparse.Namespace) -> RevocationKey:
    kind, value = (RevocationKind.SUB, args.sub) if args.sub is not None else (RevocationKind.JTI, args.jti)
    key = RevocationKey.local(kind, value)
    store = open_revocation_store(args.store, redis_prefix=args.redis_prefix)
    try:
        await store.revoke(key, now=time.time())
    finally:
        await store.aclose()
    return key


def revoke_command(args: argparse.Namespace) -> int:
    key = asyncio.run(_revoke(args))
    print_json({"revoked": {key.kind.value: key.value}})
    stderr().print(f"[green]✓ revoked[/] {key.kind.value} {escape(key.value)}: refused on its next message")
    return EXIT_OK


def revocation_list_issue(args: argparse.Namespace) -> int:
    if not args.jti and not args.sub:
        raise UsageError("name at least one --jti or --sub")
    key = _signing_key(args.issuer_key)
    print(
        issue_revocation_list(key, iss=args.iss or key.kid, jtis=args.jti, subs=args.sub, now=time.time(), ttl=args.ttl)
    )
    return EXIT_OK


async def _apply(args: argparse.Namespace) -> int:
    store = open_revocation_store(args.store, redis_prefix=args.redis_prefix)
    try:
        applied = await apply_revocation_list(
            args.file.read_text(encoding="utf-8").strip(),
            anchors=TrustAnchors.load(*args.trust),
            store=store,
            now=time.time(),
        )
    finally:
        await store.aclose()
    return len(applied.entries)


def revocation_list_apply(args: argparse.Namespace) -> int:
    try:
        count = asyncio.run(_apply(args))
    except McpsError as exc:
        raise Refused(exc) from exc
    print_json({"applied": count})
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    passport = subparsers.add_parser("passport", help="issue, inspect and verify agent passports")
    commands = passport.add_subparsers(title="passport commands", metavar="COMMAND", required=True)

    issue = commands.add_parser("issue", help="issue a passport; prints it (then its chain), one token per line")
    issue.add_argument("--issuer-key", required=True, type=Path, metavar="KEY", help="issuer private key PEM")
    issue.add_argument("--sub", required=True, metavar="AGENT_ID", help="the agent's id")
    issue.add_argument("--agent-key", required=True, type=Path, metavar="AGENT.pub.jwk", help="the agent's public JWK")
    issue.add_argument("--level", required=True, type=_level, metavar="N", help="trust level 0-4 (capped by anchors)")
    issue.add_argument("--scope", default="", metavar='"a b"', help="space-separated scopes")
    issue.add_argument("--iss", help="issuer identity (default: the --chain passport's sub, else the issuer kid)")
    issue.add_argument("--aud", action="append", metavar="URI", help="receiver it is valid for (repeatable)")
    issue.add_argument("--ttl", type=parse_duration, default=parse_duration("24h"), help="lifetime (default 24h)")
    issue.add_argument("--chain", type=Path, metavar="PASSPORT", help="the issuer's own passport file (delegation)")
    issue.add_argument(
        "--may-issue",
        action="store_true",
        help="let this passport's key sign other passports (mcps_issuer: an intermediate issuer for --chain)",
    )
    issue.set_defaults(handler=passport_issue)

    inspect = commands.add_parser("inspect", help="decode a passport file WITHOUT verifying it")
    inspect.add_argument("file", type=Path, metavar="FILE")
    inspect.set_defaults(handler=passport_inspect)

    verify = commands.add_parser("verify", help="verify a passport file against trust anchors")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument("--trust", required=True, type=Path, action="append", metavar="ANCHORS.jwks")
    verify.add_argument("--aud", help="this receiver's identity (needed for audience-bound passports)")
    verify.add_argument(
        "--min-level", type=_level, default=TrustLevel.L0, metavar="N", help="minimum level (default 0)"
    )
    verify.add_argument("--store", metavar="URL", help="also check revocation in this store")
    verify.set_defaults(handler=passport_verify)

    anchors = subparsers.add_parser(
        "anchors",
        help="build a JWKS of trust anchors with their maximum levels",
        description=(
            "Print a JWKS of trust anchors: the issuer public keys a verifier trusts (like TLS root CAs), each "
            "with the highest trust level (0-4) it may grant. Give the file to mcps verify --trust and "
            "mcps passport verify --trust."
        ),
    )
    anchors.add_argument(
        "--anchor",
        required=True,
        nargs=2,
        action="append",
        metavar=("PUB.jwk", "LEVEL"),
        help="an issuer's public JWK and the highest level 0-4 it may grant (repeatable)",
    )
    anchors.set_defaults(handler=anchors_command)

    revoke = subparsers.add_parser(
        "revoke",
        help="kill switch: revoke an agent (sub) or a passport (jti)",
        description=(
            "Kill switch: record a revocation in the store that verifiers ask on every message. The next message "
            "from that agent (--sub) or carrying that passport (--jti) is refused with MCPS-003."
        ),
    )
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--sub", metavar="AGENT_ID", help="revoke every passport of this agent id")
    target.add_argument("--jti", metavar="ID", help="revoke the one passport with this id")
    revoke.add_argument("--store", metavar="URL", help="revocation store (default: the local SQLite file)")
    revoke.add_argument(
        "--redis-prefix",
        default="",
        metavar="PREFIX",
        help="with a redis:// store: the deployment's redis_prefix (as in gateway.toml)",
    )
    revoke.set_defaults(handler=revoke_command)

    rl = subparsers.add_parser("revocation-list", help="issue or apply issuer-signed revocation lists")
    rl_commands = rl.add_subparsers(title="revocation-list commands", metavar="COMMAND", required=True)
    rl_issue = rl_commands.add_parser("issue", help="sign a revocation list (the signer must be a trust anchor)")
    rl_issue.add_argument("--issuer-key", required=True, type=Path, metavar="KEY")
    rl_issue.add_argument("--iss", help="issuer identity (default: the key's kid)")
    rl_issue.add_argument("--jti", action="append", default=[], metavar="ID", help="passport id (repeatable)")
    rl_issue.add_argument("--sub", action="append", default=[], metavar="AGENT_ID", help="agent id (repeatable)")
    rl_issue.add_argument("--ttl", type=parse_duration, default=parse_duration("24h"))
    rl_issue.set_defaults(handler=revocation_list_issue)
    rl_apply = rl_commands.add_parser("apply", help="verify a revocation list and record its entries in a store")
    rl_apply.add_argument("file", type=Path, metavar="FILE")
    rl_apply.add_argument("--trust", required=True, type=Path, action="append", metavar="ANCHORS.jwks")
    rl_apply.add_argument("--store", metavar="URL")
    rl_apply.add_argument("--redis-prefix", default="", metavar="PREFIX", help="the deployment's redis_prefix")
    rl_apply.set_defaults(handler=revocation_list_apply)
