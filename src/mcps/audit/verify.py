"""Full verification of a stored log: every leaf, the ``prev`` chain, every root, every checkpoint.

:func:`verify_log` reads the whole log once, in index order, and either returns a :class:`VerifiedLog` or raises
:class:`AuditLogDefect` naming the **first** bad entry and the kind of defect:

==============  =================================================================================================
kind            what was found
==============  =================================================================================================
modified        an entry's bytes do not hash to its stored leaf, to the next entry's ``prev``, or (with every
                row rewritten consistently) to the signed root of the batch that holds it; or they are not
                exactly the JCS of an entry (SPEC §8.1), which no evidence could prove
deleted         an index is missing: a gap in the rows, or an entry whose ``index`` is ahead of its position
reordered       like *deleted*, but the missing entry appears later in the log
inserted        an entry claims an index already taken, or entries exist that no checkpoint covers (not even one
                that fails to verify: entries past a bad latest checkpoint are that checkpoint's defect)
truncated       a checkpoint (stored, or kept elsewhere and passed with ``external``) covers more entries than
                the log holds
bad-checkpoint  a stored or given checkpoint is malformed, for another log, or its signature does not verify
forked          a checkpoint kept elsewhere has the right size but another root: the log was rebuilt
wrong-key       no stored checkpoint verifies, and they are signed under the log's name by another key: the key
                given is not this log's key (or the whole log was re-signed with another); nothing is verified
==============  =================================================================================================

Consistency between consecutive checkpoints follows from checking each root against the tree recomputed from
one sequence of leaves: two roots of prefixes of one sequence are consistent by construction (RFC 9162 §2.1.4).
Nothing read from the database is trusted, and hostile content (wrong types, bad JSON) is reported as a
defect, never as a crash.
"""

from __future__ import annotations

import collections
import enum
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mcps.audit.checkpoint import Checkpoint, NoteSignedByAnotherKey, open_checkpoint
from mcps.audit.entry import parse_entry
from mcps.audit.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PublicKey

__all__ = ["AuditLogDefect", "Defect", "DefectKind", "LogSource", "VerifiedLog", "verify_log"]

LOOKAHEAD: Final = 10_000
"""How far ahead a missing index is searched for, to tell *reordered* from *deleted*."""
_BINARY: Final = (bytes, memoryview)


class DefectKind(enum.StrEnum):
    MODIFIED = "modified"
    DELETED = "deleted"
    REORDERED = "reordered"
    INSERTED = "inserted"
    TRUNCATED = "truncated"
    BAD_CHECKPOINT = "bad-checkpoint"
    FORKED = "forked"
    WRONG_KEY = "wrong-key"


@dataclass(frozen=True, slots=True)
class Defect:
    index: int
    kind: DefectKind
    detail: str


class AuditLogDefect(McpsError):
    """Verification failed; ``defect`` names the first bad entry and the kind of defect."""

    def __init__(self, defect: Defect) -> None:
        if defect.kind is DefectKind.WRONG_KEY:  # not tampering that was found: nothing could be checked
            message = "the key does not match this audit log (wrong-key): no checkpoint is signed by it"
        else:
            message = f"audit log is not intact: entry {defect.index} {defect.kind.value}"
        super().__init__(ErrorCode.AUDIT_INVALID, message, detail=defect.detail)
        self.defect = defect


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    size: int
    root: bytes
    checkpoints: int
    latest: Checkpoint


class LogSource(Protocol):
    """What verification reads: raw rows and raw checkpoints, in order, with nothing checked."""

    def iter_raw_entries(self) -> Iterator[tuple[Any, Any, Any]]: ...

    def raw_checkpoints(self) -> list[tuple[Any, Any]]: ...


@dataclass(slots=True)
class _Checkpoints:
    """The stored checkpoints: those that verify by size, and what was wrong with the others."""

    opened: dict[int, Checkpoint]
    defects: list[Defect]
    bad_sizes: list[int]
    """Sizes claimed by stored checkpoints that do not verify."""
    other_key: int
    """How many of those are signed under the log's name by another key."""


def _open_checkpoints(rows: list[tuple[Any, Any]], key: PublicKey, origin: str) -> _Checkpoints:
    opened: dict[int, Checkpoint] = {}
    defects: list[Defect] = []
    bad_sizes: list[int] = []
    other_key = 0
    for size, note in rows:
        where = size if type(size) is int else 0
        try:
            checkpoint = open_checkpoint(note if isinstance(note, str) else bytes(note), key, origin)
        except (McpsError, TypeError) as exc:
            detail = exc.diagnostics() if isinstance(exc, McpsError) else "note is not text"
            defects.append(Defect(where, DefectKind.BAD_CHECKPOINT, f"stored checkpoint at size {size}: {detail}"))
            bad_sizes.append(where)
            if isinstance(exc, NoteSignedByAnotherKey):
                other_key += 1
            continue
        if checkpoint.size != size:
            defects.append(
                Defect(
                    where, DefectKind.BAD_CHECKPOINT, f"checkpoint row {size} holds a note for size {checkpoint.size}"
                )
            )
            bad_sizes.append(where)
            continue
        opened[size] = checkpoint
    return _Checkpoints(opened, defects, bad_sizes, other_key)


def _find_index(rows: Iterator[tuple[Any, Any, Any]], wanted: int) -> bool:
    for _, _, data in itertools.islice(rows, LOOKAHEAD):
        try:
            if isinstance(data, _BINARY) and parse_entry(bytes(data))["index"] == wanted:
                return True
        except ValueError:
            continue
    return False


def _missing(pos: int, rows: Iterator[tuple[Any, Any, Any]], why: str) -> Defect:
    if _find_index(rows, pos):
        return Defect(pos, DefectKind.REORDERED, f"entry {pos} is not at its position but appears later ({why})")
    return Defect(pos, DefectKind.DELETED, f"entry {pos} is missing ({why})")


def _scan(
    rows: Iterator[tuple[Any, Any, Any]],
    targets: dict[int, bytes],
    probe: int | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, bytes, bytes | None, Defect | None]:
    """Walk the rows; return ``(entries, root, root at size probe, first defect or None)``."""
    tree = CompactRange()
    expected_prev: str | None = None  # b64u of the previous entry's leaf
    pos = 0
    batch_start = 0
    probed = EMPTY_ROOT if probe == 0 else None
    recent: collections.deque[bytes] = collections.deque(maxlen=LOOKAHEAD)
    if 0 in targets and targets[0] != EMPTY_ROOT:
        return 0, EMPTY_ROOT, None, Defect(0, DefectKind.MODIFIED, "the size-0 checkpoint does not hold the empty root")
    for idx, stored_leaf, raw in rows:
        if idx != pos:
            return (
                pos,
                tree.root(),
                probed,
                _missing(pos, itertools.chain([(idx, stored_leaf, raw)], rows), f"row {idx} follows"),
            )
        if not isinstance(raw, _BINARY) or not isinstance(stored_leaf, _BINARY):
            return pos, tree.root(), probed, Defect(pos, DefectKind.MODIFIED, "stored entry or leaf is not binary")
        data = raw if type(raw) is bytes else bytes(raw)
        leaf = leaf_hash(data)
        try:
            entry = parse_entry(data)
        except ValueError as exc:
            return pos, tree.root(), probed, Defect(pos, DefectKind.MODIFIED, f"stored bytes are not an entry: {exc}")
        claimed = entry["index"]
        if claimed > pos:
            return pos, tree.root(), probed, _missing(pos, rows, f"the entry at position {pos} claims index {claimed}")
        if claimed < pos:
            back = pos - claimed
            if back <= len(recent) and recent[-back] == leaf:  # a copy of an earlier entry
                detail = f"the entry at position {pos} is a copy of entry {claimed}"
                return pos, tree.root(), probed, Defect(pos, DefectKind.INSERTED, detail)
            detail = f"the entry at position {pos} claims index {claimed}: {back} entries inserted before it"
            return pos, tree.root(), probed, Defect(claimed, DefectKind.INSERTED, detail)
        if entry["prev"] != expected_prev:
            bad = max(pos - 1, 0)
            return (
                pos,
                tree.root(),
                probed,
                Defect(bad, DefectKind.MODIFIED, f"entry {pos}'s prev is not the leaf of entry {bad}"),
            )
        if stored_leaf != leaf:  # a memoryview compares by content
            return (
                pos,
                tree.root(),
                probed,
                Defect(pos, DefectKind.MODIFIED, "entry bytes do not hash to the stored leaf"),
            )
        tree.push(leaf)
        recent.append(leaf)
        expected_prev = b64u_encode(leaf)
        pos += 1
        if pos == probe:
            probed = tree.root()
        if pos in targets:
            if tree.root() != targets[pos]:
                detail = f"entries {batch_start}..{pos - 1} do not hash to the signed root at size {pos}"
                return pos, tree.root(), probed, Defect(batch_start, DefectKind.MODIFIED, detail)
            batch_start = pos
        if progress is not None and pos % 10_000 == 0:
            progress(pos)
    if progress is not None:
        progress(pos)
    return pos, tree.root(), probed, None


def verify_log(
    source: LogSource,
    key: PublicKey,
    origin: str,
    *,
    external: str | bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifiedLog:
    """Verify the whole log against the log's public ``key``; raise :class:`AuditLogDefect` on the first defect.

    ``external`` is a checkpoint note kept outside the database (``mcps audit checkpoint`` output shipped off
    the box): it detects truncation and rebuilding that leave no trace in the database itself.
    """
    # 1. Open every stored checkpoint (signature, origin, size column). When none verifies and they are signed by
    #    another key, the key is not this log's: say so, rather than report every checkpoint as forged.
    stored = _open_checkpoints(source.raw_checkpoints(), key, origin)
    opened, defects = stored.opened, stored.defects
    if not opened and stored.other_key:
        detail = next(d.detail for d in defects)
        raise AuditLogDefect(
            Defect(0, DefectKind.WRONG_KEY, f"{detail}; pass the log's own public key (mcps audit key)")
        )
    targets = {size: checkpoint.root for size, checkpoint in opened.items()}
    # 2. The checkpoint kept elsewhere, if any.
    outside: Checkpoint | None = None
    if external is not None:
        try:
            outside = open_checkpoint(external, key, origin)
        except McpsError as exc:
            raise AuditLogDefect(
                Defect(0, DefectKind.BAD_CHECKPOINT, f"given checkpoint: {exc.diagnostics()}")
            ) from exc
    # 3. Walk every entry: position, leaf, prev chain, roots at every stored checkpoint size.
    probe = None if outside is None else outside.size
    size, root, probed, found = _scan(source.iter_raw_entries(), targets, probe, progress)
    if found is not None:
        defects.append(found)
    # 4. The outside checkpoint, truncation, and entries that no checkpoint covers.
    covered = max(opened, default=-1)
    if outside is not None and outside.size > size:
        defects.append(
            Defect(
                size, DefectKind.TRUNCATED, f"the log holds {size} entries; the given checkpoint covers {outside.size}"
            )
        )
    elif outside is not None and probed is not None and probed != outside.root:
        detail = f"the log's root at size {outside.size} is not the given checkpoint's: the log was rebuilt"
        defects.append(Defect(outside.size, DefectKind.FORKED, detail))
    if not opened and not defects:
        defects.append(Defect(0, DefectKind.BAD_CHECKPOINT, "the log holds no checkpoint at all"))
    elif found is None and covered > size:
        defects.append(
            Defect(size, DefectKind.TRUNCATED, f"the log holds {size} entries; a checkpoint covers {covered}")
        )
    elif found is None and covered < size and not any(bad > covered for bad in stored.bad_sizes):
        # Entries past the last good checkpoint are inserted only when no checkpoint claims them: when one does
        # and fails to verify (the latest edited or forged), its bad-checkpoint defect is already recorded.
        defects.append(
            Defect(max(covered, 0), DefectKind.INSERTED, f"entries {covered}..{size - 1} have no checkpoint")
        )
    if defects:
        raise AuditLogDefect(min(defects, key=lambda d: d.index))
    return VerifiedLog(size, root, len(opened), opened[covered])
