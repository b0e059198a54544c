"""Imports only point down the layers (DESIGN.md §3, issue 9 §5): every module under ``src/mcps`` is parsed with
``ast`` and each of its imports of ``mcps`` — at the top, inside functions, under ``TYPE_CHECKING``, or through
``importlib.import_module`` — must name a module in its own layer or a lower one.

Layers, lowest first. ``mcps.verifier`` is the recipe layer: the message verifier and signer composed from the
envelope (core), the passport resolver (identity) and a nonce store (stores), used by everything above. The
package itself (``mcps/__init__.py``) is the public face: it re-exports from the layers below and only the CLI
sits above it. ``mcps._version`` holds the version alone, so that any layer may read it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mcps
from mcps import _version

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "mcps"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("mcps.core", "mcps._version")),
    ("identity", ("mcps.identity",)),
    ("stores", ("mcps.stores",)),
    ("recipes", ("mcps.verifier",)),
    ("policy", ("mcps.policy",)),
    ("audit", ("mcps.audit",)),
    ("bindings", ("mcps.bindings", "mcps.http_api")),  # http_api: plain HTTP APIs, beside the MCP SDK bindings
    ("gateway", ("mcps.gateway",)),
    ("package", ("mcps",)),
    ("cli", ("mcps.cli", "mcps.__main__")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The rank of the layer holding ``module``: the longest matching prefix decides (``mcps`` matches last)."""
    best: tuple[int, int] | None = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its folder to LAYERS in {__file__}")
    return best[0]


def _resolve(name: str) -> str:
    """``from mcps.x import y``: the module ``mcps.x.y`` when ``y`` is a submodule, else ``mcps.x``."""
    return name if name in MODULES else name.rsplit(".", 1)[0]


def imports_of(module: str, path: Path) -> set[str]:
    """Every ``mcps`` module that ``module`` imports, wherever the import statement is."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.update(_resolve(f"{target}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {name for name in found if name == "mcps" or name.startswith("mcps.")}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_point_down(module: str) -> None:
    rank = layer_of(module)
    upward = sorted(
        f"{module} ({LAYERS[rank][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for target in imports_of(module, MODULES[module])
        if layer_of(target) > rank
    )
    assert upward == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The parser is what the test rests on: it must find imports inside functions and relative ones."""
    source = tmp_path / "mod.py"
    source.write_text(
        "import importlib\n"
        "def f():\n"
        "    from mcps.bindings import channel\n"
        "    import mcps.cli.main\n"
        "    return importlib.import_module('mcps.audit.siem')\n"
        "from .. import verifier\n"
    )
    found = imports_of("mcps.identity.mod", source)
    assert {"mcps.bindings.channel", "mcps.cli.main", "mcps.audit.siem", "mcps.verifier"} <= found
    assert layer_of("mcps.identity.mod") < layer_of("mcps.verifier")


def test_the_version_has_one_value() -> None:
    assert mcps.__version__ == _version.__version__
