"""The Makefile makes .venv with any Python 3.11+ there is, not only ``python3.11`` (issue 9 §3).

Fake interpreters on a ``PATH`` of their own stand for what a machine may have: one that does not run (a pyenv
shim for a version that is not selected), one that is too old, one that will do.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
SUPPORTED = "#!/bin/sh\nexit 0\n"  # what `python -c 'sys.exit(sys.version_info < (3, 11))'` does on 3.11+
TOO_OLD = "#!/bin/sh\nexit 1\n"
BROKEN = "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n"

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _fake_path(tmp_path: Path, interpreters: dict[str, str]) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in interpreters.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def _make(path: str, *argv: str) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": path},
    )


def _chosen(path: str) -> str:
    done = _make(path, "--eval", "show-python: ; $(info chosen=$(PYTHON))", "show-python")  # runs no command
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().removeprefix("chosen=")


def test_the_first_candidate_that_runs_and_is_new_enough_is_chosen(tmp_path: Path) -> None:
    path = _fake_path(tmp_path, {"python3.13": BROKEN, "python3.12": TOO_OLD, "python3.11": SUPPORTED})
    assert _chosen(path) == "python3.11"


def test_a_newer_python_is_preferred(tmp_path: Path) -> None:
    path = _fake_path(tmp_path, {"python3.13": SUPPORTED, "python3.11": SUPPORTED, "python3": SUPPORTED})
    assert _chosen(path) == "python3.13"


def test_plain_python3_will_do(tmp_path: Path) -> None:
    assert _chosen(_fake_path(tmp_path, {"python3": SUPPORTED})) == "python3"


def test_no_python_new_enough_is_a_clear_error(tmp_path: Path) -> None:
    path = _fake_path(tmp_path, {"python3.13": BROKEN, "python3": TOO_OLD})
    venv = tmp_path / "venv"
    done = _make(path, f"VENV={venv}", f"{venv}/bin/python")
    assert done.returncode != 0
    assert "mcps needs Python 3.11 or newer" in done.stderr
    assert "make PYTHON=" in done.stderr
    assert not venv.exists()


def test_an_explicit_python_that_is_too_old_is_refused(tmp_path: Path) -> None:
    path = _fake_path(tmp_path, {"python3.9": TOO_OLD})
    venv = tmp_path / "venv"
    done = _make(path, "PYTHON=python3.9", f"VENV={venv}", f"{venv}/bin/python")
    assert done.returncode != 0
    assert "none of python3.9 is one" in done.stderr
