"""The SDK-facing streams: read in the SDK's own task, verified messages only, envelope models as the SDK makes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, jsonrpc_message_adapter
from pydantic import BaseModel, ValidationError

from mcps import ErrorCode
from mcps.bindings import SecureChannel, current_caller
from mcps.bindings.streams import secure_message_streams, to_envelope

from .test_channel import pair


def signed_call(channel: SecureChannel, request_id: int) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "safe", "arguments": {}}}
    signed = channel.send(message)
    assert signed is not None
    return signed


def session_message(message: dict[str, Any]) -> SessionMessage:
    return SessionMessage(jsonrpc_message_adapter.validate_python(message, by_name=False))


async def test_message_streams_deliver_only_verified_messages_and_answer_refusals_on_the_way() -> None:
    client, server, agent = pair()
    tampered = signed_call(client, 2)
    tampered["params"]["name"] = "rm_rf"
    to_server, transport_in = anyio.create_memory_object_stream[SessionMessage | Exception](8)
    transport_out, from_server = anyio.create_memory_object_stream[SessionMessage](8)
    for item in (session_message(signed_call(client, 1)), ValueError("unparsable"), session_message(tampered)):
        to_server.send_nowait(item)
    to_server.send_nowait(session_message(signed_call(client, 3)))
    to_server.close()

    with anyio.fail_after(5), transport_out, from_server:
        async with secure_message_streams(server, transport_in, transport_out) as (read_stream, _write):
            first = await read_stream.receive()
            assert isinstance(first, SessionMessage)
            assert first.message.model_dump()["id"] == 1
            context = read_stream.last_context  # type: ignore[attr-defined]
            assert context is not None
            assert context.run(current_caller).kid == agent.kid
            third = await read_stream.receive()
            assert isinstance(third, SessionMessage)
            assert third.message.model_dump()["id"] == 3
            with pytest.raises(anyio.EndOfStream):
                await read_stream.receive()
        refusal = from_server.receive_nowait().message.model_dump(by_alias=True, exclude_unset=True)
    assert refusal["id"] == 2
    assert refusal["error"]["code"] == ErrorCode.BAD_SIGNATURE.jsonrpc
    assert "mcps/sig" in refusal["error"]["data"]


async def test_message_streams_refuse_a_second_concurrent_reader_and_close_the_transport() -> None:
    _client, server, _agent = pair()
    to_server, transport_in = anyio.create_memory_object_stream[SessionMessage | Exception](1)
    transport_out, from_server = anyio.create_memory_object_stream[SessionMessage](1)
    with to_server, transport_out, from_server:
        async with secure_message_streams(server, transport_in, transport_out) as (read_stream, _write):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_stream.receive)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises(anyio.BusyResourceError):
                    await read_stream.receive()
                tasks.cancel_scope.cancel()
            await read_stream.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await read_stream.receive()
        with pytest.raises(anyio.BrokenResourceError):
            to_server.send_nowait(ValueError("nobody reads the transport any more"))


_IDS = st.sampled_from([1, "a", None, True, 1.5])
_OBJECTS = st.sampled_from([{}, {"a": 1}, None, [1], 5])
_ERRORS = st.sampled_from([{"code": 1, "message": "x"}, {"code": 1}, {"code": 1, "message": "x", "data": [1]}, 7])
_MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0"]),
        "id": _IDS,
        "method": st.sampled_from(["tools/call", 3]),
        "params": _OBJECTS,
        "result": _OBJECTS,
        "error": _ERRORS,
        "extra": st.just(1),
    },
)


def outcome(make: Callable[[dict[str, Any]], object], message: dict[str, Any]) -> object:
    """The model ``make`` returns, or the text of the ``ValidationError`` it raises."""
    try:
        return make(message)
    except ValidationError as error:
        return str(error)


@given(_MESSAGES)
def test_to_envelope_is_exactly_what_the_sdk_adapter_makes(message: dict[str, Any]) -> None:
    expected = outcome(lambda value: jsonrpc_message_adapter.validate_python(value, by_name=False), message)
    made = outcome(to_envelope, message)
    assert type(made) is type(expected)
    assert made == expected
    if isinstance(made, BaseModel) and isinstance(expected, BaseModel):
        assert made.model_fields_set == expected.model_fields_set


def test_to_envelope_of_an_ambiguous_message_is_the_adapters_choice() -> None:
    both = {"jsonrpc": "2.0", "id": 1, "method": "m", "error": {"code": 1, "message": "x"}}
    assert type(to_envelope(both)) is type(jsonrpc_message_adapter.validate_python(both, by_name=False))
    assert not isinstance(to_envelope(both), JSONRPCRequest)
