"""The ``mcps`` command line: every command, every error path, exit codes, and never a traceback."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import mcps
from mcps.cli import message_cmd, output
from mcps.cli.main import COMMAND_MODULES, main
from mcps.core.envelope import sign_message
from mcps.core.keys import load_private_key

REQUEST = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"transfer_funds","arguments":{"amount":100}}}'
)
AUD = "mcp://payments.example"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        lines = self.out.splitlines()
        assert len(lines) == 1, self.out
        return json.loads(lines[0])


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``main(argv)`` in-process with ``stdin`` as the given bytes."""

    def run(*argv: str | Path, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return Result(code, out, err)

    return run


@dataclass(frozen=True)
class Agent:
    key: Path
    public: Path
    kid: str


def _keygen(cli: Cli, out: Path, alg: str = "EdDSA") -> Agent:
    result = cli("keygen", "--alg", alg, "--out", out)
    assert result.code == 0, result.err
    return Agent(out, Path(f"{out}.pub.jwk"), result.out.strip())


@pytest.fixture
def agent(cli: Cli, tmp_path: Path) -> Agent:
    return _keygen(cli, tmp_path / "agent.pem")


@pytest.fixture
def signed(cli: Cli, agent: Agent) -> bytes:
    result = cli("sign", "--key", agent.key, "--aud", AUD, stdin=REQUEST)
    assert result.code == 0, result.err
    return result.out.encode()


# --- parser, version, usage -----------------------------------------------------------------------------------


def test_every_command_module_registers_its_commands(cli: Cli) -> None:
    assert set(COMMAND_MODULES) >= {"mcps.cli.keys_cmd", "mcps.cli.message_cmd"}
    for command in ("keygen", "sign", "verify", "version"):
        result = cli(command, "--help")
        assert result.code == 0
        assert f"usage: mcps {command}" in result.out


def test_version(cli: Cli) -> None:
    assert cli("version") == Result(0, f"mcps {mcps.__version__}\n", "")
    assert cli("--version").out == f"mcps {mcps.__version__}\n"


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["keygen"], ["sign", "--aud", AUD], ["keygen", "--alg", "RS256"]])
def test_usage_errors_exit_2(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert "usage: mcps" in result.err


def test_verify_help_says_replay_across_invocations_needs_nonce_db(cli: Cli) -> None:
    result = cli("verify", "--help")
    assert result.code == 0
    assert "--nonce-db" in result.out
    assert "replay across invocations" in " ".join(result.out.split())


# --- keygen ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "kty"), [("EdDSA", "OKP"), ("ES256", "EC")])
def test_keygen_writes_private_pem_0600_and_public_jwk(cli: Cli, tmp_path: Path, alg: str, kty: str) -> None:
    agent = _keygen(cli, tmp_path / "k.pem", alg)
    assert stat.S_IMODE(agent.key.stat().st_mode) == 0o600
    assert load_private_key(agent.key).kid == agent.kid
    jwk = json.loads(agent.public.read_text())
    assert jwk["kid"] == agent.kid
    assert (jwk["alg"], jwk["use"], jwk["kty"]) == (alg, "sig", kty)
    assert "d" not in jwk


def test_keygen_prints_only_the_kid_on_stdout(cli: Cli, tmp_path: Path) -> None:
    result = cli("keygen", "--out", tmp_path / "k.pem")
    assert result.out.count("\n") == 1
    assert result.out.strip() in result.err  # the human summary names it too


def test_keygen_refuses_to_overwrite(cli: Cli, agent: Agent) -> None:
    before = agent.key.read_bytes()
    result = cli("keygen", "--out", agent.key)
    assert result.code == 2
    assert "already exists" in result.err
    assert agent.key.read_bytes() == before


def test_keygen_refuses_when_only_the_public_file_exists(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "k.pem.pub.jwk").write_text("{}")
    assert cli("keygen", "--out", tmp_path / "k.pem").code == 2
    assert not (tmp_path / "k.pem").exists()


def test_keygen_into_missing_directory(cli: Cli, tmp_path: Path) -> None:
    result = cli("keygen", "--out", tmp_path / "nowhere" / "k.pem")
    assert result.code == 2
    assert "No such file or directory" in result.err


# --- sign -----------------------------------------------------------------------------------------------------


def test_sign_prints_signed_message_on_one_line(cli: Cli, agent: Agent) -> None:
    result = cli("sign", "--key", agent.key, "--aud", AUD, "--lifetime", "120", stdin=REQUEST)
    assert result.code == 0
    message = result.json()
    block = message["params"]["_meta"]["mcps/sig"]
    assert (block["kid"], block["aud"], block["exp"] - block["iat"]) == (agent.kid, AUD, 120)
    assert message["params"]["arguments"] == {"amount": 100}


@pytest.mark.parametrize(
    ("stdin", "code"),
    [
        (b"not json", "MCPS-019"),
        (b"\xff\xfe{}", "MCPS-019"),
        (b'{"jsonrpc":"2.0","method":"a","method":"b"}', "MCPS-020"),
        (b'[{"jsonrpc":"2.0","method":"a"}]', "MCPS-024"),
        (b'{"hello":"world"}', "MCPS-025"),
        (b" " * (4 * 1024 * 1024 + 1), "MCPS-018"),
    ],
    ids=["not-json", "not-utf8", "duplicate-key", "batch", "not-jsonrpc", "too-large"],
)
def test_sign_bad_input_exits_2_with_code(cli: Cli, agent: Agent, stdin: bytes, code: str) -> None:
    result = cli("sign", "--key", agent.key, "--aud", AUD, stdin=stdin)
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith(code)
    assert result.err.count("\n") == 1


def test_sign_refuses_a_public_jwk_as_key(cli: Cli, agent: Agent) -> None:
    result = cli("sign", "--key", agent.public, "--aud", AUD, stdin=REQUEST)
    assert result.code == 2
    assert "looks like a JWK" in result.err


def test_sign_refuses_a_group_readable_key(cli: Cli, agent: Agent) -> None:
    agent.key.chmod(0o640)
    result = cli("sign", "--key", agent.key, "--aud", AUD, stdin=REQUEST)
    assert result.code == 2
    assert "MCPS-029: private key file is readable by others" in result.err
    assert "chmod 600" in result.err


def test_sign_refuses_a_wrong_key_type(cli: Cli, tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "p384.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    result = cli("sign", "--key", path, "--aud", AUD, stdin=REQUEST)
    assert result.code == 2
    assert result.err.startswith("MCPS-029")


@pytest.mark.parametrize(("name", "message"), [("missing.pem", "No such file"), (".", "Is a directory")])
def test_sign_unreadable_key_path(cli: Cli, tmp_path: Path, name: str, message: str) -> None:
    result = cli("sign", "--key", tmp_path / name, "--aud", AUD, stdin=REQUEST)
    assert result.code == 2
    assert message in result.err


def test_sign_permission_error(cli: Cli, agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: Path) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(output, "load_private_key", denied)
    result = cli("sign", "--key", agent.key, "--aud", AUD, stdin=REQUEST)
    assert result.code == 2
    assert result.err == f"error: Permission denied: {agent.key}\n"


@pytest.mark.parametrize(
    ("argv", "text"),
    [(["--lifetime", "0"], "lifetime"), (["--lifetime", "301"], "lifetime"), (["--in-reply-to", "x"], "in_reply_to")],
)
def test_sign_bad_options_exit_2(cli: Cli, agent: Agent, argv: list[str], text: str) -> None:
    result = cli("sign", "--key", agent.key, "--aud", AUD, *argv, stdin=REQUEST)
    assert result.code == 2
    assert text in result.err


def test_keyboard_interrupt_exits_130(cli: Cli, agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(message_cmd, "read_stdin", interrupted)
    result = cli("sign", "--key", agent.key, "--aud", AUD)
    assert result.code == 130


# --- verify ---------------------------------------------------------------------------------------------------


def test_verify_accepts_and_prints_summary(cli: Cli, agent: Agent, signed: bytes) -> None:
    result = cli("verify", "--key", agent.public, "--aud", AUD, stdin=signed)
    assert result.code == 0, result.err
    summary = result.json()
    block = json.loads(signed)["params"]["_meta"]["mcps/sig"]
    assert summary == {
        "kind": "request",
        "method": "tools/call",
        "id": 1,
        "kid": agent.kid,
        "alg": "EdDSA",
        "aud": AUD,
        "iat": block["iat"],
        "exp": block["exp"],
    }


def test_verify_es256(cli: Cli, tmp_path: Path) -> None:
    agent = _keygen(cli, tmp_path / "es.pem", "ES256")
    signed = cli("sign", "--key", agent.key, "--aud", AUD, stdin=REQUEST).out.encode()
    result = cli("verify", "--key", agent.public, "--aud", AUD, stdin=signed)
    assert result.code == 0
    assert result.json()["alg"] == "ES256"


def _tampered(signed: bytes) -> bytes:
    return signed.replace(b'"amount":100', b'"amount":100000')


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (_tampered, "MCPS-004"),
        (lambda _signed: b"not json", "MCPS-019"),
        (lambda signed: signed.replace(b'"tools/call"', b'"tools/call","id":2'), "MCPS-020"),
        (lambda _signed: REQUEST, "MCPS-026"),
    ],
    ids=["tampered", "not-json", "duplicate-key", "unsigned"],
)
def test_verify_refusals_exit_1_with_code(
    cli: Cli, agent: Agent, signed: bytes, mutate: Callable[[bytes], bytes], code: str
) -> None:
    result = cli("verify", "--key", agent.public, "--aud", AUD, stdin=mutate(signed))
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith(f"{code}: ")
    assert result.err.count("\n") == 1


def test_verify_refuses_a_message_for_another_audience(cli: Cli, agent: Agent, signed: bytes) -> None:
    result = cli("verify", "--key", agent.public, "--aud", "mcp://other.example", stdin=signed)
    assert (result.code, result.out) == (1, "")
    assert result.err == "MCPS-011: message is addressed to another audience\n"


def test_verify_refuses_expired_and_verbose_adds_diagnostics(cli: Cli, agent: Agent) -> None:
    old = sign_message(json.loads(REQUEST), load_private_key(agent.key), audience=AUD, now=time.time() - 600)
    raw = json.dumps(old).encode()
    quiet = cli("verify", "--key", agent.public, "--aud", AUD, stdin=raw)
    assert (quiet.code, quiet.err) == (1, "MCPS-006: message is outside its validity window\n")
    for argv in (["-v", "verify"], ["verify", "--verbose"]):
        loud = cli(*argv, "--key", agent.public, "--aud", AUD, stdin=raw)
        assert (loud.code, loud.err) == (1, "MCPS-006: message is outside its validity window (expired)\n")


def test_verify_skew_option(cli: Cli, agent: Agent) -> None:
    old = sign_message(json.loads(REQUEST), load_private_key(agent.key), audience=AUD, now=time.time() - 200)
    raw = json.dumps(old).encode()  # expired 140 s ago
    assert cli("verify", "--key", agent.public, "--aud", AUD, stdin=raw).code == 1
    assert cli("verify", "--key", agent.public, "--aud", AUD, "--skew", "300", stdin=raw).code == 0
    assert cli("verify", "--key", agent.public, "--aud", AUD, "--skew", "301", stdin=raw).code == 2


def test_verify_refuses_another_signers_key(cli: Cli, tmp_path: Path, agent: Agent, signed: bytes) -> None:
    stranger = _keygen(cli, tmp_path / "stranger.pem")
    result = cli("verify", "--key", stranger.public, "--aud", AUD, stdin=signed)
    assert result.code == 1
    assert result.err.startswith("MCPS-029")


@pytest.mark.parametrize("which", ["private-pem", "missing", "not-a-jwk"])
def test_verify_bad_key_file_is_an_input_error(cli: Cli, agent: Agent, signed: bytes, which: str) -> None:
    path = {"private-pem": agent.key, "missing": agent.key.with_name("missing.jwk"), "not-a-jwk": agent.public}[which]
    if which == "not-a-jwk":
        path.write_text('{"kty":"RSA"}')
    result = cli("verify", "--key", path, "--aud", AUD, stdin=signed)
    assert result.code == 2
    assert result.out == ""


def test_verify_binds_a_result_to_its_request(cli: Cli, agent: Agent, signed: bytes) -> None:
    request_sig = json.loads(signed)["params"]["_meta"]["mcps/sig"]["sig"]
    response = b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'
    signed_result = cli("sign", "--key", agent.key, "--aud", "agent", "--in-reply-to", request_sig, stdin=response)
    assert signed_result.code == 0
    raw = signed_result.out.encode()
    bound = cli("verify", "--key", agent.public, "--aud", "agent", "--in-reply-to", request_sig, stdin=raw)
    assert bound.code == 0
    assert bound.json()["kind"] == "result"
    assert bound.json()["method"] is None
    unbound = cli("verify", "--key", agent.public, "--aud", "agent", stdin=raw)
    assert (unbound.code, unbound.err[:8]) == (1, "MCPS-012")


def test_verify_without_nonce_db_cannot_see_replays_across_invocations(cli: Cli, agent: Agent, signed: bytes) -> None:
    for _ in range(2):
        assert cli("verify", "--key", agent.public, "--aud", AUD, stdin=signed).code == 0


def test_verify_with_nonce_db_refuses_replay(cli: Cli, tmp_path: Path, agent: Agent, signed: bytes) -> None:
    db = tmp_path / "nonces.db"
    first = cli("verify", "--key", agent.public, "--aud", AUD, "--nonce-db", db, stdin=signed)
    assert first.code == 0
    replay = cli("verify", "--key", agent.public, "--aud", AUD, "--nonce-db", db, stdin=signed)
    assert (replay.code, replay.out) == (1, "")
    assert replay.err == "MCPS-005: message was already seen (replay)\n"


def test_verify_with_unusable_nonce_db_fails_closed(cli: Cli, tmp_path: Path, agent: Agent, signed: bytes) -> None:
    result = cli("verify", "--key", agent.public, "--aud", AUD, "--nonce-db", tmp_path, stdin=signed)
    assert result.code == 1
    assert result.err.startswith("MCPS-030")


# --- as a process ---------------------------------------------------------------------------------------------


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def test_python_dash_m(clean_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcps", "version"], capture_output=True, text=True, check=False, env=clean_env
    )
    assert (done.returncode, done.stdout) == (0, f"mcps {mcps.__version__}\n")


def test_console_script_keygen_sign_verify_replay(tmp_path: Path, clean_env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("mcps")
    assert script.exists(), "install the package (pip install -e .) to get the mcps console script"

    def mcps_run(*argv: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [script, *map(str, argv)], input=stdin, capture_output=True, text=True, check=False, env=clean_env
        )
        assert "Traceback" not in done.stdout + done.stderr
        return done

    key, db = tmp_path / "agent.pem", tmp_path / "nonces.db"
    keygen = mcps_run("keygen", "--alg", "ES256", "--out", key)
    assert keygen.returncode == 0
    signed = mcps_run("sign", "--key", key, "--aud", AUD, stdin=REQUEST.decode())
    assert signed.returncode == 0
    verify = ("verify", "--key", f"{key}.pub.jwk", "--aud", AUD, "--nonce-db", db)
    first = mcps_run(*verify, stdin=signed.stdout)
    assert first.returncode == 0
    assert json.loads(first.stdout)["kid"] == keygen.stdout.strip()
    replay = mcps_run(*verify, stdin=signed.stdout)
    assert replay.returncode == 1
    assert replay.stderr.startswith("MCPS-005")
