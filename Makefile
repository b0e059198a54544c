# mcps — developer entry points. Every target creates .venv itself when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint format bench clean bench-audit fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/core_demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples fuzz
	$(BIN)/ruff format --check src tests bench examples fuzz
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples fuzz
	$(BIN)/ruff format src tests bench examples fuzz

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_session.py
	$(BIN)/python bench/bench_identity.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist

bench-audit: $(STAMP)
	$(BIN)/python bench/bench_audit.py

# Long fuzz run of every reader (fuzz/run.py): atheris where it builds on this Python, else hypothesis.
# FUZZ_RUNS inputs per target; prints inputs and unhandled exceptions per target, writes fuzz/report.json.
FUZZ_RUNS ?= 100000
FUZZ_STAMP := $(VENV)/.installed-fuzz

$(FUZZ_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,fuzz]' || echo "fuzz: atheris does not install here; using hypothesis"
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	$(BIN)/python fuzz/run.py --runs $(FUZZ_RUNS)
