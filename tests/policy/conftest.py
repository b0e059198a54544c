"""The ``policy`` fixture: a policy built from TOML text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mcps.policy import PolicyFile
from mcps.stores.counters import CounterStore, MemoryCounterStore

PolicyFactory = Callable[..., PolicyFile]


@pytest.fixture
def policy(tmp_path: Path) -> PolicyFactory:
    """``policy(text, counters=None)``: the policy of that TOML text (``mcps_policy = 1`` is prepended), loaded from a
    file in ``tmp_path`` so that hooks find their lists there."""

    def make(text: str, counters: CounterStore | None = None) -> PolicyFile:
        path = tmp_path / "policy.toml"
        path.write_text("mcps_policy = 1\n" + text, encoding="utf-8")
        return PolicyFile.load(path, counters=counters if counters is not None else MemoryCounterStore())

    return make
