"""``mcps audit …``: append, key, verify, prove, check-evidence, checkpoint, export, tail (SPEC.md, audit log).

``--db`` takes a SQLite path (or ``sqlite:///path``) or a ``postgresql://`` URL (tables in ``--schema``). Commands
that write need the log's signing key: for SQLite it is ``<db>.key`` unless ``--key-file`` says otherwise (created
with mode 0600 on first append); for PostgreSQL ``--key-file`` is required. Commands that only read open the log
without its private key. Exit codes: 0 intact, 1 a defect or bad evidence (``MCPS-033`` on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mcps.audit.checkpoint import verifier_key
from mcps.audit.entry import AuditEvent, parse_entry
from mcps.audit.evidence import build_evidence, check_evidence
from mcps.audit.log import Receipt, StoredEntry, load_or_create_log_key
from mcps.audit.siem import cef_line, leef_line, safe_syslog_name, syslog_line
from mcps.audit.sql import SqlAuditLog
from mcps.audit.sqlite_log import SqliteAuditLog, default_key_path
from mcps.audit.verify import VerifiedLog, verify_log
from mcps.cli.output import EXIT_OK, Refused, UsageError, print_json, read_stdin, stderr
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PublicKey, load_private_key, load_public_jwk
from mcps.core.strict import parse_file, parse_message

__all__ = ["register"]

_PROGRESS_FROM = 100_000
"""Logs with at least this many entries get a progress bar during ``verify``."""
_TAIL_POLL_SECONDS = 0.5


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite://")) if url.startswith("sqlite://") else Path(url)


def open_log(args: argparse.Namespace, *, write: bool) -> SqlAuditLog:
    """Open the log named by ``--db``: with its signing key when ``write``, read-only otherwise."""
    url: str = args.db
    key_file: Path | None = args.key_file
    if _is_postgres(url):
        from mcps.audit.postgres_log import PostgresAuditLog  # noqa: PLC0415 - psycopg is optional

        if write and key_file is None:
            raise UsageError("a PostgreSQL log needs --key-file to append")
        key = load_private_key(key_file) if write and key_file is not None else None
        return PostgresAuditLog(url, key=key, schema=args.schema)
    path = _sqlite_path(url)
    if not write:
        return SqliteAuditLog(path, read_only=True)
    return SqliteAuditLog(path, key=load_or_create_log_key(key_file or default_key_path(path)))


def _close(log: SqlAuditLog) -> None:
    asyncio.run(log.aclose())


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="URL", help="SQLite path or postgresql:// URL")
    parser.add_argument("--schema", default="mcps_audit", help="PostgreSQL schema holding the log")
    parser.add_argument("--key-file", type=Path, metavar="PEM", help="the log's signing key (default: <db>.key)")


_DESCRIPTION = (
    "Tamper-evident audit log: append, key, verify, prove, check-evidence, checkpoint, export, tail. "
    "--db takes a SQLite path (or sqlite:///path) or a postgresql:// URL (tables in --schema). Commands that write "
    "need the log's signing key: for SQLite it is the file <db>.key next to the database unless --key-file says "
    "otherwise (created with mode 0600 on the first append); for PostgreSQL --key-file is required. Commands that "
    "only read open the log without its private key. Keep a checkpoint (mcps audit checkpoint) off the box and give "
    "it to verify --checkpoint: that is what catches a truncated log. Exit codes: 0 intact, 1 a defect or bad "
    "evidence (MCPS-033 on stderr), 2 bad usage."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="tamper-evident audit log", description=_DESCRIPTION)
    commands = audit.add_subparsers(title="audit commands", metavar="COMMAND", required=True)

    p = commands.add_parser("append", help="record an external event read from stdin; print its receipt")
    _add_db(p)
    p.set_defaults(handler=cmd_append)

    p = commands.add_parser("key", help="print the log's public key as a JWK (or, with --note, a note verifier key)")
    _add_db(p)
    p.add_argument("--note", action="store_true", help="print the C2SP signed-note verifier key instead")
    p.set_defaults(handler=cmd_key)

    p = commands.add_parser("verify", help="verify every entry, the chain, every root and checkpoint")
    _add_db(p)
    p.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint kept elsewhere (detects truncation)")
    trust = p.add_mutually_exclusive_group(required=True)
    trust.add_argument("--key", type=Path, metavar="JWK", help="the log's public key, kept apart from the log")
    trust.add_argument(
        "--unsafe-trust-log-key",
        action="store_true",
        help="UNSAFE: trust the public key recorded in the log itself (misses a log rebuilt with another key)",
    )
    p.set_defaults(handler=cmd_verify)

    p = commands.add_parser("prove", help="print the evidence file for one entry")
    _add_db(p)
    p.add_argument("--index", type=int, required=True)
    p.set_defaults(handler=cmd_prove)

    p = commands.add_parser("check-evidence", help="verify an evidence file offline")
    p.add_argument("evidence", type=Path)
    p.add_argument("--key", type=Path, required=True, metavar="JWK", help="the log's public key")
    p.add_argument("--receipt", type=Path, metavar="FILE", help="a receipt {log, index, leaf} it must match")
    p.set_defaults(handler=cmd_check_evidence)

    p = commands.add_parser("checkpoint", help="print the latest signed checkpoint (ship it off the box)")
    _add_db(p)
    p.set_defaults(handler=cmd_checkpoint)

    p = commands.add_parser("export", help="print entries from --since on, one per line")
    _add_db(p)
    p.add_argument("--format", choices=["jsonl", "cef", "leef", "syslog"], default="jsonl")
    p.add_argument("--since", type=int, default=0, metavar="N", help="first index to export")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("tail", help="print the last entries; -f keeps following")
    _add_db(p)
    p.add_argument("-n", type=int, default=10, help="how many entries to show first")
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(handler=cmd_tail)


def cmd_append(args: argparse.Namespace) -> int:
    event = AuditEvent.from_json(parse_message(read_stdin()))
    key_file = args.key_file or (None if _is_postgres(args.db) else default_key_path(_sqlite_path(args.db)))
    new_key = key_file is not None and not key_file.exists()
    log = open_log(args, write=True)
    if new_key:
        stderr().print(f"created the log's signing key {key_file} (mode 0600): keep it secret", markup=False)

    async def run() -> Receipt:
        try:
            return await log.append(event)
        finally:
            await log.aclose()

    print_json(asyncio.run(run()).to_json())
    return EXIT_OK


def cmd_key(args: argparse.Namespace) -> int:
    log = open_log(args, write=False)
    try:
        if args.note:
            print(verifier_key(log.origin, log.public_key))
        else:
            print_json(log.public_key.to_jwk())
    finally:
        _close(log)
    return EXIT_OK


def _verify_with_progress(log: SqlAuditLog, key: PublicKey, external: str | None) -> VerifiedLog:
    total = log.count_entries()
    if total < _PROGRESS_FROM:
        return verify_log(log, key, log.origin, external=external)
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr()) as bar:
        task = bar.add_task("verify", total=total)
        return verify_log(log, key, log.origin, external=external, progress=lambda n: bar.update(task, completed=n))


def cmd_verify(args: argparse.Namespace) -> int:
    external = args.checkpoint.read_text(encoding="utf-8") if args.checkpoint is not None else None
    log = open_log(args, write=False)
    try:
        key: PublicKey = load_public_jwk(args.key) if args.key is not None else log.public_key
        if args.key is None:
            stderr().print(
                "[yellow]UNSAFE:[/] checking against the public key recorded in the log itself; "
                "pass --key LOG.pub.jwk to detect a log rebuilt with another key"
            )
        try:
            verified = _verify_with_progress(log, key, external)
        except McpsError as exc:
            if exc.code is ErrorCode.AUDIT_INVALID:
                raise Refused(exc) from exc
            raise
    finally:
        _close(log)
    print_json({"ok": True, "entries": verified.size, "checkpoints": verified.checkpoints, "origin": log.origin})
    stderr().print(f"[green]✓[/] {verified.size} entries and {verified.checkpoints} checkpoints verify")
    return EXIT_OK


def cmd_prove(args: argparse.Namespace) -> int:
    log = open_log(args, write=False)

    async def run() -> dict[str, Any]:
        try:
            return await build_evidence(log, args.index)
        finally:
            await log.aclose()

    sys.stdout.write(json.dumps(asyncio.run(run()), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def cmd_check_evidence(args: argparse.Namespace) -> int:
    key = load_public_jwk(args.key)
    receipt = None
    if args.receipt is not None:
        receipt = Receipt.from_json(parse_file(args.receipt))  # strictly, like every JSON input (MCPS-018…025)
    try:
        verified = check_evidence(args.evidence.read_bytes(), key, receipt=receipt)
    except McpsError as exc:
        if exc.code is ErrorCode.AUDIT_INVALID:
            raise Refused(exc) from exc
        raise
    print_json({"ok": True, "log": verified.checkpoint.origin, "index": verified.index, "entry": verified.entry})
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace) -> int:
    log = open_log(args, write=False)
    try:
        sys.stdout.write(log.latest_checkpoint().note)
    finally:
        _close(log)
    return EXIT_OK


def _line(row: StoredEntry, fmt: str) -> str:
    """One stored entry as its own JCS text (``jsonl``) or a CEF, LEEF or RFC 5424 line (:mod:`mcps.audit.siem`).

    Every row is read as an entry first (SPEC §8.9): bytes that are not exactly the JCS of an entry at its own index
    stop the export (MCPS-033), so a row holding a line break and a forged entry never reaches the stream as two
    lines. For ``jsonl`` the stored bytes are then written as they are: being JCS, they are the entry re-serialized
    and hold no line break. (Export reads rows; it does not verify the log: ``mcps audit verify`` does.)"""
    try:
        entry = parse_entry(row.data)
        if entry["index"] != row.index:
            raise ValueError(f"the entry at position {row.index} claims index {entry['index']}")
    except ValueError as exc:
        error = McpsError(ErrorCode.AUDIT_INVALID, detail=f"entry {row.index} does not parse: {exc}")
        raise Refused(error) from exc
    if fmt == "jsonl":
        return row.data.decode("utf-8")
    if fmt == "cef":
        return cef_line(entry)
    if fmt == "leef":
        return leef_line(entry)
    return syslog_line(entry, hostname=safe_syslog_name(socket.gethostname()))


def _read_rows(log: SqlAuditLog, start: int, end: int) -> tuple[list[StoredEntry], McpsError | None]:
    """The stored rows from ``start`` to ``end``; when one cannot be read as a row (a column that is not binary), the
    rows before it and the error, so that what comes before a bad row is still written."""
    try:
        return log.read_entries(start, end), None
    except McpsError as exc:
        if exc.code is not ErrorCode.AUDIT_INVALID:
            raise
    rows: list[StoredEntry] = []
    for index in range(start, end):  # one at a time, up to the bad row
        try:
            rows += log.read_entries(index, index + 1)
        except McpsError as exc:
            return rows, exc
    return rows, None


def _print_entries(log: SqlAuditLog, start: int, fmt: str = "jsonl") -> int:
    """Print entries from ``start`` on, one line each (stored JSON or a SIEM format); return the next index."""
    while True:
        rows, error = _read_rows(log, start, start + 1000)
        for row in rows:
            try:
                line = _line(row, fmt)
            finally:
                sys.stdout.flush()  # the lines before a refused row are out, complete, before the refusal
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if error is not None:
            raise Refused(error)
        if len(rows) < 1000:
            return start + len(rows)
        start += len(rows)


def cmd_export(args: argparse.Namespace) -> int:
    if args.since < 0:
        raise UsageError("--since must not be negative")
    log = open_log(args, write=False)
    try:
        _print_entries(log, args.since, args.format)
    finally:
        _close(log)
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    log = open_log(args, write=False)
    try:
        start = max(log.latest_checkpoint().size - args.n, 0)
        start = _print_entries(log, start)
        while args.follow:
            time.sleep(_TAIL_POLL_SECONDS)
            start = _print_entries(log, start)
    finally:
        _close(log)
    return EXIT_OK
