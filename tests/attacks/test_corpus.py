"""The corpus itself: large enough, one name per attack, every case with an outcome and a positive control, every
open case naming why, and SECURITY.md listing exactly these attacks by threat."""

from __future__ import annotations

from pathlib import Path

from .registry import BEGIN, END, TABLES, all_cases, markdown

ROOT = Path(__file__).resolve().parents[2]


def test_the_corpus_holds_at_least_150_attacks_each_named_once() -> None:
    names = [case.name for _, case in all_cases()]
    assert len(names) >= 150
    assert len(set(names)) == len(names), sorted({name for name in names if names.count(name) > 1})


def test_every_attack_states_what_it_must_get() -> None:
    for _, case in all_cases():
        assert case.code is not None or case.expect is not None, case.name
        assert case.summary, case.name


def test_every_open_attack_says_why() -> None:
    for _, case in all_cases():
        if case.xfail:
            assert case.xfail.startswith(("issue 9 §1.", "new defect")), case.name


def test_every_table_has_a_runner() -> None:
    runners = {path.stem for path in Path(__file__).parent.glob("test_*.py")}
    modules = {table.module for table in TABLES}
    assert {
        "test_parsing",
        "test_envelope",
        "test_identity",
        "test_grants",
        "test_tools",
        "test_trust_files",
        "test_audit",
        "test_stdio",
        "test_sdk",
        "test_http",
        "test_cli",
    } <= runners
    assert len(modules) == 9


def test_security_md_lists_the_corpus_by_threat() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == markdown(), "regenerate it: cd tests && python -m attacks.registry"
