"""Property tests for the policy's parsers: any text gets a result or its one error type, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mcps.policy import PolicyFile, PolicyFileError
from mcps.policy.limits import Per, parse_rate
from mcps.policy.source import SourceMap
from mcps.stores.counters import MemoryCounterStore

TOML_BITS = st.sampled_from(
    ["mcps_policy = 1\n", "[servers.a]\n", "[[servers.a.tools]]\n", "match = 'x*'\n", "min_level = 9\n",
     "when = 'args.a >'\n", "rate = ['1/second per agent']\n", "[servers.a.tools.spend]\n", "amount_arg = 'n'\n",
     "per_level = { 1 = { per_day = 5 } }\n", "default = 'allow'\n", "[", "=", "'", "\n", "hooks = [{}]\n"]
)  # fmt: skip


@given(st.text(max_size=80))
def test_rate_text_parses_or_is_a_value_error(text: str) -> None:
    try:
        rate = parse_rate("r", text)
    except ValueError:
        return
    assert rate.count >= 1
    assert rate.burst >= 1
    assert isinstance(rate.per, Per)


@given(st.integers(1, 999_999_999), st.sampled_from(["second", "minute", "hour", "day"]), st.integers(1, 999_999_999))
def test_well_formed_rates_round_trip(count: int, unit: str, burst: int) -> None:
    rate = parse_rate("r", f"{count}/{unit} burst {burst} per agent-tool")
    assert (rate.count, rate.burst, rate.per) == (count, burst, Per.AGENT_TOOL)


@settings(max_examples=200)
@given(st.lists(TOML_BITS, max_size=14).map("".join) | st.text(max_size=200))
def test_any_policy_text_loads_or_is_a_policy_file_error(text: str) -> None:
    issues = []
    try:
        PolicyFile.loads(text, counters=MemoryCounterStore())
    except PolicyFileError as error:
        issues = error.issues or [None]
    for issue in issues:
        assert issue is not None
        assert issue.line is None or 1 <= issue.line <= max(1, len(text.splitlines()))


@given(st.text(max_size=300), st.lists(st.one_of(st.text(max_size=10), st.integers(0, 3)), max_size=5))
def test_source_map_never_fails(text: str, path: list[str | int]) -> None:
    line = SourceMap(text).line_of(tuple(path))
    assert line is None or line >= 1
