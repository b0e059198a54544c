"""The CLI never shows a traceback: each defect found by trying it as a new user, pinned (issue 9 §4).

``mcps pin``'s own cases (a server that is not one, that hangs, that logs) are in
``tests/bindings/test_pin_cli_errors.py``; they need the MCP SDK.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcps.cli import keys_cmd
from mcps.cli import main as cli_main
from mcps.cli.main import build_parser, main
from mcps.cli.output import EXIT_INTERNAL

AUD = "mcp://payments.example"
REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}'


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    def run(*argv: str | Path, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def key(cli: Cli, tmp_path: Path) -> Path:
    assert cli("keygen", "--out", tmp_path / "agent.pem").code == 0
    return tmp_path / "agent.pem"


@pytest.fixture
def signed(cli: Cli, key: Path) -> bytes:
    result = cli("sign", "--key", key, "--aud", AUD, stdin=REQUEST)
    assert result.code == 0, result.err
    return result.out.encode()


def _one_line(result: Result) -> str:
    assert "Traceback" not in result.out + result.err
    assert result.err.count("\n") == 1, result.err
    return result.err


# --- the safety net -------------------------------------------------------------------------------------------


def test_unexpected_exception_is_one_line_and_exit_3(cli: Cli, key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_args: argparse.Namespace) -> int:
        raise RuntimeError("secret detail that must not be shown")

    monkeypatch.setattr(keys_cmd, "keygen", broken)
    result = cli("keygen", "--out", key.with_name("other.pem"))
    assert result.code == EXIT_INTERNAL
    line = _one_line(result)
    assert "unexpected internal error (RuntimeError)" in line
    assert "-v" in line
    assert "secret detail" not in line


def test_unexpected_exception_shows_the_traceback_only_with_verbose(
    cli: Cli, key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(keys_cmd, "keygen", broken)
    result = cli("-v", "keygen", "--out", key.with_name("other.pem"))
    assert result.code == EXIT_INTERNAL
    assert "Traceback" in result.err
    assert result.err.rstrip().endswith("Please report it.")


def test_exception_group_from_a_command_is_caught_by_the_safety_net(
    cli: Cli, key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_args: argparse.Namespace) -> int:
        raise ExceptionGroup("task group", [ConnectionError("a"), LookupError("b")])

    monkeypatch.setattr(keys_cmd, "keygen", broken)
    result = cli("keygen", "--out", key.with_name("other.pem"))
    assert result.code == EXIT_INTERNAL
    assert "ExceptionGroup" in _one_line(result)


# --- the defects of issue 9 §4 --------------------------------------------------------------------------------


def test_anchors_with_a_level_out_of_range_is_a_usage_error_not_a_traceback(cli: Cli, key: Path) -> None:
    result = cli("anchors", "--anchor", f"{key}.pub.jwk", "9")
    assert result.code == 2
    assert "--anchor" in _one_line(result)
    assert "a trust level is 0, 1, 2, 3 or 4" in result.err
    assert result.out == ""


@pytest.mark.parametrize("level", ["x", "-1", "5"])
def test_anchors_level_not_a_level(cli: Cli, key: Path, level: str) -> None:
    result = cli("anchors", "--anchor", f"{key}.pub.jwk", level)
    assert result.code == 2
    _one_line(result)


def test_verify_with_a_private_key_pem_as_key_hints_at_the_public_jwk(cli: Cli, key: Path, signed: bytes) -> None:
    result = cli("verify", "--key", key, "--aud", AUD, stdin=signed)
    assert result.code == 2
    line = _one_line(result)
    assert "is a private key" in line
    assert f"{key}.pub.jwk" in line


def test_anchor_and_agent_key_given_a_private_pem_get_the_same_hint(cli: Cli, key: Path) -> None:
    anchors = cli("anchors", "--anchor", key, "2")
    assert anchors.code == 2
    assert "--anchor" in _one_line(anchors)
    assert "is a private key" in anchors.err
    issue = cli("passport", "issue", "--issuer-key", key, "--sub", "a", "--agent-key", key, "--level", "1")
    assert issue.code == 2
    assert "--agent-key" in _one_line(issue)


def test_broken_nonce_db_is_named_without_verbose(cli: Cli, key: Path, signed: bytes, tmp_path: Path) -> None:
    broken = tmp_path / "nonces.db"
    broken.write_bytes(b"this is not a SQLite database, it is 64 bytes or more of text....")
    result = cli("verify", "--key", f"{key}.pub.jwk", "--aud", AUD, "--nonce-db", broken, stdin=signed)
    assert result.code == 1  # fails closed: the message is not accepted
    line = _one_line(result)
    assert line.startswith("MCPS-030")
    assert str(broken) in line


def test_broken_revocation_store_is_named_without_verbose(cli: Cli, key: Path, tmp_path: Path) -> None:
    broken = tmp_path / "revocations.db"
    broken.write_bytes(b"this is not a SQLite database, it is 64 bytes or more of text....")
    result = cli("revoke", "--sub", "agent-7", "--store", broken)
    assert result.code != 0
    line = _one_line(result)
    assert str(broken) in line


# --- help texts -------------------------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield (*prefix, name)
                yield from _commands(command, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def test_the_command_tree_is_walked() -> None:
    assert {("anchors",), ("revoke",), ("audit", "verify"), ("passport", "issue"), ("pin",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_a_description_and_no_rst_markup(cli: Cli, command: tuple[str, ...]) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    usage, _, rest = result.out.partition("\n\n")
    assert usage.startswith(f"usage: mcps {' '.join(command)}")
    description = rest.partition("\n\n")[0]
    assert description, f"mcps {' '.join(command)} --help has no description"
    assert not description.startswith(("options:", "positional arguments:"))
    for markup in ("``", ":class:", ":func:", ":data:", ".. "):
        assert markup not in result.out


def test_anchors_and_revoke_say_what_they_do(cli: Cli) -> None:
    assert "trust anchors" in " ".join(cli("anchors", "--help").out.split())
    assert "refused with MCPS-003" in " ".join(cli("revoke", "--help").out.split())


def test_sign_help_states_the_validity_window(cli: Cli) -> None:
    text = " ".join(cli("sign", "--help").out.split())
    assert "default 60" in text
    assert "about 90 s after signing" in text


# --- a missing optional dependency ------------------------------------------------------------------------------


def test_pin_without_the_mcp_extra_says_which_extra_to_install() -> None:
    """Without the SDK installed, ``mcps`` still starts and ``mcps pin`` names the extra (not an ImportError)."""
    code = (
        "import sys; sys.modules['mcp'] = None\n"  # what `import mcp` does when the extra is not installed
        "from mcps.cli.main import main\n"
        "keygen = main(['keygen', '--help'])\n"
        "sys.exit(main(['pin', '--server', 'x', '--help']) * 10 + keygen)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 20, done.stderr
    assert "Traceback" not in done.stderr
    assert f"pip install '{cli_main.DISTRIBUTION}[mcp]'" in done.stderr


# --- what a new user needs to be told ----------------------------------------------------------------------------


def test_audit_append_says_where_it_created_the_log_key(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    first = cli("audit", "append", "--db", db, stdin=b'{"event":"call"}')
    assert first.code == 0, first.err
    assert f"created the log's signing key {db}.key (mode 0600)" in first.err
    assert (tmp_path / "audit.db.key").stat().st_mode & 0o077 == 0
    second = cli("audit", "append", "--db", db, stdin=b'{"event":"call"}')
    assert second.code == 0
    assert second.err == ""


def test_a_failure_while_building_the_parser_is_caught_too(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> argparse.ArgumentParser:
        raise ImportError("a command module failed to import")

    monkeypatch.setattr(cli_main, "build_parser", broken)
    result = cli("version")
    assert result.code == EXIT_INTERNAL
    assert "unexpected internal error (ImportError)" in _one_line(result)
    assert "Traceback" in cli("-v", "version").err
