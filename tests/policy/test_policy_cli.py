"""``mcps policy check`` and ``mcps policy explain``: exit codes, JSON on stdout, errors without tracebacks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mcps.cli.main import main
from mcps.identity.levels import TrustLevel
from mcps.policy import CallContext, PolicyFile, Principal
from mcps.stores.sqlite_counters import SqliteCounterStore

POLICY = """\
mcps_policy = 1

[servers.payments]
min_level = 1

[[servers.payments.tools]]
match = "transfer_*"
min_level = 2
scopes_all = ["payments:write"]
when = "args.amount <= 1000 || caller.level >= 3"
rate = ["2/hour per agent"]
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_prints_the_rules_and_a_summary(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "policy", "check", str(policy_file))
    assert code == 0
    assert json.loads(out) == {"file": str(policy_file), "valid": True, "servers": 1, "tool_rules": 1}
    assert "transfer_*" in err
    assert "2/hour per agent" in err


def test_check_reports_every_error_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(POLICY.replace("min_level = 2", "min_level = 7").replace(">= 3", ">= 'x'"), encoding="utf-8")
    code, out, err = run(capsys, "policy", "check", str(path))
    assert code == 2
    assert out == ""
    assert f"{path}:8: [payments/transfer_*] min_level must be a trust level" in err
    assert f"{path}:10: [payments/transfer_*] CEL:" in err
    assert "Traceback" not in err


def test_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "policy", "check", str(tmp_path / "none.toml"))
    assert code == 2
    assert "no such policy file" in err


def test_explain_allow_and_deny(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("policy", "explain", str(policy_file), "--agent", "agent-7", "--scopes", "payments:write",
            "--tool", "transfer_funds")  # fmt: skip
    code, out, err = run(capsys, *base, "--level", "2", "--args", '{"amount": 1000}')
    assert code == 0
    assert json.loads(out)["decision"] == "allow"
    assert "payments/transfer_*#when" in err
    code, out, err = run(capsys, *base, "--level", "2", "--args", '{"amount": 1001}')
    assert code == 1
    decision = json.loads(out)
    assert decision == {
        "decision": "deny", "code": "MCPS-016", "reason": "a condition of the policy is not met",
        "detail": "evaluated to false", "rules": ["payments", "payments/transfer_*", "payments/transfer_*#when"],
    }  # fmt: skip
    code, out, _ = run(capsys, *base, "--level", "1", "--args", "{}")
    assert (code, json.loads(out)["code"]) == (1, "MCPS-009")
    code, out, _ = run(capsys, "policy", "explain", str(policy_file), "--unsigned", "anon", "--tool", "transfer_x")
    assert (code, json.loads(out)["code"]) == (1, "MCPS-009")


def test_explain_reads_counters_without_taking_them(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counters = tmp_path / "counters.sqlite3"

    async def use_up_the_rate() -> None:
        store = SqliteCounterStore(counters)
        policy = PolicyFile.load(policy_file, counters=store)
        caller = Principal("agent-7", "k", TrustLevel.L2, frozenset({"payments:write"}))
        for _ in range(2):
            call = CallContext(caller, "payments", "tools/call", "transfer_funds", {"amount": 1})
            assert (await policy.decide(call, now=1000.0)).allowed
        await store.aclose()

    asyncio.run(use_up_the_rate())
    argv = ("policy", "explain", str(policy_file), "--agent", "agent-7", "--level", "2", "--scopes", "payments:write",
            "--tool", "transfer_funds", "--args", '{"amount": 1}', "--now", "1000")  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert (code, json.loads(out)["code"]) == (0, None)  # an empty in-memory store by default
    for _ in range(2):
        code, out, _ = run(capsys, *argv, "--counters", str(counters))
        assert (code, json.loads(out)["code"]) == (1, "MCPS-010")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--tool", "t", "--args", "[1]"), "--args must be a JSON object"),
        (("--tool", "t", "--args", "{nope"), "--args is not JSON"),
        (("--tool", "t", "--args", '{"a": 1, "a": 2}'), "duplicate key"),
        (("--tool", "t", "--args", '{"a":' + "[" * 5000 + "]" * 5000 + "}"), "--args is not JSON"),  # no RecursionError
        (("--tool", "t", "--args", '{"a": NaN}'), "MCPS-021"),
        ((), "--tool is required"),
        (("--tool", "t", "--counters", "missing.sqlite3"), "no such counter database"),
    ],
)
def test_explain_bad_input_is_one_line(
    policy_file: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, "policy", "explain", str(policy_file), *extra)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_explain_needs_a_server_when_there_are_several(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.toml"
    path.write_text("mcps_policy = 1\n[servers.a]\n[servers.b]\n", encoding="utf-8")
    code, _, err = run(capsys, "policy", "explain", str(path), "--tool", "t")
    assert code == 2
    assert "--server is required: the policy has these servers: a, b" in err
    code, out, _ = run(capsys, "policy", "explain", str(path), "--tool", "t", "--server", "b")
    assert (code, json.loads(out)["rules"]) == (1, ["b", "b#default"])
