"""What an OpenAPI document asks of agents: ``x-agent-trust`` security schemes and each operation's minimum level
(SPEC.md §13.2).

A security scheme is an *agent-trust scheme* when it is ``type: apiKey``, ``in: header`` and carries
``x-agent-trust: {algorithm, trustLevels, issuerKeysUrl}``. Its header ``name`` tells clients which format to send:
``Agent-Signature`` (the registry entry), ``Signature`` or ``Signature-Input`` (RFC 9421), ``X-Agent-Signature``
(ATTP). A Security Requirement naming it lists the operation's minimum level in its scopes (``AgentTrust: [L3]``).

For each operation, the requirement is its ``security`` (or the document's): a list of alternatives.

* No alternative names an agent-trust scheme: the operation is **not guarded** (it passes untouched).
* An empty alternative (``{}``) makes agent trust **optional**: a request without a signature passes; one with a
  signature is verified all the same.
* Otherwise the minimum level is the lowest over the alternatives that name agent-trust schemes, each alternative
  asking the highest level among its agent-trust schemes' scopes (an empty scope list is L0). mcps does not evaluate
  other schemes (API keys, OAuth): an alternative made only of them does not let a request through.

A scope that is not ``L0``–``L4``, or not in the scheme's ``trustLevels``, and an ``algorithm`` other than ``ES256``
or ``EdDSA``, are configuration errors (``ValueError``) when the document is read, never at request time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.httpsig import SignatureFormat
from mcps.core.keys import Algorithm
from mcps.identity.levels import TrustLevel

__all__ = ["AgentTrustScheme", "OperationRequirement", "OperationTable"]

EXTENSION: Final = "x-agent-trust"
_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_LEVEL: Final = re.compile(r"L([0-4])")
_FORMATS: Final = {
    "agent-signature": SignatureFormat.AGENT_SIGNATURE,
    "signature": SignatureFormat.RFC9421,
    "signature-input": SignatureFormat.RFC9421,
    "x-agent-signature": SignatureFormat.ATTP,
}


@dataclass(frozen=True, slots=True)
class AgentTrustScheme:
    name: str
    format: SignatureFormat
    algorithm: Algorithm | None
    trust_levels: frozenset[TrustLevel]
    issuer_keys_url: str | None


@dataclass(frozen=True, slots=True)
class OperationRequirement:
    """One operation: its policy tool name (``operationId``, else ``"<METHOD> <path>"``) and what it requires."""

    tool: str
    method: str
    path: str
    min_level: TrustLevel | None
    """``None``: the operation is not guarded."""
    optional: bool
    schemes: tuple[AgentTrustScheme, ...]

    @property
    def guarded(self) -> bool:
        return self.min_level is not None

    @property
    def algorithms(self) -> frozenset[Algorithm]:
        return frozenset(scheme.algorithm for scheme in self.schemes if scheme.algorithm is not None)


def _level(text: object, scheme: AgentTrustScheme, where: str) -> TrustLevel:
    match = _LEVEL.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{where}: scope {text!r} of {scheme.name} is not L0..L4")
    level = TrustLevel(int(match.group(1)))
    if scheme.trust_levels and level not in scheme.trust_levels:
        raise ValueError(f"{where}: {text} is not among the trustLevels of {scheme.name}")
    return level


def _scheme(name: str, body: Mapping[str, Any]) -> AgentTrustScheme | None:
    trust = body.get(EXTENSION)
    if trust is None:
        return None
    if body.get("type") != "apiKey" or body.get("in") != "header" or not isinstance(trust, dict):
        raise ValueError(f"security scheme {name}: x-agent-trust needs type apiKey, in header, and an object")
    header = body.get("name")
    fmt = _FORMATS.get(header.lower()) if isinstance(header, str) else None
    if fmt is None:
        raise ValueError(f"security scheme {name}: header {header!r} is not a signature header mcps knows")
    algorithm = trust.get("algorithm")
    if algorithm is not None and algorithm not in ("ES256", "EdDSA"):
        raise ValueError(f"security scheme {name}: algorithm {algorithm!r} is not ES256 or EdDSA")
    levels = trust.get("trustLevels", [])
    if not isinstance(levels, list) or any(not isinstance(t, str) or not _LEVEL.fullmatch(t) for t in levels):
        raise ValueError(f"security scheme {name}: trustLevels must be a list of L0..L4")
    url = trust.get("issuerKeysUrl")
    if url is not None and not isinstance(url, str):
        raise ValueError(f"security scheme {name}: issuerKeysUrl must be a string")
    return AgentTrustScheme(
        name,
        fmt,
        Algorithm(algorithm) if algorithm is not None else None,
        frozenset(TrustLevel(int(t[1])) for t in levels),
        url,
    )


def _requirement(
    security: object, schemes: Mapping[str, AgentTrustScheme], where: str
) -> tuple[TrustLevel | None, bool, tuple[AgentTrustScheme, ...]]:
    if not isinstance(security, list):
        return None, False, ()
    optional = False
    levels: list[TrustLevel] = []
    used: dict[str, AgentTrustScheme] = {}
    for alternative in security:
        if not isinstance(alternative, dict):
            raise ValueError(f"{where}: a security requirement is not an object")  # noqa: TRY004 - a config error
        if not alternative:
            optional = True
            continue
        named = [(schemes[name], scopes) for name, scopes in alternative.items() if name in schemes]
        if not named:
            continue
        level = TrustLevel.L0
        for scheme, scopes in named:
            used[scheme.name] = scheme
            for scope in scopes if isinstance(scopes, list) else [scopes]:
                level = max(level, _level(scope, scheme, where))
        levels.append(level)
    if not levels:
        return None, False, ()
    return min(levels), optional, tuple(used.values())


class OperationTable:
    """Every operation of a document, matched by method and path (literal paths before templated ones)."""

    def __init__(self, operations: list[tuple[re.Pattern[str], int, OperationRequirement]]) -> None:
        self._operations = sorted(operations, key=lambda entry: entry[1])
        self.schemes: tuple[AgentTrustScheme, ...] = tuple(
            {s.name: s for _, _, op in operations for s in op.schemes}.values()
        )

    @classmethod
    def from_openapi(cls, document: Mapping[str, Any]) -> OperationTable:
        components = document.get("components")
        raw_schemes = components.get("securitySchemes", {}) if isinstance(components, dict) else {}
        schemes = {
            name: scheme
            for name, body in (raw_schemes.items() if isinstance(raw_schemes, dict) else ())
            if isinstance(body, dict) and (scheme := _scheme(name, body)) is not None
        }
        default = document.get("security")
        operations: list[tuple[re.Pattern[str], int, OperationRequirement]] = []
        paths = document.get("paths")
        for path, item in paths.items() if isinstance(paths, dict) else ():
            if not isinstance(item, dict) or not isinstance(path, str):
                continue
            pattern, templated = _path_pattern(path)
            for method in _METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                where = f"{method.upper()} {path}"
                level, optional, used = _requirement(operation.get("security", default), schemes, where)
                tool = operation.get("operationId")
                requirement = OperationRequirement(
                    tool if isinstance(tool, str) and tool else where, method.upper(), path, level, optional, used
                )
                operations.append((pattern, templated, requirement))
        return cls(operations)

    def match(self, method: str, path: str) -> OperationRequirement | None:
        method = method.upper()
        for pattern, _, operation in self._operations:
            if operation.method == method and pattern.fullmatch(path):
                return operation
        return None


def _path_pattern(path: str) -> tuple[re.Pattern[str], int]:
    parts = re.split(r"(\{[^{}/]+\})", path)
    regex = "".join("[^/]+" if part.startswith("{") and part.endswith("}") else re.escape(part) for part in parts)
    return re.compile(regex), sum(1 for part in parts if part.startswith("{"))
