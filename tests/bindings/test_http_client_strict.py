"""The HTTP client's strict response layer (:class:`mcps.bindings.http_client.StrictResponses`) decides which bodies
to parse strictly on the same reading of ``Content-Type`` as the SDK, so no body the SDK parses escapes it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest

from mcps.bindings.http_client import StrictResponses, _body_kind
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import Limits

DUPLICATE = b'{"jsonrpc":"2.0","id":7,"result":{"isError":false,"isError":true}}'
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo"}}
JSON_LABELS = [
    "application/json",
    "application/jsonx",
    "Application/JSON; charset=utf-8",
    "application/json, text/html",
    "application/json-seq",
    "APPLICATION/JSON+whatever",
    " application/json",
    "application/json\t; q=1",
]
SSE_LABELS = ["text/event-stream", "TEXT/EVENT-STREAM; charset=utf-8", "text/event-streamx", " text/event-stream "]


class Server(httpx2.AsyncBaseTransport):
    """Answers every request with ``body`` labelled ``content_type``, streamed as a network response is."""

    def __init__(self, content_type: str, body: bytes) -> None:
        self.content_type, self.body = content_type, body

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": self.content_type}
        return httpx2.Response(200, headers=headers, stream=Body(self.body), request=request)


class Body(httpx2.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


async def answer(content_type: str, body: bytes) -> tuple[httpx2.Response, dict[object, McpsError]]:
    inner = Server(content_type, body)
    refused: dict[object, McpsError] = {}
    async with httpx2.AsyncClient(transport=StrictResponses(inner, Limits(), refused)) as client:
        response = await client.post("http://server.test/mcp", json=CALL)
    return response, refused


@pytest.mark.parametrize("content_type", JSON_LABELS)
async def test_a_body_any_json_label_makes_the_sdk_read_is_parsed_strictly(content_type: str) -> None:
    """Regression: only exactly ``application/json`` was parsed strictly, while the SDK reads every label that starts
    with it as JSON — a duplicate key labelled ``application/jsonx`` reached the SDK's lenient parser."""
    response, refused = await answer(content_type, DUPLICATE)
    assert b"isError" not in response.content
    assert json.loads(response.content)["error"]["data"]["mcps_code"] == ErrorCode.DUPLICATE_KEY.mcps
    assert refused[7].code is ErrorCode.DUPLICATE_KEY


@pytest.mark.parametrize("content_type", SSE_LABELS)
async def test_an_event_stream_any_sse_label_makes_the_sdk_read_is_parsed_strictly(content_type: str) -> None:
    response, refused = await answer(content_type, b"data: " + DUPLICATE + b"\n\n")
    assert b"isError" not in response.content
    assert ErrorCode.DUPLICATE_KEY.mcps.encode() in response.content
    assert refused[7].code is ErrorCode.DUPLICATE_KEY


@pytest.mark.parametrize("content_type", ["text/plain", "text/html; charset=utf-8", "", "application/xml", "json"])
async def test_a_body_no_sdk_reader_parses_is_passed_on_untouched(content_type: str) -> None:
    response, refused = await answer(content_type, DUPLICATE)
    assert response.content == DUPLICATE  # the SDK reports an unexpected content type; it parses nothing of it
    assert refused == {}


@pytest.mark.parametrize("content_type", [*JSON_LABELS, *SSE_LABELS, "text/plain", "", "application/xml"])
def test_the_strict_layer_reads_a_label_as_every_sdk_reader_does(content_type: str) -> None:
    """The SDK's readers: mcp.client.streamable_http (a prefix of the lower-cased header) and httpx2.EventSource
    (the media type before ';', stripped and lower-cased). Whatever either would parse, the strict layer parses."""
    lowered = content_type.lower()
    media = lowered.partition(";")[0].strip()
    if lowered.startswith("application/json"):
        assert _body_kind(content_type) == "json"
    if lowered.startswith("text/event-stream") or media == "text/event-stream":
        assert _body_kind(content_type) == "sse"


async def test_an_event_whose_data_is_not_utf8_fails_its_request_with_mcps_019() -> None:
    """Regression: SSE data was decoded with replacement, so the SDK got U+FFFD where the server sent \\xff."""
    response, refused = await answer("text/event-stream", b'data: {"jsonrpc":"2.0","id":7,"result":{"t":"\xff"}}\n\n')
    assert "\ufffd" not in response.content.decode("utf-8")
    assert ErrorCode.MALFORMED_JSON.mcps.encode() in response.content
    assert refused[7].code is ErrorCode.MALFORMED_JSON
