"""CLI attacks: hostile input to ``mcps`` where the command is what a peer or a tamperer talks to — a message
verified at the shell, a passport file, an audit database, an evidence file. Each run must end with its exit code
(1: refused, with the MCPS code on stderr; 2: bad input), never a traceback, and print no text of the input.

A case builds a :class:`CliRun`: argv (``{dir}`` is the case's directory), stdin, and the files to write there
first. Messages are signed at the real time, as ``mcps verify`` checks them against the real clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcps.core.errors import ErrorCode as E

from .cases_identity import claims, flip_signature, jws
from .corpus import CANARY, Case, Threat, unique
from .pki import AGENT, ANCHORS, ATTACKER, ROGUE_ISSUER, SERVER_ID, call, dumps, passport, sign, with_passport


@dataclass(frozen=True)
class CliRun:
    argv: tuple[str, ...]
    stdin: bytes = b""
    files: Mapping[str, bytes] = field(default_factory=dict)
    audit: Callable[[Any], None] | None = None
    """Edits the case's audit log (a sqlite3 connection) after the runner has built it in ``{dir}/audit.db``."""


@dataclass(frozen=True)
class Exit:
    code: int
    mcps: E | None


AGENT_JWK = json.dumps(AGENT.public_key.to_jwk()).encode()
ANCHORS_JWKS = json.dumps(ANCHORS.to_jwks()).encode()
KEY_FILES = {"agent.jwk": AGENT_JWK, "anchors.jwks": ANCHORS_JWKS}
VERIFY = ("verify", "--key", "{dir}/agent.jwk", "--aud", SERVER_ID)


def now_signed(message: dict[str, Any] | None = None, **sign_args: Any) -> dict[str, Any]:
    return sign(message or call(), now=time.time(), **sign_args)


def verify(change: Callable[[bytes], bytes] | None = None, **sign_args: Any) -> Callable[[bool], CliRun]:
    """``mcps verify`` of a signed call; the attack is changed by ``change`` or signed with ``sign_args``."""

    def build(defect: bool) -> CliRun:
        raw = dumps(now_signed(**(sign_args if defect else {})))
        if defect and change is not None:
            raw = change(raw)
        return CliRun(VERIFY, raw, KEY_FILES)

    return build


def verify_passport_message(token: Callable[[], str]) -> Callable[[bool], CliRun]:
    """``mcps verify --trust`` of a call carrying ``token()`` (attack) or a good passport (control)."""

    def build(defect: bool) -> CliRun:
        message = with_passport(call(), token() if defect else passport(now=time.time()))
        return CliRun(
            ("verify", "--trust", "{dir}/anchors.jwks", "--aud", SERVER_ID, "--store", "{dir}/rev.db"),
            dumps(now_signed(message)),
            KEY_FILES,
        )

    return build


def passport_file(token: Callable[[], str]) -> Callable[[bool], CliRun]:
    def build(defect: bool) -> CliRun:
        text = (token() if defect else passport(now=time.time(), sub="agent-" + CANARY)) + "\n"
        return CliRun(
            ("passport", "verify", "{dir}/passport", "--trust", "{dir}/anchors.jwks", "--aud", SERVER_ID),
            files={**KEY_FILES, "passport": text.encode()},
        )

    return build


def audit_verify(edit: Callable[[Any], None]) -> Callable[[bool], CliRun]:
    return lambda defect: CliRun(
        ("audit", "verify", "--db", "{dir}/audit.db", "--key", "{dir}/log.jwk"), audit=edit if defect else None
    )


def audit_export(fmt: str, edit: Callable[[Any], None]) -> Callable[[bool], CliRun]:
    return lambda defect: CliRun(
        ("audit", "export", "--db", "{dir}/audit.db", "--format", fmt), audit=edit if defect else None
    )


def edit_entry(change: Callable[[bytes], bytes], index: int = 1) -> Callable[[Any], None]:
    def edit(db: Any) -> None:
        data = bytes(db.execute("SELECT entry FROM audit_entries WHERE idx = ?", (index,)).fetchone()[0])
        db.execute("UPDATE audit_entries SET entry = ? WHERE idx = ?", (change(data), index))

    return edit


def check_evidence(
    change: Callable[[dict[str, Any]], dict[str, Any]] | None = None, *, receipt: bytes | None = None
) -> Callable[[bool], CliRun]:
    """``mcps audit check-evidence`` of entry 1's evidence (the runner writes ``evidence.json``), changed. The log the
    runner builds holds no canary: only what the attacker writes does."""

    def build(defect: bool) -> CliRun:
        argv = ("audit", "check-evidence", "{dir}/evidence.json", "--key", "{dir}/log.jwk")
        files: dict[str, bytes] = {}
        if defect and receipt is not None:
            argv += ("--receipt", "{dir}/receipt.json")
            files["receipt.json"] = receipt
        return CliRun(argv, files=files, audit=("evidence", change if defect else None))  # type: ignore[arg-type]

    return build


DEEP = b"[" * 100_000 + b"]" * 100_000
N = Threat.NETWORK
A = Threat.AGENT
D = Threat.DATABASE
T = Threat.TRUST_FILE


def case(
    name: str,
    code: E | None,
    summary: str,
    build: Callable[[bool], CliRun],
    exit_code: int,
    *,
    threat: Threat = N,
    xfail: str | None = None,
) -> Case[CliRun]:
    return Case(name, code, threat, build, summary, expect=Exit(exit_code, code), xfail=xfail)


CASES: list[Case[CliRun]] = unique(
    [
        case(
            "cli-verify-tampered",
            E.BAD_SIGNATURE,
            "mcps verify: an argument changed after signing",
            verify(lambda b: b.replace(CANARY.encode(), CANARY.encode() + b"!")),
            1,
        ),
        case(
            "cli-verify-dup-key",
            E.DUPLICATE_KEY,
            "mcps verify: a duplicate tool name",
            verify(lambda b: b.replace(b'"name":"echo"', b'"name":"echo","name":"rm_rf"')),
            1,
        ),
        case(
            "cli-verify-not-utf8",
            E.MALFORMED_JSON,
            "mcps verify: a Latin-1 byte",
            verify(lambda b: b.replace(CANARY.encode(), CANARY.encode() + b"\xe9")),
            1,
        ),
        case(
            "cli-verify-lone-surrogate",
            E.INVALID_STRING,
            "mcps verify: a lone surrogate",
            verify(lambda b: b.replace(CANARY.encode(), CANARY.encode() + b"\\udfff")),
            1,
        ),
        case(
            "cli-verify-over-4-mib",
            E.MESSAGE_TOO_LARGE,
            "mcps verify: 4 MiB + 1 bytes on stdin",
            verify(lambda b: b.ljust(4 * 1024 * 1024 + 1, b" ")),
            1,
        ),
        case(
            "cli-verify-wrong-audience",
            E.AUDIENCE_MISMATCH,
            "mcps verify: signed for another receiver",
            verify(aud="urn:mcps:attacks:other-server"),
            1,
        ),
        case(
            "cli-verify-expired",
            E.TIMESTAMP_OUT_OF_WINDOW,
            "mcps verify: signed ten minutes ago",
            lambda d: CliRun(VERIFY, dumps(sign(call(), now=time.time() - (600 if d else 0))), KEY_FILES),
            1,
        ),
        case("cli-verify-unknown-key", E.UNKNOWN_KEY, "mcps verify: signed by another key", verify(key=ATTACKER), 1),
        case(
            "cli-verify-passport-unknown-issuer",
            E.UNKNOWN_KEY,
            "mcps verify --trust: a passport from a rogue issuer",
            verify_passport_message(lambda: passport(issuer=ROGUE_ISSUER, now=time.time(), sub="a-" + CANARY)),
            1,
            threat=A,
        ),
        case(
            "cli-verify-passport-malformed",
            E.PASSPORT_MALFORMED,
            "mcps verify --trust: a passport that is no JWS",
            verify_passport_message(lambda: CANARY + ".x.y"),
            1,
            threat=A,
        ),
        case(
            "cli-passport-verify-bad-signature",
            E.BAD_SIGNATURE,
            "mcps passport verify: the issuer's signature flipped",
            passport_file(
                lambda: flip_signature(
                    jws(
                        claims(
                            sub="agent-" + CANARY,
                            iat=int(time.time()),
                            nbf=int(time.time()),
                            exp=int(time.time()) + 600,
                        )
                    )
                )
            ),
            1,
            threat=A,
        ),
        case(
            "cli-passport-verify-expired",
            E.PASSPORT_EXPIRED,
            "mcps passport verify: expired an hour ago",
            passport_file(lambda: passport(now=time.time() - 7200, sub="agent-" + CANARY)),
            1,
            threat=A,
        ),
        case(
            "cli-sign-dup-key",
            E.DUPLICATE_KEY,
            "mcps sign refuses to sign a message with a duplicate key",
            lambda d: CliRun(
                ("sign", "--key", "{dir}/agent.pem", "--aud", SERVER_ID),
                dumps(call()).replace(
                    b'"name":"echo"', b'"name":"echo","name":"rm_rf"' if d else b'"name":"echo","namf":"rm_rf"'
                ),
            ),
            2,
            threat=A,
        ),
        case(
            "cli-audit-verify-edited-row",
            E.AUDIT_INVALID,
            "mcps audit verify: a row edited in the database",
            audit_verify(edit_entry(lambda b: b.replace(b'"call"', b'"deny"'))),
            1,
            threat=D,
        ),
        case(
            "cli-audit-export-unparsable-row",
            E.AUDIT_INVALID,
            "mcps audit export --format cef: a row that is not JSON stops the export",
            audit_export("cef", edit_entry(lambda b: b"{" + CANARY.encode())),
            1,
            threat=D,
        ),
        case(
            "cli-audit-export-jsonl-forged-line",
            E.AUDIT_INVALID,
            "mcps audit export --format jsonl: a row holding a newline and a forged entry",
            audit_export(
                "jsonl",
                edit_entry(lambda b: b + b'\n{"event":"call","decision":"allow","tool":"' + CANARY.encode() + b'"}'),
            ),
            1,
            threat=D,
        ),
        case(
            "cli-audit-check-evidence-edited",
            E.AUDIT_INVALID,
            "mcps audit check-evidence: the entry edited",
            check_evidence(lambda v: {**v, "entry": {**v["entry"], "tool": CANARY}}),
            1,
            threat=D,
        ),
        case(
            "cli-audit-check-evidence-deep-receipt",
            None,
            "mcps audit check-evidence --receipt: a receipt file of 100,000 nested arrays",
            check_evidence(receipt=DEEP),
            2,
            threat=T,
        ),
        case(
            "cli-verify-deep-jwk-file",
            None,
            "mcps verify --key: a key file of 100,000 nested arrays",
            lambda d: CliRun(VERIFY, dumps(now_signed()), {**KEY_FILES, "agent.jwk": DEEP if d else AGENT_JWK}),
            2,
            threat=T,
        ),
    ]
)
