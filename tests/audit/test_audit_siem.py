"""SIEM formatters: exact CEF, LEEF 2.0 and RFC 5424 lines, each format's escaping with hostile values, and that
no value can forge a field or a line."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mcps.audit.siem import FORMATTERS, cef_line, leef_line, safe_syslog_name, severity, syslog_line

HOSTILE = 'a|b=c\\d"e]f\ng\rh\ti é'
"""Pipe, equals, backslash, quote, bracket, LF, CR, tab, non-ASCII: everything some format must escape."""


def _entry(**members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"v": 1, "index": 7, "prev": None, "time": 1_700_000_000_123, "event": "call"}
    return base | members


def test_severity_puts_denials_above_errors_above_the_rest() -> None:
    assert severity(_entry(decision="deny", code="MCPS-016")) == 7
    assert severity(_entry(event="deny")) == 7
    assert severity(_entry(decision="allow", code="MCPS-020")) == 5
    assert severity(_entry(decision="allow")) == 3


def test_cef_plain_entry() -> None:
    entry = _entry(decision="allow", agent="agent-1", tool="read_file", method="tools/call", request_id=5)
    assert cef_line(entry, version="1.2") == (
        "CEF:0|mcps|mcps|1.2|call|call read_file|3|externalId=7 rt=1700000000123 act=allow suser=agent-1 "
        "cs1Label=tool cs1=read_file cs2Label=method cs2=tools/call cs3Label=requestId cs3=5 outcome=success"
    )


def test_cef_escapes_header_and_extension_differently() -> None:
    line = cef_line(_entry(event="deny", decision="deny", code="MCPS-016", tool=HOSTILE), version="1|2\\")
    assert line == (
        'CEF:0|mcps|mcps|1\\|2\\\\|deny|deny a\\|b=c\\\\d"e]f\ufffdg\ufffdh\ufffdi é|7|'
        "externalId=7 rt=1700000000123 act=deny reason=MCPS-016 "
        'cs1Label=tool cs1=a|b\\=c\\\\d"e]f\\ng\\rh\ufffdi é outcome=failure'
    )
    assert "\n" not in line
    assert "\r" not in line


def _cef_extension(line: str) -> dict[str, str]:
    """A CEF extension parser: split before each unescaped ``key=``, then undo the escapes."""
    extension = re.split(r"(?<!\\)\|", line, maxsplit=7)[7]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9]+)=(?<!\\=)", extension))
    out: dict[str, str] = {}
    for i, match in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(extension)
        raw = extension[match.end() : end]
        out[match.group(1)] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), raw)
    return out


def test_cef_hostile_value_round_trips_and_forges_no_key() -> None:
    forged = "x suser=root act=allow"
    fields = _cef_extension(cef_line(_entry(agent=HOSTILE.replace("\t", ""), tool=forged)))
    assert fields["suser"] == HOSTILE.replace("\t", "")
    assert fields["cs1"] == forged
    assert "act" not in fields


def test_leef_plain_entry() -> None:
    entry = _entry(decision="allow", agent="agent-1", tool="read_file", latency_ms=12)
    assert leef_line(entry, version="1.2") == (
        "LEEF:2.0|mcps|mcps|1.2|call|x09|index=7\tdevTime=2023-11-14T22:13:20.123Z\t"
        "devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSX\tcat=call\tsev=3\tdecision=allow\tusrName=agent-1\t"
        "tool=read_file\tlatencyMs=12"
    )


def test_leef_escapes_the_delimiter_and_line_breaks() -> None:
    line = leef_line(_entry(tool=HOSTILE), version="a|b")
    assert line == (
        "LEEF:2.0|mcps|mcps|a\\|b|call|x09|index=7\tdevTime=2023-11-14T22:13:20.123Z\t"
        "devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSX\tcat=call\tsev=3\t"
        'tool=a|b=c\\\\d"e]f\\ng\\rh\\ti é'
    )
    attributes = line.split("|x09|", 1)[1].split("\t")
    assert [a.split("=", 1)[0] for a in attributes] == ["index", "devTime", "devTimeFormat", "cat", "sev", "tool"]


def test_leef_forges_no_attribute() -> None:
    line = leef_line(_entry(agent="x\tsev=1\tusrName=root"))
    keys = [a.split("=", 1)[0] for a in line.split("|x09|", 1)[1].split("\t")]
    assert keys.count("sev") == 1
    assert keys.count("usrName") == 1


def test_syslog_plain_entry() -> None:
    entry = _entry(decision="deny", code="MCPS-016", agent="agent-1", prev="AAAA")
    assert syslog_line(entry, hostname="host.example", procid="42") == (
        "<108>1 2023-11-14T22:13:20.123Z host.example mcps 42 call "
        '[mcps@32473 index="7" event="call" decision="deny" code="MCPS-016" agent="agent-1" prev="AAAA"] '
        "mcps audit entry 7 call deny"
    )


def test_syslog_nilvalues_and_priority() -> None:
    assert syslog_line(_entry(time="yesterday")) == (
        '<110>1 - - mcps - call [mcps@32473 index="7" event="call"] mcps audit entry 7 call'
    )
    assert syslog_line(_entry(code="MCPS-020"), facility=1).startswith("<13>1 ")
    with pytest.raises(ValueError, match="facility"):
        syslog_line(_entry(), facility=24)


def test_syslog_escapes_sd_param_values() -> None:
    line = syslog_line(_entry(tool=HOSTILE))
    assert line == (
        "<110>1 2023-11-14T22:13:20.123Z - mcps - call "
        '[mcps@32473 index="7" event="call" tool="a|b=c\\\\d\\"e\\]f\ufffdg\ufffdh\ufffdi é"] '
        "mcps audit entry 7 call"
    )


def test_syslog_forges_no_param_nor_element() -> None:
    forged = 'x"] [mcps@32473 decision="allow'
    line = syslog_line(_entry(tool=forged))
    elements = re.findall(r'\[(?:[^"\]]|"(?:[^"\\]|\\.)*")*\]', line)
    assert len(elements) == 1
    values = re.findall(r'([A-Za-z]+)="((?:[^"\\]|\\.)*)"', elements[0])
    assert dict(values)["tool"].replace("\\", "") == forged
    assert "decision" not in dict(values)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("host-1", "host-1"), ("", "-"), ("has space", "-"), ("é", "-"), (None, "-"), ("x" * 256, "-"), (3, "-")],
)
def test_safe_syslog_name(value: object, expected: str) -> None:
    assert safe_syslog_name(value) == expected


def test_syslog_refuses_bad_hostname_by_nilvalue() -> None:
    assert " - mcps - " in syslog_line(_entry(), hostname="evil host\n", procid="x" * 129)


@pytest.mark.parametrize("name", sorted(FORMATTERS))
def test_hand_edited_member_types_still_format_on_one_line(name: str) -> None:
    entry = _entry(tool={"nested": ["\n", 1]}, agent=12, request_id=["x"], time=10**20)
    line = FORMATTERS[name](entry)
    assert "\n" not in line
    assert "\r" not in line
    assert "nested" in line
