"""Audit entries: what one call or decision looks like in the log (SPEC.md "Audit log", entry schema).

An :class:`AuditEvent` is what a caller records: the event kind, who, what, the decision. The log turns it into
an *entry* by adding four members it owns — ``v`` (1), ``index`` (its position, from 0), ``prev`` (the leaf hash
of the entry before it, base64url, ``null`` for the first) and ``time`` (milliseconds since the Unix epoch, from
the log's clock) — and stores ``JCS(entry)``. The leaf hash is ``H(0x00 ‖ JCS(entry))`` (RFC 9162 §2.1.1).

Arguments and results are sensitive: an event always carries their hashes (``args_hash``, ``result_hash`` =
b64u(H(JCS(value))), see :func:`json_hash`) and carries the values themselves only when the deployment says so.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from typing import Any, Final

from mcps.core.canonical import canonicalize, parse_canonical
from mcps.core.encoding import b64u_encode, is_b64u
from mcps.core.errors import ErrorCode, McpsError

__all__ = [
    "ENTRY_VERSION",
    "AuditEvent",
    "build_entry",
    "json_hash",
    "parse_entry",
]

ENTRY_VERSION: Final = 1
LOG_OWNED_MEMBERS: Final = frozenset({"v", "index", "prev", "time"})
_EVENT: Final = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_CODE: Final = re.compile(r"MCPS-[0-9]{3}")
_MAX_TEXT: Final = 1024
_DECISIONS: Final = frozenset({"allow", "deny"})


def json_hash(value: Any) -> str:
    """``b64u(H(JCS(value)))``: how entries refer to arguments and results they do not hold."""
    return b64u_encode(hashlib.sha256(canonicalize(value)).digest())


def _malformed(detail: str) -> McpsError:
    return McpsError(ErrorCode.MALFORMED_JSON, "audit event is malformed", detail=detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One thing that happened. Every member but ``event`` is optional; absent members are left out of the entry.

    ``event`` names the kind: ``call``, ``result``, ``deny``, ``list``, ``pin``, ``revoke``, ``external``… (lower
    case, ``[a-z][a-z0-9_.-]{0,31}``). ``data`` holds anything else an external producer wants recorded.
    """

    event: str
    agent: str | None = None
    kid: str | None = None
    trust_level: int | None = None
    method: str | None = None
    tool: str | None = None
    request_id: str | int | None = None
    args_hash: str | None = None
    result_hash: str | None = None
    decision: str | None = None
    code: str | None = None
    upstream: str | None = None
    latency_ms: int | None = None
    arguments: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    data: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or _EVENT.fullmatch(self.event) is None:
            raise _malformed("event must match [a-z][a-z0-9_.-]{0,31}")
        for name in ("agent", "kid", "method", "tool", "upstream"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > _MAX_TEXT):
                raise _malformed(f"{name} must be a string of at most {_MAX_TEXT} characters")
        if self.trust_level is not None and (type(self.trust_level) is not int or not 0 <= self.trust_level <= 4):
            raise _malformed("trust_level must be an integer 0..4")
        if self.request_id is not None and not (
            (isinstance(self.request_id, str) and len(self.request_id) <= _MAX_TEXT) or type(self.request_id) is int
        ):
            raise _malformed("request_id must be a string or an integer")
        for name in ("args_hash", "result_hash"):
            value = getattr(self, name)
            if value is not None and not is_b64u(value, min_bytes=32, max_bytes=32):
                raise _malformed(f"{name} must be base64url of a SHA-256 digest")
        if self.decision is not None and self.decision not in _DECISIONS:
            raise _malformed("decision must be 'allow' or 'deny'")
        if self.code is not None and (not isinstance(self.code, str) or _CODE.fullmatch(self.code) is None):
            raise _malformed("code must look like MCPS-016")
        if self.latency_ms is not None and (type(self.latency_ms) is not int or self.latency_ms < 0):
            raise _malformed("latency_ms must be a non-negative integer")
        for name in ("arguments", "result", "data"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise _malformed(f"{name} must be an object")

    @classmethod
    def from_json(cls, value: object) -> AuditEvent:
        """Build an event from a parsed JSON object (e.g. ``mcps audit append``); unknown members are refused."""
        if not isinstance(value, dict):
            raise _malformed("an audit event is a JSON object")
        known = set(_FIELDS)
        unknown = sorted(set(value) - known)
        if unknown:
            owned = sorted(set(unknown) & LOG_OWNED_MEMBERS)
            if owned:
                raise _malformed(f"members {owned} are set by the log, not by the caller")
            raise _malformed(f"unknown members {unknown}; put extra fields under 'data'")
        if "event" not in value:
            raise _malformed("'event' is required")
        try:
            return cls(**value)
        except TypeError as exc:  # pragma: no cover - keys were checked above
            raise _malformed(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        """The event's members, absent ones left out."""
        return {name: value for name in _FIELDS if (value := getattr(self, name)) is not None}


_FIELDS: Final = tuple(f.name for f in fields(AuditEvent))


def build_entry(event: AuditEvent, *, index: int, prev: bytes | None, time_ms: int) -> bytes:
    """``JCS`` of the entry for ``event`` at ``index`` after the leaf hash ``prev``."""
    entry = event.to_json()
    entry["v"] = ENTRY_VERSION
    entry["index"] = index
    entry["prev"] = None if prev is None else b64u_encode(prev)
    entry["time"] = time_ms
    return canonicalize(entry)


def parse_entry(data: bytes) -> dict[str, Any]:
    """Parse stored entry bytes; raises ``ValueError`` unless they are exactly ``JCS`` of a JSON object with its log
    members (SPEC §8.1): bytes that are not their own canonical form (duplicate members, other spellings, whitespace)
    hash to a leaf no evidence can reproduce, and nesting too deep to read is refused like any other defect."""
    try:
        entry = parse_canonical(data)
    except McpsError as exc:
        raise ValueError(f"entry is not canonical JSON: {exc.diagnostics()}") from exc
    if not isinstance(entry, dict):
        raise ValueError("entry is not a JSON object")  # noqa: TRY004 - one error type for every bad entry
    version, index, time_ms = entry.get("v"), entry.get("index"), entry.get("time")
    if type(version) is not int or version != ENTRY_VERSION or type(index) is not int or type(time_ms) is not int:
        raise ValueError("entry lacks v, index or time")  # type() is int: a bool is not an integer here
    prev = entry.get("prev", 0)
    if prev is not None and not isinstance(prev, str):
        raise ValueError("entry prev is neither null nor a string")
    return entry
