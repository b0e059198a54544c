"""Compliance hooks: loaded by dotted path from a policy file, run after the rules and limits, failing closed.

A hook entry in a policy file names the hook and its options::

    hooks = [{ hook = "mcps.policy.sanctions:SanctionsScreen", args = ["counterparty"], list = "sdn.csv" }]

``hook`` is ``module:attribute`` (or ``module.attribute``); the attribute's ``from_policy(options, base_dir=...)``
builds the hook from the entry's other members (``timeout``, seconds, default 5, is the engine's: a hook that takes
longer denies). Relative paths in options are relative to ``base_dir``, the policy file's directory. A policy file
is code-equivalent configuration: whoever can edit it can run code through a hook path.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mcps.policy.model import ComplianceHook

__all__ = ["DEFAULT_HOOK_TIMEOUT", "HookRef", "load_hook"]

logger = logging.getLogger("mcps.policy")

DEFAULT_HOOK_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class HookRef:
    """A loaded hook: its rule id (``<rule>#hooks[i]``), its dotted path, the hook and its time limit."""

    id: str
    path: str
    hook: ComplianceHook
    timeout: float = DEFAULT_HOOK_TIMEOUT


def load_hook(path: str, options: Mapping[str, Any], *, base_dir: Path) -> ComplianceHook:
    """Import ``path`` and build the hook; ``ValueError`` (for the policy file's error) when anything is wrong."""
    module_name, colon, attribute = path.partition(":")
    if not colon:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"hook {path!r} is not 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an import may raise anything; it is a load error either way
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    target = getattr(module, attribute, None)
    factory = getattr(target, "from_policy", None)
    if not callable(factory):
        raise ValueError(f"{path!r} has no from_policy(options, base_dir=...)")  # noqa: TRY004 - a load error
    hook = factory(dict(options), base_dir=base_dir)  # ValueError for bad options propagates as is
    if not isinstance(hook, ComplianceHook):
        raise ValueError(f"{path!r}.from_policy returned no hook (no async screen(call, now=...))")  # noqa: TRY004
    return hook
