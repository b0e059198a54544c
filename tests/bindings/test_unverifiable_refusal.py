"""The refused side learns that it was refused (issue 15.3, SPEC.md §9.1), in memory.

A request stripped of its signature block or re-signed on the way is refused by the server (MCPS-026, MCPS-029),
but the refusal cannot be bound to the signature the client sent. The client fails the request with MCPS-012 and
"the server refused this request (unverifiable refusal)" only when the refusal is signed by its server's key;
the server's code is never reported as verified. Anything else unbound stays an ordinary MCPS-011/012.
Extensive end-to-end cases: ``test_stdio_end_to_end.py`` and ``test_http_end_to_end.py``
(``test_tampered_request_reaches_no_tool``). All keys are test keys, made per run.
"""

from __future__ import annotations

import copy
from typing import Any

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SecureChannel
from mcps.bindings.channel import UNVERIFIABLE_REFUSAL_KEY
from mcps.core.envelope import sign_message

SERVER = "urn:mcps:test:server"
NOW = 1_800_000_000.0
AGENT, SERVER_KEY, ATTACKER = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
UNVERIFIABLE = "the server refused this request (unverifiable refusal)"


def clock() -> float:
    return NOW


def channels() -> tuple[SecureChannel, SecureChannel]:
    client = SecureChannel(
        ChannelSecurity(key=AGENT, trusted=PinnedKeys([SERVER_KEY.public_key]), nonces=MemoryNonceStore(), clock=clock),
        peer=SERVER,
    )
    server = SecureChannel(
        ChannelSecurity(
            key=SERVER_KEY,
            identity=SERVER,
            trusted=PinnedKeys([AGENT.public_key]),
            nonces=MemoryNonceStore(),
            clock=clock,
        ),
        peer=None,
    )
    return client, server


def call(request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "safe", "arguments": {}}}


async def failure_of(client: SecureChannel, answer: dict[str, Any]) -> dict[str, Any]:
    decision = await client.receive(answer)
    assert decision.local
    assert decision.deliver is not None
    error: dict[str, Any] = decision.deliver["error"]
    return error


async def test_request_stripped_of_its_signature_is_reported_as_an_unverifiable_refusal() -> None:
    client, server = channels()
    sent = client.send(call())
    assert sent is not None
    stripped = copy.deepcopy(sent)
    del stripped["params"]["_meta"]["mcps/sig"]
    refusal = (await server.receive(stripped)).reply
    assert refusal is not None
    assert refusal["error"]["data"]["mcps_code"] == ErrorCode.SIGNATURE_MISSING.mcps  # what the server said
    error = await failure_of(client, refusal)
    assert (error["code"], error["message"]) == (ErrorCode.TRANSCRIPT_MISMATCH.jsonrpc, UNVERIFIABLE)
    assert error["data"] == {"mcps_code": "MCPS-012", UNVERIFIABLE_REFUSAL_KEY: True}  # not the server's MCPS-026


async def test_request_re_signed_on_the_way_is_reported_as_an_unverifiable_refusal() -> None:
    client, server = channels()
    sent = client.send(call())
    assert sent is not None
    resigned = sign_message(sent, ATTACKER, audience=SERVER, now=NOW)
    refusal = (await server.receive(resigned)).reply
    assert refusal is not None
    assert refusal["error"]["data"]["mcps_code"] == ErrorCode.UNKNOWN_KEY.mcps
    assert refusal["error"]["data"]["mcps/sig"]["aud"] == ATTACKER.kid  # addressed as the re-signed request claims
    error = await failure_of(client, refusal)
    assert (error["message"], error["data"][UNVERIFIABLE_REFUSAL_KEY]) == (UNVERIFIABLE, True)


async def test_unbound_refusal_not_signed_by_the_server_is_not_called_the_server_s() -> None:
    for signer, aud in ((ATTACKER, AGENT.kid), (ATTACKER, "mcps:unverified-peer")):
        client, _ = channels()
        assert client.send(call()) is not None
        forged = sign_message(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -33026, "message": "message is not signed"}},
            signer,
            audience=aud,
            now=NOW,
        )
        error = await failure_of(client, forged)
        assert error["message"] != UNVERIFIABLE
        assert UNVERIFIABLE_REFUSAL_KEY not in error["data"]
        assert error["data"]["mcps_code"] in ("MCPS-011", "MCPS-012")


async def test_a_refusal_bound_to_the_request_is_reported_with_the_server_s_code() -> None:
    client, server = channels()
    sent = client.send(call())
    assert sent is not None
    tampered = copy.deepcopy(sent)
    tampered["params"]["arguments"] = {"x": 1}
    refusal = (await server.receive(tampered)).reply
    assert refusal is not None
    decision = await client.receive(refusal)
    assert not decision.local
    assert decision.deliver == refusal  # verified: bound to the request the client sent
    assert refusal["error"]["data"]["mcps_code"] == ErrorCode.BAD_SIGNATURE.mcps


async def test_an_unbound_result_signed_by_the_server_is_not_a_refusal() -> None:
    client, server = channels()
    first = client.send(call(1))
    assert first is not None
    assert (await server.receive(first)).deliver is not None
    result = server.send({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    assert result is not None
    assert client.send(call(2)) is not None
    error = await failure_of(client, {**result, "id": 2})  # replayed onto another request
    assert (error["data"]["mcps_code"], UNVERIFIABLE_REFUSAL_KEY in error["data"]) == ("MCPS-012", False)
