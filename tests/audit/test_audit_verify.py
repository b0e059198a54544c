"""Full verification against hand-edited databases: each kind of defect is named, at the first bad entry,
and hostile content gives a clear failure, never a crash."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from mcps.audit.entry import AuditEvent
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.audit.verify import AuditLogDefect, DefectKind, verify_log
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def db(tmp_path: Path, key: PrivateKey) -> Path:
    """A log of 40 entries in batches of 10 (checkpoints at 0, 10, 20, 30, 40)."""
    path = tmp_path / "audit.db"

    async def fill() -> None:
        log = SqliteAuditLog(path, key=key, max_batch=10)
        await asyncio.gather(*(log.append(AuditEvent(event="call", request_id=i)) for i in range(40)))
        await log.aclose()

    asyncio.run(fill())
    return path


def _verify(path: Path, key: PrivateKey, external: str | None = None) -> int:
    log = SqliteAuditLog(path, key=key)
    try:
        return verify_log(log, key.public_key, log.origin, external=external).size
    finally:
        asyncio.run(log.aclose())


def _defect(path: Path, key: PrivateKey, external: str | None = None) -> tuple[int, DefectKind]:
    with pytest.raises(AuditLogDefect) as caught:
        _verify(path, key, external)
    assert caught.value.code is ErrorCode.AUDIT_INVALID
    return caught.value.defect.index, caught.value.defect.kind


def _sql(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)


def _latest_note(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        note: str = conn.execute("SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").fetchone()[0]
    return note


def test_intact_log_verifies(db: Path, key: PrivateKey) -> None:
    assert _verify(db, key) == 40
    assert _verify(db, key, external=_latest_note(db)) == 40


def test_modified_entry_bytes(db: Path, key: PrivateKey) -> None:
    _sql(
        db, "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'call', 'list') AS BLOB) WHERE idx = 17"
    )
    assert _defect(db, key) == (17, DefectKind.MODIFIED)


def test_modified_entry_and_its_leaf(db: Path, key: PrivateKey) -> None:
    """The editor also fixed the leaf column: the next entry's prev names entry 17."""
    with sqlite3.connect(db) as conn:
        data = conn.execute("SELECT entry FROM audit_entries WHERE idx = 17").fetchone()[0].replace(b"call", b"list")
        from mcps.audit.merkle import leaf_hash  # noqa: PLC0415

        conn.execute("UPDATE audit_entries SET entry = ?, leaf = ? WHERE idx = 17", (data, leaf_hash(data)))
    assert _defect(db, key) == (17, DefectKind.MODIFIED)


def test_last_entry_rewritten_consistently_is_caught_by_the_root(db: Path, key: PrivateKey) -> None:
    with sqlite3.connect(db) as conn:
        data = conn.execute("SELECT entry FROM audit_entries WHERE idx = 39").fetchone()[0].replace(b"call", b"list")
        from mcps.audit.merkle import leaf_hash  # noqa: PLC0415

        conn.execute("UPDATE audit_entries SET entry = ?, leaf = ? WHERE idx = 39", (data, leaf_hash(data)))
    assert _defect(db, key) == (30, DefectKind.MODIFIED)  # first entry of the batch whose signed root fails


def test_deleted_row(db: Path, key: PrivateKey) -> None:
    _sql(db, "DELETE FROM audit_entries WHERE idx = 12")
    assert _defect(db, key) == (12, DefectKind.DELETED)


def test_deleted_row_and_renumbered(db: Path, key: PrivateKey) -> None:
    _sql(db, "DELETE FROM audit_entries WHERE idx = 12", "UPDATE audit_entries SET idx = idx - 1 WHERE idx > 12")
    assert _defect(db, key) == (12, DefectKind.DELETED)


def test_reordered_rows(db: Path, key: PrivateKey) -> None:
    _sql(
        db,
        "UPDATE audit_entries SET idx = -1 WHERE idx = 21",
        "UPDATE audit_entries SET idx = 21 WHERE idx = 22",
        "UPDATE audit_entries SET idx = 22 WHERE idx = -1",
    )
    assert _defect(db, key) == (21, DefectKind.REORDERED)


def test_inserted_row(db: Path, key: PrivateKey) -> None:
    """A copy of entry 5 inserted after it, the rest renumbered."""
    _sql(
        db,
        "UPDATE audit_entries SET idx = -idx - 100 WHERE idx > 5",
        "UPDATE audit_entries SET idx = -idx - 99 WHERE idx < -100",
        "INSERT INTO audit_entries SELECT 6, leaf, entry FROM audit_entries WHERE idx = 5",
    )
    index, kind = _defect(db, key)
    assert kind is DefectKind.INSERTED
    assert index == 6  # the copy, not the original


def test_entries_without_checkpoint_are_inserted(db: Path, key: PrivateKey) -> None:
    _sql(db, "DELETE FROM audit_checkpoints WHERE size = 40")
    assert _defect(db, key) == (30, DefectKind.INSERTED)


def test_truncated_rows(db: Path, key: PrivateKey) -> None:
    _sql(db, "DELETE FROM audit_entries WHERE idx >= 35")
    assert _defect(db, key) == (35, DefectKind.TRUNCATED)


def test_truncation_only_seen_by_the_outside_checkpoint(db: Path, key: PrivateKey) -> None:
    kept = _latest_note(db)
    _sql(db, "DELETE FROM audit_entries WHERE idx >= 30", "DELETE FROM audit_checkpoints WHERE size > 30")
    assert _verify(db, key) == 30  # consistent in itself
    assert _defect(db, key, external=kept) == (30, DefectKind.TRUNCATED)


def test_rebuilt_log_is_forked(tmp_path: Path, db: Path, key: PrivateKey) -> None:
    kept = _latest_note(db)
    db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)

    async def rebuild() -> None:
        log = SqliteAuditLog(db, key=key, max_batch=10)
        await asyncio.gather(*(log.append(AuditEvent(event="call", request_id=-i)) for i in range(40)))
        await log.aclose()

    asyncio.run(rebuild())
    assert _defect(db, key, external=kept) == (40, DefectKind.FORKED)


def test_bad_checkpoint_signature(db: Path, key: PrivateKey) -> None:
    _sql(
        db,
        "UPDATE audit_checkpoints SET note = replace(note, char(10) || '20' || char(10), char(10) || '21' || char(10))"
        " WHERE size = 20",
    )
    assert _defect(db, key) == (20, DefectKind.BAD_CHECKPOINT)


@pytest.mark.parametrize(
    "edit",
    [
        # the size line of the latest checkpoint edited: its signature no longer verifies
        "UPDATE audit_checkpoints SET note = replace(note, char(10) || '40' || char(10), char(10) || '41' || char(10))"
        " WHERE size = 40",
        # one character of its root changed
        "UPDATE audit_checkpoints SET note = substr(note, 1, instr(note, char(10) || '40' || char(10)) + 3)"
        " || (CASE substr(note, instr(note, char(10) || '40' || char(10)) + 4, 1) WHEN 'A' THEN 'B' ELSE 'A' END)"
        " || substr(note, instr(note, char(10) || '40' || char(10)) + 5) WHERE size = 40",
        "UPDATE audit_checkpoints SET note = 'not a note' WHERE size = 40",
    ],
    ids=["size-edited", "root-edited", "garbage"],
)
def test_edited_latest_checkpoint_is_bad_checkpoint_not_inserted_entries(db: Path, key: PrivateKey, edit: str) -> None:
    _sql(db, edit)
    assert _defect(db, key) == (40, DefectKind.BAD_CHECKPOINT)


def test_forged_latest_checkpoint_is_bad_checkpoint_not_inserted_entries(db: Path, key: PrivateKey) -> None:
    """The latest checkpoint replaced by one for the same log, size and root, signed by another key."""
    from mcps.audit.checkpoint import sign_checkpoint  # noqa: PLC0415

    log = SqliteAuditLog(db, key=key)
    origin, genuine = log.origin, log.latest_checkpoint()
    asyncio.run(log.aclose())
    forged = sign_checkpoint(PrivateKey.generate(), origin, genuine.size, genuine.root).note
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_checkpoints SET note = ? WHERE size = 40", (forged,))
    with pytest.raises(AuditLogDefect) as caught:
        _verify(db, key)
    assert (caught.value.defect.index, caught.value.defect.kind) == (40, DefectKind.BAD_CHECKPOINT)
    assert "inserted" not in caught.value.message


def test_entries_past_the_latest_checkpoint_are_still_inserted(db: Path, key: PrivateKey) -> None:
    """The bad-checkpoint rule only covers entries a failing checkpoint claims: a missing one still means inserted."""
    _sql(
        db,
        "DELETE FROM audit_checkpoints WHERE size = 40",
        "UPDATE audit_checkpoints SET note = 'not a note' WHERE size = 20",
    )
    assert _defect(db, key) == (20, DefectKind.BAD_CHECKPOINT)  # the first defect
    _sql(db, "DELETE FROM audit_checkpoints WHERE size = 20")
    assert _defect(db, key) == (30, DefectKind.INSERTED)


def test_wrong_public_key_is_named_wrong_key_not_bad_checkpoint(db: Path, key: PrivateKey) -> None:
    log = SqliteAuditLog(db, key=key)
    try:
        with pytest.raises(AuditLogDefect) as caught:
            verify_log(log, PrivateKey.generate().public_key, log.origin)
    finally:
        asyncio.run(log.aclose())
    assert caught.value.code is ErrorCode.AUDIT_INVALID
    assert caught.value.defect.kind is DefectKind.WRONG_KEY
    assert "does not match" in caught.value.message
    assert "bad-checkpoint" not in caught.value.message
    assert "mcps audit key" in (caught.value.detail or "")


def test_log_whose_checkpoints_are_all_signed_by_another_key_is_wrong_key(db: Path, key: PrivateKey) -> None:
    """Every checkpoint re-signed with one other key (a log rebuilt under another key) reads as the same thing: the
    key given does not sign this log. Nothing in it is accepted."""
    from mcps.audit.checkpoint import open_checkpoint, sign_checkpoint  # noqa: PLC0415

    log = SqliteAuditLog(db, key=key)
    origin = log.origin
    rows = log.raw_checkpoints()
    asyncio.run(log.aclose())
    other = PrivateKey.generate()
    with sqlite3.connect(db) as conn:
        for size, note in rows:
            genuine = open_checkpoint(note, key.public_key, origin)
            forged = sign_checkpoint(other, origin, genuine.size, genuine.root).note
            conn.execute("UPDATE audit_checkpoints SET note = ? WHERE size = ?", (forged, size))
    assert _defect(db, key) == (0, DefectKind.WRONG_KEY)


def test_outside_checkpoint_by_another_key(db: Path, key: PrivateKey) -> None:
    from mcps.audit.checkpoint import sign_checkpoint  # noqa: PLC0415
    from mcps.audit.merkle import EMPTY_ROOT  # noqa: PLC0415

    log = SqliteAuditLog(db, key=key)
    origin = log.origin
    asyncio.run(log.aclose())
    forged = sign_checkpoint(PrivateKey.generate(), origin, 3, EMPTY_ROOT).note
    assert _defect(db, key, external=forged) == (0, DefectKind.BAD_CHECKPOINT)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE audit_entries SET entry = 'not even bytes' WHERE idx = 3",
        "UPDATE audit_entries SET entry = X'7b7d' WHERE idx = 3",
        "UPDATE audit_entries SET entry = X'ff00' WHERE idx = 3",
        "UPDATE audit_entries SET leaf = 42 WHERE idx = 3",
    ],
)
def test_hostile_content_is_a_defect_not_a_crash(db: Path, key: PrivateKey, edit: str) -> None:
    _sql(db, edit)
    assert _defect(db, key) == (3, DefectKind.MODIFIED)


def test_writer_refuses_a_corrupt_head(db: Path, key: PrivateKey) -> None:
    _sql(db, "UPDATE audit_checkpoints SET frontier = zeroblob(32) WHERE size = 40")

    async def append() -> None:
        log = SqliteAuditLog(db, key=key)
        try:
            await log.append(AuditEvent(event="call"))
        finally:
            await log.aclose()

    with pytest.raises(McpsError) as caught:
        asyncio.run(append())
    assert caught.value.code is ErrorCode.AUDIT_INVALID


def test_truncated_file_fails_clearly(db: Path, key: PrivateKey) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with db.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(McpsError) as caught:
        _verify(db, key)
    assert caught.value.code in (ErrorCode.STORE_UNAVAILABLE, ErrorCode.AUDIT_INVALID)


def test_deeply_nested_row_is_named_modified_not_a_recursion_error(db: Path, key: PrivateKey) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_entries SET entry = ? WHERE idx = 3", (b"[" * 100_000 + b"]" * 100_000,))
    assert _defect(db, key) == (3, DefectKind.MODIFIED)


def _resign_latest(path: Path, key: PrivateKey) -> None:
    """What an insider with the log key does after rewriting rows: recompute every leaf and re-sign the latest
    checkpoint over the new root (the stored frontier is left alone: verification never reads it)."""
    from mcps.audit.checkpoint import sign_checkpoint  # noqa: PLC0415
    from mcps.audit.merkle import leaf_hash, root_from_leaves  # noqa: PLC0415

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT idx, entry FROM audit_entries ORDER BY idx").fetchall()
        leaves = [leaf_hash(bytes(entry)) for _, entry in rows]
        origin = conn.execute("SELECT value FROM audit_meta WHERE key = 'origin'").fetchone()[0]
        note = sign_checkpoint(key, origin, len(leaves), root_from_leaves(leaves)).note
        updates = [(leaf, index) for (index, _), leaf in zip(rows, leaves, strict=True)]
        conn.executemany("UPDATE audit_entries SET leaf = ? WHERE idx = ?", updates)
        conn.execute("UPDATE audit_checkpoints SET note = ? WHERE size = ?", (note, len(leaves)))


@pytest.mark.parametrize(
    ("original", "respelled"),
    [
        (b'"event":"call"', b'"event":"call","event":"call"'),  # a duplicate member
        (b'"event":"call"', b'"event" : "call"'),  # whitespace
        (b'"event":"call"', b'"event":"c\\u0061ll"'),  # an escape JCS does not write
        (b'"v":1', b'"v":1.0'),  # a number JCS writes as 1
        (b'{"event":"call",', b'{"index":39,"event":"call",'),  # members out of order (and twice)
    ],
)
def test_last_entry_not_in_canonical_form_is_modified_even_when_re_signed(
    db: Path, key: PrivateKey, original: bytes, respelled: bytes
) -> None:
    """verify_log names what build_evidence could never prove: the stored bytes must be JCS of the entry."""
    with sqlite3.connect(db) as conn:
        (entry,) = conn.execute("SELECT entry FROM audit_entries WHERE idx = 39").fetchone()
        assert original in bytes(entry)
        edited = bytes(entry).replace(original, respelled, 1)
        conn.execute("UPDATE audit_entries SET entry = ? WHERE idx = 39", (edited,))
    _resign_latest(db, key)
    with pytest.raises(AuditLogDefect) as caught:
        _verify(db, key)
    assert (caught.value.defect.index, caught.value.defect.kind) == (39, DefectKind.MODIFIED)
    assert "not canonical" in caught.value.defect.detail


def test_entries_of_every_canonical_shape_verify_and_prove(tmp_path: Path, key: PrivateKey) -> None:
    """No false alarm from the canonical check: floats, integral doubles beyond 2^53, escapes, non-ASCII and astral
    keys (JCS orders them by UTF-16), nested arrays and objects, as the writer stores them."""
    from mcps.audit.evidence import build_evidence, check_evidence  # noqa: PLC0415

    values = [
        {"n": 0.1, "big": 1e20, "neg": -0.0, "tiny": 5e-324, "int": 2**53 - 1},
        {"\ue000": 1, "\U0001f600": 2, "é": "naïve \u2028", "ctl": '\x00\x1f\x7f"\\/'},
        {"deep": [[1, {"z": [], "a": {}}], None, True, False, ""]},
        {},
    ]
    path = tmp_path / "shapes.db"

    async def fill_and_prove() -> None:
        log = SqliteAuditLog(path, key=key, max_batch=2)
        try:
            for value in values:
                await log.append(AuditEvent(event="call", arguments=value, data={"copy": value}))
            for index in range(len(values)):
                evidence = await build_evidence(log, index)
                check_evidence(evidence, key.public_key)
                check_evidence(json.dumps(evidence, indent=2, ensure_ascii=False).encode(), key.public_key)
        finally:
            await log.aclose()

    asyncio.run(fill_and_prove())
    assert _verify(path, key) == len(values)
