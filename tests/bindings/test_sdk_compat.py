"""The bindings' private SDK uses live in ``mcps.bindings._sdk`` only, and a release that moves one is named.

When an ``mcp`` release moves a private name, ``test_every_private_sdk_name_the_bindings_use_still_resolves``
fails with the list of what moved; the other tests keep the uses gathered in one module.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from mcp.server import Server
from mcp.server.mcpserver import MCPServer

from mcps.bindings import _sdk

SRC = Path(__file__).resolve().parents[2] / "src" / "mcps"
COMPAT = SRC / "bindings" / "_sdk.py"


def test_every_private_sdk_name_the_bindings_use_still_resolves() -> None:
    missing = _sdk.check_private_names()
    assert not missing, (
        "the installed mcp SDK moved or removed private names that mcps.bindings._sdk imports: "
        + ", ".join(missing)
        + " (find where this SDK version defines them and update mcps.bindings._sdk)"
    )
    server = MCPServer("compat")
    assert hasattr(server, _sdk.LOWLEVEL_ATTRIBUTE), (
        f"MCPServer no longer has {_sdk.LOWLEVEL_ATTRIBUTE}: update mcps.bindings._sdk.lowlevel_server"
    )
    assert isinstance(_sdk.lowlevel_server(server), Server)


def test_a_moved_name_is_reported_by_module_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("mcp.shared._httpx_utils")
    monkeypatch.delattr(module, "MCP_DEFAULT_TIMEOUT")
    assert _sdk.check_private_names() == ["mcp.shared._httpx_utils.MCP_DEFAULT_TIMEOUT"]


def test_an_mcpserver_without_its_lowlevel_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    server = MCPServer("compat")
    monkeypatch.delattr(server, _sdk.LOWLEVEL_ATTRIBUTE)
    with pytest.raises(_sdk.SdkMoved, match=re.escape("MCPServer._lowlevel_server")):
        _sdk.lowlevel_server(server)


def _private_uses(path: Path) -> list[str]:
    """Imports of private ``mcp`` modules and names, and ``_lowlevel_server`` attribute uses, in one file."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.module.split(".")[0] == "mcp":
            private = [part for part in node.module.split(".") if part.startswith("_")]
            private += [alias.name for alias in node.names if alias.name.startswith("_")]
            if private:
                uses.append(f"{path.relative_to(SRC)}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            uses += [
                f"{path.relative_to(SRC)}:{node.lineno} import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] == "mcp" and any(part.startswith("_") for part in alias.name.split("."))
            ]
        elif isinstance(node, ast.Attribute) and node.attr == _sdk.LOWLEVEL_ATTRIBUTE:
            uses.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value == _sdk.LOWLEVEL_ATTRIBUTE:
            uses.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    return uses


def test_private_sdk_uses_are_gathered_in_the_compat_module() -> None:
    elsewhere = [use for path in sorted(SRC.rglob("*.py")) if path != COMPAT for use in _private_uses(path)]
    assert elsewhere == [], "private SDK uses outside mcps.bindings._sdk: " + "; ".join(elsewhere)
    assert _private_uses(COMPAT), "the scan found nothing in the compat module: it no longer sees private uses"
