"""SPEC.md §13.10: the /.well-known/agent-trust-keys route serves the issuer's JWK Set; RemoteTrustAnchors reads it."""

from __future__ import annotations

import httpx

from mcps import PrivateKey
from mcps.http_api import agent_trust_keys_app
from mcps.identity import RemoteTrustAnchors, TrustAnchor, TrustAnchors, TrustLevel


async def test_route_serves_a_document_remote_anchors_accept() -> None:
    issuer = PrivateKey.generate("ES256")
    app = agent_trust_keys_app(TrustAnchors([TrustAnchor(issuer.public_key, TrustLevel.L3)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://issuer.test") as client:
        response = await client.get("/")
        assert response.headers["content-type"] == "application/jwk-set+json"
        assert (await client.post("/")).status_code == 405
        assert (await client.head("/")).content == b""
    remote = RemoteTrustAnchors("https://issuer.test/", transport=transport)
    await remote.refresh()
    anchor = remote.get(issuer.kid)
    assert anchor is not None
    assert anchor.max_level == TrustLevel.L3
