"""The chunked fast path of full verification (``mcps.audit.verify._scan``) against its judge, the row-by-row walk.

Whatever the chunk size, and with the fast path switched off entirely, verification of the same database gives the
same answer: the same size and root, or the same first defect (index, kind, detail), and the same progress calls.
The databases are the 40-entry log of ``test_audit_verify.py`` (checkpoints every 10 entries), intact and with each
kind of hand edit.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcps.audit import verify
from mcps.audit.entry import AuditEvent
from mcps.audit.merkle import CompactRange, leaf_hash
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.audit.verify import AuditLogDefect, verify_log
from mcps.core.keys import PrivateKey

KEY = PrivateKey.generate()


def _rewrite_last_consistently(conn: sqlite3.Connection) -> None:
    """Entry 39 changed and its stored leaf with it: only the signed root at 40 can tell."""
    (entry,) = conn.execute("SELECT entry FROM audit_entries WHERE idx = 39").fetchone()
    changed = bytes(entry).replace(b'"call"', b'"cell"')
    conn.execute("UPDATE audit_entries SET entry = ?, leaf = ? WHERE idx = 39", (changed, leaf_hash(changed)))


EDITS: dict[str, list[Any]] = {
    "intact": [],
    "modified-bytes": [
        "UPDATE audit_entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'call', 'cell') AS BLOB) WHERE idx = 13"
    ],
    "deleted": ["DELETE FROM audit_entries WHERE idx = 17"],
    "reordered": [
        "UPDATE audit_entries SET idx = -1 WHERE idx = 21",
        "UPDATE audit_entries SET idx = 21 WHERE idx = 22",
        "UPDATE audit_entries SET idx = 22 WHERE idx = -1",
    ],
    "truncated": ["DELETE FROM audit_entries WHERE idx >= 35"],
    "not-bytes": ["UPDATE audit_entries SET entry = 'not even bytes' WHERE idx = 3"],
    "not-json": ["UPDATE audit_entries SET entry = X'ff00' WHERE idx = 38"],
    "leaf-not-bytes": ["UPDATE audit_entries SET leaf = 42 WHERE idx = 29"],
    "whitespace": ["UPDATE audit_entries SET entry = CAST(' ' || CAST(entry AS TEXT) AS BLOB) WHERE idx = 9"],
    "float": [
        "UPDATE audit_entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), '\"v\":1', '\"v\":1.0') AS BLOB)"
        " WHERE idx = 2"
    ],
    "last-rewritten-consistently": [_rewrite_last_consistently],
    "checkpoint-root": ["UPDATE audit_checkpoints SET note = REPLACE(note, '\n20\n', '\n21\n') WHERE size = 20"],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("chunks") / "audit.db"

    async def fill() -> None:
        log = SqliteAuditLog(path, key=KEY, max_batch=10)
        await asyncio.gather(*(log.append(AuditEvent(event="call", request_id=i)) for i in range(40)))
        await log.aclose()

    asyncio.run(fill())
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def _outcome(path: Path, external: str | None = None) -> tuple[Any, list[int]]:
    calls: list[int] = []
    log = SqliteAuditLog(path, key=KEY)
    try:
        verified = verify_log(log, KEY.public_key, log.origin, external=external, progress=calls.append)
        return ("ok", verified.size, verified.root, verified.checkpoints), calls
    except AuditLogDefect as refused:
        defect = refused.defect
        return ("defect", defect.index, defect.kind, defect.detail), calls
    finally:
        asyncio.run(log.aclose())


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_chunk_size_and_the_row_walk_agree(
    edit: str, base: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(base)
    with sqlite3.connect(path) as conn:
        for statement in EDITS[edit]:
            if callable(statement):
                statement(conn)
            else:
                conn.execute(statement)
    outcomes = {}
    for chunk in (1, 3, 7, 10, 4096):
        monkeypatch.setattr(verify, "CHUNK", chunk)
        outcomes[chunk] = _outcome(path)
    monkeypatch.setattr(verify, "_chunk_is_plain", lambda _chunk, _walk: None)
    judge = _outcome(path)
    assert all(outcome == judge for outcome in outcomes.values()), (judge, outcomes)
    assert (judge[0][0] == "ok") is (edit == "intact")


def test_the_fast_path_takes_an_intact_log(base: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(base)
    walked: list[int] = []
    real = verify._scan_rows

    def counting(walk: Any, rows: Iterator[Any], limit: int, **kwargs: Any) -> Any:
        walked.append(limit)
        return real(walk, rows, limit, **kwargs)

    monkeypatch.setattr(verify, "_scan_rows", counting)
    assert _outcome(path)[0][0] == "ok"
    assert walked == []


def test_extend_equals_appending_one_leaf_at_a_time() -> None:
    rnd = random.Random(9162)  # noqa: S311 - test data
    for start in range(70):
        for _ in range(3):
            leaves = [leaf_hash(rnd.randbytes(8)) for _ in range(rnd.randint(1, 70))]
            head = [leaf_hash(bytes([i])) for i in range(start)]
            one = CompactRange()
            many = CompactRange()
            for leaf in head:
                one.append(leaf)
                many.append(leaf)
            for leaf in leaves:
                one.append(leaf)
            verify._extend(many, leaves)
            assert (many.size, many.hashes, many.root()) == (one.size, one.hashes, one.root())


def test_a_checkpoint_after_every_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every size is a checkpoint size: each chunk is cut at every row, and the answer is the row walk's."""
    path = tmp_path / "audit.db"

    async def fill() -> None:
        log = SqliteAuditLog(path, key=KEY, max_batch=1)
        for i in range(25):
            await log.append(AuditEvent(event="call", request_id=i))
        await log.aclose()

    asyncio.run(fill())
    outcomes = []
    for chunk in (1, 4, 512):
        monkeypatch.setattr(verify, "CHUNK", chunk)
        outcomes.append(_outcome(path))
    monkeypatch.setattr(verify, "_chunk_is_plain", lambda _chunk, _walk: None)
    judge = _outcome(path)
    assert judge[0][:2] == ("ok", 25)
    assert judge[0][3] == 26  # the empty checkpoint and one per entry
    assert all(outcome == judge for outcome in outcomes)
