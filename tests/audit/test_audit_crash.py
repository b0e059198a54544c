"""Crash test: a writer under load is killed with SIGKILL at random moments; after each kill the log verifies and
every append that had returned (printed its receipt) is present with the same leaf."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.audit.verify import verify_log
from mcps.core.encoding import b64u_encode
from mcps.core.keys import load_private_key

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 12


def _run_until_killed(writer: subprocess.Popen[str], kill_after: int, acknowledged: dict[int, str]) -> None:
    """Read receipts; SIGKILL the writer after ``kill_after`` of them (a random moment inside some batch)."""
    assert writer.stdout is not None
    for seen, line in enumerate(writer.stdout, 1):
        index, leaf = line.split()
        acknowledged[int(index)] = leaf
        if seen >= kill_after:
            writer.send_signal(signal.SIGKILL)
            break
    for line in writer.stdout:  # receipts printed before the kill landed are acknowledged too
        index, leaf = line.split()
        acknowledged[int(index)] = leaf
    assert writer.wait(timeout=30) == -signal.SIGKILL


def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    db, key_path = tmp_path / "audit.db", tmp_path / "audit.key"
    rng = random.Random(4)  # noqa: S311 - fixed seed: reproducible kill points, not cryptography
    acknowledged: dict[int, str] = {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(KILLS):
        with subprocess.Popen(
            [sys.executable, str(WRITER), str(db), str(key_path)], stdout=subprocess.PIPE, text=True, env=env
        ) as writer:
            _run_until_killed(writer, rng.randint(1, 2000), acknowledged)

        log = SqliteAuditLog(db, key=load_private_key(key_path))
        try:
            verified = verify_log(log, log.public_key, log.origin)
            stored = {row.index: b64u_encode(row.leaf) for row in log.read_entries(0, verified.size)}
        finally:
            asyncio.run(log.aclose())
        missing = {i: leaf for i, leaf in acknowledged.items() if stored.get(i) != leaf}
        assert not missing, f"acknowledged appends lost after SIGKILL: {sorted(missing)[:10]}"
    assert len(acknowledged) > KILLS
