"""The README's examples run: the signed agent starts the signed server and makes one verified call."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from mcps import PrivateKey
from mcps.core.keys import save_private_key

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_signed_agent_calls_signed_server(tmp_path: Path) -> None:
    for name in ("signed_server.py", "signed_agent.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    for name in ("server", "agent"):
        key = PrivateKey.generate()  # test keys, made per run
        save_private_key(key, tmp_path / f"{name}.pem")
        (tmp_path / f"{name}.pem.pub.jwk").write_text(json.dumps(key.public_key.to_jwk()))
    agent = PrivateKey.from_pem((tmp_path / "agent.pem").read_bytes())
    done = subprocess.run(
        [sys.executable, str(tmp_path / "signed_agent.py")], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"noted for {agent.kid[:8]}…: ship it"
