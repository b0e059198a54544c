"""Policy files: every kind of error is refused at load, naming the file, the line and the rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mcps.policy import PolicyFile, PolicyFileError
from mcps.policy.source import SourceMap
from mcps.stores.counters import MemoryCounterStore

GOOD = """\
mcps_policy = 1

[servers.payments]
min_level = 1

[[servers.payments.tools]]
match = "get_balance"

[[servers.payments.tools]]
match = "transfer_*"
{line11}
"""


def load(tmp_path: Path, text: str) -> PolicyFile:
    path = tmp_path / "policy.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return PolicyFile.load(path, counters=MemoryCounterStore())


def error_of(tmp_path: Path, text: str) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as caught:
        load(tmp_path, text)
    return caught.value


def only_issue(tmp_path: Path, text: str) -> tuple[int | None, str | None, str]:
    error = error_of(tmp_path, text)
    assert len(error.issues) == 1, error.issues
    issue = error.issues[0]
    assert str(tmp_path / "policy.toml") in str(error)
    return issue.line, issue.rule, issue.message


def test_a_good_file_loads(tmp_path: Path) -> None:
    policy = load(tmp_path, GOOD.format(line11='when = "args.amount <= 10"'))
    rules = policy.servers["payments"].tools
    assert [(rule.id, rule.line) for rule in rules] == [("payments/get_balance", 6), ("payments/transfer_*", 9)]


@pytest.mark.parametrize(
    ("line11", "rule", "message"),
    [
        ('when = "args.amount <="', "payments/transfer_*", "CEL: 1:15: Syntax error"),
        ("when = \"caller.level >= 'two'\"", "payments/transfer_*", "found no matching overload for '_>=_'"),
        ('when = "unknown.thing == 1"', "payments/transfer_*", "undeclared reference to 'unknown.thing'"),
        ('when = "args.amount + 1"', "payments/transfer_*", "the expression has type int, not bool"),
        ("when = 3", "payments/transfer_*", "when must be a CEL expression"),
        ('rate = ["60 per minute"]', "payments/transfer_*", "rate '60 per minute' is not"),
        ('rate = ["0/minute"]', "payments/transfer_*", "count and burst must be at least 1"),
        ('rate = "60/minute"', "payments/transfer_*", "rate must be an array of non-empty strings"),
        ("min_level = 5", "payments/transfer_*", "min_level must be a trust level"),
        ("min_level = true", "payments/transfer_*", "min_level must be a trust level"),
        ('scopes_all = "payments:write"', "payments/transfer_*", "scopes_all must be an array"),
        ("agents = []", "payments/transfer_*", "agents = [] would allow nobody"),
        ('effect = "permit"', "payments/transfer_*", 'effect must be "allow" or "deny"'),
        ("min_levle = 2", "payments/transfer_*", "unknown key 'min_levle'"),
        ("hooks = [{ hook = 'no.such.module:Hook' }]", "payments/transfer_*", "cannot import 'no.such.module'"),
        ("hooks = [{ hook = 'json:dumps' }]", "payments/transfer_*", "has no from_policy"),
        ("hooks = [{ args = ['x'] }]", "payments/transfer_*", "a hook needs hook ="),
        (
            "hooks = [{ hook = 'mcps.policy.sanctions:SanctionsScreen', args = ['x'], list = 'missing.csv' }]",
            "payments/transfer_*",
            "cannot read the sanctions list",
        ),
        (
            "hooks = [{ hook = 'mcps.policy.sanctions:SanctionsScreen', args = [], list = 'x', threshold = 'high' }]",
            "payments/transfer_*",
            "threshold must be a number",
        ),
        ("hooks = [{ hook = 'mcps.policy.sanctions:SanctionsScreen', lst = 'x' }]", "payments/transfer_*", "lst"),
        ("spend = { currency = 'USD', per_level = { 1 = { per_call = 1 } } }", "payments/transfer_*", "amount_arg"),
        ("spend = { amount_arg = 'a', per_level = { 7 = { per_call = 1 } } }", "payments/transfer_*", "levels 0-4"),
        ("spend = { amount_arg = 'a', per_level = { 1 = {} } }", "payments/transfer_*", "per_call, per_day or both"),
        ("spend = { amount_arg = 'a', per_level = { 1 = { per_call = -1 } } }", "payments/transfer_*", "non-negative"),
        ("spend = { amount_arg = 'a', per_level = { 1 = { per_call = 0.001 } } }", "payments/transfer_*", "2 decimal"),
        ("spend = { amount_arg = 'a', currency_arg = 'c', per_level = { 1 = { per_day = 1 } } }", None, "currency_arg"),
        ("spend = { amount_arg = 'a', per_level = {} }", "payments/transfer_*", "at least one trust level"),
    ],
)
def test_each_kind_of_error_names_line_rule_and_problem(
    tmp_path: Path, line11: str, rule: str | None, message: str
) -> None:
    line, found_rule, found_message = only_issue(tmp_path, GOOD.format(line11=line11))
    assert line == 11
    assert found_rule == (rule or "payments/transfer_*")
    assert message in found_message


def test_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    line, rule, message = only_issue(tmp_path, GOOD.format(line11="when = = 'x'") + "min_level = 1\n")
    assert (line, rule) == (11, None)
    assert message.startswith("not valid TOML: Invalid value")
    line, _, message = only_issue(tmp_path, GOOD.format(line11="when = 'unterminated"))
    assert line == 11  # tomllib says "at end of document": the last line


def test_version_is_required(tmp_path: Path) -> None:
    assert only_issue(tmp_path, "[servers.x]\n") == (None, None, "mcps_policy = 1 is required (the format version)")
    line, _, _ = only_issue(tmp_path, "mcps_policy = 2\n")
    assert line == 1


def test_unknown_top_level_and_server_keys(tmp_path: Path) -> None:
    assert only_issue(tmp_path, "mcps_policy = 1\nserver = {}\n")[0] == 2
    line, rule, message = only_issue(tmp_path, "mcps_policy = 1\n\n[servers.files]\ndefault = 'permit'\n")
    assert (line, rule, message) == (4, "files", 'default must be "deny" or "allow"')
    line, rule, _ = only_issue(tmp_path, "mcps_policy = 1\n[servers.files]\nmin_level = 1\ntool = []\n")
    assert (line, rule) == (4, "files")


def test_server_level_errors_name_the_server(tmp_path: Path) -> None:
    line, rule, message = only_issue(tmp_path, "mcps_policy = 1\n[servers.\"urn:x:files\"]\n\nrate = ['x']\n")
    assert (line, rule) == (4, "urn:x:files")
    assert "rate 'x'" in message


def test_errors_in_a_spend_table_point_into_it(tmp_path: Path) -> None:
    text = """\
    mcps_policy = 1
    [servers.payments]
    [[servers.payments.tools]]
    match = "a"
    [[servers.payments.tools]]
    match = "transfer"
    [servers.payments.tools.spend]
    amount_arg = "amount"
    decimals = 12
    [servers.payments.tools.spend.per_level]
    1 = { per_call = 10 }
    """
    assert only_issue(tmp_path, text)[:2] == (9, "payments/transfer")
    text = text.replace("decimals = 12", "decimals = 2").replace("1 = { per_call = 10 }", "9 = { per_call = 10 }")
    assert only_issue(tmp_path, text)[:2] == (11, "payments/transfer")


def test_duplicate_and_unreachable_rules(tmp_path: Path) -> None:
    text = """\
    mcps_policy = 1
    [servers.s]
    [[servers.s.tools]]
    match = "read"
    [[servers.s.tools]]
    match = "read"
    [[servers.s.tools]]
    match = "files_*"
    [[servers.s.tools]]
    match = "files_read_*"
    [[servers.s.tools]]
    match = "*"
    [[servers.s.tools]]
    match = "other?"
    [[servers.s.tools]]
    id = "s/files_*"
    match = "x"
    """
    issues = error_of(tmp_path, text).issues
    assert [(issue.line, issue.rule) for issue in issues] == [
        (5, "s/read"), (9, "s/files_read_*"), (13, "s/other?"), (15, "s/files_*"),
    ]  # fmt: skip
    assert "already names 'read'" in issues[0].message
    assert "earlier rule 's/files_*'" in issues[1].message
    assert "earlier rule 's/*'" in issues[2].message
    assert "already has the id" in issues[3].message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
    mcps_policy = 1
    [servers.a]
    min_level = 9
    [[servers.a.tools]]
    match = "t"
    when = "nope"
    [servers.b]
    default = "maybe"
    """
    issues = error_of(tmp_path, text).issues
    assert [(issue.line, issue.rule) for issue in issues] == [(3, "a"), (6, "a/t"), (8, "b")]


def test_bad_match_is_refused(tmp_path: Path) -> None:
    line, rule, message = only_issue(tmp_path, "mcps_policy = 1\n[servers.s]\n[[servers.s.tools]]\nmatch = 'a b'\n")
    assert (line, rule) == (4, "s/tools[0]")
    assert "match must be" in message


def test_file_that_is_not_utf8_or_too_large(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"mcps_policy = 1\n# \xff\n")
    with pytest.raises(PolicyFileError, match="not UTF-8"):
        PolicyFile.load(path, counters=MemoryCounterStore())
    path.write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    with pytest.raises(PolicyFileError, match="larger than"):
        PolicyFile.load(path, counters=MemoryCounterStore())


def test_source_map_numbers_arrays_of_tables_per_parent() -> None:
    text = textwrap.dedent(
        """\
        [servers.a]
        [[servers.a.tools]]
        match = "x"
        [[servers.a.tools.hooks]]
        hook = "h"
        [[servers.a.tools]]
        match = "y"
        [[servers.a.tools.hooks]]
        hook = "h"
        rate = ["[not a header]"]
        [servers."b.c"]
        min_level = 1
        """
    )
    source = SourceMap(text)
    assert source.line_of(("servers", "a", "tools", 1, "hooks", 0, "hook")) == 9
    assert source.line_of(("servers", "a", "tools", 0, "hooks", 0)) == 4
    assert source.line_of(("servers", "a", "tools", 1, "match")) == 7
    assert source.line_of(("servers", "b.c", "min_level")) == 12
    assert source.line_of(("nothing",)) is None
