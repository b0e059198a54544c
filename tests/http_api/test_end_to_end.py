"""The HTTP API middleware and the httpx auth against a real uvicorn server on 127.0.0.1 (issue 14): each level
boundary, tampering, replay, audience, missing headers, expired credentials, AgentPass certificates, size limits,
signed responses, the three formats, sync and async clients, policy and audit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.http_api.harness import World, service, serving

from mcps import McpsError, PrivateKey
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.core.httpsig import SignatureFormat
from mcps.http_api import AgentTrustAuth
from mcps.identity import RevocationKey, RevocationKind, TrustAnchor, TrustAnchors, TrustLevel
from mcps.identity.agentpass import issue_ca_certificate
from mcps.policy import PolicyFile
from mcps.stores.counters import MemoryCounterStore

FORMATS = list(SignatureFormat)
Tamper = Callable[[httpx.Request], httpx.Request]


def auth_for(world: World, **credential: Any) -> AgentTrustAuth:
    if not credential:
        credential = {"passport": world.passport(2)}
    return AgentTrustAuth(world.agent_key, server_key=world.service_key.public_key, **credential)


async def send(
    client: httpx.AsyncClient,
    auth: AgentTrustAuth,
    method: str,
    path: str,
    *,
    body: Any = None,
    fmt: SignatureFormat = SignatureFormat.RFC9421,
    tamper: Tamper | None = None,
) -> httpx.Response:
    """Sign a request as the agent would, let ``tamper`` change it on the way, send it without response checks."""
    request = client.build_request(method, path, json=body)
    auth.sign(request, fmt)
    if tamper is not None:
        request = tamper(request)
    return await client.send(request)


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": f"urn:mcps:{code}", "title": response.json()["title"], "status": status,
                               "mcps_code": code}  # fmt: skip


def rebuilt(
    request: httpx.Request, *, url: str | None = None, content: bytes | None = None, **headers: str
) -> httpx.Request:
    fields = {k: v for k, v in request.headers.items() if k != "content-length"}
    fields.update(headers)
    body = request.content if content is None else content
    return httpx.Request(request.method, url or request.url, headers=fields, content=body)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_each_level_boundary_in_every_format(fmt: SignatureFormat) -> None:
    world = World()
    async with (
        serving(lambda origin: service(world.security(origin))) as origin,
        httpx.AsyncClient(base_url=origin) as client,
    ):
        for agent_level in range(5):
            auth = auth_for(world, passport=world.passport(agent_level))
            for op_level in range(5):
                response = await send(client, auth, "GET", f"/levels/{op_level}", fmt=fmt)
                if agent_level >= op_level:
                    assert response.status_code == 200, (agent_level, op_level, response.text)
                    assert response.json() == {"op": f"level{op_level}", "agent": "agent-7"}
                else:
                    refused(response, 403, "MCPS-009")


async def test_sync_and_async_clients_verify_signed_responses() -> None:
    world = World()
    async with serving(lambda origin: service(world.security(origin))) as origin:
        auth = auth_for(world)
        async with httpx.AsyncClient(base_url=origin, auth=auth) as client:
            response = await client.post("/payments", json={"amount": 12.5})
            assert response.json()["amount"] == 12.5
            assert "mcps=" in response.headers["signature-input"]

        def sync_call() -> httpx.Response:
            with httpx.Client(base_url=origin, auth=auth) as client:
                return client.get("/levels/2")

        assert (await anyio.to_thread.run_sync(sync_call)).status_code == 200


@pytest.mark.parametrize(
    ("name", "tamper", "status", "code"),
    [
        ("body", lambda r: rebuilt(r, content=b'{"amount":9999}'), 401, "MCPS-036"),
        ("query", lambda r: rebuilt(r, url=str(r.url) + "?amount=9999"), 401, "MCPS-004"),
        ("covered header", lambda r: rebuilt(r, **{"content-type": "text/plain"}), 401, "MCPS-004"),
        ("content digest", lambda r: rebuilt(r, **{"content-digest": "sha-256=:" + "A" * 43 + "=:"}), 401, "MCPS-004"),
        ("signature removed", lambda r: rebuilt(r, **{"signature": ""}), 401, "MCPS-027"),
        ("host", lambda r: rebuilt(r, host="api.other.example"), 401, "MCPS-011"),
    ],
)
async def test_tampered_requests_are_refused_before_the_application(
    name: str, tamper: Tamper, status: int, code: str
) -> None:
    world = World()
    app_holder: list[Any] = []

    def make(origin: str) -> Any:
        app_holder.append(service(world.security(origin)))
        return app_holder[0]

    async with serving(make) as origin, httpx.AsyncClient(base_url=origin) as client:
        response = await send(client, auth_for(world), "POST", "/payments", body={"amount": 5}, tamper=tamper)
        refused(response, status, code)
        assert app_holder[0].state.calls == []
        assert b"9999" not in response.content  # nothing of the request is echoed
        assert b"agent-7" not in response.content


async def test_missing_signature_is_401_with_accept_signature() -> None:
    world = World()
    async with (
        serving(lambda origin: service(world.security(origin))) as origin,
        httpx.AsyncClient(base_url=origin) as client,
    ):
        response = await client.get("/levels/0")
        refused(response, 401, "MCPS-026")
        assert "accept-signature" in response.headers
        assert (await client.get("/health")).status_code == 200  # not guarded: untouched, not signed
        assert "signature" not in (await client.get("/health")).headers
        assert (await client.get("/rates")).status_code == 200  # optional: unsigned passes
        bad = await send(client, auth_for(world), "GET", "/rates", tamper=lambda r: rebuilt(r, url=str(r.url) + "?x"))
        refused(bad, 401, "MCPS-004")  # optional, but a signature that is there is verified


@pytest.mark.parametrize("fmt", FORMATS)
async def test_replay_is_refused(fmt: SignatureFormat) -> None:
    world = World()
    async with (
        serving(lambda origin: service(world.security(origin))) as origin,
        httpx.AsyncClient(base_url=origin) as client,
    ):
        request = client.build_request("POST", "/payments", json={"amount": 1})
        auth_for(world).sign(request, fmt)
        assert (await client.send(request)).status_code == 200
        refused(await client.send(request), 401, "MCPS-005")


async def test_wrong_audience_passport_and_origin() -> None:
    world = World()
    async with (
        serving(lambda origin: service(world.security(origin))) as origin,
        httpx.AsyncClient(base_url=origin) as client,
    ):
        for_other = world.passport(2, aud=["https://payments.other.example"])
        refused(await send(client, auth_for(world, passport=for_other), "GET", "/levels/1"), 401, "MCPS-011")
    # the same service configured under another origin: the request names a Host it is not
    elsewhere = serving(lambda _: service(world.security("https://api.example")))
    async with elsewhere as origin, httpx.AsyncClient(base_url=origin) as client:
        refused(await send(client, auth_for(world), "GET", "/levels/1"), 401, "MCPS-011")


async def test_expired_passport_and_revoked_agent() -> None:
    world = World()
    async with (
        serving(lambda origin: service(world.security(origin))) as origin,
        httpx.AsyncClient(base_url=origin) as client,
    ):
        expired = world.passport(2, now=world.now - 7200, ttl=3600)
        refused(await send(client, auth_for(world, passport=expired), "GET", "/levels/1"), 401, "MCPS-002")
        await world.revocations.revoke(RevocationKey.local(RevocationKind.SUB, "agent-7"), now=world.now)
        refused(await send(client, auth_for(world), "GET", "/levels/1"), 403, "MCPS-003")


async def test_agentpass_certificates_unknown_ca_and_level_above_the_cap() -> None:
    world = World()
    async with (
        serving(lambda origin: service(world.security(origin))) as origin,
        httpx.AsyncClient(base_url=origin) as client,
    ):
        capped = auth_for(world, certificate=world.certificate(4))  # claims L4, the CA may grant L2
        response = await send(client, capped, "GET", "/levels/2", fmt=SignatureFormat.AGENT_SIGNATURE)
        assert response.json() == {"op": "level2", "agent": "agent-cert-1"}
        refused(await send(client, capped, "GET", "/levels/3", fmt=SignatureFormat.AGENT_SIGNATURE), 403, "MCPS-009")
        rogue_key = PrivateKey.generate("ES256")
        rogue = issue_ca_certificate(rogue_key, "Test AgentPass CA", now=world.now)  # same name, another key
        unknown = auth_for(world, certificate=world.certificate(2, ca_key=rogue_key, ca=rogue))
        refused(await send(client, unknown, "GET", "/levels/0"), 401, "MCPS-029")
        malformed = auth_for(world, certificate=world.certificate(9))  # "L9" is not a level
        refused(await send(client, malformed, "GET", "/levels/0"), 401, "MCPS-037")


async def test_body_larger_than_the_limit_is_413_declared_or_streamed() -> None:
    world = World()
    make = lambda origin: service(world.security(origin, max_body=1024))  # noqa: E731
    async with serving(make) as origin, httpx.AsyncClient(base_url=origin) as client:
        big = {"amount": 1, "pad": "x" * 4096}
        refused(await send(client, auth_for(world), "POST", "/payments", body=big), 413, "MCPS-018")

        def chunked(request: httpx.Request) -> httpx.Request:
            content = request.content

            async def stream() -> Any:
                for start in range(0, len(content), 512):
                    yield content[start : start + 512]

            fields = {k: v for k, v in request.headers.items() if k != "content-length"}
            return httpx.Request(request.method, request.url, headers=fields, content=stream())

        refused(await send(client, auth_for(world), "POST", "/payments", body=big, tamper=chunked), 413, "MCPS-018")


async def test_a_response_that_does_not_verify_raises_in_the_client() -> None:
    world = World()
    async with serving(lambda origin: service(world.security(origin))) as origin:
        imposter = AgentTrustAuth(world.agent_key, server_key=PrivateKey.generate("ES256").public_key,
                                  passport=world.passport(2))  # fmt: skip
        async with httpx.AsyncClient(base_url=origin, auth=imposter) as client:
            with pytest.raises(McpsError) as caught:
                await client.get("/levels/1")
            assert caught.value.code.mcps == "MCPS-029"
        async with httpx.AsyncClient(base_url=origin) as client:
            auth = auth_for(world)
            first = client.build_request("GET", "/levels/1")
            second = client.build_request("GET", "/levels/1")
            binding = auth.sign(first, SignatureFormat.RFC9421)
            auth.sign(second, SignatureFormat.RFC9421)
            answer = await client.send(second)
            with pytest.raises(McpsError) as caught:
                auth.verify_response(first, answer, binding)  # the answer to another request
            assert caught.value.code.mcps == "MCPS-004"
            edited = httpx.Response(answer.status_code, headers=answer.headers, content=answer.content + b" ")
            with pytest.raises(McpsError) as caught:
                auth.verify_response(second, edited, binding)
            assert caught.value.code.mcps == "MCPS-036"


async def test_policy_spend_and_rate_and_the_audit_log(tmp_path: Path) -> None:
    world = World()
    log = SqliteAuditLog(tmp_path / "audit.db", key=PrivateKey.generate())

    def make(origin: str) -> Any:
        policy = PolicyFile.loads(
            f"""
            mcps_policy = 1
            [servers."{origin}"]
            default = "allow"
            [[servers."{origin}".tools]]
            match = "pay"
            rate = ["2/minute per agent"]
            [servers."{origin}".tools.spend]
            amount_arg = "amount"
            per_level = {{ 2 = {{ per_call = 100 }} }}
            """,
            counters=MemoryCounterStore(),
        )
        return service(world.security(origin), policy=policy, audit=log)

    async with serving(make) as origin, httpx.AsyncClient(base_url=origin) as client:
        auth = auth_for(world)
        refused(await send(client, auth, "POST", "/payments", body={"amount": 500}), 403, "MCPS-016")
        assert (await send(client, auth, "POST", "/payments", body={"amount": 5})).status_code == 200
        assert (await send(client, auth, "POST", "/payments", body={"amount": 5})).status_code == 200
        refused(await send(client, auth, "POST", "/payments", body={"amount": 5}), 429, "MCPS-010")
        dup = rebuilt(client.build_request("POST", "/payments"), content=b'{"amount":1,"amount":900}')
        dup.headers["content-type"] = "application/json"
        auth.sign(dup, SignatureFormat.RFC9421)
        refused(await client.send(dup), 400, "MCPS-020")
    entries = await log.entries(0, 5)
    decisions = [(json.loads(e.data)["decision"], json.loads(e.data).get("code")) for e in entries]
    assert decisions == [
        ("deny", "MCPS-016"),
        ("allow", None),
        ("allow", None),
        ("deny", "MCPS-010"),
        ("deny", "MCPS-020"),
    ]
    await log.aclose()


async def test_agent_keys_and_inline_directories() -> None:
    world = World()
    registered = PrivateKey.generate("ES256")
    agent_keys = TrustAnchors([TrustAnchor(registered.public_key, TrustLevel.L1)])
    make = lambda origin: service(world.security(origin, agent_keys=agent_keys))  # noqa: E731
    async with serving(make) as origin, httpx.AsyncClient(base_url=origin) as client:
        auth = AgentTrustAuth(registered, server_key=world.service_key.public_key)
        assert (await send(client, auth, "GET", "/levels/1", fmt=SignatureFormat.AGENT_SIGNATURE)).status_code == 200
        refused(await send(client, auth, "GET", "/levels/2"), 403, "MCPS-009")
        stranger = PrivateKey.generate("ES256")
        refused(await send(client, AgentTrustAuth(stranger, server_key=world.service_key.public_key), "GET",
                           "/levels/0"), 401, "MCPS-029")  # fmt: skip
        import base64  # noqa: PLC0415

        directory = json.dumps({"keys": [stranger.public_key.to_jwk()]}).encode()
        url = "data:application/http-message-signatures-directory+json;base64," + base64.b64encode(directory).decode()
        inline = AgentTrustAuth(stranger, server_key=world.service_key.public_key, signature_agent=url)
        assert (await send(client, inline, "GET", "/levels/0")).status_code == 200  # self-published: L0
        refused(await send(client, inline, "GET", "/levels/1"), 403, "MCPS-009")
