"""SPEC.md §13.2: how an OpenAPI document's x-agent-trust schemes and security requirements are read."""

from __future__ import annotations

from typing import Any

import pytest

from mcps.core.httpsig import SignatureFormat
from mcps.http_api import OperationTable
from mcps.identity import TrustLevel

SCHEME = {"type": "apiKey", "in": "header", "name": "Agent-Signature", "x-agent-trust": {"algorithm": "ES256",
          "trustLevels": ["L0", "L1", "L2", "L3"]}}  # fmt: skip


def document(paths: dict[str, Any], *, security: Any = None, scheme: Any = SCHEME) -> dict[str, Any]:
    doc: dict[str, Any] = {"openapi": "3.1.0", "paths": paths, "components": {"securitySchemes": {
        "AgentTrust": scheme, "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}}}  # fmt: skip
    if security is not None:
        doc["security"] = security
    return doc


def test_levels_optional_alternatives_and_the_document_default() -> None:
    table = OperationTable.from_openapi(
        document(
            {
                "/a": {"get": {"operationId": "a"}},
                "/b/{id}": {"post": {"operationId": "b", "security": [{"AgentTrust": ["L3"]}]}},
                "/c": {"get": {"security": [{}, {"AgentTrust": ["L1"]}]}},
                "/d": {"get": {"security": [{"AgentTrust": ["L3"]}, {"AgentTrust": ["L1"], "ApiKey": []}]}},
                "/e": {"get": {"security": [{"ApiKey": []}]}},
                "/b/special": {"post": {"operationId": "special", "security": []}},
            },
            security=[{"AgentTrust": ["L2"]}],
        )
    )
    a = table.match("GET", "/a")
    assert a is not None
    assert (a.tool, a.min_level, a.optional) == ("a", TrustLevel.L2, False)  # the document's default
    b = table.match("post", "/b/42")
    assert b is not None
    assert (b.min_level, b.schemes[0].format, b.algorithms) == (TrustLevel.L3, SignatureFormat.AGENT_SIGNATURE,
                                                                frozenset({"ES256"}))  # fmt: skip
    special = table.match("POST", "/b/special")  # a concrete path wins over a template; security [] guards nothing
    assert special is not None
    assert not special.guarded
    c = table.match("GET", "/c")
    assert c is not None
    assert (c.tool, c.min_level, c.optional) == ("GET /c", TrustLevel.L1, True)
    d = table.match("GET", "/d")
    assert d is not None
    assert d.min_level == TrustLevel.L1  # the lowest alternative
    e = table.match("GET", "/e")
    assert e is not None
    assert not e.guarded  # only schemes mcps does not evaluate
    assert table.match("GET", "/nowhere") is None
    assert table.match("GET", "/b/1/2") is None  # a template segment is one segment


@pytest.mark.parametrize(
    "bad",
    [
        {"paths": {"/x": {"get": {"security": [{"AgentTrust": ["L9"]}]}}}},
        {"paths": {"/x": {"get": {"security": [{"AgentTrust": ["L4"]}]}}}},  # not among trustLevels
        {"paths": {"/x": {"get": {"security": [{"AgentTrust": ["admin"]}]}}}},
        {"scheme": {**SCHEME, "x-agent-trust": {"algorithm": "RS256"}}},
        {"scheme": {**SCHEME, "in": "query"}},
        {"scheme": {**SCHEME, "name": "Authorization"}},
    ],
)
def test_configuration_errors_are_found_when_the_document_is_read(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OperationTable.from_openapi(document(bad.get("paths", {"/x": {"get": {}}}), scheme=bad.get("scheme", SCHEME)))
