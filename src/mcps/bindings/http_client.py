"""Signed MCP agents over Streamable HTTP: the SDK's HTTP client transport, strictly parsed, verified and signed.

::

    security = ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_public_key]), nonces=MemoryNonceStore())
    async with Client(signed_streamable_http_client("https://files.example/mcp", security,
                                                    server_identity="urn:example:files")) as client:
        result = await client.call_tool("read", {"path": "notes.txt"})

Two layers around ``mcp.client.streamable_http.streamable_http_client``:

* below it, an ``httpx2`` transport (:class:`StrictResponses`) reads every response body (JSON, or each SSE
  event) bounded by ``limits.max_bytes`` and parses it strictly; the SDK's parser gets the strictly parsed
  message written again (never the bytes received), so it reads what the signature covers. A body that
  fails is replaced, for the SDK, by a local JSON-RPC error for the request it answers (an SSE event that
  answers no request is dropped), and the request fails with that MCPS code (MCPS-018…025);
* above it, the same stream wrapper as :class:`~mcps.bindings.SignedTransport`: every message signed for
  ``server_identity``; every message received verified against the pinned server keys, responses bound to
  their request (``irt``), replayed or unsigned ones refused; every listed tool's signature verified and its
  definition pinned (``tools=``, or for this connection only by default: :meth:`ToolGuard.session_pins
  <mcps.bindings.tools.ToolGuard.session_pins>`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
from mcp.client.streamable_http import streamable_http_client

from mcps.bindings._sdk import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT, TransportStreams
from mcps.bindings.channel import ChannelSecurity, Inbound, SecureChannel, request_key
from mcps.bindings.sse import SseRewriter
from mcps.bindings.streams import secure_message_streams
from mcps.bindings.tools import ToolGuard
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import Limits, parse_message

__all__ = ["StrictResponses", "signed_streamable_http_client"]

logger = logging.getLogger("mcps.bindings")

RequestId = str | int


class StrictResponses(httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport whose JSON and SSE response bodies are bounded and strictly parsed.

    ``refused`` collects, by request id, the refusal of each response body that failed; the channel of
    :func:`signed_streamable_http_client` reads it to fail that request with the right code.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, limits: Limits, refused: dict[RequestId, McpsError]) -> None:
        self._inner = inner
        self._limits = limits
        self._refused = refused

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["accept-encoding"] = "identity"  # parse the bytes as sent, not a compressed form
        response = await self._inner.handle_async_request(request)
        kind = _body_kind(response.headers.get("content-type", ""))
        headers = [
            (key, value)
            for key, value in response.headers.multi_items()
            if key.lower() not in ("content-length", "transfer-encoding")
        ]
        request_id = _request_id(request)
        if kind == "json":
            body = await self._read(response, request_id)
            return httpx2.Response(
                response.status_code,
                headers=headers,
                content=body or b"",
                request=request,
                extensions=response.extensions,
            )
        if kind == "sse":
            stream = _StrictEvents(response, SseRewriter(self._checker(request_id), max_bytes=self._limits.max_bytes))
            return httpx2.Response(
                response.status_code, headers=headers, stream=stream, request=request, extensions=response.extensions
            )
        return response

    async def _read(self, response: httpx2.Response, request_id: RequestId | None) -> bytes:
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self._limits.max_bytes:
                    return self._refuse(request_id, McpsError(ErrorCode.MESSAGE_TOO_LARGE))
        finally:
            await response.aclose()
        if body:
            try:
                return _encode(parse_message(bytes(body), self._limits))
            except McpsError as error:
                return self._refuse(request_id, error)
        return bytes(body)

    def _checker(self, request_id: RequestId | None) -> Any:
        def check(data: str | McpsError) -> str | None:
            try:
                if isinstance(data, McpsError):  # over the size limit (MCPS-018), or not UTF-8 (MCPS-019)
                    raise data
                parsed = parse_message(data.encode("utf-8"), self._limits)
            except McpsError as error:
                replaced = self._refuse(request_id, error)
                return replaced.decode("ascii") if replaced else None
            return _encode(parsed).decode("ascii")

        return check

    def _refuse(self, request_id: RequestId | None, error: McpsError) -> bytes:
        """A stand-in body: a local JSON-RPC error for ``request_id`` (empty when it answers no request)."""
        logger.warning("mcps refused a response body from the server: %s", error.diagnostics())
        if request_id is None:
            return b""
        self._refused.setdefault(request_id, error)  # the first refusal is the one the request fails with
        local = {"jsonrpc": "2.0", "id": request_id, "error": error.to_jsonrpc_error()}
        return json.dumps(local, separators=(",", ":")).encode("ascii")

    async def aclose(self) -> None:
        await self._inner.aclose()


class _StrictEvents(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response, rewriter: SseRewriter) -> None:
        self._response = response
        self._rewriter = rewriter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            out = self._rewriter.feed(chunk)
            if out:
                yield out
        out = self._rewriter.close()
        if out:
            yield out

    async def aclose(self) -> None:
        await self._response.aclose()


class _HttpClientChannel(SecureChannel):
    """Fails a request whose response body :class:`StrictResponses` refused, with that refusal's code.

    Every message it receives came back in an HTTP response to a request of this client — written by the server,
    or by whoever controls that exchange and could withhold the answer anyway — or was made up by the SDK's
    transport for a request whose exchange failed: so a response that fails ends its request (SPEC.md §9.5.5).
    """

    failed_answer_ends_request = True

    def __init__(
        self, security: ChannelSecurity, peer: str, tools: ToolGuard | None, refused: dict[RequestId, McpsError]
    ) -> None:
        super().__init__(security, peer=peer, tools=tools)
        self._refused = refused

    async def receive(self, message: dict[str, Any]) -> Inbound:
        request_id = request_key(message.get("id"))  # never a bool: `true` is not request 1
        if "method" not in message and request_id is not None and request_id in self._refused:
            error = self._refused.pop(request_id)
            if request_id in self._awaiting:
                self._forget_request(request_id)
                local = {"jsonrpc": "2.0", "id": request_id, "error": error.to_jsonrpc_error()}
                return Inbound(deliver=local, local=True)
        return await super().receive(message)


def _body_kind(content_type: str) -> Literal["json", "sse"] | None:
    """How the SDK will read a response body with this ``Content-Type``, decided as the readers above decide, so
    that nothing the SDK parses escapes the strict parse: ``mcp.client.streamable_http`` takes any header whose
    lower-cased text *starts with* ``application/json`` (``application/jsonx``, ``application/json, text/html``)
    as JSON and one starting with ``text/event-stream`` as SSE; ``httpx2.EventSource`` takes the media type before
    ``;``, stripped and lower-cased. A header either reads as JSON or SSE is parsed strictly as that here; any
    other body is read by no JSON parser of the SDK (it reports an unexpected content type) and is passed on.
    """
    lowered = content_type.lower()
    media = lowered.partition(";")[0].strip()
    if lowered.startswith("application/json") or media == "application/json":
        return "json"
    if lowered.startswith("text/event-stream") or media == "text/event-stream":
        return "sse"
    return None


def _encode(message: dict[str, Any]) -> bytes:
    """The strictly parsed message, written again for the SDK's parser: compact ASCII JSON, numbers as read (§3)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")


def _request_id(request: httpx2.Request) -> RequestId | None:
    """The id of the JSON-RPC request this HTTP request posted (our own body), if it posted one."""
    if request.method != "POST":
        return None
    try:
        posted = json.loads(request.content)
    except (ValueError, httpx2.RequestNotRead):
        return None
    request_id = posted.get("id") if isinstance(posted, dict) and "method" in posted else None
    return request_key(request_id)


@asynccontextmanager
async def signed_streamable_http_client(
    url: str,
    security: ChannelSecurity,
    *,
    server_identity: str,
    tools: ToolGuard | None = None,
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,  # noqa: ASYNC109 - the HTTP client's timeouts, as in the SDK
    auth: httpx2.Auth | None = None,
    terminate_on_close: bool = True,
) -> AsyncIterator[TransportStreams]:
    """Talk to the MCP server at ``url`` over Streamable HTTP, every message strictly parsed, verified and signed.

    ``headers``, ``timeout`` and ``auth`` configure the HTTP client as the SDK's own HTTP client does
    (defaults: 30 s, 300 s to read a stream); ``tools`` pins the server's tool definitions (from ``mcps.lock``),
    by default for this connection only (:meth:`~mcps.bindings.tools.ToolGuard.session_pins`).
    """
    refused: dict[RequestId, McpsError] = {}
    guard = tools if tools is not None else ToolGuard.session_pins(server_identity)
    channel = _HttpClientChannel(security, server_identity, guard, refused)
    transport = StrictResponses(httpx2.AsyncHTTPTransport(), security.limits, refused)
    http = httpx2.AsyncClient(
        transport=transport,
        headers=headers,
        timeout=timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        auth=auth,
    )
    async with (
        http,
        streamable_http_client(url, http_client=http, terminate_on_close=terminate_on_close) as (read, write),
        secure_message_streams(channel, read, write) as streams,
    ):
        yield streams
