"""``/.well-known/agent-trust-keys``: an issuer deployment serves its JWK Set (SPEC.md §13.10).

The document is the anchors format of SPEC.md §7.4 — every key with ``mcps_max_tl`` — so a verifier reads it with
:class:`~mcps.identity.RemoteTrustAnchors` (``issuerKeysUrl``) or as ``agent_keys``. Mount the app under the path, or
give it to a router::

    app.mount("/.well-known/agent-trust-keys", agent_trust_keys_app(TrustAnchors.load("issuer.jwks")))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from mcps.identity.anchors import TrustAnchors

__all__ = ["AGENT_TRUST_KEYS_PATH", "agent_trust_keys_app"]

AGENT_TRUST_KEYS_PATH: Final = "/.well-known/agent-trust-keys"


def agent_trust_keys_app(keys: TrustAnchors | Callable[[], TrustAnchors], *, max_age: int = 300) -> Callable[..., Any]:
    """A small ASGI app answering ``GET`` and ``HEAD`` with the JWK Set (``application/jwk-set+json``), 405 for other
    methods. ``keys`` may be a callable, read on every request (a key set that is reloaded)."""

    async def app(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        if scope.get("type") != "http":
            return
        method = scope.get("method")
        if method not in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, HEAD")]})
            await send({"type": "http.response.body", "body": b""})
            return
        current = keys() if callable(keys) else keys
        body = json.dumps(current.to_jwks(), separators=(",", ":"), sort_keys=True).encode("ascii")
        headers = [
            (b"content-type", b"application/jwk-set+json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", f"max-age={max_age}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})

    return app
