"""The per-connection rules of SecureChannel and the strict frame reader, in memory."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from mcps import ErrorCode, MemoryNonceStore, PinnedKeys, PrivateKey, bindings
from mcps.bindings import ChannelSecurity, NoVerifiedCaller, SecureChannel, current_caller
from mcps.bindings.channel import Inbound
from mcps.bindings.streams import OVERSIZE, LineReader, secure_frame_streams
from mcps.core.envelope import request_binding, sign_message

SERVER = "urn:mcps:test:server"
NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


def pair() -> tuple[SecureChannel, SecureChannel, PrivateKey]:
    agent, server = PrivateKey.generate(), PrivateKey.generate()
    client = SecureChannel(
        ChannelSecurity(key=agent, trusted=PinnedKeys([server.public_key]), nonces=MemoryNonceStore(), clock=clock),
        peer=SERVER,
    )
    served = SecureChannel(
        ChannelSecurity(
            key=server, identity=SERVER, trusted=PinnedKeys([agent.public_key]), nonces=MemoryNonceStore(), clock=clock
        ),
        peer=None,
    )
    return client, served, agent


def call(request_id: int = 1, name: str = "safe") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": {}}}


def sent(channel: SecureChannel, message: dict[str, Any]) -> dict[str, Any]:
    signed = channel.send(message)
    assert signed is not None
    return signed


async def test_request_result_round_trip_binds_the_result_to_its_request() -> None:
    client, server, agent = pair()
    request = sent(client, call())
    inbound = await server.receive(request)
    assert inbound.deliver == request
    assert inbound.caller is not None
    assert inbound.caller.kid == agent.kid
    result = sent(server, {"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    block = result["result"]["_meta"]["mcps/sig"]
    assert block["aud"] == agent.kid
    assert block["irt"] == request_binding(request["params"]["_meta"]["mcps/sig"]["sig"])
    assert (await client.receive(result)).deliver == result


async def test_refused_request_is_answered_with_a_signed_error_for_its_id_and_never_delivered() -> None:
    client, server, agent = pair()
    request = sent(client, call(7))
    request["params"]["name"] = "rm_rf"
    inbound = await server.receive(request)
    assert inbound.deliver is None
    assert inbound.reply is not None
    assert inbound.reply["id"] == 7
    assert inbound.reply["error"]["code"] == ErrorCode.BAD_SIGNATURE.jsonrpc
    assert inbound.reply["error"]["data"]["mcps/sig"]["aud"] == agent.kid
    delivered = (await client.receive(inbound.reply)).deliver
    assert delivered is not None
    assert delivered["error"]["data"]["mcps_code"] == "MCPS-004"


async def test_duplicate_key_frame_is_refused_before_any_parse_the_sdk_would_do() -> None:
    client, server, _ = pair()
    raw = json.dumps(sent(client, call(3))).replace('"name": "safe"', '"name": "safe", "name": "rm_rf"')
    inbound = await server.receive_raw(raw.encode())
    assert inbound.deliver is None
    assert inbound.reply is not None
    assert inbound.reply["id"] == 3
    assert inbound.reply["error"]["code"] == ErrorCode.DUPLICATE_KEY.jsonrpc


async def test_replayed_request_is_dropped_not_answered_twice() -> None:
    client, server, _ = pair()
    request = sent(client, call())
    assert (await server.receive(request)).deliver is not None
    sent(server, {"jsonrpc": "2.0", "id": 1, "result": {}})
    assert await server.receive(request) == Inbound()  # dropped: neither delivered nor answered


async def test_second_signer_on_one_connection_is_refused() -> None:
    client, server, agent = pair()
    other = PrivateKey.generate()
    server_key = PrivateKey.generate()
    shared = ChannelSecurity(
        key=server_key,
        identity=SERVER,
        trusted=PinnedKeys([agent.public_key, other.public_key]),
        nonces=MemoryNonceStore(),
        clock=clock,
    )
    server = SecureChannel(shared, peer=None)
    intruder = SecureChannel(
        ChannelSecurity(key=other, trusted=PinnedKeys([server_key.public_key]), nonces=MemoryNonceStore(), clock=clock),
        peer=SERVER,
    )
    assert (await server.receive(sent(client, call(1)))).deliver is not None
    refused = await server.receive(sent(intruder, call(2)))
    assert refused.reply is not None
    assert refused.reply["error"]["code"] == ErrorCode.UNKNOWN_KEY.jsonrpc


async def test_server_request_to_the_client_is_signed_for_the_peer_and_its_answer_bound() -> None:
    client, server, agent = pair()
    assert (await server.receive(sent(client, call(1)))).deliver is not None
    sampling = sent(server, {"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage", "params": {}})
    assert sampling["params"]["_meta"]["mcps/sig"]["aud"] == agent.kid
    assert (await client.receive(sampling)).deliver == sampling
    answer = sent(client, {"jsonrpc": "2.0", "id": 1, "result": {"role": "assistant"}})
    assert (await server.receive(answer)).deliver == answer
    forged = sent(client, {"jsonrpc": "2.0", "id": 1, "method": "ping"})  # a request's sig, reused as a response
    assert (await server.receive({"jsonrpc": "2.0", "id": 1, "result": forged["params"]})).deliver is None


async def test_server_sends_nothing_on_its_own_before_a_verified_peer() -> None:
    _, server, _ = pair()
    assert server.send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}) is None


async def test_failing_response_during_the_handshake_fails_the_waiting_request_with_its_code() -> None:
    """Before anything of the peer has verified (a wrong pinned key, a process that is no mcps server), a response
    that fails ends its request at once with the code instead of leaving it waiting forever (SPEC §9.1)."""
    client, server, _ = pair()
    request = sent(client, call(4))
    await server.receive(request)
    result = sent(server, {"jsonrpc": "2.0", "id": 4, "result": {}})
    del result["result"]["_meta"]["mcps/sig"]
    delivered = (await client.receive(result)).deliver
    assert delivered == {
        "jsonrpc": "2.0",
        "id": 4,
        "error": {"code": -33026, "message": "message is not signed", "data": {"mcps_code": "MCPS-026"}},
    }


def test_current_caller_outside_a_verified_request_raises() -> None:
    with pytest.raises(NoVerifiedCaller):
        current_caller()


async def test_line_reader_discards_an_oversize_line_and_resynchronises() -> None:
    chunks = [b"12345", b"6789\nok\n", b"tail"]

    async def receive() -> bytes:
        return chunks.pop(0) if chunks else b""

    reader = LineReader(receive, max_bytes=4)
    assert await reader.read_line() is OVERSIZE
    assert await reader.read_line() == b"ok"
    assert await reader.read_line() is None


async def test_frame_streams_hand_only_verified_messages_to_the_sdk_and_write_refusals() -> None:
    client, server, agent = pair()
    good = json.dumps(sent(client, call(1))).encode() + b"\n"
    smuggled = json.dumps(sent(client, call(2))).replace('"name": "safe"', '"name": "safe", "name": "rm_rf"')
    frames = [smuggled.encode() + b"\n" + b"x" * 100 + b"\n" + good]
    written: list[dict[str, Any]] = []

    async def receive() -> bytes:
        return frames.pop(0) if frames else b""

    async def send(frame: bytes) -> None:
        written.append(json.loads(frame))

    with anyio.fail_after(5):
        async with secure_frame_streams(server, receive, send) as (read_stream, _write):
            item = await read_stream.receive()
            assert isinstance(item, object)
            assert item.message.model_dump(exclude_unset=True)["id"] == 1  # type: ignore[union-attr]
            context = read_stream.last_context  # type: ignore[attr-defined]
            assert context is not None
            assert context.run(current_caller).kid == agent.kid
    assert [message["error"]["code"] for message in written] == [ErrorCode.DUPLICATE_KEY.jsonrpc]


def test_public_surface_is_what_all_says() -> None:
    assert [name for name in bindings.__all__ if not hasattr(bindings, name)] == []


async def test_cancelled_request_is_forgotten_on_both_sides() -> None:
    client, server, _ = pair()
    request = sent(client, call(9))
    assert (await server.receive(request)).deliver is not None
    cancel = sent(client, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})
    assert (await server.receive(cancel)).deliver is not None
    assert server.send({"jsonrpc": "2.0", "id": 9, "result": {}}) is None  # never answered after a cancel
    bare = sent(client, {"jsonrpc": "2.0", "method": "notifications/cancelled"})
    assert (await server.receive(bare)).deliver is not None


async def handshaken() -> tuple[SecureChannel, SecureChannel, PrivateKey]:
    """A client and server that have each verified one message of the other (the handshake is over)."""
    client, server, agent = pair()
    request = sent(client, call(1))
    assert (await server.receive(request)).deliver is not None
    assert (await client.receive(sent(server, {"jsonrpc": "2.0", "id": 1, "result": {}}))).deliver is not None
    return client, server, agent


def forgeries(genuine: dict[str, Any]) -> list[dict[str, Any] | bytes]:
    """Frames a third party injects for a pending request, each before its genuine answer."""
    unsigned = json.loads(json.dumps(genuine))
    del unsigned["result"]["_meta"]["mcps/sig"]
    tampered = json.loads(json.dumps(genuine))
    tampered["result"]["text"] = "forged"
    aud = genuine["result"]["_meta"]["mcps/sig"]["aud"]
    request_sig = "A" * 86  # the attacker binds its answer to anything: it never saw a key to sign with
    other_key = sign_message(unsigned, PrivateKey.generate(), audience=aud, now=NOW, in_reply_to=request_sig)
    error = {"jsonrpc": "2.0", "id": genuine["id"], "error": {"code": -32603, "message": "forged"}}
    duplicated = json.dumps(genuine).replace('"text": "real"', '"text": "real", "text": "forged"', 1).encode()
    return [unsigned, tampered, other_key, error, duplicated, json.dumps({**unsigned, "id": True}).encode()]


@pytest.mark.parametrize(
    "index", range(6), ids=["unsigned", "tampered", "other-key", "unsigned-error", "dup-key", "id-true"]
)
async def test_forged_response_to_a_pending_request_is_dropped_and_the_genuine_answer_accepted(index: int) -> None:
    """Only a verified response ends the wait (SPEC §9.1): a forgery injected with the pending id — or with ``true``
    for id 1, which Python's dicts would take for 1 — is dropped, and the genuine answer that follows is delivered."""
    client, server, _ = await handshaken()
    request = sent(client, call(1 if index == 5 else 2))  # id 1 is free again: its first request was answered
    assert (await server.receive(request)).deliver is not None
    genuine = sent(server, {"jsonrpc": "2.0", "id": request["id"], "result": {"text": "real"}})
    forgery = forgeries(genuine)[index]
    decision = await (client.receive_raw(forgery) if isinstance(forgery, bytes) else client.receive(forgery))
    assert decision == Inbound()  # dropped: nothing delivered, nothing answered
    delivered = (await client.receive(genuine)).deliver
    assert delivered is not None
    assert delivered["result"]["text"] == "real"


async def test_cancelled_with_request_id_true_does_not_cancel_request_1() -> None:
    client, server, _ = pair()
    request = sent(client, call(1))
    assert (await server.receive(request)).deliver is not None
    cancel = sent(client, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": True}})
    assert (await server.receive(cancel)).deliver is not None
    assert server.send({"jsonrpc": "2.0", "id": 1, "result": {}}) is not None  # request 1 is still answered


async def test_response_with_id_true_is_not_the_answer_to_request_1() -> None:
    client, server, _ = pair()
    request = sent(client, call(1))
    await server.receive(request)
    genuine = sent(server, {"jsonrpc": "2.0", "id": 1, "result": {}})
    assert await client.receive({**genuine, "id": True}) == Inbound()
    assert (await client.receive(genuine)).deliver is not None


def test_request_key_never_takes_a_bool_for_an_integer() -> None:
    assert [bindings.channel.request_key(value) for value in (1, "1", True, False, 1.0, None)] == [
        1,
        "1",
        None,
        None,
        None,
        None,
    ]
