"""The gateway's configuration file: valid files load, each kind of mistake names its file, line and setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcps.gateway.config import ConfigError, load_config

VALID = """\
[gateway]
identity = "urn:mcps:gateway:test"
key = "gateway.pem"
listen = "127.0.0.1:9999"
policy = "policy.toml"

[agents]
anchors = ["anchors.jwks"]

[[agents.keys]]
key = "ops.pub.jwk"
name = "ops-bot"
level = 2
scopes = ["payments:read"]

[upstreams.payments]
identity = "urn:example:payments"
command = ["python", "server.py"]
trust = "unsigned"

[upstreams.ledger]
identity = "urn:example:ledger"
url = "http://127.0.0.1:9001/mcp"
key = "ledger.pub.jwk"
timeout = 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    assert config.identity == "urn:mcps:gateway:test"
    assert (config.host, config.port) == ("127.0.0.1", 9999)
    assert config.key == tmp_path / "gateway.pem"
    assert config.state_dir == tmp_path / "state"
    assert config.admit_unsigned is False
    assert config.agent_anchors == (tmp_path / "anchors.jwks",)
    assert [(agent.name, agent.level, agent.scopes) for agent in config.agent_keys] == [
        ("ops-bot", 2, ("payments:read",))
    ]
    payments, ledger = config.upstreams["payments"], config.upstreams["ledger"]
    assert payments.command == ("python", "server.py")
    assert not payments.signed
    assert ledger.url == "http://127.0.0.1:9001/mcp"
    assert ledger.signed
    assert ledger.timeout == 5.0
    assert "http://localhost" in config.allowed_origins


@pytest.mark.parametrize(
    ("change", "line", "setting", "words"),
    [
        (('identity = "urn:mcps:gateway:test"\n', ""), 1, "gateway.identity", "is required"),
        (('listen = "127.0.0.1:9999"', 'listen = "nowhere"'), 4, "gateway.listen", "host:port"),
        (("level = 2", 'level = "high"'), 13, "agents.keys.level", "integer from 0 to 4"),
        (("level = 2", "level = true"), 13, "agents.keys.level", "integer from 0 to 4"),
        (('trust = "unsigned"\n', ""), 16, "upstreams.payments.trust", "how its messages are trusted"),
        (('url = "http://127.0.0.1:9001/mcp"', 'url = "ftp://x"'), 23, "upstreams.ledger.url", "http"),
        (("timeout = 5", "timeout = 0"), 25, "upstreams.ledger.timeout", "number from"),
        (("timeout = 5", "tiemout = 5"), 25, "upstreams.ledger.tiemout", "unknown setting"),
        (("[upstreams.payments]", "[upstreams.Pay_ments]"), 16, "upstreams.Pay_ments", "upstream names"),
        (
            ('command = ["python", "server.py"]', 'command = ["python"]\nurl = "http://x/mcp"'),
            16,
            "upstreams.payments",
            "exactly one",
        ),
    ],
)
def test_each_mistake_names_file_line_and_setting(
    tmp_path: Path, change: tuple[str, str], line: int, setting: str, words: str
) -> None:
    old, new = change
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.setting == setting
    assert error.value.line == line, str(error.value)
    assert words in error.value.problem
    assert str(error.value).startswith(f"{path}:{line}: {setting}: ")


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("level = 2", "level = = 2"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.line == 13


def test_at_least_one_upstream_is_required(tmp_path: Path) -> None:
    text = VALID[: VALID.index("[upstreams.payments]")]
    with pytest.raises(ConfigError, match="at least one upstream"):
        load_config(_write(tmp_path, text))
