"""The package's public surface is exactly what each module's ``__all__`` says, and every name in it exists.

Public modules are all modules under ``mcps`` with no ``_``-prefixed part in their dotted name; they are found by
walking the package, so a new module is covered without editing this file. Step-skipping primitives stay private
(pyca's ``hazmat`` / sigstore's ``_internal`` model): the public surface is the recipes.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import mcps
from mcps.core.errors import ErrorCode, McpsError


def _public_modules() -> list[str]:
    names = ["mcps"]
    for info in pkgutil.walk_packages(mcps.__path__, "mcps."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def test_the_walk_finds_every_layer() -> None:
    for module in ("mcps.verifier", "mcps.core.envelope", "mcps.identity.resolver", "mcps.stores.redis_nonces"):
        assert module in PUBLIC_MODULES
    assert "mcps.cli.pin_cmd" in PUBLIC_MODULES
    assert "mcps.core._exports" not in PUBLIC_MODULES


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    if not hasattr(module, "__all__"):  # only a package __init__ that exports nothing may go without one
        public = [n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)]
        assert public == [], f"{module_name} has public names but no __all__"
        return
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name listed twice"
    assert [name for name in exported if not hasattr(module, name)] == []
    assert [name for name in exported if name.startswith("_")] == []


def test_top_level_exports_every_public_name_it_imports() -> None:
    imported = {
        name
        for name, value in vars(mcps).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("mcps.")
    }
    assert imported <= set(mcps.__all__)


def test_nonce_store_protocol_is_exported_at_the_top() -> None:
    from mcps import NonceStore, RedisNonceStore, SqliteNonceStore  # noqa: PLC0415

    assert isinstance(mcps.MemoryNonceStore(), NonceStore)
    assert RedisNonceStore.__name__ == "RedisNonceStore"
    assert SqliteNonceStore.__name__ == "SqliteNonceStore"


STEP_SKIPPING = {
    "authenticate": "skips the nonce (replay) and revocation checks",
    "verify_chain": "verifies a passport path without the minimum level or revocation",
    "verify_path": "verifies a passport path and level without revocation",
}


@pytest.mark.parametrize("name", sorted(STEP_SKIPPING))
def test_step_skipping_primitives_are_not_public(name: str) -> None:
    """``MessageVerifier.verify`` and ``PassportResolver.verify_passport`` are the recipes; a primitive that skips
    steps of them is not public anywhere: not a module's name, nor a public class's attribute."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert name not in getattr(module, "__all__", ()), f"{module_name} exports {name}: {STEP_SKIPPING[name]}"
        assert not hasattr(module, name), f"{module_name}.{name} is public: {STEP_SKIPPING[name]}"
        for exported in getattr(module, "__all__", ()):
            value = getattr(module, exported)
            if isinstance(value, type):
                assert not hasattr(value, name), f"{module_name}.{exported}.{name} is public: {STEP_SKIPPING[name]}"


async def test_public_passport_verification_is_the_whole_recipe_revocation_included() -> None:
    """Regression: ``PassportResolver.verify_passport`` was public and skipped revocation; ``mcps passport verify``
    had to remember to call ``check_revocation`` after it. Now the public method is the recipe."""
    from mcps.core.keys import PrivateKey  # noqa: PLC0415
    from mcps.identity.anchors import TrustAnchor, TrustAnchors  # noqa: PLC0415
    from mcps.identity.levels import TrustLevel  # noqa: PLC0415
    from mcps.identity.passports import issue_passport  # noqa: PLC0415
    from mcps.identity.resolver import PassportResolver  # noqa: PLC0415
    from mcps.identity.revocation import MemoryRevocationStore, RevocationKey  # noqa: PLC0415

    now, issuer, agent = 1_763_683_200, PrivateKey.generate(), PrivateKey.generate()
    token = issue_passport(
        issuer, iss="urn:test:issuer", sub="agent-1", agent_key=agent.public_key, level=TrustLevel.L3, now=now, ttl=3600
    )
    revocations = MemoryRevocationStore()
    resolver = PassportResolver(
        anchors=TrustAnchors([TrustAnchor(issuer.public_key, TrustLevel.L3)]),
        audience="urn:test",
        revocations=revocations,
    )
    assert (await resolver.verify_passport(token, None, now=now)).agent.agent_id == "agent-1"
    await revocations.revoke(RevocationKey.local("sub", "agent-1"), now=now)
    with pytest.raises(McpsError) as caught:
        await resolver.verify_passport(token, None, now=now)
    assert caught.value.code is ErrorCode.REVOKED


def _imported_after(statement: str) -> list[str]:
    heavy = ("redis", "psycopg", "mcp", "mcp_types", "httpx", "httpx2", "uvicorn", "starlette", "opentelemetry")
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.split()


@pytest.mark.parametrize("statement", ["import mcps", "import mcps.identity", "import mcps.stores"])
def test_import_mcps_does_not_import_backends(statement: str) -> None:
    """``import mcps`` stays cheap: no redis, psycopg, MCP SDK or httpx until a name that needs one is used."""
    assert _imported_after(statement) == []


def test_a_backend_is_imported_when_its_name_is_used() -> None:
    assert "redis" in _imported_after("from mcps import RedisNonceStore")


def test_error_codes_are_stable() -> None:
    """Codes are wire format: 001-015 keep their adopted meanings and numbering never changes."""
    assert ErrorCode.BAD_SIGNATURE.mcps == "MCPS-004"
    assert ErrorCode.BAD_SIGNATURE.jsonrpc == -33004
    assert ErrorCode.REPLAY.value == 5
    assert ErrorCode.NO_COMMON_VERSION.value == 15
    assert [code.value for code in ErrorCode] == list(range(1, len(ErrorCode) + 1))
    assert ErrorCode.from_mcps("MCPS-030") is ErrorCode.STORE_UNAVAILABLE
