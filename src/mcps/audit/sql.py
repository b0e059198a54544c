"""What the SQLite and PostgreSQL audit logs share: the tables, the batch transaction and the reads.

Four tables (names prefixed per store)::

    meta        (key TEXT PRIMARY KEY, value TEXT)          origin, public key (JWK)
    entries     (idx INTEGER PRIMARY KEY, leaf BLOB, entry BLOB)      leaf = H(0x00 ‖ entry)
    nodes       (level, idx, hash) PRIMARY KEY (level, idx)           complete subtrees at levels 8, 16, …
    checkpoints (size PRIMARY KEY, note TEXT, frontier BLOB)          one signed note per batch

A subclass supplies two connections (one for the writer, one for readers), the SQL placeholder, and
:meth:`SqlAuditLog._lock_for_append`, which must serialise appenders across processes inside the open
transaction. Everything the stores write is checked on the way back: nothing read from the database is trusted
before it has been verified against the log's key.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from mcps.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from mcps.audit.entry import AuditEvent
from mcps.audit.log import (
    DEFAULT_MAX_BATCH,
    Batch,
    GroupCommitter,
    Head,
    Receipt,
    StoredEntry,
    default_origin,
    extend,
    load_head,
)
from mcps.audit.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey
from mcps.core.strict import parse_message

__all__ = ["SqlAuditLog"]

READ_CHUNK: Final = 20_000


def unavailable(detail: str) -> McpsError:
    return McpsError(ErrorCode.STORE_UNAVAILABLE, "audit log is unavailable", detail=detail)


def _binary(value: Any) -> bytes:
    """A stored hash or entry column. One that a holder of the database filled with something else than bytes
    (text, a number) is a corrupt log, not a ``TypeError`` (nor, for a number, a run of zero bytes)."""
    if not isinstance(value, bytes | memoryview):
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="a stored hash or entry is not binary")
    return bytes(value)


def _stored_entry(row: Any) -> StoredEntry:
    index, leaf, data = row
    if type(index) is not int:
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="a stored index is not an integer")
    return StoredEntry(index, _binary(leaf), _binary(data))


class SqlAuditLog:
    """An :class:`~mcps.audit.log.AuditLog` over a DB-API connection pair. Use a subclass."""

    placeholder = "?"

    def __init__(
        self,
        *,
        writer: Any,
        reader: Any,
        prefix: str,
        key: PrivateKey | None,
        origin: str | None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._read_lock = threading.RLock()
        self._t = {name: f"{prefix}{name}" for name in ("meta", "entries", "nodes", "checkpoints")}
        self._key = key
        self._public: PublicKey | None = None if key is None else key.public_key
        self._origin = origin or ""
        self._clock = clock
        self._head: Head | None = None
        try:
            self._committer = GroupCommitter(self._commit, max_batch=max_batch, max_delay=max_delay)
        except BaseException:
            self._close_connections()
            raise

    def _close_connections(self) -> None:
        with self._read_lock:
            self._reader.close()
        self._writer.close()

    # -- subclass hooks ---------------------------------------------------------------------------------------

    def _begin(self) -> None:
        """Open a write transaction on the writer connection."""
        raise NotImplementedError

    def _lock_for_append(self) -> None:
        """Inside the transaction: block every other appender (all processes) until commit."""
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        """``text`` with ``{entries}``-style table names filled in and ``?`` placeholders translated."""
        return text.format(**self._t).replace("?", self.placeholder)

    # -- set-up -----------------------------------------------------------------------------------------------

    def _initialise(self) -> None:
        """Record origin and key on first use (with a signed size-0 checkpoint); refuse a different key later."""
        try:
            self._initialise_tables()
        except BaseException:
            self._close_connections()
            raise

    def _initialise_tables(self) -> None:
        w = self._writer
        self._begin()
        try:
            if self._key is None:
                self._open_read_only(dict(w.execute(self._sql("SELECT key, value FROM {meta}")).fetchall()))
                w.rollback()
                return
            self._lock_for_append()
            rows = dict(w.execute(self._sql("SELECT key, value FROM {meta}")).fetchall())
            jwk = json.dumps(self._key.public_key.to_jwk(), sort_keys=True)
            if not self._origin:
                self._origin = rows.get("origin") or default_origin(self._key.public_key)
            if not rows:
                insert = self._sql("INSERT INTO {meta} (key, value) VALUES (?, ?)")
                w.execute(insert, ("origin", self._origin))
                w.execute(insert, ("public_key", jwk))
                empty = sign_checkpoint(self._key, self._origin, 0, EMPTY_ROOT)
                w.execute(
                    self._sql("INSERT INTO {checkpoints} (size, note, frontier) VALUES (?, ?, ?)"), (0, empty.note, b"")
                )
            elif rows.get("origin") != self._origin or rows.get("public_key") != jwk:
                raise McpsError(
                    ErrorCode.UNKNOWN_KEY,
                    "audit log belongs to another key",
                    detail=f"the log was created for origin {rows.get('origin')!r} with another signing key",
                )
            w.commit()
        except BaseException:
            w.rollback()
            raise

    def _open_read_only(self, meta: dict[str, str]) -> None:
        """Take origin and public key from the log's own records (callers who can should pin the key instead)."""
        if not meta:
            raise unavailable("no audit log has been created in this database")
        try:
            self._public = PublicKey.from_jwk(parse_message(str(meta["public_key"]).encode("utf-8")))
            self._origin = self._origin or meta["origin"]
        except (KeyError, ValueError, McpsError) as exc:
            raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="bad log metadata") from exc

    # -- AuditLog ---------------------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def public_key(self) -> PublicKey:
        if self._public is None:  # pragma: no cover - set by __init__ or it raised
            raise unavailable("audit log is not initialised")
        return self._public

    @property
    def read_only(self) -> bool:
        return self._key is None

    async def append(self, event: AuditEvent) -> Receipt:
        return await self._committer.submit(event)

    def observe_batches(self, callback: Callable[[int, float], None] | None) -> None:
        """Call ``callback(size, seconds)`` after each committed batch (metrics); ``None`` stops."""
        self._committer.on_batch = callback

    async def checkpoint(self) -> Checkpoint:
        return await asyncio.to_thread(self.latest_checkpoint)

    async def entries(self, start: int, end: int) -> list[StoredEntry]:
        return await asyncio.to_thread(self.read_entries, start, end)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return await asyncio.to_thread(self._locked, inclusion_proof, self, index, size)

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return await asyncio.to_thread(self._locked, consistency_proof, self, old_size, new_size)

    async def aclose(self) -> None:
        await self._committer.aclose()
        self._close_connections()

    # -- the batch transaction (runs in a worker thread, one at a time per process) --------------------------

    def _load_head(self) -> Head:
        w = self._writer
        row = w.execute(
            self._sql("SELECT size, note, frontier FROM {checkpoints} ORDER BY size DESC LIMIT 1")
        ).fetchone()
        if row is None:
            raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="no checkpoint stored")
        size, note, frontier = row
        if self._head is not None and self._head.checkpoint.note == note:
            return self._head  # nobody else appended since our last batch
        last = None
        if size > 0:
            found = w.execute(self._sql("SELECT leaf FROM {entries} WHERE idx = ?"), (size - 1,)).fetchone()
            last = None if found is None else bytes(found[0])
            if last is None:
                raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail=f"entry {size - 1} is missing")
        return load_head(note, bytes(frontier), last, self.public_key, self._origin)

    def _commit(self, events: list[AuditEvent]) -> list[Receipt]:
        key = self._key
        if key is None:
            raise unavailable("audit log was opened read-only (no signing key)")
        w = self._writer
        try:
            self._begin()
            try:
                self._lock_for_append()
                head = self._load_head()
                batch = extend(head, events, key, self._origin, int(self._clock() * 1000))
                self._write(batch)
                w.commit()
            except BaseException:
                self._head = None
                w.rollback()
                raise
        except McpsError:
            raise
        except Exception as exc:
            raise unavailable(f"append failed: {type(exc).__name__}: {exc}") from exc
        self._head = batch.head
        return batch.receipts

    def _write(self, batch: Batch) -> None:
        w = self._writer
        cur = w.cursor()
        cur.executemany(self._sql("INSERT INTO {entries} (idx, leaf, entry) VALUES (?, ?, ?)"), batch.rows)
        if batch.nodes:
            cur.executemany(self._sql("INSERT INTO {nodes} (level, idx, hash) VALUES (?, ?, ?)"), batch.nodes)
        cur.execute(
            self._sql("INSERT INTO {checkpoints} (size, note, frontier) VALUES (?, ?, ?)"),
            (batch.checkpoint.size, batch.checkpoint.note, batch.frontier),
        )

    # -- reads (synchronous; also a merkle.NodeSource) --------------------------------------------------------

    def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._read_lock:
            return fn(*args)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._read_lock:
            try:
                rows: list[Any] = self._reader.execute(self._sql(sql), params).fetchall()
            except Exception as exc:
                raise unavailable(f"read failed: {type(exc).__name__}: {exc}") from exc
            self._end_read()
        return rows

    def _end_read(self) -> None:
        """Finish the implicit read transaction, if the driver opened one."""

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self._query("SELECT leaf FROM {entries} WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [_binary(r[0]) for r in rows]

    def stored_nodes(self, level: int, start: int, end: int) -> list[bytes]:
        rows = self._query(
            "SELECT hash FROM {nodes} WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx", (level, start, end)
        )
        return [_binary(r[0]) for r in rows]

    def read_entries(self, start: int, end: int) -> list[StoredEntry]:
        with self._read_lock:
            rows = self._query(
                "SELECT idx, leaf, entry FROM {entries} WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
            )
        return [_stored_entry(row) for row in rows]

    def latest_checkpoint(self) -> Checkpoint:
        """The latest stored checkpoint, verified against the log's key."""
        with self._read_lock:
            rows = self._query("SELECT note FROM {checkpoints} ORDER BY size DESC LIMIT 1")
        if not rows:
            raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="no checkpoint stored")
        return open_checkpoint(rows[0][0], self.public_key, self._origin)

    def iter_raw_entries(self, chunk: int = READ_CHUNK) -> Iterator[tuple[Any, Any, Any]]:
        """Every stored row ``(idx, leaf, entry)`` in index order, unchecked (for verification)."""
        after = -1
        while True:
            with self._read_lock:
                rows = self._query(
                    "SELECT idx, leaf, entry FROM {entries} WHERE idx > ? ORDER BY idx LIMIT ?", (after, chunk)
                )
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def raw_checkpoints(self) -> list[tuple[Any, Any]]:
        """Every stored checkpoint row ``(size, note)`` in size order, unchecked."""
        with self._read_lock:
            return self._query("SELECT size, note FROM {checkpoints} ORDER BY size")

    def count_entries(self) -> int:
        with self._read_lock:
            rows = self._query("SELECT count(*) FROM {entries}")
        return int(rows[0][0])
