"""The official MCP conformance suite against each target: every scenario in expected.json passes.

Three legs (suite.py): 0.1.16 ``--suite all``, and 0.2.0-alpha.12 at ``--spec-version 2025-11-25`` and
``2026-07-28``. About 2 s each here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .node import NodeTools
from .suite import LEGS, Leg, load_expected, run_leg, shortfalls


def test_expected_lists_every_leg_and_no_failure() -> None:
    expected = load_expected()
    assert sorted(expected) == sorted(leg.name for leg in LEGS)
    for leg, scenarios in expected.items():
        assert scenarios, leg
        assert all(counts.failed == 0 for counts in scenarios.values()), f"{leg}: a baseline must not fail"


@pytest.mark.parametrize("leg", LEGS, ids=[leg.name for leg in LEGS])
def test_every_expected_scenario_passes(node_tools: NodeTools, target_url: str, leg: Leg, tmp_path: Path) -> None:
    result = run_leg(node_tools, target_url, leg, tmp_path / "results")

    problems = shortfalls(result, load_expected()[leg.name])

    assert not problems, f"{leg.name} against {target_url}:\n" + "\n".join(problems)
