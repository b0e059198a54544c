"""Passports and per-call grants in the signed channel, in memory: who the caller is, and which calls need a grant.

Keys and passports come from the test PKI (tests/identity/pki.py): TEST KEYS, derived from public seeds.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.identity.pki import AGENT, ANCHORS, LOW_ANCHOR, NOW, make_key, passport

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, GrantRequirement, SecureChannel
from mcps.bindings.channel import Inbound
from mcps.core.envelope import GRANT_KEY, sign_message
from mcps.identity.grants import GrantVerifier, mint_grant
from mcps.identity.levels import TrustLevel
from mcps.identity.resolver import PassportResolver, attach_passport
from mcps.identity.revocation import MemoryRevocationStore, RevocationKey

SERVER = "urn:mcps:test:server"
GATEWAY = make_key("gateway")
SERVER_KEY = make_key("server")


def clock() -> float:
    return float(NOW)


def server_channel(
    *, grants: GrantRequirement | None = None, revocations: MemoryRevocationStore | None = None
) -> SecureChannel:
    revocations = MemoryRevocationStore() if revocations is None else revocations
    resolver = PassportResolver(anchors=ANCHORS, audience=SERVER, revocations=revocations)
    security = ChannelSecurity(
        key=SERVER_KEY, identity=SERVER, trusted=resolver, nonces=MemoryNonceStore(), grants=grants, clock=clock
    )
    return SecureChannel(security, peer=None)


def agent_channel(token: str | None = None, *, key: PrivateKey = AGENT) -> SecureChannel:
    security = ChannelSecurity(
        key=key,
        passport=token if token is not None else passport(),
        trusted=PinnedKeys([SERVER_KEY.public_key]),
        nonces=MemoryNonceStore(),
        clock=clock,
    )
    return SecureChannel(security, peer=SERVER)


def call(request_id: int = 1, name: str = "safe", arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments if arguments is not None else {"text": "hi"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def sent(channel: SecureChannel, message: dict[str, Any]) -> dict[str, Any]:
    signed = channel.send(message)
    assert signed is not None
    return signed


def with_grant(request: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """``request`` with a grant for exactly it, as a gateway adds it (outside the agent's signature)."""
    params = request["params"]
    claims: dict[str, Any] = {
        "iss": "urn:mcps:test:gateway",
        "sub": "agent-1",
        "aud": SERVER,
        "tool": params["name"],
        "arguments": params.get("arguments"),
        "request_sig": params["_meta"]["mcps/sig"]["sig"],
        "level": 2,
        "scopes": ("tools:call",),
        "now": NOW,
    } | overrides
    issuer = claims.pop("issuer", GATEWAY)
    granted = copy.deepcopy(request)
    granted["params"]["_meta"][GRANT_KEY] = mint_grant(issuer, **claims)
    return granted


def requirement(tools: set[str] | None = None) -> GrantRequirement:
    verifier = GrantVerifier(issuers=[GATEWAY.public_key], audience=SERVER, nonces=MemoryNonceStore(), clock=clock)
    return GrantRequirement(verifier, tools=tools)


def refusal_code(inbound: Inbound) -> str:
    assert inbound.deliver is None
    assert inbound.reply is not None
    return str(inbound.reply["error"]["data"]["mcps_code"])


# --- passports ------------------------------------------------------------------------------------------------------


async def test_caller_known_by_passport_has_agent_id_level_and_scopes_and_is_answered_by_agent_id() -> None:
    agent, server = agent_channel(), server_channel()
    inbound = await server.receive(sent(agent, call()))
    caller = inbound.caller
    assert caller is not None
    assert (caller.identity, caller.level, caller.scopes) == ("agent-1", TrustLevel.L2, {"tools:call", "files:read"})
    assert caller.kid == AGENT.kid
    assert caller.grant is None
    result = sent(server, {"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    assert result["result"]["_meta"]["mcps/sig"]["aud"] == "agent-1"
    assert (await agent.receive(result)).deliver == result


async def test_every_message_the_agent_signs_carries_its_passport() -> None:
    token = passport()
    agent = agent_channel(token)
    request = sent(agent, call())
    notification = sent(agent, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert request["params"]["_meta"]["mcps/passport"] == token
    assert notification["params"]["_meta"]["mcps/passport"] == token


def test_passport_for_another_key_or_identity_is_refused_when_configuring() -> None:
    trusted, nonces = PinnedKeys([SERVER_KEY.public_key]), MemoryNonceStore()
    with pytest.raises(ValueError, match="cnf key"):
        ChannelSecurity(key=make_key("someone else"), passport=passport(), trusted=trusted, nonces=nonces)
    with pytest.raises(ValueError, match="not the passport's sub"):
        ChannelSecurity(key=AGENT, identity="agent-2", passport=passport(), trusted=trusted, nonces=nonces)
    with pytest.raises(ValueError, match="sequence of passport tokens"):
        ChannelSecurity(key=AGENT, passport=passport(), chain=passport(), trusted=trusted, nonces=nonces)  # type: ignore[arg-type]


def test_resolver_and_grants_for_another_audience_are_refused_when_configuring() -> None:
    """A passport restricted to server A, or a grant minted for A, must not pass at B for want of one setting."""
    elsewhere = "urn:mcps:test:other-server"
    resolver = PassportResolver(anchors=ANCHORS, audience=elsewhere, revocations=MemoryRevocationStore())
    with pytest.raises(ValueError, match=r"trusted\.audience"):
        ChannelSecurity(key=SERVER_KEY, identity=SERVER, trusted=resolver, nonces=MemoryNonceStore())
    verifier = GrantVerifier(issuers=[GATEWAY.public_key], audience=elsewhere, nonces=MemoryNonceStore())
    with pytest.raises(ValueError, match=r"grants\.verifier\.audience"):
        ChannelSecurity(
            key=SERVER_KEY,
            identity=SERVER,
            trusted=PinnedKeys([AGENT.public_key]),
            nonces=MemoryNonceStore(),
            grants=GrantRequirement(verifier),
        )


async def test_level_below_the_minimum_is_refused_and_the_refusal_reaches_the_agent_with_its_code() -> None:
    agent = agent_channel(passport(issuer=LOW_ANCHOR))  # this anchor may grant at most L1; the minimum is L2
    inbound = await server_channel().receive(sent(agent, call()))
    assert refusal_code(inbound) == "MCPS-009"
    assert inbound.reply is not None
    assert inbound.reply["error"]["data"]["mcps/sig"]["aud"] == "agent-1"  # addressed by the passport it claimed
    delivered = (await agent.receive(inbound.reply)).deliver
    assert delivered is not None
    assert delivered["error"]["data"]["mcps_code"] == "MCPS-009"


async def test_revoked_agent_is_refused() -> None:
    revocations = MemoryRevocationStore()
    server = server_channel(revocations=revocations)
    agent = agent_channel()
    assert (await server.receive(sent(agent, call(1)))).caller is not None
    await revocations.revoke(RevocationKey.local("sub", "agent-1"), now=NOW)
    assert refusal_code(await server.receive(sent(agent, call(2)))) == "MCPS-003"


async def test_another_identity_on_the_same_connection_is_refused() -> None:
    server = server_channel()
    first, second = agent_channel(passport()), agent_channel(passport(sub="agent-2", jti="other"))
    assert (await server.receive(sent(first, call(1)))).caller is not None
    assert refusal_code(await server.receive(sent(second, call(2)))) == "MCPS-029"


async def test_client_accepts_a_server_passport_only_for_the_server_it_called() -> None:
    server_key = make_key("anchored server")
    for sub, code in ((SERVER, None), ("urn:mcps:test:impostor", "MCPS-029")):
        client = SecureChannel(
            ChannelSecurity(
                key=AGENT,
                trusted=PassportResolver(anchors=ANCHORS, audience=AGENT.kid, revocations=MemoryRevocationStore()),
                nonces=MemoryNonceStore(),
                clock=clock,
            ),
            peer=SERVER,
        )
        request = sent(client, call(2))
        answer = attach_passport({"jsonrpc": "2.0", "id": 2, "result": {"content": []}}, passport(server_key, sub=sub))
        result = sign_message(
            answer, server_key, audience=AGENT.kid, now=NOW, in_reply_to=request["params"]["_meta"]["mcps/sig"]["sig"]
        )
        delivered = (await client.receive(result)).deliver
        assert delivered is not None
        assert (delivered.get("error") or {}).get("data", {}).get("mcps_code") == code, sub


# --- addressing: an end's names are its identity and its own key's kid (SPEC.md §9.2, issue 15.2) -------------------


def pinned_key_server(*keys: PrivateKey) -> SecureChannel:
    security = ChannelSecurity(
        key=SERVER_KEY,
        identity=SERVER,
        trusted=PinnedKeys([key.public_key for key in keys]),
        nonces=MemoryNonceStore(),
        clock=clock,
    )
    return SecureChannel(security, peer=None)


async def test_passport_agent_accepts_answers_a_pinned_key_server_addresses_to_its_kid() -> None:
    """Regression: the server knows the agent by its pinned key and answers its kid; the agent expected its
    passport's sub only, so every answer failed with MCPS-011."""
    agent, server = agent_channel(), pinned_key_server(AGENT)
    inbound = await server.receive(sent(agent, call()))
    assert inbound.caller is not None
    assert inbound.caller.identity == AGENT.kid  # the server ignores the passport it does not verify
    result = sent(server, {"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    assert result["result"]["_meta"]["mcps/sig"]["aud"] == AGENT.kid
    assert (await agent.receive(result)).deliver == result
    notice = sent(server, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    assert (await agent.receive(notice)).deliver == notice  # the connection's peer is addressed by kid too


async def test_answers_addressed_to_another_name_are_still_refused() -> None:
    for aud in ("agent-2", make_key("someone else").kid, SERVER):
        agent = agent_channel()
        request = sent(agent, call())
        answer = sign_message(
            {"jsonrpc": "2.0", "id": 1, "result": {"content": []}},
            SERVER_KEY,
            audience=aud,
            now=NOW,
            in_reply_to=request["params"]["_meta"]["mcps/sig"]["sig"],
        )
        delivered = (await agent.receive(answer)).deliver
        assert delivered is not None
        assert delivered["error"]["data"]["mcps_code"] == "MCPS-011", aud


async def test_server_pinning_some_agents_by_key_and_others_by_passport_answers_each_by_its_name() -> None:
    """A gateway's trust: agents it pins by key (answered by kid) and agents with anchored passports (by agent id)."""
    keyed = make_key("pinned agent")
    resolver = PassportResolver(
        anchors=ANCHORS, audience=SERVER, revocations=MemoryRevocationStore(), pinned=PinnedKeys([keyed.public_key])
    )
    security = ChannelSecurity(
        key=SERVER_KEY, identity=SERVER, trusted=resolver, nonces=MemoryNonceStore(), clock=clock
    )
    keyed_agent = SecureChannel(
        ChannelSecurity(key=keyed, trusted=PinnedKeys([SERVER_KEY.public_key]), nonces=MemoryNonceStore(), clock=clock),
        peer=SERVER,
    )
    for agent, name in ((agent_channel(), "agent-1"), (keyed_agent, keyed.kid)):
        server = SecureChannel(security, peer=None)  # one connection per agent, one trust configuration
        inbound = await server.receive(sent(agent, call()))
        assert inbound.caller is not None
        assert inbound.caller.identity == name
        result = sent(server, {"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
        assert result["result"]["_meta"]["mcps/sig"]["aud"] == name
        assert (await agent.receive(result)).deliver == result


# --- grants ---------------------------------------------------------------------------------------------------------


async def test_call_to_a_tool_that_needs_no_grant_passes_without_one() -> None:
    inbound = await server_channel(grants=requirement({"rm_rf"})).receive(sent(agent_channel(), call(name="safe")))
    assert inbound.caller is not None
    assert inbound.caller.grant is None


async def test_call_without_a_required_grant_is_refused() -> None:
    for tools in ({"rm_rf"}, None):
        server = server_channel(grants=requirement(tools))
        assert refusal_code(await server.receive(sent(agent_channel(), call(name="rm_rf")))) == "MCPS-017"


async def test_call_with_a_grant_for_exactly_it_reaches_the_tool_with_the_grant() -> None:
    server = server_channel(grants=requirement({"rm_rf"}))
    inbound = await server.receive(with_grant(sent(agent_channel(), call(name="rm_rf"))))
    assert inbound.caller is not None
    grant = inbound.caller.grant
    assert grant is not None
    assert (grant.tool, grant.agent_id, grant.iss, grant.level) == ("rm_rf", "agent-1", "urn:mcps:test:gateway", 2)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"arguments": {"text": "other"}}, "MCPS-032"),
        ({"tool": "safe"}, "MCPS-032"),
        ({"sub": "agent-2"}, "MCPS-032"),
        ({"request_sig": "A" * 86}, "MCPS-032"),
        ({"aud": "urn:mcps:test:other-server"}, "MCPS-011"),
        ({"issuer": make_key("untrusted gateway")}, "MCPS-017"),
        ({"now": NOW - 120}, "MCPS-017"),
    ],
)
async def test_grant_for_anything_but_exactly_this_call_is_refused(overrides: dict[str, Any], code: str) -> None:
    server = server_channel(grants=requirement({"rm_rf"}))
    request = with_grant(sent(agent_channel(), call(name="rm_rf")), **overrides)
    assert refusal_code(await server.receive(request)) == code


async def test_a_grant_sent_for_a_tool_that_needs_none_is_still_checked() -> None:
    server = server_channel(grants=requirement({"rm_rf"}))
    request = with_grant(sent(agent_channel(), call(name="safe")), arguments={"text": "other"})
    assert refusal_code(await server.receive(request)) == "MCPS-032"


async def test_a_grant_moved_to_another_request_is_refused() -> None:
    server, agent = server_channel(grants=requirement()), agent_channel()
    first = with_grant(sent(agent, call(1, name="rm_rf")))
    assert (await server.receive(first)).caller is not None
    second = sent(agent, call(2, name="rm_rf"))  # same tool, same arguments, another signed request
    second["params"]["_meta"][GRANT_KEY] = first["params"]["_meta"][GRANT_KEY]
    assert refusal_code(await server.receive(second)) == "MCPS-032"


async def test_a_grant_is_used_once_even_by_replicas_that_share_only_the_grant_store() -> None:
    shared = requirement()  # one grant store (jti) for both replicas; each has its own message nonce store
    granted = with_grant(sent(agent_channel(), call(name="rm_rf")))
    assert (await server_channel(grants=shared).receive(copy.deepcopy(granted))).caller is not None
    assert refusal_code(await server_channel(grants=shared).receive(granted)) == "MCPS-031"


async def test_a_server_without_a_grant_requirement_ignores_grants() -> None:
    inbound = await server_channel().receive(with_grant(sent(agent_channel(), call(name="rm_rf")), sub="agent-2"))
    assert inbound.caller is not None
    assert inbound.caller.grant is None


async def test_passports_minted_by_an_ordinary_agent_passport_are_refused_by_client_and_server() -> None:
    # Regression: any passport could sign another. Mallory holds an ordinary anchored passport and signs passports
    # for the server's identity and for agent-1, certifying a key of hers; only an issuer's passport (SPEC §7.4) may.
    mallory, minted_key = make_key("mallory"), make_key("mallory's minted key")

    def minted(sub: str) -> str:
        return passport(minted_key, issuer=mallory, iss="mallory", sub=sub, scopes=["tools:call"], jti=sub)

    for may_issue, code in ((False, "MCPS-009"), (True, None)):
        mallory_passport = passport(mallory, sub="mallory", jti="jti-mallory", may_issue=may_issue)
        resolver = PassportResolver(anchors=ANCHORS, audience=AGENT.kid, revocations=MemoryRevocationStore())
        client = SecureChannel(
            ChannelSecurity(key=AGENT, trusted=resolver, nonces=MemoryNonceStore(), clock=clock), peer=SERVER
        )
        request = sent(client, call(2))
        answer = attach_passport({"jsonrpc": "2.0", "id": 2, "result": {}}, minted(SERVER), [mallory_passport])
        irt = request["params"]["_meta"]["mcps/sig"]["sig"]
        delivered = (
            await client.receive(sign_message(answer, minted_key, audience=AGENT.kid, now=NOW, in_reply_to=irt))
        ).deliver
        assert delivered is not None
        assert (delivered.get("error") or {}).get("data", {}).get("mcps_code") == code, "client"

        impostor = ChannelSecurity(
            key=minted_key,
            passport=minted("agent-1"),
            chain=(mallory_passport,),
            trusted=PinnedKeys([SERVER_KEY.public_key]),
            nonces=MemoryNonceStore(),
            clock=clock,
        )
        inbound = await server_channel().receive(sent(SecureChannel(impostor, peer=SERVER), call()))
        if code is None:
            assert inbound.caller is not None  # the path is sound once the passport above may issue
            assert inbound.caller.identity == "agent-1"
        else:
            assert inbound.caller is None
            assert refusal_code(inbound) == code
