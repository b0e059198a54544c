"""Plain HTTP APIs that declare ``x-agent-trust`` in OpenAPI (SPEC.md §13): the service side and the agent side.

* :class:`AgentTrustMiddleware` — ASGI middleware for Starlette/FastAPI: verifies signed agent requests per
  operation (RFC 9421 as SEP-2752 profiles it, ``Agent-Signature``, ATTP's ``X-Agent-*``), before application code
  runs, and signs every response of a guarded operation; configured by one :class:`HttpApiSecurity`.
* :class:`AgentTrustAuth` — an ``httpx.Auth`` (sync and async) that signs in the format the service's OpenAPI
  document asks for and verifies the signed response.
* :func:`agent_trust_keys_app` — the ``/.well-known/agent-trust-keys`` JWKS route of an issuer.
* :func:`current_http_caller` / ``request.state.mcps_caller`` — the verified agent (:class:`HttpCaller`).
"""

from mcps.http_api.client import AgentTrustAuth
from mcps.http_api.keys_route import AGENT_TRUST_KEYS_PATH, agent_trust_keys_app
from mcps.http_api.middleware import STATUS, AgentTrustMiddleware, current_http_caller
from mcps.http_api.openapi import AgentTrustScheme, OperationRequirement, OperationTable
from mcps.http_api.verifier import HttpApiSecurity, HttpCaller, RequestVerifier

__all__ = [
    "AGENT_TRUST_KEYS_PATH",
    "STATUS",
    "AgentTrustAuth",
    "AgentTrustMiddleware",
    "AgentTrustScheme",
    "HttpApiSecurity",
    "HttpCaller",
    "OperationRequirement",
    "OperationTable",
    "RequestVerifier",
    "agent_trust_keys_app",
    "current_http_caller",
]
