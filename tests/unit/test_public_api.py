"""The package's public surface is exactly what ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

import mcps
from mcps.core.errors import ErrorCode

PUBLIC_MODULES = [
    "mcps",
    "mcps.core.canonical",
    "mcps.core.encoding",
    "mcps.core.envelope",
    "mcps.core.errors",
    "mcps.core.keys",
    "mcps.core.replay",
    "mcps.core.strict",
    "mcps.stores.nonces",
    "mcps.stores.redis_nonces",
    "mcps.stores.sqlite_nonces",
    "mcps.verifier",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_top_level_exports_every_public_name_it_imports() -> None:
    imported = {
        name
        for name, value in vars(mcps).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("mcps.")
    }
    assert imported == set(mcps.__all__) - {"__version__"}


def test_error_codes_are_stable() -> None:
    """Codes are wire format: 001-015 keep their adopted meanings and numbering never changes."""
    assert ErrorCode.BAD_SIGNATURE.mcps == "MCPS-004"
    assert ErrorCode.BAD_SIGNATURE.jsonrpc == -33004
    assert ErrorCode.REPLAY.value == 5
    assert ErrorCode.NO_COMMON_VERSION.value == 15
    assert [code.value for code in ErrorCode] == list(range(1, len(ErrorCode) + 1))
    assert ErrorCode.from_mcps("MCPS-030") is ErrorCode.STORE_UNAVAILABLE
