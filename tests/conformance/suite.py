"""The official MCP conformance suite's three legs, run against one URL, and their results read back.

A leg is one run of the suite's ``server`` command: ``0.1.16 --suite all`` (npm's ``latest``, 2025-11-25 and
older scenarios) and ``0.2.0-alpha.12 --suite all --spec-version REV`` for each protocol revision. The suite
writes one directory per scenario (``server-<scenario>-<timestamp>/checks.json``); each check has a status
(``SUCCESS``, ``FAILURE``, ``WARNING``, ``SKIPPED``, ``INFO``). ``expected.json`` next to this file holds the
counts measured directly against ``server.py``; a target passes a leg when every expected scenario runs, none
fails a check, none passes fewer checks and none warns more than there.

Regenerate ``expected.json`` by hand (after a deliberate version bump, against the direct target only)::

    python tests/conformance/server.py --port 3001 &
    python tests/conformance/suite.py http://127.0.0.1:3001/mcp --write-expected
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from .node import NodeTools, NodeUnavailable, setup
else:  # run as a script
    from node import NodeTools, NodeUnavailable, setup  # type: ignore[no-redef]

EXPECTED = Path(__file__).resolve().parent / "expected.json"
LEG_TIMEOUT = 240.0  # seconds; one leg takes about 2 s here
_SCENARIO_DIRECTORY = re.compile(r"^server-(?P<name>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


@dataclass(frozen=True)
class Leg:
    name: str
    release: str
    arguments: tuple[str, ...]


LEGS = (
    Leg("0.1.16 --suite all", "0.1.16", ("--suite", "all")),
    Leg(
        "0.2.0-alpha.12 --spec-version 2025-11-25",
        "0.2.0-alpha.12",
        ("--suite", "all", "--spec-version", "2025-11-25"),
    ),
    Leg(
        "0.2.0-alpha.12 --spec-version 2026-07-28",
        "0.2.0-alpha.12",
        ("--suite", "all", "--spec-version", "2026-07-28"),
    ),
)


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0
    warnings: int = 0
    skipped: int = 0

    def as_json(self) -> dict[str, int]:
        return {"passed": self.passed, "failed": self.failed, "warnings": self.warnings, "skipped": self.skipped}


@dataclass(frozen=True)
class LegResult:
    leg: Leg
    scenarios: dict[str, Counts]
    problems: dict[str, list[str]]  # scenario -> "check-id: message" for each FAILURE and WARNING
    output: str

    def totals(self) -> Counts:
        return Counts(
            passed=sum(c.passed for c in self.scenarios.values()),
            failed=sum(c.failed for c in self.scenarios.values()),
            warnings=sum(c.warnings for c in self.scenarios.values()),
            skipped=sum(c.skipped for c in self.scenarios.values()),
        )


class LegError(RuntimeError):
    """The suite did not run to the end, or wrote results that cannot be read."""


def run_leg(tools: NodeTools, url: str, leg: Leg, results: Path, *, timeout: float = LEG_TIMEOUT) -> LegResult:
    argv = [*tools.conformance(leg.release), "server", "--url", url, *leg.arguments, "-o", str(results)]
    try:
        completed = tools.run(argv, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LegError(f"{leg.name}: the suite did not finish in {timeout:.0f} s") from exc
    output = completed.stdout + completed.stderr
    scenarios, problems = read_results(results)
    if not scenarios:
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise LegError(f"{leg.name}: no results (exit {completed.returncode}):\n{tail}")
    return LegResult(leg, scenarios, problems, output)


def read_results(results: Path) -> tuple[dict[str, Counts], dict[str, list[str]]]:
    scenarios: dict[str, Counts] = {}
    problems: dict[str, list[str]] = {}
    for directory in sorted(results.iterdir()) if results.is_dir() else []:
        match = _SCENARIO_DIRECTORY.match(directory.name)
        if match is None:
            continue
        name = match["name"]
        if name in scenarios:
            raise LegError(f"scenario {name} has two result directories in {results}")
        try:
            checks = json.loads((directory / "checks.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LegError(f"{directory.name}/checks.json cannot be read: {exc}") from exc
        statuses = Counter(str(check.get("status")) for check in checks)
        scenarios[name] = Counts(
            passed=statuses["SUCCESS"],
            failed=statuses["FAILURE"],
            warnings=statuses["WARNING"],
            skipped=statuses["SKIPPED"],
        )
        problems[name] = [
            f"{check.get('status')} {check.get('id')}: {check.get('errorMessage') or check.get('description')}"
            for check in checks
            if check.get("status") in ("FAILURE", "WARNING")
        ]
    return scenarios, problems


def load_expected() -> dict[str, dict[str, Counts]]:
    document = json.loads(EXPECTED.read_text(encoding="utf-8"))
    return {
        leg: {name: Counts(**counts) for name, counts in entry["scenarios"].items()}
        for leg, entry in document["legs"].items()
    }


def shortfalls(result: LegResult, expected: dict[str, Counts]) -> list[str]:
    """What keeps ``result`` from matching the committed baseline; empty when it matches or does better."""
    found: list[str] = []
    for name in sorted(expected.keys() - result.scenarios.keys()):
        found.append(f"{name}: did not run")
    for name in sorted(result.scenarios.keys() - expected.keys()):
        found.append(f"{name}: ran but is not in expected.json (a new scenario: measure it directly and add it)")
    for name in sorted(expected.keys() & result.scenarios.keys()):
        got, want = result.scenarios[name], expected[name]
        if got.failed or got.passed < want.passed or got.warnings > want.warnings:
            detail = "; ".join(result.problems.get(name, [])) or "no failing check reported"
            found.append(
                f"{name}: {got.passed} passed, {got.failed} failed, {got.warnings} warnings "
                f"(expected {want.passed} passed, 0 failed, at most {want.warnings} warnings) — {detail}"
            )
    return found


def expected_document(results: list[LegResult]) -> str:
    """``expected.json``, one scenario per line."""
    lines = [
        "{",
        '  "about": "Checks per scenario of the MCP conformance suite, measured directly against'
        " tests/conformance/server.py (see suite.py). A target passes when no check fails, no scenario passes"
        ' fewer checks and none warns more.",',
        '  "legs": {',
    ]
    for index, result in enumerate(results):
        totals = json.dumps(result.totals().as_json())
        lines.append(f"    {json.dumps(result.leg.name)}: {{")
        lines.append(f'      "release": {json.dumps(result.leg.release)},')
        lines.append(f'      "arguments": {json.dumps(list(result.leg.arguments))},')
        lines.append(f'      "totals": {totals},')
        lines.append('      "scenarios": {')
        names = sorted(result.scenarios)
        for position, name in enumerate(names):
            comma = "," if position < len(names) - 1 else ""
            lines.append(f"        {json.dumps(name)}: {json.dumps(result.scenarios[name].as_json())}{comma}")
        lines.append("      }")
        lines.append("    }" + ("," if index < len(results) - 1 else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the three conformance legs against an MCP URL.")
    parser.add_argument("url")
    parser.add_argument("--write-expected", action="store_true", help=f"write the counts to {EXPECTED.name}")
    args = parser.parse_args(argv)
    try:
        tools = setup()
    except NodeUnavailable as exc:
        print(f"suite.py: {exc}", file=sys.stderr)
        return 1
    results: list[LegResult] = []
    with tempfile.TemporaryDirectory(prefix="mcps-conformance-") as scratch:
        for index, leg in enumerate(LEGS):
            result = run_leg(tools, args.url, leg, Path(scratch) / str(index))
            results.append(result)
            totals = result.totals()
            print(
                f"{leg.name}: {totals.passed} passed, {totals.failed} failed, {totals.warnings} warnings, "
                f"{len(result.scenarios)} scenarios"
            )
            for name, problems in sorted(result.problems.items()):
                for problem in problems:
                    print(f"  {name}: {problem}")
    if args.write_expected:
        EXPECTED.write_text(expected_document(results), encoding="utf-8")
        print(f"wrote {EXPECTED}")
    return 0 if all(r.totals().failed == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
