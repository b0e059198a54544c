"""Tool pinning in a signed client: what the application sees of ``tools/list``, and which tools it may call.

::

    lock = load_lockfile("mcps.lock")
    guard = ToolGuard(lock.server("urn:example:files"), on_report=print)
    transport = signed_stdio_client(params, security, server_identity="urn:example:files", tools=guard)

Every client transport has a guard. Without ``tools=`` it gets :meth:`ToolGuard.session_pins`: no lock to
compare with, so the first complete listing is accepted (its signatures still verified) and pinned for that
connection only; from then on the rules below apply to it as to a lock. It logs a WARNING per connection saying
so: to pin across sessions, record the tools in ``mcps.lock`` with ``mcps pin``.

The signed channel hands the guard every verified ``tools/list`` result, every
``notifications/tools/list_changed`` and every outgoing ``tools/call``. For each listed tool the guard

1. verifies its signature (``mcps/tool-sig``) against the key that signed the response — the pinned server
   key; an unsigned or badly signed tool is blocked (``invalid``, MCPS-008);
2. compares its pin hash with the lock (:func:`mcps.core.tools.compare_tools`): ``pinned`` passes;
   ``changed`` is blocked (MCPS-008); ``new`` and ``renamed`` are held unless ``approve`` says yes (the
   default, :func:`hold_unpinned`, holds them: fail closed).

Blocked and held tools are removed from the result the SDK (and so the application) receives, and a
``tools/call`` to any tool that is not currently allowed is refused locally with MCPS-008 — never sent. After
``notifications/tools/list_changed`` every call is refused until the tools are listed again. Each listing
produces a :class:`ToolReport` (``guard.report``, the ``on_report`` callback, and log lines on the
``mcps.bindings.tools`` logger: WARNING for each blocked or held tool).
"""

from __future__ import annotations

import errno
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PublicKey
from mcps.core.tools import (
    Lockfile,
    PinHash,
    ServerPins,
    ToolFinding,
    ToolStatus,
    compare_tools,
    dump_lockfile,
    parse_lockfile,
    pin_hash,
    removed_tools,
    verify_tool,
)

__all__ = [
    "ApprovalPolicy",
    "ToolDecision",
    "ToolGuard",
    "ToolReport",
    "hold_unpinned",
    "load_lockfile",
    "save_lockfile",
]

logger = logging.getLogger("mcps.bindings.tools")

ApprovalPolicy = Callable[[ToolFinding], bool]
"""Decides on a ``new`` or ``renamed`` tool: ``True`` lets the application see and call it."""

_APPROVABLE: Final = frozenset({ToolStatus.NEW, ToolStatus.RENAMED})


def hold_unpinned(_finding: ToolFinding) -> bool:
    """The default policy: approve nothing that is not pinned (new and renamed tools are held)."""
    return False


@dataclass(frozen=True, slots=True)
class ToolDecision:
    """One listed tool: what it is (``finding``) and whether the application may see and call it."""

    finding: ToolFinding
    allowed: bool

    @property
    def name(self) -> str:
        return self.finding.name


@dataclass(frozen=True, slots=True)
class ToolReport:
    """The outcome of one ``tools/list`` result. ``removed`` is filled only for a complete listing."""

    decisions: tuple[ToolDecision, ...]
    removed: tuple[str, ...] = ()
    complete: bool = True

    def names(self, status: ToolStatus) -> list[str]:
        return [decision.name for decision in self.decisions if decision.finding.status is status]

    @property
    def allowed(self) -> list[str]:
        return [decision.name for decision in self.decisions if decision.allowed]

    @property
    def refused(self) -> list[ToolDecision]:
        """Blocked (changed, invalid) and held (new, renamed, not approved) tools."""
        return [decision for decision in self.decisions if not decision.allowed]

    @property
    def clean(self) -> bool:
        """True when every listed tool is pinned and unchanged and no pinned tool is missing."""
        return all(decision.finding.status is ToolStatus.PINNED for decision in self.decisions) and not self.removed


class ToolGuard:
    """Per-connection tool pinning for a signed client. ``pins`` is this server's lock entry (``None``: none).

    Without a lock entry, :meth:`session_pins` pins the first listing for the connection instead.
    """

    def __init__(
        self,
        pins: ServerPins | None,
        *,
        approve: ApprovalPolicy = hold_unpinned,
        on_report: Callable[[ToolReport], None] | None = None,
    ) -> None:
        self._pins = pins
        self._approve = approve
        self._on_report = on_report
        self._allowed: dict[str, PinHash] = {}
        self._listing: list[ToolFinding] = []  # findings of the listing in progress (pages so far)
        self._stale = False
        self._first_use = False  # session pins only: accepting (and pinning) until a listing is complete
        self.report: ToolReport | None = None

    @classmethod
    def session_pins(
        cls,
        server_identity: str | None = None,
        *,
        approve: ApprovalPolicy = hold_unpinned,
        on_report: Callable[[ToolReport], None] | None = None,
    ) -> ToolGuard:
        """A guard with nothing pinned that pins the server's first complete listing, for one connection.

        The default of every client transport created without ``tools=``. Until the first listing is complete,
        each validly signed ``new`` tool is allowed and pinned (unsigned, badly signed and duplicated ones are
        still blocked, MCPS-008); after it, listings are compared with these pins exactly as with a lock: a
        changed tool is blocked, a new one held unless ``approve`` says yes, a rename reported. The pins are
        forgotten with the connection, so a server that changes its tools between sessions is not caught: pin
        them in ``mcps.lock`` (``mcps pin``) for that. Logs one WARNING saying so.
        """
        server = server_identity if server_identity is not None else "this server"
        logger.warning(
            "mcps: tool definitions of %s are pinned for this session only (the first listing is trusted); "
            "to pin them across sessions, record them in mcps.lock with `mcps pin` and pass "
            "ToolGuard(load_lockfile(...).server(...)) as tools=",
            server,
        )
        guard = cls(None, approve=approve, on_report=on_report)
        guard._first_use = True
        return guard

    @property
    def stale(self) -> bool:
        """True after a verified ``notifications/tools/list_changed``, until a complete listing has been checked:
        meanwhile every ``tools/call`` is refused locally (MCPS-008)."""
        return self._stale

    @property
    def allowed(self) -> Mapping[str, PinHash]:
        """Tools the application may call now, with their pin hashes (what ``mcps pin`` records)."""
        return dict(self._allowed)

    # --- hooks called by the signed channel ---------------------------------------------------------------------

    def check_request(self, message: Mapping[str, Any]) -> None:
        """Before a request is sent: refuse (MCPS-008) a ``tools/call`` to a tool that is not allowed now."""
        method = message.get("method")
        params = message.get("params") or {}
        if method == "tools/list" and not params.get("cursor"):
            self._listing = []
        if method != "tools/call":
            return
        name = params.get("name")
        if self._stale:
            raise McpsError(
                ErrorCode.TOOL_CHANGED,
                "tool list changed: list tools again before calling",
                detail=f"call {name!r} held until a fresh, complete listing is checked (a listing served from a "
                "client-side cache is not one: list with cache_mode='refresh')",
            )
        if not isinstance(name, str) or name not in self._allowed:
            listed = "" if self.report is not None else " (no tools listed yet: list tools before calling)"
            raise McpsError(
                ErrorCode.TOOL_CHANGED,
                "tool is not pinned or approved",
                detail=f"call to {name!r} refused locally: not in the verified, approved tool list{listed}",
            )

    def notification(self, message: Mapping[str, Any]) -> None:
        """A verified notification from the server: ``tools/list_changed`` makes the tool list stale."""
        if message.get("method") == "notifications/tools/list_changed":
            logger.warning("mcps: server says its tools changed; calls are held until tools are listed again")
            self._stale = True

    def filter_result(self, message: dict[str, Any], key: PublicKey) -> dict[str, Any]:
        """A verified ``tools/list`` result signed with ``key``: return it without blocked and held tools."""
        result = message["result"]
        tools = result.get("tools")
        if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
            raise McpsError(ErrorCode.TOOL_CHANGED, "tool list is malformed", detail="result.tools is not a list")
        decisions = [self._decide(finding) for finding in self._findings(tools, key)]
        complete = not result.get("nextCursor")
        if self._first_use:
            self._pin_first_use(decisions, key, complete=complete)
        self._listing.extend(decision.finding for decision in decisions)
        removed = tuple(removed_tools(self._pins, self._listing)) if complete else ()
        kept = []
        for tool, decision in zip(tools, decisions, strict=True):
            if decision.allowed:
                kept.append(tool)
                self._allowed[decision.name] = pin_hash(tool)
            else:
                self._allowed.pop(decision.name, None)
        if complete:
            listed = {finding.name for finding in self._listing}
            self._allowed = {name: pin for name, pin in self._allowed.items() if name in listed}
            self._stale = False
        self._publish(ToolReport(tuple(decisions), removed, complete))
        # ttlMs 0: the SDK's client cache (2026-07-28 hints) must not serve a listing this guard has not just
        # checked, so each listing the application asks for is fetched and compared (SPEC.md §10.4).
        return {**message, "result": {**result, "tools": kept, "ttlMs": 0}}

    # --- internals ----------------------------------------------------------------------------------------------

    def _findings(self, tools: list[dict[str, Any]], key: PublicKey) -> list[ToolFinding]:
        """Each entry of this page classified. A name listed more than once in the listing — counting every entry,
        signed or not, on this page and the earlier pages of the same listing — is ``invalid`` everywhere it is
        listed, before anything else is looked at: which twin comes first, or on which page, cannot matter."""
        names = [tool.get("name") for tool in tools]
        counts = Counter(name for name in names if isinstance(name, str))
        earlier = {finding.name for finding in self._listing}
        duplicated = {name for name, count in counts.items() if count > 1 or name in earlier}
        signed: list[dict[str, Any]] = []
        invalid: dict[int, ToolFinding] = {}
        for index, (name, tool) in enumerate(zip(names, tools, strict=True)):
            if isinstance(name, str) and name in duplicated:
                invalid[index] = ToolFinding(name, ToolStatus.INVALID, None, detail="name listed more than once")
                continue
            try:
                verify_tool(tool, key)
            except McpsError as error:
                invalid[index] = ToolFinding(
                    name if isinstance(name, str) else "", ToolStatus.INVALID, None, detail=error.diagnostics()
                )
                continue
            signed.append(tool)
        compared = iter(self._on_this_page(finding) for finding in compare_tools(self._pins, signed, kid=key.kid))
        return [invalid[index] if index in invalid else next(compared) for index in range(len(tools))]

    def _on_this_page(self, finding: ToolFinding) -> ToolFinding:
        """:func:`compare_tools` sees one page: a "rename" of a tool listed on an earlier page of this listing is
        a new tool with the same definition, not a rename."""
        listed_before = finding.previous is not None and any(seen.name == finding.previous for seen in self._listing)
        return replace(finding, status=ToolStatus.NEW, previous=None) if listed_before else finding

    def _decide(self, finding: ToolFinding) -> ToolDecision:
        if finding.status is ToolStatus.PINNED or (self._first_use and finding.status is ToolStatus.NEW):
            return ToolDecision(finding, allowed=True)
        allowed = finding.status in _APPROVABLE and self._approve(finding)
        return ToolDecision(finding, allowed=allowed)

    def _pin_first_use(self, decisions: list[ToolDecision], key: PublicKey, *, complete: bool) -> None:
        """Session pins: pin the tools of the first listing as they are allowed; stop learning once it is complete.

        Pinning page by page means a listing restarted before it completed cannot redefine a tool already seen.
        """
        pinned = dict(self._pins.tools) if self._pins is not None else {}
        for decision in decisions:
            if decision.allowed and decision.finding.pin is not None:
                pinned[decision.name] = decision.finding.pin
        self._pins = ServerPins(key.kid, pinned)
        if complete:
            self._first_use = False

    def _publish(self, report: ToolReport) -> None:
        self.report = report
        for decision in report.refused:
            finding = decision.finding
            what = "held" if finding.status in _APPROVABLE else "blocked"
            renamed = f" (renamed from {finding.previous!r})" if finding.previous is not None else ""
            code = ErrorCode.TOOL_CHANGED.mcps
            logger.warning("mcps %s tool %r: %s%s [%s]", what, finding.name, finding.status.value, renamed, code)
        for name in report.removed:
            logger.warning("mcps: pinned tool %r is no longer listed", name)
        if self._on_report is not None:
            self._on_report(report)


def load_lockfile(path: str | os.PathLike[str], *, create: bool = False) -> Lockfile:
    """Read ``mcps.lock`` (parsed strictly; ``ValueError`` when it is not a valid lock file).

    A missing file raises :class:`FileNotFoundError` naming it: a mistyped path must not read as a lock that pins
    nothing, where every tool would show as new. With ``create=True`` a missing file is a new, empty lock instead
    (nothing pinned), for a caller that is about to record pins and write it with :func:`save_lockfile`.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        if create:
            return Lockfile()
        raise FileNotFoundError(
            errno.ENOENT,
            "no such lock file (record a server's tools in it with `mcps pin`; "
            "load_lockfile(path, create=True) starts an empty one)",
            str(file),
        ) from None
    return parse_lockfile(data)


def save_lockfile(lock: Lockfile, path: str | os.PathLike[str]) -> None:
    """Write ``mcps.lock`` atomically (a temporary file renamed over the old one)."""
    file = Path(path)
    temporary = file.with_name(file.name + ".tmp")
    temporary.write_text(dump_lockfile(lock), encoding="utf-8")
    os.replace(temporary, file)
