"""Audit-log attacks (SPEC.md §8): rows edited, deleted, inserted, reordered or truncated by whoever holds the
database; checkpoints forged; a log rewritten by an insider who holds the log key; evidence files altered.

Log cases edit a copy of one shared log (40 entries, batches of 10: checkpoints at sizes 0, 10, 20, 30, 40, each
entry naming the canary) and expect :func:`mcps.audit.verify_log` to raise MCPS-033 naming the defect
(``expect`` = the kind and the entries it may name). ``external`` cases also give the verifier the latest
checkpoint as it was shipped off the box before the attack. Evidence cases alter the evidence file of entry 5 and
expect :func:`mcps.audit.check_evidence` to refuse it (MCPS-033). The control of every case is the untouched copy.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcps.audit.checkpoint import sign_checkpoint
from mcps.audit.merkle import leaf_hash, root_from_leaves
from mcps.audit.verify import DefectKind as K
from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode as E

from .corpus import CANARY, Case, Threat, unique
from .pki import make_key

LOG_KEY = make_key("audit log")
OTHER_LOG_KEY = make_key("another audit log")
ENTRIES = 40
BATCH = 10
EVIDENCE_INDEX = 5

Edit = Callable[[sqlite3.Connection, str], None]
"""Changes the database (``origin`` is the log's name)."""


@dataclass(frozen=True)
class LogScenario:
    edit: Edit | None
    external: bool = False


# --- edits --------------------------------------------------------------------------------------------------


def sql(*statements: str) -> Edit:
    def edit(db: sqlite3.Connection, _origin: str) -> None:
        for statement in statements:
            db.execute(statement)

    return edit


def entry(db: sqlite3.Connection, index: int) -> bytes:
    return bytes(db.execute("SELECT entry FROM audit_entries WHERE idx = ?", (index,)).fetchone()[0])


def rewrite(index: int, change: Callable[[bytes], bytes], *, fix_leaf: bool = True) -> Edit:
    """Entry ``index``'s bytes changed by ``change`` (and its stored leaf recomputed when ``fix_leaf``)."""

    def edit(db: sqlite3.Connection, _origin: str) -> None:
        data = change(entry(db, index))
        leaf = leaf_hash(data)
        if fix_leaf:
            db.execute("UPDATE audit_entries SET entry = ?, leaf = ? WHERE idx = ?", (data, leaf, index))
        else:
            db.execute("UPDATE audit_entries SET entry = ? WHERE idx = ?", (data, index))

    return edit


def edited_json(**changes: Any) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        value = json.loads(data)
        value.update(changes)
        return canonicalize(value)

    return change


def append_forged(db: sqlite3.Connection, _origin: str) -> None:
    """A 41st entry, well formed and chained to entry 39, that no checkpoint covers."""
    last = json.loads(entry(db, ENTRIES - 1))
    prev = db.execute("SELECT leaf FROM audit_entries WHERE idx = ?", (ENTRIES - 1,)).fetchone()[0]
    forged = canonicalize({**last, "index": ENTRIES, "prev": b64u_encode(bytes(prev)), "tool": "forged-" + CANARY})
    db.execute("INSERT INTO audit_entries VALUES (?, ?, ?)", (ENTRIES, leaf_hash(forged), forged))


def insert_forged_at(position: int) -> Edit:
    """A new, well-formed entry at ``position``, chained to the entry before; later rows moved up by one."""

    def edit(db: sqlite3.Connection, _origin: str) -> None:
        before = json.loads(entry(db, position - 1))
        prev = db.execute("SELECT leaf FROM audit_entries WHERE idx = ?", (position - 1,)).fetchone()[0]
        forged = canonicalize({**before, "index": position, "prev": b64u_encode(bytes(prev)), "decision": "allow"})
        db.execute("UPDATE audit_entries SET idx = -idx - 1000 WHERE idx >= ?", (position,))
        db.execute("UPDATE audit_entries SET idx = -idx - 999 WHERE idx <= -1000")
        db.execute("INSERT INTO audit_entries VALUES (?, ?, ?)", (position, leaf_hash(forged), forged))

    return edit


def note(db: sqlite3.Connection, size: int) -> str:
    return str(db.execute("SELECT note FROM audit_checkpoints WHERE size = ?", (size,)).fetchone()[0])


def set_note(size: int, change: Callable[[str, sqlite3.Connection, str], str]) -> Edit:
    def edit(db: sqlite3.Connection, origin: str) -> None:
        db.execute("UPDATE audit_checkpoints SET note = ? WHERE size = ?", (change(note(db, size), db, origin), size))

    return edit


def corrupt_signature(text: str, _db: sqlite3.Connection, _origin: str) -> str:
    head, _, signature = text.rpartition(" ")
    return f"{head} {('A' if signature[10] != 'A' else 'B').join([signature[:10], signature[11:]])}"


def edit_root(text: str, _db: sqlite3.Connection, _origin: str) -> str:
    lines = text.split("\n")
    lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]
    return "\n".join(lines)


def signed_by(key: Any) -> Callable[[str, sqlite3.Connection, str], str]:
    """The checkpoint re-made over the database's current leaves and signed with ``key`` (same origin)."""

    def change(text: str, db: sqlite3.Connection, origin: str) -> str:
        size = int(text.split("\n")[1])
        leaves = [
            bytes(row[0]) for row in db.execute("SELECT leaf FROM audit_entries WHERE idx < ? ORDER BY idx", (size,))
        ]
        return sign_checkpoint(key, origin, size, root_from_leaves(leaves)).note

    return change


def then(*edits: Edit) -> Edit:
    def edit(db: sqlite3.Connection, origin: str) -> None:
        for each in edits:
            each(db, origin)

    return edit


def rebuild(db: sqlite3.Connection, origin: str) -> None:
    """The insider rewrites entry 35 and re-signs every checkpoint after it with the log key."""
    rewrite(35, edited_json(decision="allow", tool="rewritten-" + CANARY))(db, origin)
    for index in range(36, ENTRIES):  # re-chain the rest
        data = json.loads(entry(db, index))
        prev = db.execute("SELECT leaf FROM audit_entries WHERE idx = ?", (index - 1,)).fetchone()[0]
        rewrite(index, lambda _d, data=data, prev=prev: canonicalize({**data, "prev": b64u_encode(bytes(prev))}))(
            db, origin
        )
    set_note(ENTRIES, signed_by(LOG_KEY))(db, origin)


def truncate_and_resign(size: int) -> Edit:
    def edit(db: sqlite3.Connection, origin: str) -> None:
        db.execute("DELETE FROM audit_entries WHERE idx >= ?", (size,))
        db.execute("DELETE FROM audit_checkpoints WHERE size > ?", (size - size % BATCH,))
        leaves = [bytes(row[0]) for row in db.execute("SELECT leaf FROM audit_entries ORDER BY idx")]
        forged = sign_checkpoint(LOG_KEY, origin, size, root_from_leaves(leaves)).note
        db.execute("INSERT INTO audit_checkpoints VALUES (?, ?, ?)", (size, forged, b""))

    return edit


def log(edit: Edit, *, external: bool = False) -> Callable[[bool], LogScenario]:
    return lambda defect: LogScenario(edit if defect else None, external)


D = Threat.DATABASE
KEY = Threat.LOG_KEY


def case(
    name: str,
    summary: str,
    build: Callable[[bool], LogScenario],
    kind: K,
    indices: set[int],
    *,
    threat: Threat = D,
    xfail: str | None = None,
) -> Case[LogScenario]:
    return Case(name, E.AUDIT_INVALID, threat, build, summary, expect=(kind, frozenset(indices)), xfail=xfail)


LOG_CASES: list[Case[LogScenario]] = unique(
    [
        case(
            "audit-row-edited",
            "entry 17's bytes changed, its leaf column not",
            log(rewrite(17, edited_json(decision="deny"), fix_leaf=False)),
            K.MODIFIED,
            {17},
        ),
        case(
            "audit-row-edited-leaf-fixed",
            "entry 17 and its leaf changed together",
            log(rewrite(17, edited_json(decision="deny"))),
            K.MODIFIED,
            {17},
        ),
        case(
            "audit-last-row-edited-consistently",
            "the last entry and its leaf changed: only the signed root sees it",
            log(rewrite(39, edited_json(decision="deny"))),
            K.MODIFIED,
            {30},
        ),
        case(
            "audit-row-not-json",
            "entry 17 replaced by bytes that are not JSON",
            log(rewrite(17, lambda _d: b"not json " + CANARY.encode())),
            K.MODIFIED,
            {17},
        ),
        case(
            "audit-row-recursion-bomb",
            "entry 17 replaced by 100,000 nested arrays",
            log(rewrite(17, lambda _d: b"[" * 100_000 + b"]" * 100_000)),
            K.MODIFIED,
            {17},
        ),
        case(
            "audit-row-prev-edited",
            "entry 17's prev points elsewhere (leaf fixed)",
            log(rewrite(17, edited_json(prev=b64u_encode(bytes(32))))),
            K.MODIFIED,
            {16, 17},
        ),
        case(
            "audit-leaf-not-binary",
            "a leaf column holding text",
            log(sql("UPDATE audit_entries SET leaf = 'Qz7CANARYx9W' WHERE idx = 17")),
            K.MODIFIED,
            {17},
        ),
        case(
            "audit-row-deleted",
            "entry 12 deleted",
            log(sql("DELETE FROM audit_entries WHERE idx = 12")),
            K.DELETED,
            {12},
        ),
        case(
            "audit-row-deleted-and-renumbered",
            "entry 12 deleted, later rows renumbered to close the gap",
            log(
                sql("DELETE FROM audit_entries WHERE idx = 12", "UPDATE audit_entries SET idx = idx - 1 WHERE idx > 12")
            ),
            K.DELETED,
            {12},
        ),
        case(
            "audit-rows-swapped",
            "entries 21 and 22 swapped",
            log(
                sql(
                    "UPDATE audit_entries SET idx = -1 WHERE idx = 21",
                    "UPDATE audit_entries SET idx = 21 WHERE idx = 22",
                    "UPDATE audit_entries SET idx = 22 WHERE idx = -1",
                )
            ),
            K.REORDERED,
            {21},
        ),
        case(
            "audit-row-copy-inserted",
            "a copy of entry 5 inserted after it, later rows moved up",
            log(
                sql(
                    "UPDATE audit_entries SET idx = -idx - 100 WHERE idx > 5",
                    "UPDATE audit_entries SET idx = -idx - 99 WHERE idx < -100",
                    "INSERT INTO audit_entries SELECT 6, leaf, entry FROM audit_entries WHERE idx = 5",
                )
            ),
            K.INSERTED,
            {6},
        ),
        case(
            "audit-forged-row-inserted",
            "a well-chained forged entry inserted at 6, later rows moved up",
            log(insert_forged_at(6)),
            K.INSERTED,
            {6},
        ),
        case(
            "audit-row-appended-without-checkpoint",
            "a well-chained 41st entry that no checkpoint covers",
            log(append_forged),
            K.INSERTED,
            {40},
        ),
        case(
            "audit-latest-checkpoint-deleted",
            "the checkpoint covering entries 30–39 deleted",
            log(sql("DELETE FROM audit_checkpoints WHERE size = 40")),
            K.INSERTED,
            {30},
        ),
        case(
            "audit-rows-truncated",
            "entries 35–39 deleted",
            log(sql("DELETE FROM audit_entries WHERE idx >= 35")),
            K.TRUNCATED,
            {35},
        ),
        case(
            "audit-truncated-with-its-checkpoints",
            "entries and checkpoints after 30 deleted: only a checkpoint kept elsewhere sees it",
            log(
                sql("DELETE FROM audit_entries WHERE idx >= 30", "DELETE FROM audit_checkpoints WHERE size > 30"),
                external=True,
            ),
            K.TRUNCATED,
            {30},
        ),
        case(
            "audit-checkpoint-signature-edited",
            "one character of the size-20 checkpoint's signature changed",
            log(set_note(20, corrupt_signature)),
            K.BAD_CHECKPOINT,
            {20},
        ),
        case(
            "audit-checkpoint-root-edited",
            "the size-20 checkpoint's root changed, signature kept",
            log(set_note(20, edit_root)),
            K.BAD_CHECKPOINT,
            {20},
        ),
        case(
            "audit-checkpoint-moved",
            "the size-20 row holds the size-10 note",
            log(set_note(20, lambda _t, db, _o: note(db, 10))),
            K.BAD_CHECKPOINT,
            {20},
        ),
        case(
            "audit-checkpoint-bad-second-signature",
            "a second signature line naming the log key, not verifying",
            log(set_note(20, lambda text, _db, _o: text + text.rsplit("\n", 2)[1][:-8] + "AAAAAAA=\n")),
            K.BAD_CHECKPOINT,
            {20},
        ),
        case(
            "audit-checkpoint-signed-by-another-key",
            "the size-20 checkpoint re-signed with a key of the attacker's",
            log(set_note(20, signed_by(OTHER_LOG_KEY))),
            K.BAD_CHECKPOINT,
            {20},
        ),
        case(
            "audit-latest-checkpoint-forged",
            "the latest checkpoint's signature corrupted",
            log(set_note(ENTRIES, corrupt_signature)),
            K.BAD_CHECKPOINT,
            {30, 40},
        ),
        case(
            "audit-latest-checkpoint-signed-by-another-key",
            "the latest checkpoint re-signed with the attacker's key",
            log(set_note(ENTRIES, signed_by(OTHER_LOG_KEY))),
            K.BAD_CHECKPOINT,
            {30, 40},
        ),
        # --- the insider with the log key: seen only against a checkpoint kept elsewhere --------------------
        case(
            "audit-rewritten-by-the-key-holder",
            "entry 35 rewritten, the chain and the checkpoint re-made with the log key",
            log(rebuild, external=True),
            K.FORKED,
            {40},
            threat=KEY,
        ),
        case(
            "audit-truncated-and-resigned-by-the-key-holder",
            "entries 35–39 deleted and a checkpoint for 35 entries signed with the log key",
            log(truncate_and_resign(35), external=True),
            K.TRUNCATED,
            {35},
            threat=KEY,
        ),
        case(
            "audit-entry-not-canonical-under-a-valid-checkpoint",
            "the key holder stores entry 39 with a "
            "duplicate member (not JCS) and re-signs: verify_log must refuse what build_evidence cannot prove",
            log(
                then(
                    rewrite(
                        39, lambda data: data.replace(b'"decision":"allow"', b'"decision":"deny","decision":"allow"')
                    ),
                    set_note(ENTRIES, signed_by(LOG_KEY)),
                )
            ),
            K.MODIFIED,
            {39},
            threat=KEY,
        ),
        case(
            "audit-entry-version-true-under-a-valid-checkpoint",
            'the key holder stores entry 39 with "v": true and re-signs',
            log(
                then(
                    rewrite(39, lambda data: data.replace(b'"v":1', b'"v":true')), set_note(ENTRIES, signed_by(LOG_KEY))
                )
            ),
            K.MODIFIED,
            {39},
            threat=KEY,
        ),
    ]
)


# --- evidence files -------------------------------------------------------------------------------------------

EvidenceEdit = Callable[[dict[str, Any]], dict[str, Any] | bytes]


@dataclass(frozen=True)
class EvidenceScenario:
    edit: EvidenceEdit | None
    receipt: int | None = None
    """Check the evidence against the receipt of this entry."""


def evidence(edit: EvidenceEdit) -> Callable[[bool], EvidenceScenario]:
    return lambda defect: EvidenceScenario(edit if defect else None)


def changed_evidence(**changes: Any) -> EvidenceEdit:
    return lambda value: {**value, **changes}


def changed_entry(**changes: Any) -> EvidenceEdit:
    return lambda value: {**value, "entry": {**value["entry"], **changes}}


def changed_proof(change: Callable[[list[str]], list[str]]) -> EvidenceEdit:
    return lambda value: {**value, "proof": change(list(value["proof"]))}


def flip_hash(text: str) -> str:
    return ("A" if text[0] != "A" else "B") + text[1:]


def raw(change: Callable[[bytes], bytes]) -> EvidenceEdit:
    return lambda value: change(json.dumps(value).encode())


def evidence_case(
    name: str, summary: str, build: Callable[[bool], EvidenceScenario], threat: Threat = D, xfail: str | None = None
) -> Case[EvidenceScenario]:
    return Case(name, E.AUDIT_INVALID, threat, build, summary, xfail=xfail)


EVIDENCE_CASES: list[Case[EvidenceScenario]] = unique(
    [
        evidence_case(
            "evidence-entry-edited",
            "the entry's decision changed",
            evidence(changed_entry(decision="allow", tool=CANARY)),
        ),
        evidence_case("evidence-index-changed", "index 6 for entry 5", evidence(changed_evidence(index=6))),
        evidence_case(
            "evidence-entry-moved",
            "entry and index both say 6",
            evidence(lambda v: {**v, "index": 6, "entry": {**v["entry"], "index": 6}}),
        ),
        evidence_case(
            "evidence-proof-hash-edited",
            "one proof hash changed",
            evidence(changed_proof(lambda p: [flip_hash(p[0]), *p[1:]])),
        ),
        evidence_case(
            "evidence-proof-too-short", "the last proof hash dropped", evidence(changed_proof(lambda p: p[:-1]))
        ),
        evidence_case("evidence-proof-too-long", "a proof hash added", evidence(changed_proof(lambda p: [*p, p[0]]))),
        evidence_case("evidence-proof-65-hashes", "65 proof hashes", evidence(changed_proof(lambda p: [p[0]] * 65))),
        evidence_case(
            "evidence-proof-not-base64url",
            "a proof hash in standard base64 with padding",
            evidence(changed_proof(lambda p: [p[0].replace("-", "+").replace("_", "/") + "=", *p[1:]])),
        ),
        evidence_case(
            "evidence-for-another-log",
            "log names another origin",
            evidence(changed_evidence(log="mcps.audit/" + CANARY)),
        ),
        evidence_case(
            "evidence-log-name-with-space",
            "log names an origin with a space (not a valid key name)",
            evidence(changed_evidence(log="mcps.audit/ " + CANARY)),
        ),
        evidence_case(
            "evidence-checkpoint-signed-by-another-key",
            "the checkpoint re-signed with another key",
            evidence(lambda v: {**v, "checkpoint": resigned(v["checkpoint"], OTHER_LOG_KEY)}),
        ),
        evidence_case(
            "evidence-checkpoint-too-small",
            "a checkpoint of size 0, which holds no entry 5",
            evidence(lambda v: {**v, "checkpoint": resigned(v["checkpoint"], LOG_KEY, size=0), "proof": []}),
        ),
        evidence_case(
            "evidence-type-other", "type names another format", evidence(changed_evidence(type="mcps-audit-receipt"))
        ),
        evidence_case("evidence-version-2", "v = 2", evidence(changed_evidence(v=2))),
        evidence_case("evidence-version-true", "v = true", evidence(changed_evidence(v=True))),
        evidence_case(
            "evidence-version-fraction",
            "v = 1.5, no integer (1.0 is the integer 1, SPEC §3)",
            evidence(changed_evidence(v=1.5)),
        ),
        evidence_case("evidence-index-true", "index = true", evidence(changed_evidence(index=True))),
        evidence_case("evidence-index-negative", "index = -1", evidence(changed_evidence(index=-1))),
        evidence_case("evidence-extra-member", "an extra member", evidence(changed_evidence(note=CANARY))),
        evidence_case(
            "evidence-dup-key-in-entry",
            "two decision members in the entry, read differently by different parsers",
            evidence(raw(lambda b: b.replace(b'"decision": "allow"', b'"decision": "deny", "decision": "allow"'))),
        ),
        evidence_case("evidence-not-json", "not JSON at all", evidence(raw(lambda b: b[:-1] + CANARY.encode()))),
        evidence_case(
            "evidence-receipt-for-another-entry",
            "checked against the receipt of entry 6",
            lambda d: EvidenceScenario(None, receipt=EVIDENCE_INDEX + 1 if d else EVIDENCE_INDEX),
            threat=Threat.NETWORK,
        ),
    ]
)


def resigned(note_text: str, key: Any, *, size: int | None = None) -> str:
    """``note_text``'s checkpoint signed again by ``key`` (for the empty tree when ``size`` is 0)."""
    lines = note_text.split("\n")
    origin, tree_size = lines[0], int(lines[1])
    root = base64.b64decode(lines[2])
    if size == 0:
        root = root_from_leaves([])
        tree_size = 0
    return sign_checkpoint(key, origin, tree_size, root).note
