"""Every code block in README.md runs as shown (issue 9 §3): a new user can follow it from top to bottom.

The blocks run in order, in one temporary directory that holds a copy of ``examples/`` (what a clone's top
directory offers), with this environment's ``mcps`` and ``python`` first on ``PATH``:

* ```` ```sh ```` (or ``bash``, ``shell``) — run with ``bash -e -o pipefail``; it must exit 0. A line that is
  meant to be refused is written ``command || echo …`` with the code it must get in its comment (``# MCPS-005``):
  that code must then appear on the block's stderr, so an acceptance where a refusal belongs fails the test.
  Background jobs (``&``) are killed with the block's process group when it ends.
* ```` ```python ```` — saved to a file and run with this interpreter; it must exit 0.
* ```` ```json ```` — must parse. Any block with ``file=NAME`` in its info string (e.g. ```` ```yaml file=gw.yaml ````)
  is written to ``NAME`` in the directory before the blocks after it run.
* The gateway examples' port, ``18787``, is replaced in shell blocks by a free port, so concurrent runs never
  collide; nothing else is changed.
* ``no-run`` in the info string (```` ```sh no-run ````) marks a block that cannot run here (``pip install``,
  ``make test`` itself). It must be rare: at most :data:`MAX_NOT_RUN` of them.

Nothing here knows what the README says; a new section is covered by adding its blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELLS = frozenset({"sh", "bash", "shell"})
MAX_NOT_RUN = 3
GATEWAY_PORT = "18787"
"""The port the README's gateway examples use; the test runs them on a free port instead (the same everywhere)."""
BLOCK_TIMEOUT = 120
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_EXPECTED_CODE = re.compile(r"\|\|.*#.*?\b(MCPS-\d{3})\b")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    options: tuple[str, ...]
    code: str

    @property
    def runs(self) -> bool:
        return "no-run" not in self.options

    @property
    def file(self) -> str | None:
        names = [option.removeprefix("file=") for option in self.options if option.startswith("file=")]
        return names[0] if names else None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in _FENCE.finditer(text):
        language, *options = match.group(1).split() or [""]
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(line, language, tuple(options), match.group(2)))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_parser_finds_the_blocks() -> None:
    sample = "text\n```sh no-run\nmake test\n```\n\n```python\nprint(1)\n```\n```yaml file=a.yaml\nk: v\n```\n"
    blocks = readme_blocks(sample)
    assert [(b.line, b.language, b.runs, b.file) for b in blocks] == [
        (2, "sh", False, None),
        (6, "python", True, None),
        (9, "yaml", True, "a.yaml"),
    ]
    assert blocks[1].code == "print(1)\n"
    assert _EXPECTED_CODE.search('mcps verify < m.json || echo "refused"   # MCPS-005: replay')
    assert not _EXPECTED_CODE.search("mcps audit append   # MCPS-016 in the event")


def test_every_block_says_what_it_is_and_few_do_not_run() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        assert block.language, f"{block}: give the block a language (sh, python, json, …)"
    not_run = [block for block in BLOCKS if not block.runs]
    assert len(not_run) <= MAX_NOT_RUN, f"too many no-run blocks: {[str(b) for b in not_run]}"


def test_files_the_readme_links_to_exist() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    for script in re.findall(r"\bexamples/[\w./-]+\.py\b", text):
        assert (ROOT / script).exists(), f"README names {script}, which does not exist"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(block: Block, argv: list[str], cwd: Path, env: dict[str, str], logs: Path) -> tuple[str, str]:
    """Run one block in its own process group, output to files (a background job may keep pipes open)."""
    out_path, err_path = logs / f"{block.line}.out", logs / f"{block.line}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever the block left running (servers started with &)
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    assert code == 0, f"{block} exited {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    return stdout, stderr


def test_every_block_runs_as_shown(tmp_path: Path) -> None:
    work, logs, scripts = tmp_path / "work", tmp_path / "logs", tmp_path / "scripts"
    for directory in (logs, scripts):
        directory.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("keys", "__pycache__"))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MCPS_EXAMPLE_PORT": str(_free_port()),  # the examples' HTTP port: not 8000, which others may use
        "MCPS_STATE_DIR": str(tmp_path / "state"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    gateway_port = str(_free_port())  # the README's gateway listens on 18787: here a free port, so runs never collide
    ran = 0
    for block in BLOCKS:
        if block.file is not None:
            (work / block.file).parent.mkdir(parents=True, exist_ok=True)
            (work / block.file).write_text(block.code, encoding="utf-8")
        if not block.runs:
            continue
        if block.language in SHELLS:
            code = block.code.replace(GATEWAY_PORT, gateway_port)
            stdout, stderr = _run(block, ["bash", "-e", "-o", "pipefail", "-c", code], work, env, logs)
            for code in _EXPECTED_CODE.findall(block.code):
                assert code in stderr, f"{block}: a line expects {code}, stderr has:\n{stderr}"
        elif block.language == "python":
            script = scripts / f"block_{block.line}.py"
            script.write_text(block.code, encoding="utf-8")
            stdout, stderr = _run(block, [sys.executable, str(script)], work, env, logs)
        elif block.language == "json":
            json.loads(block.code)
            continue
        else:
            assert block.file is not None, f"{block}: a {block.language} block runs nowhere; give it file=NAME"
            continue
        assert "Traceback" not in stdout + stderr, f"{block}\n{stderr}"
        ran += 1
    assert ran >= 8


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.runs], ids=str)
def test_blocks_that_do_not_run_are_shell_commands(block: Block) -> None:
    assert block.language in SHELLS
