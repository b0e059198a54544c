"""Runner for the CLI table: ``mcps`` run in process on the case's files and stdin. The control exits 0; the
attack exits with its code, names its MCPS code on stderr, prints no traceback and no text of the input."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcps.audit import AuditEvent, SqliteAuditLog, build_evidence
from mcps.cli.main import main
from mcps.core.keys import save_private_key

from .cases_cli import CASES, CliRun, Exit
from .corpus import CANARY, Case, case_params
from .pki import AGENT, AGENT_ID, make_key

LOG_KEY = make_key("cli audit log")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def prepare(run: CliRun, where: Path) -> None:
    where.mkdir()
    save_private_key(AGENT, where / "agent.pem")
    for name, data in run.files.items():
        (where / name).write_bytes(data)
    if run.audit is None and not any(arg == "audit" for arg in run.argv):
        return
    (where / "log.jwk").write_text(json.dumps(LOG_KEY.public_key.to_jwk()))

    async def fill() -> None:
        log = SqliteAuditLog(where / "audit.db", key=LOG_KEY)
        try:
            for index in range(3):
                await log.append(AuditEvent(event="call", agent=AGENT_ID, tool="echo", request_id=index))
            evidence = await build_evidence(log, 1)
        finally:
            await log.aclose()
        edit = run.audit
        if isinstance(edit, tuple):  # ("evidence", change): the evidence file, changed
            change = edit[1]
            (where / "evidence.json").write_text(json.dumps(change(evidence) if change else evidence))
        elif edit is not None:
            with sqlite3.connect(where / "audit.db") as db:
                edit(db)

    asyncio.run(fill())


def run_cli(run: CliRun, where: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Ran:
    prepare(run, where)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(run.stdin)))
    try:
        code = main([arg.replace("{dir}", str(where)) for arg in run.argv])
    except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a traceback for the user
        out, err = capsys.readouterr()
        pytest.fail(f"mcps let {type(exc).__name__} escape (a traceback): {exc!s:.200}")
    out, err = capsys.readouterr()
    return Ran(code, out, err)


@pytest.mark.parametrize("case", case_params(CASES))
def test_cli_attack(
    case: Case[CliRun], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    control = run_cli(case.build(False), tmp_path / "control", capsys, monkeypatch)
    assert control.code == 0, control.err
    attack = run_cli(case.build(True), tmp_path / "attack", capsys, monkeypatch)
    expected: Exit = case.expect
    assert attack.code == expected.code, attack.err
    assert "Traceback" not in attack.out + attack.err
    if expected.mcps is not None:
        assert expected.mcps.mcps in attack.err
    assert CANARY not in attack.out + attack.err, f"input echoed: {(attack.out + attack.err)[:300]!r}"
