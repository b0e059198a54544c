"""Lazy re-exports for the packages' ``__init__`` modules (PEP 562).

A package lists its public names in ``__all__``, imports them under ``TYPE_CHECKING`` (so type checkers and
readers see where each comes from), and resolves them on first use through :func:`lazy_exports`. Importing the
package then costs nothing beyond the package itself: a backend's client library (redis, psycopg, httpx, the MCP
SDK) is imported only when one of its names is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, origins: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``origins`` maps each lazy name to its module."""

    def __getattr__(name: str) -> object:
        origin = origins.get(name)
        if origin is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin), name)
        setattr(sys.modules[package], name, value)  # from now on a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(origins))

    return __getattr__, __dir__
