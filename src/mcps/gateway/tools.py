"""The gateway's view of each upstream's tools: pinned in the gateway's ``mcps.lock``, checked on every listing.

One :class:`UpstreamTools` per upstream, shared by every client of that upstream (SPEC.md §12.6 step 3):

* every ``tools/list`` result that passes through is compared with the pins (:func:`mcps.core.tools.
  compare_tools`), after each tool's signature is verified with the upstream's key when the upstream signs;
* a tool that is ``pinned`` passes (and then the policy filters it per caller); ``new`` and ``renamed`` tools
  are held (approve them with ``mcps gateway pin``); a ``changed`` or ``invalid`` tool is blocked for every client
  until the lock is updated — a rug pull seen once is refused for everyone (MCPS-008);
* ``notifications/tools/list_changed`` from the upstream is logged; the next listing that passes is compared as
  every listing is. Calls are not held meanwhile: a definition reaches a model only through a listing, and no
  listing reaches any client without this check; an agent's own mcps client holds its calls after
  ``list_changed`` until it has listed again (SPEC.md §10.4).

A call is allowed when its tool is pinned and not blocked. Before any listing has passed, calls to pinned tools
are allowed: the lock is the operator's approval, and a changed definition is blocked as soon as a listing shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey, PublicKey
from mcps.core.tools import ServerPins, ToolFinding, ToolStatus, compare_tools, sign_tool, verify_tool

__all__ = ["UpstreamTools"]

logger = logging.getLogger("mcps.gateway.tools")


class UpstreamTools:
    """Pins and state of one upstream's tools. ``pins`` is its entry in the gateway's lock (``None``: none)."""

    def __init__(self, upstream: str, pins: ServerPins | None) -> None:
        self.upstream = upstream
        self._pins = pins
        self._blocked: dict[str, str] = {}  # name -> why
        if pins is None or not pins.tools:
            logger.warning(
                "mcps gateway: no tools of upstream %r are pinned: every call is refused (MCPS-008) until they are "
                "(`mcps gateway pin`)",
                upstream,
            )

    def check_call(self, name: object) -> None:
        """Refuse (MCPS-008) a ``tools/call`` to a tool that is not allowed now."""
        if not isinstance(name, str) or self._pins is None or name not in self._pins.tools:
            raise McpsError(
                ErrorCode.TOOL_CHANGED, "tool is not pinned or approved", detail=f"upstream {self.upstream}"
            )
        if name in self._blocked:
            raise McpsError(ErrorCode.TOOL_CHANGED, detail=f"{name!r} blocked: {self._blocked[name]}")

    def is_pinned(self, name: object) -> bool:
        """Whether ``name`` is a tool pinned for this upstream (metrics label only pinned names)."""
        return isinstance(name, str) and self._pins is not None and name in self._pins.tools

    def reloaded(self, pins: ServerPins | None) -> UpstreamTools:
        """The same upstream's tools under new pins (a reload): a tool blocked under the old pins stays blocked while
        its pin is unchanged — the upstream still serves the definition that was caught — and is released when the
        operator pinned a new one."""
        fresh = UpstreamTools(self.upstream, pins)
        old = self._pins.tools if self._pins is not None else {}
        new = pins.tools if pins is not None else {}
        fresh._blocked = {name: why for name, why in self._blocked.items() if old.get(name) == new.get(name)}
        return fresh

    def list_changed(self) -> None:
        logger.warning("mcps gateway: upstream %r says its tools changed; the next listing is checked", self.upstream)

    def filter(
        self, tools: list[Any], *, signer: PublicKey | None, complete: bool, resign: PrivateKey | None, now: float
    ) -> list[dict[str, Any]]:
        """The tools of one listing page that clients may see: verified, pinned, not blocked.

        ``signer`` is the upstream key that verified the listing (``None`` for an unsigned upstream). ``resign``
        is the gateway's key when it signs the tools it lets through on an unsigned upstream's behalf.
        """
        candidates: list[Mapping[str, Any]] = []
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                logger.warning("mcps gateway: upstream %r listed a malformed tool; dropped", self.upstream)
                continue
            if signer is not None:
                try:
                    verify_tool(tool, signer)
                except McpsError as error:
                    self._block(ToolFinding(tool["name"], ToolStatus.INVALID, None, detail=error.diagnostics()))
                    continue
            candidates.append(tool)
        kept: list[dict[str, Any]] = []
        kid = signer.kid if signer is not None else None
        for tool, finding in zip(candidates, compare_tools(self._pins, candidates, kid=kid), strict=True):
            if finding.status is ToolStatus.PINNED and finding.name not in self._blocked:
                kept.append(sign_tool(tool, resign, now=now) if resign is not None else dict(tool))
            elif finding.status in (ToolStatus.CHANGED, ToolStatus.INVALID):
                self._block(finding)
            else:
                renamed = f" (renamed from {finding.previous!r})" if finding.previous else ""
                logger.warning(
                    "mcps gateway held tool %r of %r: %s%s", finding.name, self.upstream, finding.status.value, renamed
                )
        del complete  # every page is compared on its own; blocking is sticky until the lock changes
        return kept

    def _block(self, finding: ToolFinding) -> None:
        if finding.name not in self._blocked:
            logger.warning(
                "mcps gateway blocked tool %r of %r: %s [%s]",
                finding.name,
                self.upstream,
                finding.detail or finding.status.value,
                ErrorCode.TOOL_CHANGED.mcps,
            )
        self._blocked[finding.name] = finding.detail or finding.status.value
