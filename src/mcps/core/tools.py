"""Tool integrity: signed tool definitions, pin hashes, the ``mcps.lock`` file and the pin comparison (SPEC §8).

Pure: no I/O, an explicit ``now``.

* **Tool signature.** A server signs each tool definition it lists: ``tool._meta["mcps/tool-sig"]`` =
  ``{v, alg, kid, iat, sig}`` over ``"mcps.v1.tool\\n" ‖ JCS(T')``, where ``T'`` is the tool without that
  member (and without ``_meta`` when nothing else is left in it). :func:`verify_tool` checks it against the
  server's pinned key; every failure is MCPS-008.
* **Pin hash.** ``b64u(SHA-256("mcps.v1.tool-pin\\n" ‖ JCS({name, title, description, inputSchema,
  outputSchema, annotations})))``, members that are absent or null omitted: what the model reads and what the
  tool accepts and returns. Icons, ``execution`` and ``_meta`` are not pinned.
* **Lock file.** Per server identity: the kid of the key that signs its tools, and tool name → pin hash.
  :func:`dump_lockfile` writes it deterministically (sorted keys, two-space indent, one tool per line).
* **Comparison.** :func:`compare_tools` classifies each listed tool against the pins: ``pinned``, ``changed``
  (same name, other hash: a rug pull), ``renamed`` (a pinned tool under a new name) or ``new``.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NewType

from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_decode, b64u_encode, is_b64u
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey, PublicKey
from mcps.core.strict import parse_message

__all__ = [
    "LOCKFILE_VERSION",
    "PINNED_MEMBERS",
    "PIN_CONTEXT",
    "TOOL_SIG_CONTEXT",
    "TOOL_SIG_KEY",
    "Lockfile",
    "PinHash",
    "ServerPins",
    "ToolFinding",
    "ToolStatus",
    "compare_tools",
    "dump_lockfile",
    "parse_lockfile",
    "pin_hash",
    "removed_tools",
    "sign_tool",
    "tool_signing_input",
    "verify_tool",
]

TOOL_SIG_KEY: Final = "mcps/tool-sig"
TOOL_SIG_CONTEXT: Final = b"mcps.v1.tool\n"
PIN_CONTEXT: Final = b"mcps.v1.tool-pin\n"
PINNED_MEMBERS: Final = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
LOCKFILE_VERSION: Final = 1
_VERSION: Final = 1
_BLOCK_MEMBERS: Final = frozenset({"v", "alg", "kid", "iat", "sig"})

PinHash = NewType("PinHash", str)
"""``b64u(SHA-256("mcps.v1.tool-pin\\n" ‖ JCS(pinned members)))``: 43 characters."""


def _changed(message: str, detail: str) -> McpsError:
    return McpsError(ErrorCode.TOOL_CHANGED, message, detail=detail)


def _tool_name(tool: Mapping[str, Any]) -> str:
    name = tool.get("name")
    if not isinstance(name, str):
        raise _changed("tool definition is malformed", "tool has no string name")
    return name


def _without_signature(tool: Mapping[str, Any]) -> dict[str, Any]:
    """``T'``: the tool minus ``_meta["mcps/tool-sig"]``, and minus ``_meta`` when that leaves it empty."""
    stripped = dict(tool)
    meta = stripped.get("_meta")
    if isinstance(meta, dict):
        rest = {key: value for key, value in meta.items() if key != TOOL_SIG_KEY}
        if rest:
            stripped["_meta"] = rest
        else:
            del stripped["_meta"]
    return stripped


def tool_signing_input(tool: Mapping[str, Any]) -> bytes:
    """``"mcps.v1.tool\\n" ‖ JCS(T')`` (its ``mcps/tool-sig`` member, if any, is left out)."""
    return TOOL_SIG_CONTEXT + canonicalize(_without_signature(tool))


def sign_tool(tool: Mapping[str, Any], key: PrivateKey, *, now: float) -> dict[str, Any]:
    """A copy of ``tool`` with ``_meta["mcps/tool-sig"]`` set (any previous tool signature is replaced)."""
    _tool_name(tool)
    meta = tool.get("_meta")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError("tool _meta is not an object")
    block: dict[str, Any] = {"v": _VERSION, "alg": key.alg.value, "kid": key.kid, "iat": int(now)}
    block["sig"] = b64u_encode(key.sign(tool_signing_input(tool)))
    return {**tool, "_meta": {**(meta or {}), TOOL_SIG_KEY: block}}


def verify_tool(tool: Mapping[str, Any], key: PublicKey) -> None:
    """Return ``None`` when ``tool`` carries a valid signature by ``key``; raise MCPS-008 otherwise.

    Steps: 1. a block is present; 2. its shape is exact; 3. ``alg`` and ``kid`` name ``key``; 4. the signature
    verifies over the canonical form.
    """
    name = _tool_name(tool)
    meta = tool.get("_meta")
    # 1. Present.
    block = meta.get(TOOL_SIG_KEY) if isinstance(meta, dict) else None
    if block is None:
        raise _changed("tool definition is not signed", f"tool {name!r} has no {TOOL_SIG_KEY}")
    # 2. Shape: exactly {v, alg, kid, iat, sig}, v = 1, iat an integer, kid and sig canonical base64url.
    if (
        not isinstance(block, dict)
        or block.keys() != _BLOCK_MEMBERS
        or type(block["v"]) is not int
        or block["v"] != _VERSION
        or type(block["iat"]) is not int
        or not is_b64u(block["kid"], min_bytes=32, max_bytes=32)
        or not is_b64u(block["sig"], min_bytes=64, max_bytes=64)
    ):
        raise _changed("tool signature is malformed", f"tool {name!r}: bad {TOOL_SIG_KEY} block")
    # 3. The pinned key, and its algorithm.
    if block["kid"] != key.kid or block["alg"] != Algorithm(key.alg).value:
        raise _changed("tool is not signed by the pinned server key", f"tool {name!r}: kid or alg is not the key's")
    # 4. The signature.
    try:
        key.verify(b64u_decode(block["sig"]), tool_signing_input(tool))
    except McpsError as exc:
        raise _changed("tool signature does not verify", f"tool {name!r}: bad signature") from exc


def pin_hash(tool: Mapping[str, Any]) -> PinHash:
    """The tool's pin hash: its name, title, description, schemas and annotations (absent or null omitted)."""
    _tool_name(tool)
    pinned = {member: tool[member] for member in PINNED_MEMBERS if tool.get(member) is not None}
    return PinHash(b64u_encode(hashlib.sha256(PIN_CONTEXT + canonicalize(pinned)).digest()))


# --- the lock file --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerPins:
    """One server's entry in ``mcps.lock``: the kid that signs its tools, and each approved tool's pin hash."""

    kid: KeyId | None = None
    tools: Mapping[str, PinHash] = field(default_factory=dict)

    def with_tools(self, tools: Mapping[str, PinHash]) -> ServerPins:
        return ServerPins(self.kid, {**self.tools, **tools})


@dataclass(frozen=True, slots=True)
class Lockfile:
    """The contents of ``mcps.lock``: server identity → :class:`ServerPins`."""

    servers: Mapping[str, ServerPins] = field(default_factory=dict)

    def server(self, identity: str) -> ServerPins | None:
        return self.servers.get(identity)

    def with_server(self, identity: str, pins: ServerPins) -> Lockfile:
        return Lockfile({**self.servers, identity: pins})


def _lock_error(detail: str) -> ValueError:
    return ValueError(f"not a valid mcps.lock: {detail}")


def parse_lockfile(text: str | bytes) -> Lockfile:
    """Parse ``mcps.lock`` strictly (I-JSON, no duplicate keys, exact members); ``ValueError`` otherwise."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        data = parse_message(raw)
    except McpsError as exc:
        raise _lock_error(exc.diagnostics()) from exc
    version = data.get("mcps_lock")
    if data.keys() != {"mcps_lock", "servers"} or type(version) is not int or version != LOCKFILE_VERSION:
        raise _lock_error(f'top level must be {{"mcps_lock": {LOCKFILE_VERSION}, "servers": {{...}}}}')
    if not isinstance(data["servers"], dict):
        raise _lock_error("servers is not an object")
    servers: dict[str, ServerPins] = {}
    for identity, entry in data["servers"].items():
        if not isinstance(entry, dict) or not entry.keys() <= {"kid", "tools"} or "tools" not in entry:
            raise _lock_error(f"server {identity!r} must be {{kid, tools}}")
        kid, tools = entry.get("kid"), entry["tools"]
        if kid is not None and not is_b64u(kid, min_bytes=32, max_bytes=32):
            raise _lock_error(f"server {identity!r}: kid is not a key thumbprint")
        if not isinstance(tools, dict) or not all(is_b64u(pin, min_bytes=32, max_bytes=32) for pin in tools.values()):
            raise _lock_error(f"server {identity!r}: tools must map names to pin hashes")
        servers[identity] = ServerPins(KeyId(kid) if kid is not None else None, dict(tools))
    return Lockfile(servers)


def dump_lockfile(lock: Lockfile) -> str:
    """``mcps.lock`` text: sorted, two-space indented, one tool per line, ending in a newline."""
    servers: dict[str, Any] = {}
    for identity, pins in lock.servers.items():
        entry: dict[str, Any] = {"tools": dict(pins.tools)}
        if pins.kid is not None:
            entry["kid"] = pins.kid
        servers[identity] = entry
    return json.dumps({"mcps_lock": LOCKFILE_VERSION, "servers": servers}, indent=2, sort_keys=True) + "\n"


# --- comparing a listing with the pins ------------------------------------------------------------------------


class ToolStatus(enum.StrEnum):
    """What a listed tool is, compared with the pins."""

    PINNED = "pinned"
    """Same name, same pin hash: approved."""
    CHANGED = "changed"
    """Same name, another pin hash (or signed by another key than the pinned one): blocked."""
    RENAMED = "renamed"
    """A new name for a pinned tool that is no longer listed under its pinned name: held unless approved."""
    NEW = "new"
    """Not pinned at all: held unless approved."""
    INVALID = "invalid"
    """Unsigned, badly signed or listed twice: blocked."""


@dataclass(frozen=True, slots=True)
class ToolFinding:
    """One listed tool and what it is. ``previous`` is the pinned name of a renamed tool."""

    name: str
    status: ToolStatus
    pin: PinHash | None
    previous: str | None = None
    detail: str | None = None


def compare_tools(
    pins: ServerPins | None, tools: Sequence[Mapping[str, Any]], *, kid: KeyId | None = None
) -> list[ToolFinding]:
    """Classify each listed tool against ``pins`` (``None``: nothing pinned for this server).

    ``kid`` is the key that signed the tools; when the pins name another key, every pinned name is ``changed``.
    A tool is ``renamed`` from ``M`` when ``M`` is pinned, not listed, and the tool with its name replaced by
    ``M`` has ``M``'s pin hash. A name listed twice makes both entries ``invalid``.
    """
    pinned = pins.tools if pins is not None else {}
    names = [_tool_name(tool) for tool in tools]
    listed = set(names)
    duplicated = {name for name in listed if names.count(name) > 1}
    signer_changed = pins is not None and pins.kid is not None and kid is not None and kid != pins.kid
    findings: list[ToolFinding] = []
    for name, tool in zip(names, tools, strict=True):
        pin = pin_hash(tool)
        if name in duplicated:
            findings.append(ToolFinding(name, ToolStatus.INVALID, pin, detail="name listed more than once"))
        elif name in pinned and signer_changed:
            findings.append(ToolFinding(name, ToolStatus.CHANGED, pin, detail="signed by another key than pinned"))
        elif name in pinned:
            status = ToolStatus.PINNED if pinned[name] == pin else ToolStatus.CHANGED
            findings.append(ToolFinding(name, status, pin))
        else:
            previous = _renamed_from(tool, pinned, listed)
            status = ToolStatus.RENAMED if previous is not None else ToolStatus.NEW
            findings.append(ToolFinding(name, status, pin, previous=previous))
    return findings


def _renamed_from(tool: Mapping[str, Any], pinned: Mapping[str, PinHash], listed: set[str]) -> str | None:
    for old_name in sorted(pinned.keys() - listed):
        if pin_hash({**tool, "name": old_name}) == pinned[old_name]:
            return old_name
    return None


def removed_tools(pins: ServerPins | None, findings: Iterable[ToolFinding]) -> list[str]:
    """Pinned names absent from a complete listing and not accounted for as the old name of a rename."""
    if pins is None:
        return []
    present = set()
    for finding in findings:
        present.add(finding.name)
        if finding.previous is not None:
            present.add(finding.previous)
    return sorted(pins.tools.keys() - present)
