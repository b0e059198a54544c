"""Each layer exports what applications use from one place (issue 15.4): ``mcps.identity``, ``mcps.stores``,
``mcps.audit``, ``mcps.bindings`` and the top-level ``mcps``. Names are resolved lazily (PEP 562) and typed."""

from __future__ import annotations

import importlib

import pytest

LAYER_PACKAGES = ["mcps", "mcps.identity", "mcps.stores", "mcps.audit", "mcps.bindings"]


@pytest.mark.parametrize("package", LAYER_PACKAGES)
def test_each_layer_exports_from_one_place(package: str) -> None:
    """Every name in a layer package's ``__all__`` is the object its defining module holds, and ``dir`` lists it."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        defined_in = getattr(value, "__module__", None)
        if isinstance(defined_in, str) and defined_in.startswith("mcps."):
            assert getattr(importlib.import_module(defined_in), name, value) is value
        assert name in dir(module)


README_NAMES = {
    "mcps.identity": {
        "PassportResolver": "mcps.identity.resolver",
        "TrustAnchors": "mcps.identity.anchors",
        "RemoteTrustAnchors": "mcps.identity.remote_anchors",
        "MemoryRevocationStore": "mcps.identity.revocation",
        "GrantVerifier": "mcps.identity.grants",
        "issue_passport": "mcps.identity.passports",
    },
    "mcps.stores": {
        "SqliteRevocationStore": "mcps.stores.revocation_sqlite",
        "RedisRevocationStore": "mcps.stores.revocation_redis",
        "SqliteNonceStore": "mcps.stores.sqlite_nonces",
        "RedisNonceStore": "mcps.stores.redis_nonces",
    },
    "mcps.bindings": {
        "ChannelSecurity": "mcps.bindings.channel",
        "GrantRequirement": "mcps.bindings.grants",
        "ToolGuard": "mcps.bindings.tools",
        "UnsafeTrustOnFirstUse": "mcps.bindings.tofu",
        "signed_streamable_http_app": "mcps.bindings.http",
    },
}


@pytest.mark.parametrize("package", sorted(README_NAMES))
def test_names_the_readme_uses_are_exported_by_their_layer(package: str) -> None:
    """Issue 15.4: the README named classes that neither ``mcps`` nor ``mcps.identity`` exported."""
    module = importlib.import_module(package)
    for name, origin in README_NAMES[package].items():
        assert name in module.__all__
        assert getattr(module, name).__module__ == origin


def test_an_unknown_name_is_an_attribute_error() -> None:
    missing = "Nope"
    for package in ("mcps", "mcps.identity", "mcps.stores"):
        with pytest.raises(AttributeError, match="no attribute 'Nope'"):
            getattr(importlib.import_module(package), missing)
