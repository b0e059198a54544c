"""One contract for every AuditLog backend (SQLite file, real PostgreSQL), per src/mcps/audit/log.py.

Contract: appends get consecutive indexes and a receipt {log, index, leaf} whose leaf is H(0x00 ‖ stored entry);
each entry's prev is the leaf before it; each batch ends in a signed checkpoint that extends the previous one;
proofs verify; a reopened log continues the same chain; a log refuses a key it was not created with; several
writers on one store never fork the log or leave a gap.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import pytest

from mcps.audit.checkpoint import open_checkpoint
from mcps.audit.entry import AuditEvent, json_hash
from mcps.audit.evidence import build_evidence, check_evidence
from mcps.audit.log import AuditLog, Receipt
from mcps.audit.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from mcps.audit.sql import SqlAuditLog
from mcps.audit.verify import verify_log
from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey

LogFactory = Callable[..., SqlAuditLog]


T0 = 1_763_683_200.0


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        event="call",
        agent="agent-1",
        kid="kid-1",
        trust_level=2,
        method="tools/call",
        tool="search",
        request_id=i,
        args_hash=json_hash({"q": i}),
        decision="allow",
        latency_ms=3,
    )


async def test_is_an_audit_log(make_log: LogFactory) -> None:
    assert isinstance(make_log(), AuditLog)


async def test_new_log_has_a_signed_empty_checkpoint(make_log: LogFactory, log_key: PrivateKey) -> None:
    log = make_log()
    checkpoint = await log.checkpoint()
    assert (checkpoint.size, checkpoint.root) == (0, EMPTY_ROOT)
    assert open_checkpoint(checkpoint.note, log_key.public_key, log.origin) == checkpoint
    assert log.origin == f"mcps.audit/{log_key.kid}"


async def test_appends_are_chained_and_receipted(make_log: LogFactory) -> None:
    log = make_log(clock=lambda: T0)
    receipts = [await log.append(_event(i)) for i in range(5)]
    assert [r.index for r in receipts] == [0, 1, 2, 3, 4]
    rows = await log.entries(0, 10)
    prev = None
    for receipt, row in zip(receipts, rows, strict=True):
        assert receipt.log == log.origin
        assert receipt.leaf == row.leaf == leaf_hash(row.data)
        entry = json.loads(row.data)
        assert entry["index"] == receipt.index
        assert entry["prev"] == prev
        assert entry["time"] == int(T0 * 1000)
        assert entry["v"] == 1
        assert entry["tool"] == "search"
        prev = b64u_encode(row.leaf)
    assert Receipt.from_json(receipts[2].to_json()) == receipts[2]


async def test_concurrent_appends_share_checkpoints(make_log: LogFactory) -> None:
    log = make_log()
    receipts = await asyncio.gather(*(log.append(_event(i)) for i in range(300)))
    assert sorted(r.index for r in receipts) == list(range(300))
    verified = verify_log(log, log.public_key, log.origin)
    assert verified.size == 300
    assert verified.checkpoints < 300  # group commit: one checkpoint per batch, not per entry


async def test_batch_size_limit(make_log: LogFactory) -> None:
    log = make_log(max_batch=7)
    await asyncio.gather(*(log.append(_event(i)) for i in range(30)))
    sizes = [size for size, _ in log.raw_checkpoints()]
    assert all(b - a <= 7 for a, b in itertools.pairwise(sizes))
    assert sizes[-1] == 30


async def test_max_delay_is_bounded(make_log: LogFactory) -> None:
    with pytest.raises(ValueError, match="1 second"):
        make_log(max_delay=1.5)


async def test_proofs_verify_against_checkpoints(make_log: LogFactory) -> None:
    log = make_log(max_batch=50)
    for start in range(0, 700, 100):  # several batches, across the level-8 stored nodes
        await asyncio.gather(*(log.append(_event(i)) for i in range(start, start + 100)))
    checkpoint = await log.checkpoint()
    assert checkpoint.size == 700
    rows = await log.entries(0, 700)
    for index in (0, 1, 255, 256, 511, 600, 699):
        proof = await log.inclusion_proof(index, checkpoint.size)
        verify_inclusion(rows[index].leaf, index, checkpoint.size, proof, checkpoint.root)
    stored = {size: open_checkpoint(note, log.public_key, log.origin) for size, note in log.raw_checkpoints()}
    assert len(stored) > 5
    for old, old_checkpoint in stored.items():
        proof = await log.consistency_proof(old, 700)
        verify_consistency(old, 700, old_checkpoint.root, checkpoint.root, proof)


async def test_evidence_round_trip(make_log: LogFactory) -> None:
    log = make_log()
    receipts = await asyncio.gather(*(log.append(_event(i)) for i in range(20)))
    evidence = await build_evidence(log, 13)
    verified = check_evidence(json.dumps(evidence).encode(), log.public_key, receipt=receipts[13])
    assert verified.index == 13
    assert verified.leaf == receipts[13].leaf
    assert verified.entry["request_id"] == 13


async def test_reopened_log_continues_the_chain(make_log: LogFactory) -> None:
    first = make_log()
    await first.append(_event(0))
    await first.aclose()
    second = make_log()
    receipt = await second.append(_event(1))
    assert receipt.index == 1
    assert verify_log(second, second.public_key, second.origin).size == 2


async def test_other_key_is_refused(make_log: LogFactory) -> None:
    make_log()
    with pytest.raises(McpsError) as caught:
        make_log(key=PrivateKey.generate())
    assert caught.value.code is ErrorCode.UNKNOWN_KEY


async def test_writers_on_one_store_never_fork(make_log: LogFactory) -> None:
    """Three instances (three connections, committing from three threads at once) append to one log."""
    logs = [make_log(max_batch=16) for _ in range(3)]
    receipts = await asyncio.gather(*(logs[i % 3].append(_event(i)) for i in range(240)))
    assert sorted(r.index for r in receipts) == list(range(240))
    assert len({r.leaf for r in receipts}) == 240
    verified = verify_log(logs[0], logs[0].public_key, logs[0].origin)
    assert verified.size == 240


async def test_closed_log_refuses_appends(make_log: LogFactory) -> None:
    log = make_log()
    await log.aclose()
    with pytest.raises(McpsError) as caught:
        await log.append(_event(0))
    assert caught.value.code is ErrorCode.STORE_UNAVAILABLE
