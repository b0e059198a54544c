"""The identity commands end to end: keygen → anchors → passport issue → sign --passport → verify --trust → revoke."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcps.cli.identity_cmd import parse_duration
from mcps.cli.main import COMMAND_MODULES, main
from mcps.core.encoding import b64u_encode

REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a"}}}'
AUD = "mcp://files.example"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    monkeypatch.setenv("MCPS_STATE_DIR", str(tmp_path / "state"))

    def run(*argv: str | Path, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return Result(code, out, err)

    return run


@dataclass(frozen=True)
class Setup:
    dir: Path
    anchors: Path
    passport: Path

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.pem"

    def pub(self, name: str) -> Path:
        return self.dir / f"{name}.pem.pub.jwk"


@pytest.fixture
def setup(cli: Cli, tmp_path: Path) -> Setup:
    for name in ("issuer", "agent"):
        assert cli("keygen", "--out", tmp_path / f"{name}.pem").code == 0
    s = Setup(tmp_path, tmp_path / "anchors.jwks", tmp_path / "agent.passport")
    result = cli("anchors", "--anchor", s.pub("issuer"), "3")
    assert result.code == 0, result.err
    s.anchors.write_text(result.out)
    result = cli(
        "passport",
        "issue",
        "--issuer-key",
        s.key("issuer"),
        "--sub",
        "agent-1",
        "--agent-key",
        s.pub("agent"),
        "--level",
        "2",
        "--scope",
        "tools:call files:read",
        "--aud",
        AUD,
        "--ttl",
        "1h",
    )
    assert result.code == 0, result.err
    s.passport.write_text(result.out)
    return s


def test_identity_commands_are_registered(cli: Cli) -> None:
    assert "mcps.cli.identity_cmd" in COMMAND_MODULES
    for argv in (
        ["passport", "issue"],
        ["passport", "inspect"],
        ["passport", "verify"],
        ["anchors"],
        ["revoke"],
        ["revocation-list", "issue"],
        ["revocation-list", "apply"],
    ):
        assert cli(*argv, "--help").code == 0


def test_anchors_jwks_carries_max_levels(setup: Setup) -> None:
    jwks = json.loads(setup.anchors.read_text())
    assert [key["mcps_max_tl"] for key in jwks["keys"]] == [3]


@pytest.mark.parametrize(
    ("claims", "code"),
    [(b"[" * 5000 + b"]" * 5000, "MCPS-023"), (b'{"sub":"a","sub":"b"}', "MCPS-020"), (b"{nope", "MCPS-019")],
)
def test_inspect_of_a_token_whose_claims_are_no_strict_json_is_exit_2_with_its_code(
    cli: Cli, tmp_path: Path, claims: bytes, code: str
) -> None:
    token = ".".join(b64u_encode(part) for part in (b'{"alg":"EdDSA"}', claims, b"s" * 64))
    (tmp_path / "deep.passport").write_text(token + "\n")
    result = cli("passport", "inspect", tmp_path / "deep.passport")
    assert result.code == 2
    assert code in result.err


def test_inspect_is_labelled_unverified(cli: Cli, setup: Setup) -> None:
    result = cli("passport", "inspect", setup.passport)
    assert result.code == 0
    data = json.loads(result.out)
    assert data["verified"] is False
    assert data["passports"][0]["claims"]["sub"] == "agent-1"
    assert data["passports"][0]["header"]["typ"] == "mcps-passport+jwt"
    assert "NOT VERIFIED" in result.err


def test_verify_prints_agent_level_scopes_expiry(cli: Cli, setup: Setup) -> None:
    result = cli("passport", "verify", "--trust", setup.anchors, "--aud", AUD, setup.passport)
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert (summary["agent"], summary["level"], summary["scopes"], summary["depth"]) == (
        "agent-1",
        2,
        ["files:read", "tools:call"],
        1,
    )
    assert summary["expires"] > 0


def test_verify_refusals_print_the_code(cli: Cli, setup: Setup, tmp_path: Path) -> None:
    result = cli("passport", "verify", "--trust", setup.anchors, setup.passport)  # no --aud for a bound passport
    assert (result.code, result.err.split(":")[0]) == (1, "MCPS-011")
    result = cli("passport", "verify", "--trust", setup.anchors, "--aud", AUD, "--min-level", "3", setup.passport)
    assert (result.code, result.err.split(":")[0]) == (1, "MCPS-009")
    other = tmp_path / "other.jwks"
    assert cli("keygen", "--out", tmp_path / "other.pem").code == 0
    other.write_text(cli("anchors", "--anchor", tmp_path / "other.pem.pub.jwk", "4").out)
    result = cli("passport", "verify", "--trust", other, "--aud", AUD, setup.passport)
    assert (result.code, result.err.split(":")[0]) == (1, "MCPS-029")


def test_sign_with_passport_then_verify_with_trust_then_revoke(cli: Cli, setup: Setup, tmp_path: Path) -> None:
    signed = cli("sign", "--key", setup.key("agent"), "--aud", AUD, "--passport", setup.passport, stdin=REQUEST)
    assert signed.code == 0, signed.err
    message = json.loads(signed.out)
    assert message["params"]["_meta"]["mcps/passport"] == setup.passport.read_text().strip()
    store = tmp_path / "revocations.sqlite3"
    accepted = cli("verify", "--trust", setup.anchors, "--aud", AUD, "--store", store, stdin=signed.out.encode())
    assert accepted.code == 0, accepted.err
    assert json.loads(accepted.out)["agent"]["level"] == 2
    assert cli("revoke", "--sub", "agent-1", "--store", f"sqlite://{store}").code == 0
    again = cli("sign", "--key", setup.key("agent"), "--aud", AUD, "--passport", setup.passport, stdin=REQUEST)
    refused = cli("verify", "--trust", setup.anchors, "--aud", AUD, "--store", store, stdin=again.out.encode())
    assert (refused.code, refused.err.split(":")[0]) == (1, "MCPS-003")


def test_verify_with_trust_min_level_and_default_store(cli: Cli, setup: Setup) -> None:
    signed = cli("sign", "--key", setup.key("agent"), "--aud", AUD, "--passport", setup.passport, stdin=REQUEST)
    refused = cli("verify", "--trust", setup.anchors, "--aud", AUD, "--min-level", "3", stdin=signed.out.encode())
    assert (refused.code, refused.err.split(":")[0]) == (1, "MCPS-009")
    assert cli("revoke", "--jti", "nothing-real").code == 0  # the default store under MCPS_STATE_DIR
    assert (setup.dir / "state" / "revocations.sqlite3").exists()
    assert cli("verify", "--aud", AUD, stdin=signed.out.encode()).code == 2  # neither --key nor --trust


def test_delegation_with_chain(cli: Cli, setup: Setup, tmp_path: Path) -> None:
    assert cli("keygen", "--out", tmp_path / "sub-issuer.pem").code == 0
    issuer_passport = tmp_path / "sub-issuer.passport"
    issuer_passport.write_text(
        cli(
            "passport",
            "issue",
            "--issuer-key",
            setup.key("issuer"),
            "--sub",
            "team-a",
            "--agent-key",
            tmp_path / "sub-issuer.pem.pub.jwk",
            "--level",
            "2",
            "--scope",
            "tools:call",
            "--may-issue",
        ).out
    )
    result = cli(
        "passport",
        "issue",
        "--issuer-key",
        tmp_path / "sub-issuer.pem",
        "--sub",
        "agent-2",
        "--agent-key",
        setup.pub("agent"),
        "--level",
        "3",
        "--scope",
        "tools:call",
        "--chain",
        issuer_passport,
    )
    assert result.code == 0, result.err
    assert len(result.out.splitlines()) == 2
    delegated = tmp_path / "delegated.passport"
    delegated.write_text(result.out)
    summary = json.loads(cli("passport", "verify", "--trust", setup.anchors, delegated).out)
    assert (summary["agent"], summary["level"], summary["depth"]) == ("agent-2", 2, 2)
    wrong = cli(
        "passport",
        "issue",
        "--issuer-key",
        setup.key("agent"),
        "--sub",
        "x",
        "--agent-key",
        setup.pub("agent"),
        "--level",
        "1",
        "--chain",
        issuer_passport,
    )
    assert wrong.code == 2


def test_only_a_passport_issued_with_may_issue_can_sign_passports(cli: Cli, setup: Setup, tmp_path: Path) -> None:
    def claims(path: Path) -> dict[str, object]:
        decoded: dict[str, object] = json.loads(cli("passport", "inspect", path).out)["passports"][0]["claims"]
        return decoded

    assert cli("keygen", "--out", tmp_path / "member.pem").code == 0
    member = ["--agent-key", tmp_path / "member.pem.pub.jwk", "--level", "2", "--scope", "tools:call"]
    member_issuer, member_passport = tmp_path / "member-issuer.passport", tmp_path / "member.passport"
    member_issuer.write_text(
        cli("passport", "issue", "--issuer-key", setup.key("issuer"), "--sub", "member", *member, "--may-issue").out
    )
    assert claims(member_issuer)["mcps_issuer"] is True
    ordinary = cli("passport", "issue", "--issuer-key", setup.key("issuer"), "--sub", "member", *member)
    member_passport.write_text(ordinary.out)
    assert "mcps_issuer" not in claims(member_passport)
    # An ordinary member passport cannot certify a key under another agent's id.
    impersonation = ["--iss", "member", "--sub", "agent-1", "--agent-key", setup.pub("agent"), "--level", "2"]
    refused = cli(
        "passport", "issue", "--issuer-key", tmp_path / "member.pem", *impersonation, "--chain", member_passport
    )
    assert refused.code == 2
    assert "--may-issue" in refused.err
    forged = tmp_path / "forged.passport"  # chained by hand: refused by the verifier
    forged.write_text(
        cli("passport", "issue", "--issuer-key", tmp_path / "member.pem", *impersonation).out + ordinary.out
    )
    result = cli("passport", "verify", "--trust", setup.anchors, forged)
    assert (result.code, result.err.split(":")[0]) == (1, "MCPS-009")


def test_revocation_list_issue_and_apply(cli: Cli, setup: Setup, tmp_path: Path) -> None:
    listed = cli("revocation-list", "issue", "--issuer-key", setup.key("issuer"), "--sub", "agent-1")
    assert listed.code == 0, listed.err
    list_file = tmp_path / "list.jwt"
    list_file.write_text(listed.out)
    store = tmp_path / "r.sqlite3"
    applied = cli("revocation-list", "apply", "--trust", setup.anchors, "--store", store, list_file)
    assert (applied.code, json.loads(applied.out)) == (0, {"applied": 1})
    result = cli("passport", "verify", "--trust", setup.anchors, "--aud", AUD, "--store", store, setup.passport)
    assert (result.code, result.err.split(":")[0]) == (1, "MCPS-003")
    assert cli("revocation-list", "issue", "--issuer-key", setup.key("issuer")).code == 2
    not_anchor = cli("revocation-list", "issue", "--issuer-key", setup.key("agent"), "--jti", "x")
    list_file.write_text(not_anchor.out)
    refused = cli("revocation-list", "apply", "--trust", setup.anchors, "--store", store, list_file)
    assert (refused.code, refused.err.split(":")[0]) == (1, "MCPS-029")


def test_durations_and_store_urls(cli: Cli, setup: Setup) -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "24h", "7d")] == [90, 90, 900, 86400, 604800]
    assert cli("revoke", "--sub", "a", "--store", "postgres://nope").code == 2
    assert (
        cli(
            "passport",
            "issue",
            "--issuer-key",
            setup.key("issuer"),
            "--sub",
            "a",
            "--agent-key",
            setup.pub("agent"),
            "--level",
            "2",
            "--ttl",
            "soon",
        ).code
        == 2
    )
    assert (
        cli(
            "passport",
            "issue",
            "--issuer-key",
            setup.key("issuer"),
            "--sub",
            "a",
            "--agent-key",
            setup.pub("agent"),
            "--level",
            "7",
        ).code
        == 2
    )
