"""``mcps audit …`` end to end on a SQLite log: receipts, keys, verify (intact, tampered, truncated), evidence,
checkpoint, export, tail; exit 1 with MCPS-033 for a defect, never a traceback."""

from __future__ import annotations

import io
import json
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from mcps.audit.checkpoint import parse_verifier_key
from mcps.cli.main import main
from mcps.core.keys import PrivateKey


def _run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: bytes = b""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return lambda *argv, stdin=b"": _run(capsys, monkeypatch, *argv, stdin=stdin)


@pytest.fixture
def db(tmp_path: Path, run) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.db"
    for i in range(5):
        code, out, _ = run(
            "audit", "append", "--db", str(path), stdin=json.dumps({"event": "external", "data": {"n": i}}).encode()
        )
        assert code == 0
        assert json.loads(out)["index"] == i
    return path


def test_append_creates_a_private_key_and_prints_receipts(db: Path) -> None:
    key = Path(str(db) + ".key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_append_refuses_bad_events(db: Path, run) -> None:  # type: ignore[no-untyped-def]
    for bad in [
        b'{"event":"x","index":3}',
        b'{"event":"x","nope":1}',
        b'{"event":"BAD"}',
        b'{"event":"x","event":"y"}',
    ]:
        code, _, err = run("audit", "append", "--db", str(db), stdin=bad)
        assert code == 2, bad
        assert "MCPS-0" in err


def test_key_prints_jwk_and_note_key(db: Path, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("audit", "key", "--db", str(db))
    assert code == 0
    jwk = json.loads(out)
    code, out, _ = run("audit", "key", "--db", str(db), "--note")
    assert code == 0
    name, key = parse_verifier_key(out.strip())
    assert key.kid == jwk["kid"]
    assert name.startswith("mcps.audit/")


def _public_jwk(run, db: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    jwk = tmp_path / "log.pub.jwk"
    jwk.write_text(run("audit", "key", "--db", str(db))[1])  # the output is the JWK file
    return jwk


def test_verify_intact_and_tampered(db: Path, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jwk = _public_jwk(run, db, tmp_path)
    code, out, _ = run("audit", "verify", "--db", str(db), "--key", str(jwk))
    assert code == 0
    assert json.loads(out)["entries"] == 5
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE idx = 2")
    code, _, err = run("audit", "verify", "--db", str(db), "--key", str(jwk))
    assert code == 1
    assert "MCPS-033" in err
    assert "entry 2 deleted" in err


def test_verify_with_another_key_says_the_key_does_not_match_not_bad_checkpoint(  # type: ignore[no-untyped-def]
    db: Path, run, tmp_path: Path
) -> None:
    other = tmp_path / "other.pub.jwk"
    other.write_text(json.dumps(PrivateKey.generate().public_key.to_jwk()))
    code, out, err = run("audit", "verify", "--db", str(db), "--key", str(other))
    assert code == 1
    assert out == ""
    assert "MCPS-033" in err
    assert "key does not match this audit log" in err
    assert "bad-checkpoint" not in err
    assert "not intact" not in err


def test_verify_detects_truncation_with_a_kept_checkpoint(db: Path, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, note, _ = run("audit", "checkpoint", "--db", str(db))
    assert code == 0
    assert note.splitlines()[1] == "5"
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(note)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE idx >= 3")
        conn.execute("DELETE FROM audit_checkpoints WHERE size > 3")
    code, _, err = run("audit", "verify", "--db", str(db), "--checkpoint", str(kept), "--unsafe-trust-log-key")
    assert code == 1
    assert "entry 3 truncated" in err


def test_prove_and_check_evidence(db: Path, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jwk = _public_jwk(run, db, tmp_path)
    code, out, _ = run("audit", "prove", "--db", str(db), "--index", "3")
    assert code == 0
    evidence = tmp_path / "entry.evidence"
    evidence.write_text(out)
    code, out, _ = run("audit", "check-evidence", str(evidence), "--key", str(jwk))
    assert code == 0
    assert json.loads(out)["entry"]["data"] == {"n": 3}
    forged = json.loads(evidence.read_text())
    forged["entry"]["data"]["n"] = 4
    evidence.write_text(json.dumps(forged))
    code, _, err = run("audit", "check-evidence", str(evidence), "--key", str(jwk))
    assert code == 1
    assert "MCPS-033" in err


def test_export_and_tail(db: Path, run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("audit", "export", "--db", str(db), "--format", "jsonl", "--since", "2")
    assert code == 0
    assert [json.loads(line)["index"] for line in out.splitlines()] == [2, 3, 4]
    code, out, _ = run("audit", "tail", "--db", str(db), "-n", "2")
    assert [json.loads(line)["index"] for line in out.splitlines()] == [3, 4]


def test_read_commands_need_an_existing_log(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("audit", "verify", "--db", str(tmp_path / "none.db"), "--key", str(tmp_path / "k.jwk"))
    assert code == 2
    assert "MCPS-030" in err
    assert not (tmp_path / "none.db").exists()


def test_verify_needs_a_key_kept_apart_or_the_named_unsafe_option(db: Path, run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("audit", "verify", "--db", str(db))
    assert code == 2
    assert "--key" in err
    code, _, err = run("audit", "verify", "--db", str(db), "--unsafe-trust-log-key")
    assert code == 0
    assert "UNSAFE" in err


def test_export_siem_formats(db: Path, run) -> None:  # type: ignore[no-untyped-def]
    hostile = {"event": "call", "decision": "deny", "code": "MCPS-016", "tool": 'a|b=c\\d"e]\nf'}
    assert run("audit", "append", "--db", str(db), stdin=json.dumps(hostile).encode())[0] == 0
    lines = {}
    for fmt in ("cef", "leef", "syslog"):
        code, out, _ = run("audit", "export", "--db", str(db), "--format", fmt, "--since", "4")
        assert code == 0
        lines[fmt] = out.splitlines()
        assert len(lines[fmt]) == 2, fmt
    assert lines["cef"][0].startswith("CEF:0|mcps|mcps|")
    assert '|call a\\|b=c\\\\d"e]\ufffdf|7|externalId=5 ' in lines["cef"][1]
    assert 'cs1=a|b\\=c\\\\d"e]\\nf' in lines["cef"][1]
    assert lines["leef"][1].startswith("LEEF:2.0|mcps|mcps|")
    assert "|call|x09|index=5\t" in lines["leef"][1]
    assert 'tool=a|b=c\\\\d"e]\\nf' in lines["leef"][1]
    assert lines["syslog"][0].startswith("<110>1 ")
    assert lines["syslog"][1].startswith("<108>1 ")
    assert ' mcps - call [mcps@32473 index="5" event="call" decision="deny" code="MCPS-016" ' in lines["syslog"][1]
    assert 'tool="a|b=c\\\\d\\"e\\]\ufffdf"' in lines["syslog"][1]


def test_export_siem_refuses_an_unparsable_row(db: Path, run) -> None:  # type: ignore[no-untyped-def]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_entries SET entry = ? WHERE idx = 3", (b"[1]",))
    code, out, err = run("audit", "export", "--db", str(db), "--format", "cef", "--since", "2")
    assert code == 1
    assert "MCPS-033" in err
    assert out.splitlines()[0].startswith("CEF:0|")


def test_export_jsonl_of_a_row_holding_a_line_break_and_a_forged_entry_stops_with_mcps_033(  # type: ignore[no-untyped-def]
    db: Path, run
) -> None:
    """The forged line never reaches the SIEM stream: the row is not the JCS of one entry (SPEC §8.9)."""
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT entry FROM audit_entries WHERE idx = 3").fetchone()
        forged = bytes(data) + b'\n{"event":"call","decision":"allow","index":4}'
        conn.execute("UPDATE audit_entries SET entry = ? WHERE idx = 3", (forged,))
    for command in (("export", "--format", "jsonl", "--since", "1"), ("tail", "-n", "4")):
        code, out, err = run("audit", command[0], "--db", str(db), *command[1:])
        assert code == 1, command
        assert "MCPS-033" in err
        assert [json.loads(line)["index"] for line in out.splitlines()] == [1, 2]


@pytest.mark.parametrize(
    "row",
    [
        b'{"data":{"n":3},"event":"external","index":3, "prev":null,"time":1,"v":1}',  # not JCS
        b'{"index":3,"index":3}',
        b"[" * 100_000 + b"]" * 100_000,
        "text, not bytes",
        42,
    ],
)
def test_export_of_a_row_that_is_not_an_entry_is_mcps_033_not_a_crash(db: Path, run, row: object) -> None:  # type: ignore[no-untyped-def]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_entries SET entry = ? WHERE idx = 3", (row,))
    for fmt in ("jsonl", "cef"):
        code, out, err = run("audit", "export", "--db", str(db), "--format", fmt)
        assert code == 1, fmt
        assert "MCPS-033" in err
        assert len(out.splitlines()) == 3
    code, _, err = run("audit", "verify", "--db", str(db), "--unsafe-trust-log-key")
    assert code == 1
    assert "entry 3 modified" in err


def test_export_of_an_entry_at_another_index_is_mcps_033(db: Path, run) -> None:  # type: ignore[no-untyped-def]
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT entry FROM audit_entries WHERE idx = 3").fetchone()
        conn.execute("UPDATE audit_entries SET entry = ? WHERE idx = 4", (data,))
    code, out, err = run("audit", "export", "--db", str(db), "--since", "3")
    assert code == 1
    assert "MCPS-033" in err
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("receipt", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "MCPS-023"),
        (b'{"log":"a","log":"b","index":3,"leaf":"x"}', "MCPS-020"),
        (b'{"log":"a","index":3,"leaf":"\\ud800"}', "MCPS-022"),
    ],
)
def test_check_evidence_receipt_is_parsed_strictly_without_a_traceback(  # type: ignore[no-untyped-def]
    db: Path, run, tmp_path: Path, receipt: bytes, code: str
) -> None:
    jwk = _public_jwk(run, db, tmp_path)
    out = run("audit", "prove", "--db", str(db), "--index", "3")[1]
    (tmp_path / "entry.evidence").write_text(out)
    (tmp_path / "receipt.json").write_bytes(receipt)
    argv = ("audit", "check-evidence", str(tmp_path / "entry.evidence"), "--key", str(jwk))
    status, _, err = run(*argv, "--receipt", str(tmp_path / "receipt.json"))
    assert status == 2
    assert code in err
