"""The short fuzz run of CI (``make fuzz`` is the long one): every reader in ``fuzz/targets.py`` gets its seeds and a
few dozen hypothesis-made inputs (random bytes and mutations of the seeds), derandomized so a run is reproducible.
Property: each input is accepted or refused with an McpsError (or the reader's documented refusal) — any other
exception fails, unless it is a finding already reported (the target's ``known`` list, each pinned by an xfail case
of the corpus)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

EXAMPLES = 100


def _load_targets() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "fuzz" / "targets.py"
    spec = importlib.util.spec_from_file_location("mcps_fuzz_targets", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


targets = _load_targets()


def unknown_finding(target: Any, data: bytes) -> str | None:
    """``None`` when the reader behaves (or fails the way an open, reported defect makes it fail)."""
    exc = target.check(data)
    if exc is None:
        return None
    kind = f"{type(exc).__name__}: {exc}"
    return None if target.classify(kind) else f"{kind} for input {data[:200]!r}"


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)  # every refusal is logged at WARNING


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_reader_is_total(name: str) -> None:
    target = targets.TARGETS[name]
    for seed in target.seeds:
        assert unknown_finding(target, seed) is None

    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(targets.strategy(target))
    def check(data: bytes) -> None:
        finding = unknown_finding(target, data)
        assert finding is None, finding

    check()
