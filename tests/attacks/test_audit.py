"""Runner for the audit tables: every log attack edits a copy of one shared log and :func:`verify_log` names its
defect (MCPS-033); every evidence attack alters the evidence file of one entry and :func:`check_evidence` refuses it.
The untouched copy and the untouched evidence file are the controls."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcps.audit import AuditEvent, AuditLogDefect, SqliteAuditLog, build_evidence, check_evidence, verify_log
from mcps.audit.log import Receipt
from mcps.core.errors import McpsError

from .cases_audit import (
    BATCH,
    ENTRIES,
    EVIDENCE_CASES,
    EVIDENCE_INDEX,
    LOG_CASES,
    LOG_KEY,
    EvidenceScenario,
    LogScenario,
)
from .corpus import CANARY, Case, assert_no_canary, case_params
from .pki import AGENT_ID, NOW


@dataclass(frozen=True)
class BaseLog:
    path: Path
    origin: str
    latest_note: str
    evidence: dict[str, Any]
    receipts: dict[int, Receipt]


@pytest.fixture(scope="module")
def base_log(tmp_path_factory: pytest.TempPathFactory) -> BaseLog:
    """40 entries in batches of 10, each naming the canary; the evidence of entry 5; receipts of entries 5 and 6."""
    path = tmp_path_factory.mktemp("audit") / "audit.db"

    async def fill() -> BaseLog:
        log = SqliteAuditLog(path, key=LOG_KEY, max_batch=BATCH, clock=lambda: NOW)
        try:
            receipts = await asyncio.gather(
                *(
                    log.append(
                        AuditEvent(
                            event="call", agent=AGENT_ID, tool="echo-" + CANARY, decision="allow", request_id=index
                        )
                    )
                    for index in range(ENTRIES)
                )
            )
            evidence = await build_evidence(log, EVIDENCE_INDEX)
            return BaseLog(path, log.origin, (await log.checkpoint()).note, evidence, dict(enumerate(receipts)))
        finally:
            await log.aclose()

    return asyncio.run(fill())


def verify_copy(base: BaseLog, scenario: LogScenario, where: Path) -> int:
    copy = where / "audit.db"
    shutil.copy(base.path, copy)
    if scenario.edit is not None:
        with sqlite3.connect(copy) as db:
            scenario.edit(db, base.origin)
    log = SqliteAuditLog(copy, read_only=True)
    try:
        external = base.latest_note if scenario.external else None
        return verify_log(log, LOG_KEY.public_key, base.origin, external=external).size
    finally:
        asyncio.run(log.aclose())


@pytest.mark.parametrize("case", case_params(LOG_CASES))
def test_audit_log_attack(case: Case[LogScenario], base_log: BaseLog, tmp_path: Path) -> None:
    (tmp_path / "control").mkdir()
    (tmp_path / "attack").mkdir()
    assert verify_copy(base_log, case.build(False), tmp_path / "control") == ENTRIES
    with pytest.raises(AuditLogDefect) as refused:
        verify_copy(base_log, case.build(True), tmp_path / "attack")
    kind, indices = case.expect
    defect = refused.value.defect
    assert refused.value.code is case.code
    assert defect.kind is kind, f"{defect.kind.value} at {defect.index}: {defect.detail}"
    assert defect.index in indices, f"{defect.kind.value} at {defect.index}: {defect.detail}"
    assert_no_canary(refused.value)


def evidence_of(base: BaseLog, scenario: EvidenceScenario) -> bytes:
    value = json.loads(json.dumps(base.evidence))
    edited = scenario.edit(value) if scenario.edit is not None else value
    return edited if isinstance(edited, bytes) else json.dumps(edited).encode()


@pytest.mark.parametrize("case", case_params(EVIDENCE_CASES))
def test_audit_evidence_attack(case: Case[EvidenceScenario], base_log: BaseLog) -> None:
    control, attack = case.build(False), case.build(True)
    receipt = base_log.receipts.get(control.receipt) if control.receipt is not None else None
    assert check_evidence(evidence_of(base_log, control), LOG_KEY.public_key, receipt=receipt).index == EVIDENCE_INDEX
    receipt = base_log.receipts.get(attack.receipt) if attack.receipt is not None else None
    with pytest.raises(McpsError) as refused:
        check_evidence(evidence_of(base_log, attack), LOG_KEY.public_key, receipt=receipt)
    assert refused.value.code is case.code, refused.value.diagnostics()
    assert_no_canary(refused.value)
