"""``make demo``: the gateway demo runs end to end on real processes and every scenario behaves as expected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "gateway_demo.py"
CODES = ("MCPS-004", "MCPS-005", "MCPS-011", "MCPS-009", "MCPS-016", "MCPS-029", "MCPS-008", "MCPS-003")


def test_the_gateway_demo_refuses_every_attack_with_its_code() -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    done = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, check=False, env=env, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert "all scenarios behaved as expected" in done.stdout
    assert "✗" not in done.stdout
    for code in CODES:
        assert code in done.stdout
    assert "intact" in done.stdout
    assert "caught" in done.stdout
