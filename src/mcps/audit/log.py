"""The ``AuditLog`` protocol and what every store shares: receipts, the log key, batch building, group commit.

Appending is *group commit*: concurrent :meth:`AuditLog.append` calls are queued, and one writer turns each
batch into entries, new tree hashes and one signed checkpoint, written in **one transaction** — one fsync, one
signature. ``append`` returns only after that transaction has committed, with the entry's :class:`Receipt`.

Why two checkpoints of one log can never disagree: a batch is built inside the store's write transaction
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``LOCK TABLE … IN EXCLUSIVE MODE``), starting from the latest stored
checkpoint, whose signature and frontier are checked first. So every checkpoint extends the one before it;
a writer that finds a frontier that does not hash to the signed root refuses to append (MCPS-033).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from mcps.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from mcps.audit.entry import AuditEvent, build_entry
from mcps.audit.merkle import HASH_SIZE, CompactRange, leaf_hash
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, PrivateKey, PublicKey, load_private_key, save_private_key

__all__ = [
    "DEFAULT_MAX_BATCH",
    "MAX_BATCH_DELAY",
    "AuditLog",
    "Batch",
    "GroupCommitter",
    "Head",
    "Receipt",
    "StoredEntry",
    "default_origin",
    "extend",
    "load_head",
    "load_or_create_log_key",
]

DEFAULT_MAX_BATCH: Final = 4096
MAX_BATCH_DELAY: Final = 1.0
"""A batch is closed by size (``max_batch``) or by time; the time limit may not exceed one second."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of logging handed back to the caller: ``result._meta["mcps/receipt"] = {log, index, leaf}``."""

    log: str
    index: int
    leaf: bytes

    def to_json(self) -> dict[str, Any]:
        return {"log": self.log, "index": self.index, "leaf": b64u_encode(self.leaf)}

    @classmethod
    def from_json(cls, value: object) -> Receipt:
        if not isinstance(value, dict) or set(value) != {"log", "index", "leaf"}:
            raise ValueError("a receipt is {log, index, leaf}")
        index, log, leaf = value["index"], value["log"], value["leaf"]
        if type(index) is not int or index < 0 or not isinstance(log, str) or not isinstance(leaf, str):
            raise ValueError("a receipt is {log: string, index: integer, leaf: string}")
        raw = b64u_decode(leaf)
        if len(raw) != HASH_SIZE:
            raise ValueError("receipt leaf is not a SHA-256 hash")
        return cls(log, index, raw)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One stored row: its index, its stored leaf hash and the exact entry bytes (``JCS(entry)``)."""

    index: int
    leaf: bytes
    data: bytes


@runtime_checkable
class AuditLog(Protocol):
    """An append-only, tamper-evident log. Backends: SQLite (embedded default) and PostgreSQL (replicas)."""

    @property
    def origin(self) -> str:
        """The log's name: the checkpoint origin line and the receipt's ``log``."""
        ...

    @property
    def public_key(self) -> PublicKey:
        """The Ed25519 key that signs the log's checkpoints."""
        ...

    async def append(self, event: AuditEvent) -> Receipt:
        """Record ``event``; return once it is durable. Raises MCPS-030 when the store cannot write."""
        ...

    async def checkpoint(self) -> Checkpoint:
        """The latest signed checkpoint (size 0 for a new log)."""
        ...

    async def entries(self, start: int, end: int) -> list[StoredEntry]:
        """Stored entries ``start`` … ``end - 1`` (fewer when the log is shorter)."""
        ...

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        ...

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two tree sizes."""
        ...

    async def aclose(self) -> None:
        """Finish pending appends and release connections."""
        ...


def default_origin(key: PublicKey) -> str:
    """``mcps.audit/<kid>``: unique per log key, usable as a signed-note key name."""
    return f"mcps.audit/{key.kid}"


def load_or_create_log_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load the log's Ed25519 key from ``path`` (PKCS#8 PEM, refused unless mode 0600), creating it if absent."""
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process created it first
            save_private_key(PrivateKey.generate(Algorithm.EDDSA), file)
    key = load_private_key(file)
    if key.alg is not Algorithm.EDDSA:
        raise McpsError(ErrorCode.ALGORITHM_MISMATCH, detail="audit log keys are Ed25519 (signed-note)")
    return key


@dataclass(frozen=True, slots=True)
class Head:
    """The state a writer extends: the latest checkpoint, its frontier and the last leaf hash."""

    checkpoint: Checkpoint
    tree: CompactRange
    last_leaf: bytes | None


def load_head(note: str, frontier: bytes, last_leaf: bytes | None, key: PublicKey, origin: str) -> Head:
    """Check a stored checkpoint and frontier before extending them; raise MCPS-033 when they do not agree."""
    checkpoint = open_checkpoint(note, key, origin)
    size = checkpoint.size
    if len(frontier) != HASH_SIZE * size.bit_count():
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="stored frontier has the wrong size")
    tree = CompactRange(size, [frontier[i : i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE)])
    if tree.root() != checkpoint.root:
        raise McpsError(
            ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="stored frontier does not hash to the signed root"
        )
    if (size == 0) != (last_leaf is None) or (size % 2 == 1 and last_leaf != tree.hashes[-1]):
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is corrupt", detail="last entry does not match the tree")
    return Head(checkpoint, tree, last_leaf)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one transaction writes: rows ``(index, leaf, data)``, stored nodes, the checkpoint and its frontier."""

    rows: list[tuple[int, bytes, bytes]]
    nodes: list[tuple[int, int, bytes]]
    checkpoint: Checkpoint
    frontier: bytes
    receipts: list[Receipt]
    head: Head


def extend(head: Head, events: Sequence[AuditEvent], key: PrivateKey, origin: str, time_ms: int) -> Batch:
    """Turn ``events`` into entries after ``head`` and sign the checkpoint that covers them."""
    tree = head.tree.copy()
    prev = head.last_leaf
    rows: list[tuple[int, bytes, bytes]] = []
    nodes: list[tuple[int, int, bytes]] = []
    receipts: list[Receipt] = []
    for event in events:
        index = tree.size
        data = build_entry(event, index=index, prev=prev, time_ms=time_ms)
        leaf = leaf_hash(data)
        nodes.extend(tree.append(leaf))
        rows.append((index, leaf, data))
        receipts.append(Receipt(origin, index, leaf))
        prev = leaf
    checkpoint = sign_checkpoint(key, origin, tree.size, tree.root())
    return Batch(rows, nodes, checkpoint, b"".join(tree.hashes), receipts, Head(checkpoint, tree, prev))


def now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class GroupCommitter:
    """Queues appends from one event loop and commits them in batches through ``commit`` (run in a thread).

    A batch closes when it holds ``max_batch`` events, or — when ``max_delay`` > 0 — after waiting that long for
    more; with ``max_delay`` = 0 it takes whatever queued while the previous batch was being written, which is
    group commit without added latency. A failed commit fails every append of its batch (nothing is
    acknowledged that was not written).
    """

    def __init__(
        self,
        commit: Callable[[list[AuditEvent]], list[Receipt]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        if not 0 <= max_delay <= MAX_BATCH_DELAY:
            raise ValueError("max_delay must be between 0 and 1 second")
        self._commit = commit
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: list[tuple[AuditEvent, asyncio.Future[Receipt]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._full = asyncio.Event()
        self.on_batch: Callable[[int, float], None] | None = None
        """Called after each committed batch with its size and the seconds its transaction took (metrics)."""

    async def submit(self, event: AuditEvent) -> Receipt:
        if self._closed:
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="audit log is closed")
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        if len(self._queue) >= self._max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._queue:
            if self._max_delay and len(self._queue) < self._max_batch:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_delay)
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                started = time.perf_counter()
                receipts = await asyncio.to_thread(self._commit, [event for event, _ in batch])
                if self.on_batch is not None:
                    self.on_batch(len(batch), time.perf_counter() - started)
            except McpsError as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a writer failure must reach every waiting caller
                error = McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"audit commit failed: {type(exc).__name__}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), receipt in zip(batch, receipts, strict=True):
                if not future.done():
                    future.set_result(receipt)

    async def aclose(self) -> None:
        """Refuse new appends and wait for queued ones to be written."""
        self._closed = True
        if self._task is not None:
            await self._task
