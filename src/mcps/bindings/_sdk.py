"""Every use of a private part of the MCP SDK (``mcp`` 2.x), in one place.

The bindings need a few names the SDK does not export publicly: the stream protocols its transports and sessions
speak, the tuple a client transport yields, the HTTP client's default timeouts, and an ``MCPServer``'s low-level
server. They are imported here and nowhere else (``tests/bindings/test_sdk_compat.py`` checks both), so when an
SDK release moves one, this module fails on import with a message naming what moved and where it was, instead of
an ``ImportError`` deep inside a binding.

:data:`PRIVATE_NAMES` lists them; :func:`check_private_names` resolves each and reports the missing ones.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from mcp.server import Server
from mcp.server.mcpserver import MCPServer

__all__ = [
    "MCP_DEFAULT_SSE_READ_TIMEOUT",
    "MCP_DEFAULT_TIMEOUT",
    "PRIVATE_NAMES",
    "ReadStream",
    "SdkMoved",
    "TransportStreams",
    "WriteStream",
    "check_private_names",
    "lowlevel_server",
]

PRIVATE_NAMES: Final = (
    ("mcp.shared._stream_protocols", "ReadStream"),
    ("mcp.shared._stream_protocols", "WriteStream"),
    ("mcp.client._transport", "TransportStreams"),
    ("mcp.shared._httpx_utils", "MCP_DEFAULT_TIMEOUT"),
    ("mcp.shared._httpx_utils", "MCP_DEFAULT_SSE_READ_TIMEOUT"),
)
"""(module, name) of every private SDK name the bindings import (tested against mcp 2.3)."""

LOWLEVEL_ATTRIBUTE: Final = "_lowlevel_server"
"""The ``MCPServer`` attribute holding its low-level ``Server`` (mcp 2.3 has no public accessor)."""


class SdkMoved(ImportError):
    """The installed ``mcp`` SDK no longer has a private name the mcps bindings rely on."""


def check_private_names() -> list[str]:
    """``module.name`` of each entry of :data:`PRIVATE_NAMES` that the installed SDK no longer has."""
    missing = []
    for module_name, name in PRIVATE_NAMES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(f"{module_name}.{name}")
            continue
        if not hasattr(module, name):
            missing.append(f"{module_name}.{name}")
    return missing


def _moved_message(missing: list[str]) -> str:
    return (
        "the installed mcp SDK moved or removed names the mcps bindings use (private in mcp 2.3): "
        + ", ".join(missing)
        + "; update mcps.bindings._sdk for this SDK version"
    )


try:
    from mcp.client._transport import TransportStreams
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
    from mcp.shared._stream_protocols import ReadStream, WriteStream
except ImportError as exc:  # pragma: no cover - only with an SDK release that moved them
    raise SdkMoved(_moved_message(check_private_names() or [str(exc)])) from exc


def lowlevel_server(server: Server[Any] | MCPServer) -> Server[Any]:
    """The low-level ``Server`` that runs ``server`` (itself when it is one)."""
    if isinstance(server, Server):
        return server
    # What MCPServer's own run_stdio_async runs (mcp 2.3).
    lowlevel = getattr(server, LOWLEVEL_ATTRIBUTE, None)
    if not isinstance(lowlevel, Server):
        raise SdkMoved(_moved_message([f"MCPServer.{LOWLEVEL_ATTRIBUTE}"]))
    return lowlevel
