"""``make demo``: the core demo runs, accepts the genuine call and refuses every attack with its code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "core_demo.py"


def test_core_demo_accepts_the_call_and_refuses_each_attack() -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    done = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, check=False, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "accepted: tools/call transfer_funds" in done.stdout
    for code in ("MCPS-004", "MCPS-005", "MCPS-011", "MCPS-006", "MCPS-020"):
        assert code in done.stdout
    assert "✗" not in done.stdout
    assert "all steps behaved as expected" in done.stdout
