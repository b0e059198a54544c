"""Fuzz every mcps reader (``targets.py``) and report inputs and unhandled exceptions per target.

::

    python fuzz/run.py --runs 100000              # every target, 100,000 inputs each (atheris when installed)
    python fuzz/run.py --targets strict,http --runs 20000 --engine hypothesis

Each target runs in a child process: with **atheris** (coverage-guided libFuzzer, ``mcps`` instrumented) when it
imports, else with **hypothesis** fed by a mutation-based generator over the target's seeds (bit flips, dictionary
tokens, cuts, splices). A child counts its inputs, records each unexpected exception (type, message, the smallest
input that raised it, saved under ``fuzz/findings/``), the slowest input, and whether it died or hung (libFuzzer
``-timeout``; a child past its wall-clock budget is killed and reported). The parent prints one line per target and
the totals, and writes them as JSON (``--report``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "findings"
PER_INPUT_TIMEOUT = 10
"""Seconds one input may take before the child is reported as hung (libFuzzer ``-timeout``)."""


# --- the child: one target, one engine --------------------------------------------------------------------------


class Stats:
    """What a child reports, written to ``path`` as it goes (libFuzzer exits without running atexit handlers)."""

    def __init__(self, path: Path, target: str, engine: str, runs: int) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "target": target,
            "engine": engine,
            "inputs": 0,
            "unhandled": 0,
            "kinds": {},
            "slowest_seconds": 0.0,
            "done": False,
        }
        self.runs = runs
        self._written = 0.0

    def count(self, data: bytes, exc: BaseException | None, seconds: float) -> None:
        self.data["inputs"] += 1
        self.data["slowest_seconds"] = max(self.data["slowest_seconds"], seconds)
        if exc is not None:
            self.data["unhandled"] += 1
            kind = f"{type(exc).__name__}: {str(exc)[:120]}"
            known = self.data["kinds"].setdefault(kind, {"count": 0, "example": None, "size": None})
            known["count"] += 1
            if known["size"] is None or len(data) < known["size"]:
                FINDINGS.mkdir(exist_ok=True)
                name = f"{self.data['target']}-{hashlib.sha256(kind.encode()).hexdigest()[:10]}.bin"
                (FINDINGS / name).write_bytes(data)
                known["example"], known["size"] = f"fuzz/findings/{name}", len(data)
        if self.data["inputs"] >= self.runs:
            self.data["done"] = True
        now = time.monotonic()
        if exc is not None or self.data["done"] or now - self._written > 0.5:
            self.write()
            self._written = now

    def write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data))
        temporary.replace(self.path)


def _dictionary_file(tokens: list[bytes], where: Path) -> Path:
    path = where / "tokens.dict"
    path.write_text("".join('"' + "".join(f"\\x{byte:02x}" for byte in token) + '"\n' for token in tokens))
    return path


def child_atheris(name: str, runs: int, stats_path: Path) -> None:
    import atheris  # noqa: PLC0415 - optional: installed by `make fuzz` where it builds

    with atheris.instrument_imports(include=["mcps"]):
        sys.path.insert(0, str(HERE))
        import targets  # noqa: PLC0415

    target = targets.TARGETS[name]
    stats = Stats(stats_path, name, "atheris", runs)
    work = Path(tempfile.mkdtemp(prefix=f"mcps-fuzz-{name}-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(target.seeds):
        (corpus / f"seed-{index}").write_bytes(seed)

    def one_input(data: bytes) -> None:
        started = time.perf_counter()
        exc = target.check(data)
        stats.count(data, exc, time.perf_counter() - started)

    argv = [
        sys.argv[0],
        f"-runs={runs}",
        f"-max_len={targets.MAX_LEN}",
        f"-timeout={PER_INPUT_TIMEOUT}",
        "-print_final_stats=0",
        "-close_fd_mask=3",
        str(corpus),
    ]
    if target.dictionary:
        argv.insert(1, f"-dict={_dictionary_file(target.dictionary, work)}")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def child_hypothesis(name: str, runs: int, stats_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings  # noqa: PLC0415

    sys.path.insert(0, str(HERE))
    import targets  # noqa: PLC0415

    target = targets.TARGETS[name]
    stats = Stats(stats_path, name, "hypothesis", runs)

    @settings(max_examples=runs, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(targets.strategy(target))
    def one_input(data: bytes) -> None:
        started = time.perf_counter()
        exc = target.check(data)
        stats.count(data, exc, time.perf_counter() - started)

    one_input()
    stats.data["done"] = True
    stats.write()


# --- the parent -------------------------------------------------------------------------------------------------


def atheris_available() -> bool:
    try:
        import atheris  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def run_target(name: str, runs: int, engine: str, budget: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        stats_path = Path(work) / "stats.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--runs",
            str(runs),
            "--engine",
            engine,
            "--stats",
            str(stats_path),
        ]
        started = time.monotonic()
        try:
            completed = subprocess.run(command, capture_output=True, timeout=budget, check=False)
            status, tail = completed.returncode, completed.stderr.decode("utf-8", "replace")[-2000:]
        except subprocess.TimeoutExpired:
            status, tail = None, "killed: over its wall-clock budget"
        stats: dict[str, Any] = (
            json.loads(stats_path.read_text())
            if stats_path.exists()
            else {
                "target": name,
                "engine": engine,
                "inputs": 0,
                "unhandled": 0,
                "kinds": {},
                "slowest_seconds": 0.0,
                "done": False,
            }
        )
    stats["seconds"] = round(time.monotonic() - started, 1)
    stats["exit_status"] = status
    if status != 0 or not stats["done"]:
        stats["died"] = tail  # a hang (libFuzzer timeout), a crash, or the budget: reported, never hidden
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target (default 100,000)")
    parser.add_argument("--targets", help="comma-separated target names (default: all)")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--budget", type=float, default=1800.0, help="wall-clock seconds per target (default 1800)")
    parser.add_argument("--report", type=Path, default=HERE / "report.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    logging.disable(logging.CRITICAL)  # refusals are logged at WARNING: millions of lines otherwise
    if args.child:
        (child_atheris if args.engine == "atheris" else child_hypothesis)(args.child, args.runs, args.stats)
        return 0

    sys.path.insert(0, str(HERE))
    import targets  # noqa: PLC0415

    engine = args.engine if args.engine != "auto" else ("atheris" if atheris_available() else "hypothesis")
    names = args.targets.split(",") if args.targets else list(targets.TARGETS)
    results = []
    print(f"fuzzing {len(names)} targets with {engine}, {args.runs:,} inputs each")
    print(f"{'target':18}{'inputs':>12}{'unhandled':>11}{'slowest s':>11}{'seconds':>9}  status")
    for name in names:
        result = run_target(name, args.runs, engine, args.budget)
        results.append(result)
        status = "ok" if not result.get("died") else "DIED/HUNG/OVER BUDGET"
        print(
            f"{name:18}{result['inputs']:>12,}{result['unhandled']:>11,}{result['slowest_seconds']:>11.3f}"
            f"{result['seconds']:>9}  {status}",
            flush=True,
        )
        for kind, found in result["kinds"].items():
            known = targets.TARGETS[name].classify(kind)
            found["known"] = known
            label = f"known: {known}" if known else "NEW"
            print(f"    {found['count']:>9,} × {kind}  [{label}] (smallest: {found['example']}, {found['size']} bytes)")
    total_inputs = sum(result["inputs"] for result in results)
    total_unhandled = sum(result["unhandled"] for result in results)
    known = sum(found["count"] for result in results for found in result["kinds"].values() if found["known"])
    print(f"{'total':18}{total_inputs:>12,}{total_unhandled:>11,}")
    print(f"unhandled: {known:,} from defects already reported (labelled known), {total_unhandled - known:,} new")
    report = {
        "engine": engine,
        "runs_per_target": args.runs,
        "targets": results,
        "inputs": total_inputs,
        "unhandled": total_unhandled,
        "unhandled_known": known,
        "unhandled_new": total_unhandled - known,
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if total_unhandled or any(result.get("died") for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
