"""How the CEL implementation was chosen: compile and evaluate times of each candidate for representative policy
conditions, and which errors each catches at compile time.

Not part of ``make bench``: the candidates are not dependencies. Run each in a throwaway venv (two of them install
the same module name, ``cel``)::

    python3.11 -m venv .bench/cel-a && python3.11 -m venv .bench/cel-b
    .bench/cel-a/bin/pip install cel-python cel-expr-python common-expression-language
    .bench/cel-b/bin/pip install python-cel
    for c in cel-python cel-expr-python common-expression-language; do
        .bench/cel-a/bin/python bench/cel_candidates.py $c
    done
    .bench/cel-b/bin/python bench/cel_candidates.py python-cel

Each figure is the median of 5 batches; evaluation includes handing the arguments and the caller (Python dicts) to
the library, as the policy does on every call.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

EXPRESSIONS = {
    "or-compare": "args.amount <= 1000 || caller.level >= 3",
    "scope-in": "caller.level >= 2 && 'payments:write' in caller.scopes",
    "string": "args.path.startsWith('/srv/data/') && !args.path.contains('..')",
    "all-macro": "size(args.recipients) <= 5 && args.recipients.all(r, r.endsWith('@example.com'))",
    "has-in-list": "has(args.currency) && args.currency in ['USD', 'EUR']",
}
ERRORS = {
    "syntax": "args.amount <= ",
    "type": "args.amount <= 'x' + 1",
    "unknown name": "unknown_var > 1",
    "bad call": "size(1, 2, 3)",
}
ARGS = {"amount": 250, "currency": "USD", "path": "/srv/data/report.csv", "recipients": ["a@example.com"]}
CALLER = {"id": "agent-7", "level": 2, "scopes": ["payments:write", "tools:call"], "issuer": "i", "signed": True}


def per_call_us(function: Callable[[], object], count: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            function()
        samples.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(samples)


def candidate(name: str) -> tuple[Callable[[str], Any], Callable[[Any], Any]]:
    if name == "cel-python":
        import celpy  # noqa: PLC0415

        env = celpy.Environment()
        return (
            lambda source: env.program(env.compile(source)),
            lambda program: program.evaluate({"args": celpy.json_to_cel(ARGS), "caller": celpy.json_to_cel(CALLER)}),
        )
    if name == "cel-expr-python":
        from cel_expr_python import cel  # noqa: PLC0415

        kind = cel.Type
        env = cel.NewEnv(variables={"args": kind.Map(kind.STRING, kind.DYN), "caller": kind.Map(kind.STRING, kind.DYN)})
        return env.compile, lambda program: program.eval(data={"args": ARGS, "caller": CALLER}).value()
    import cel  # noqa: PLC0415 - common-expression-language and python-cel both install "cel"

    if name == "common-expression-language":
        return cel.compile, lambda program: program.execute({"args": ARGS, "caller": CALLER})
    return cel.Program, lambda program: program.execute(cel.Context(variables={"args": ARGS, "caller": CALLER}))


def main() -> int:
    name = sys.argv[1]
    compile_, evaluate = candidate(name)
    slow = name == "cel-python"
    print(f"## {name}")
    for label, source in EXPRESSIONS.items():
        program = compile_(source)
        result = evaluate(program)
        compiled = per_call_us(lambda source=source: compile_(source), 200 if slow else 2000)
        evaluated = per_call_us(lambda program=program: evaluate(program), 2000 if slow else 20000)
        print(f"{label:12} result={result!s:5} compile {compiled:8.1f} µs  evaluate {evaluated:7.2f} µs")
    for label, source in ERRORS.items():
        try:
            compile_(source)
        except Exception as exc:  # noqa: BLE001 - any exception means "caught at compile time"
            print(f"{label:12} caught at compile time ({type(exc).__name__})")
        else:
            print(f"{label:12} NOT caught at compile time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
