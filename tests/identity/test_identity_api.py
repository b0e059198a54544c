"""Every name in the identity modules' ``__all__`` exists (the public surface of this layer)."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "mcps.identity.anchors",
    "mcps.identity.chains",
    "mcps.identity.grants",
    "mcps.identity.jws",
    "mcps.identity.levels",
    "mcps.identity.passports",
    "mcps.identity.resolver",
    "mcps.identity.revocation",
    "mcps.stores.revocation_redis",
    "mcps.stores.revocation_sqlite",
    "mcps.cli.identity_cmd",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert [n for n in module.__all__ if not hasattr(module, n)] == []
