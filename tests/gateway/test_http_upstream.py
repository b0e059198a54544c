"""HttpUpstreamApp, the reverse proxy to an MCP server reached by URL: real uvicorn servers and raw TCP servers on
127.0.0.1, the plain MCP SDK client over both protocol generations, and the faults an upstream can throw at it.
Every test is bounded in time (``anyio.fail_after``); no test sleeps to test time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from starlette.types import Message, Receive, Scope, Send

import mcps.gateway.http_upstream as module
from mcps.gateway.http_upstream import (
    UPSTREAM_ERROR_HEADER,
    UPSTREAM_ERROR_KEY,
    HttpUpstreamApp,
    UpstreamFailure,
    failure_of,
)

from .proxy_harness import Gates, Recorder, drive, raw_tcp, read_request_head, refused_url, sdk_upstream, serving

TIMEOUT = 20
MiB = 1024 * 1024
ERAS = [pytest.param("legacy", id="2025-11-25"), pytest.param("2026-07-28", id="2026-07-28")]
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


@asynccontextmanager
async def proxied(upstream_url: str, **options: Any) -> AsyncIterator[str]:
    """The proxy for ``upstream_url`` under its own uvicorn (lifespan on: shutdown closes its pool); yields its
    MCP endpoint URL."""
    async with serving(HttpUpstreamApp(upstream_url, **options), lifespan="on") as url:
        yield url + "/mcp"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await read_request_head(reader)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


# --- the plain SDK client through the proxy, both protocol generations -------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_sdk_client_lists_and_calls_tools_through_the_proxy(mode: str) -> None:
    recorder = Recorder(sdk_upstream(Gates()))
    with anyio.fail_after(TIMEOUT):
        async with (
            serving(recorder, lifespan="on") as upstream,
            proxied(upstream + "/mcp") as url,
            Client(url, mode=mode) as client,
        ):
            tools = await client.list_tools()
            assert {tool.name for tool in tools.tools} == {"echo", "steps", "hold"}
            result = await client.call_tool("echo", {"text": "hello"})
            assert result.content[0].text == "hello"  # type: ignore[union-attr]
            if mode == "legacy":  # the session's server→client stream, opened by the client in the background
                while not any(e["method"] == "GET" and e["status"] for e in recorder.exchanges):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
    exchanges = recorder.exchanges
    assert all(e["headers"][b"host"] == upstream.removeprefix("http://").encode() for e in exchanges)
    if mode == "legacy":
        assert [e["method"] for e in exchanges if e["method"] != "POST"] == ["GET", "DELETE"]
        assert all(e["status"] in (200, 202) for e in exchanges)
        session_ids = {e["headers"].get(b"mcp-session-id") for e in exchanges[1:]}
        assert len(session_ids) == 1
        assert None not in session_ids
    else:
        assert {e["method"] for e in exchanges} == {"POST"}
        assert all(b"mcp-session-id" not in e["headers"] for e in exchanges)
        assert all(e["headers"][b"mcp-protocol-version"] == b"2026-07-28" for e in exchanges)
        call = exchanges[-1]["headers"]
        assert (call[b"mcp-method"], call[b"mcp-name"]) == (b"tools/call", b"echo")


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_notification_arrives_while_the_call_is_still_running(mode: str) -> None:
    """The tool finishes only after the client received its first progress notification: a proxy that held the
    event stream back until the end would deadlock here (and fail the time bound)."""
    gates = Gates()
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)
        gates.finish_steps.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            serving(sdk_upstream(gates), lifespan="on") as upstream,
            proxied(upstream + "/mcp") as url,
            Client(url, mode=mode) as client,
        ):
            result = await client.call_tool("steps", {}, progress_callback=on_progress)
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    assert seen == ["first step", "second step"]


async def test_other_clients_are_served_while_one_call_hangs_upstream() -> None:
    gates = Gates()
    with anyio.fail_after(TIMEOUT):
        async with serving(sdk_upstream(gates), lifespan="on") as upstream, proxied(upstream + "/mcp") as url:
            results: list[str] = []
            async with Client(url, mode="legacy") as slow, anyio.create_task_group() as tasks:

                async def slow_call() -> None:
                    result = await slow.call_tool("hold", {})
                    results.append(result.content[0].text)  # type: ignore[union-attr]

                tasks.start_soon(slow_call)
                await gates.hold_started.wait()
                for mode in ("legacy", "2026-07-28"):
                    async with Client(url, mode=mode) as other:
                        for n in range(5):
                            echoed = await other.call_tool("echo", {"text": f"{mode} {n}"})
                            assert echoed.content[0].text == f"{mode} {n}"  # type: ignore[union-attr]
                assert results == []  # the slow call is still held upstream
                gates.release_hold.set()
    assert results == ["released"]


# --- headers ------------------------------------------------------------------------------------------------------

RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"mcp-session-id", b"session-1"),
    (b"mcp-protocol-version", b"2025-11-25"),
    (b"cache-control", b"no-store"),
    (b"x-custom", b"kept"),
    (b"set-cookie", b"upstream=1"),
    (b"www-authenticate", b'Bearer realm="upstream"'),
    (b"x-mcps-upstream-error", b"timeout"),  # forged: only the proxy may say that
    (b"keep-alive", b"timeout=5"),
    (b"connection", b"x-upstream-hop"),
    (b"x-upstream-hop", b"1"),
    (b"server", b"upstream-server/1.0"),
]
REQUEST_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "Mcp-Session-Id": "session-1",
    "MCP-Protocol-Version": "2025-11-25",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "echo",
    "Mcp-Param-Region": "eu",
    "Last-Event-ID": "7",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=1",
    "Authorization": "Bearer credential-for-the-gateway",
    "Cookie": "gateway-session=secret",
    "Proxy-Authorization": "Basic cHJveHk6cHc=",
    "X-Api-Key": "gateway-key",
    "User-Agent": "test-client",
    "Accept-Encoding": "gzip",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Connection": "keep-alive, tracestate",
}


async def header_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the request headers it received, and with a mix of response headers to keep and to drop."""
    if scope["type"] != "http":
        return
    body = json.dumps([[k.decode(), v.decode()] for k, v in scope["headers"]]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": RESPONSE_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def exchange_headers(**options: Any) -> tuple[str, dict[str, list[str]], httpx2.Response]:
    async with (
        serving(header_echo) as upstream,
        proxied(upstream + "/mcp", **options) as url,
        httpx2.AsyncClient() as http,
    ):
        response = await http.post(url, content=b'{"jsonrpc":"2.0"}', headers=REQUEST_HEADERS)
    received: dict[str, list[str]] = {}
    for name, value in response.json():
        received.setdefault(name, []).append(value)
    return upstream, received, response


async def test_mcp_headers_are_forwarded_and_credentials_and_hop_by_hop_headers_are_not() -> None:
    with anyio.fail_after(TIMEOUT):
        upstream, received, _ = await exchange_headers()
    assert received.pop("host") == [upstream.removeprefix("http://")]
    assert received.pop("accept-encoding") == ["identity"]
    assert received.pop("content-length") == ["17"]
    assert received == {
        "content-type": ["application/json"],
        "accept": ["application/json, text/event-stream"],
        "mcp-session-id": ["session-1"],
        "mcp-protocol-version": ["2025-11-25"],
        "mcp-method": ["tools/call"],
        "mcp-name": ["echo"],
        "mcp-param-region": ["eu"],
        "last-event-id": ["7"],
        "traceparent": ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
    }  # no Authorization, Cookie, Proxy-*, X-Api-Key, User-Agent, Keep-Alive, TE; tracestate named in Connection


async def test_response_headers_pass_except_hop_by_hop_cookies_challenges_and_a_forged_failure() -> None:
    with anyio.fail_after(TIMEOUT):
        _, _, response = await exchange_headers()
    assert response.status_code == 200
    headers = response.headers
    for name in ("content-type", "mcp-session-id", "mcp-protocol-version", "cache-control", "x-custom"):
        assert headers[name] == dict(RESPONSE_HEADERS)[name.encode()].decode()
    for name in ("set-cookie", "www-authenticate", "x-mcps-upstream-error", "keep-alive", "x-upstream-hop"):
        assert name not in headers
    assert headers.get_list("server") == ["uvicorn"]  # the front's own, not the upstream's as well
    assert len(headers.get_list("date")) == 1
    assert int(headers["content-length"]) == len(response.content)


async def test_credentials_are_forwarded_only_when_named() -> None:
    with anyio.fail_after(TIMEOUT):
        _, received, response = await exchange_headers(forward_headers=("Authorization", "cookie", "x-api-key"))
    assert received["authorization"] == ["Bearer credential-for-the-gateway"]
    assert received["cookie"] == ["gateway-session=secret"]
    assert received["x-api-key"] == ["gateway-key"]
    assert "proxy-authorization" not in received
    assert response.headers["set-cookie"] == "upstream=1"
    assert response.headers["www-authenticate"] == 'Bearer realm="upstream"'


@pytest.mark.parametrize(
    "names", [("connection",), ("Host",), ("content-length",), ("transfer-encoding",), ("bad name",), ("",)]
)
def test_forward_headers_cannot_name_hop_by_hop_or_framing_headers(names: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="forward_headers"):
        HttpUpstreamApp("http://127.0.0.1:1/mcp", forward_headers=names)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/mcp", "/mcp", "http:///mcp", "http://user:pw@127.0.0.1/mcp", "http://127.0.0.1/mcp#x"]
)
def test_upstream_url_must_be_plain_absolute_http(url: str) -> None:
    with pytest.raises(ValueError, match="upstream url"):
        HttpUpstreamApp(url)


@pytest.mark.parametrize(
    "options",
    [{"call_timeout": 0}, {"connect_timeout": -1}, {"read_timeout": 0}, {"max_bytes": 0}, {"max_connections": 0}],
)
def test_limits_must_be_positive(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="positive"):
        HttpUpstreamApp("http://127.0.0.1:1/mcp", **options)


# --- methods, bodies, connections ----------------------------------------------------------------------------------


async def test_post_get_delete_options_are_forwarded_and_other_methods_refused() -> None:
    recorder = Recorder(header_echo)
    with anyio.fail_after(TIMEOUT):
        async with serving(recorder) as upstream, proxied(upstream + "/mcp") as url, httpx2.AsyncClient() as http:
            statuses = {m: (await http.request(m, url)).status_code for m in ("POST", "GET", "DELETE", "OPTIONS")}
            refused = await http.request("PUT", url)
    assert statuses == {"POST": 200, "GET": 200, "DELETE": 200, "OPTIONS": 200}
    assert [e["method"] for e in recorder.exchanges] == ["POST", "GET", "DELETE", "OPTIONS"]
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST, GET, DELETE, OPTIONS"


async def test_request_body_over_the_limit_is_refused_and_never_forwarded() -> None:
    recorder = Recorder(header_echo)
    with anyio.fail_after(TIMEOUT):
        async with (
            serving(recorder) as upstream,
            proxied(upstream + "/mcp", max_bytes=1000) as url,
            httpx2.AsyncClient() as http,
        ):
            declared = await http.post(url, content=b"x" * 1001)

            async def undeclared() -> AsyncIterator[bytes]:
                for _ in range(3):
                    yield b"x" * 600

            streamed = await http.post(url, content=undeclared())
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert recorder.exchanges == []


async def test_keep_alive_connection_is_reused() -> None:
    peers: list[Any] = []

    async def record_peer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            peers.append(scope["client"])
            await header_echo(scope, receive, send)

    with anyio.fail_after(TIMEOUT):
        async with serving(record_peer) as upstream, proxied(upstream + "/mcp") as url, httpx2.AsyncClient() as http:
            for _ in range(5):
                assert (await http.post(url, content=b"{}")).status_code == 200
    assert len(peers) == 5
    assert len(set(peers)) == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_response_without_a_body_gets_no_content_length(status: int) -> None:
    async def empty(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    with anyio.fail_after(TIMEOUT):
        async with serving(empty) as upstream, proxied(upstream + "/mcp") as url, httpx2.AsyncClient() as http:
            response = await http.post(url, content=b"{}")
    assert response.status_code == status
    assert "content-length" not in response.headers


async def test_redirect_is_passed_back_not_followed() -> None:
    recorder = Recorder(header_echo)

    async def redirect(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            recorder.exchanges.append({"method": scope["method"]})
            headers = [(b"location", b"http://elsewhere.example/mcp"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})

    with anyio.fail_after(TIMEOUT):
        async with serving(redirect) as upstream, proxied(upstream + "/mcp") as url, httpx2.AsyncClient() as http:
            response = await http.post(url, content=b"{}")
    assert response.status_code == 307
    assert response.headers["location"] == "http://elsewhere.example/mcp"
    assert len(recorder.exchanges) == 1


# --- failures: typed and quick --------------------------------------------------------------------------------------


def assert_failed(response: httpx2.Response, status: int, failure: UpstreamFailure) -> None:
    assert response.status_code == status
    assert response.headers[UPSTREAM_ERROR_HEADER.decode()] == failure.value
    assert response.content == b""


async def test_upstream_down_is_502_unreachable_without_waiting_for_timeouts() -> None:
    with anyio.fail_after(10):  # far below the proxy's own bounds: a refused connection is answered at once
        async with proxied(refused_url(), connect_timeout=60, call_timeout=120) as url, httpx2.AsyncClient() as http:
            response = await http.post(url, content=b"{}")
    assert_failed(response, 502, UpstreamFailure.UNREACHABLE)


async def test_connection_closed_before_a_response_is_502_unreachable() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    with anyio.fail_after(TIMEOUT):
        async with (
            raw_tcp(hang_up) as upstream,
            proxied(upstream, call_timeout=60) as url,
            httpx2.AsyncClient() as http,
        ):
            response = await http.post(url, content=b"{}")
    assert_failed(response, 502, UpstreamFailure.UNREACHABLE)


async def test_hanging_upstream_is_504_within_call_timeout() -> None:
    release = anyio.Event()

    async def hang(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await release.wait()

    with anyio.fail_after(10):
        async with serving(hang) as upstream, proxied(upstream + "/mcp", call_timeout=0.5) as url:
            async with httpx2.AsyncClient() as http:
                response = await http.post(url, content=b"{}")
            release.set()
    assert_failed(response, 504, UpstreamFailure.TIMEOUT)


async def test_json_body_that_stalls_is_504_within_call_timeout() -> None:
    """``call_timeout`` bounds the whole exchange for a body that is not an event stream, not only its head."""

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        await reader.read()  # until the proxy gives up and closes

    with anyio.fail_after(10):
        async with raw_tcp(stall) as upstream, proxied(upstream, call_timeout=0.5) as url, httpx2.AsyncClient() as http:
            response = await http.post(url, content=b"{}")
    assert_failed(response, 504, UpstreamFailure.TIMEOUT)


async def test_json_body_of_10_mib_is_502_too_large_without_reading_it_all() -> None:
    """The upstream sends 2 MiB of a 10 MiB body and then waits: a proxy that buffered the whole body before
    deciding would wait too (and time out); this one answers 502 at the 1 MiB limit and closes the connection."""
    closed = anyio.Event()
    rest = anyio.Event()

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(chunk(b"[" + b"0," * (MiB - 1)))
        writer.write(chunk(b"0," * MiB))
        await writer.drain()
        with anyio.move_on_after(TIMEOUT):
            await rest.wait()  # the other 8 MiB, never asked for
        with contextlib.suppress(ConnectionResetError):  # closed with data unread: a reset, not a FIN
            await reader.read()
        closed.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            raw_tcp(huge) as upstream,
            proxied(upstream, max_bytes=MiB, call_timeout=TIMEOUT) as url,
            httpx2.AsyncClient() as http,
        ):
            response = await http.post(url, content=b"{}")
            assert_failed(response, 502, UpstreamFailure.TOO_LARGE)
            rest.set()
            await closed.wait()


async def test_declared_body_over_the_limit_is_502_too_large_at_once() -> None:
    async def declared(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n[" % (10 * MiB))
        await reader.read()

    with anyio.fail_after(TIMEOUT):
        async with (
            raw_tcp(declared) as upstream,
            proxied(upstream, max_bytes=MiB, call_timeout=TIMEOUT) as url,
            httpx2.AsyncClient() as http,
        ):
            response = await http.post(url, content=b"{}")
    assert_failed(response, 502, UpstreamFailure.TOO_LARGE)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"garbage\r\n\r\n", id="not-http"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{", id="cut"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\n\r\n{}", id="gzip"),
        pytest.param(b"HTTP/1.1 200 OK\r\nx-long: " + b"a" * 20_000 + b"\r\n\r\n", id="huge-header"),
    ],
)
async def test_unusable_response_is_502_broken(answer: bytes) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(reply) as upstream, proxied(upstream) as url, httpx2.AsyncClient() as http:
            response = await http.post(url, content=b"{}")
    assert_failed(response, 502, UpstreamFailure.BROKEN)


async def crash_mid_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One SSE event, then the connection dies without the end of the chunked body."""
    await read_request(reader)
    writer.write(
        SSE_HEAD + chunk(b'event: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\r\n\r\n')
    )
    await writer.drain()
    writer.transport.abort()


async def test_stream_that_breaks_mid_way_ends_cleanly_and_says_broken() -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(crash_mid_stream) as upstream:
            proxy = HttpUpstreamApp(upstream)
            driven = await drive(proxy)
            await proxy.aclose()
    assert driven.status == 200
    assert driven.headers[b"content-type"] == b"text/event-stream"
    assert b"notifications/progress" in driven.body
    final = driven.messages[-1]
    assert final["type"] == "http.response.body"
    assert final["more_body"] is False
    assert failure_of(final) is UpstreamFailure.BROKEN
    assert all(failure_of(m) is None for m in driven.messages[:-1])


async def test_stream_that_breaks_mid_way_reaches_the_client_as_a_complete_response() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            raw_tcp(crash_mid_stream) as upstream,
            proxied(upstream) as url,
            httpx2.AsyncClient() as http,
            http.stream("POST", url, content=b"{}") as response,
        ):
            body = b"".join([part async for part in response.aiter_bytes()])  # no error: a clean end
    assert response.status_code == 200
    assert b"notifications/progress" in body


async def test_stream_silent_past_read_timeout_ends_and_says_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(b"event: message\r\ndata: {}\r\n\r\n"))
        await reader.read()

    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(silent) as upstream:
            proxy = HttpUpstreamApp(upstream, read_timeout=0.3)
            driven = await drive(proxy)
            await proxy.aclose()
    assert driven.body == b"event: message\r\ndata: {}\r\n\r\n"
    assert failure_of(driven.messages[-1]) is UpstreamFailure.TIMEOUT


async def test_stream_run_without_newline_over_the_limit_ends_and_says_too_large() -> None:
    async def endless_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(b"event: message\r\ndata: {}\r\n\r\n"))
        writer.write(chunk(b"data: " + b"a" * 4000))
        for _ in range(10):
            writer.write(chunk(b"a" * 4000))
        await writer.drain()
        await reader.read()

    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(endless_line) as upstream:
            proxy = HttpUpstreamApp(upstream, max_bytes=10_000)
            driven = await drive(proxy)
            await proxy.aclose()
    assert failure_of(driven.messages[-1]) is UpstreamFailure.TOO_LARGE
    assert len(driven.body) <= len(b"event: message\r\ndata: {}\r\n\r\n") + 10_000


# --- client disconnects, the pool ------------------------------------------------------------------------------------


def event_stream_until_disconnect(upstream_saw_disconnect: anyio.Event, release: anyio.Event | None = None) -> Any:
    """An SSE endpoint that sends one event and then holds the stream open until the client goes (or ``release``);
    other methods answer 200 at once."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await receive()
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"event: message\r\ndata: {}\r\n\r\n", "more_body": True})
        async with anyio.create_task_group() as tasks:
            if release is not None:

                async def released() -> None:
                    await release.wait()
                    tasks.cancel_scope.cancel()

                tasks.start_soon(released)
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                upstream_saw_disconnect.set()
            tasks.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def test_client_disconnect_cancels_the_upstream_exchange_and_frees_its_connection() -> None:
    upstream_saw_disconnect = anyio.Event()
    app = event_stream_until_disconnect(upstream_saw_disconnect)
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as upstream, proxied(upstream + "/mcp", max_connections=1) as url:
            async with httpx2.AsyncClient() as http, http.stream("POST", url, content=b"{}") as response:
                first = await anext(response.aiter_raw())
                assert first.startswith(b"event: message")
            # the client went away mid-stream: the proxy must close its upstream connection...
            await upstream_saw_disconnect.wait()
            # ...and give the pool's only slot back
            async with httpx2.AsyncClient() as http:
                assert (await http.delete(url)).status_code == 200


def hanging_upstream(requested: anyio.Event, closed: anyio.Event) -> Any:
    """Reads the request, answers nothing, and notes when the proxy closes the connection."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        requested.set()
        if await reader.read() == b"":
            closed.set()

    return hang


async def test_client_leaving_before_the_response_closes_the_upstream_connection() -> None:
    """For 2026-07-28 closing the response is how a client cancels a call: the upstream must see it."""
    requested, closed, leave = anyio.Event(), anyio.Event(), anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(hanging_upstream(requested, closed)) as upstream:
            proxy = HttpUpstreamApp(upstream, call_timeout=TIMEOUT * 2)
            async with anyio.create_task_group() as tasks:
                driven: list[Any] = []

                async def call() -> None:
                    driven.append(await drive(proxy, leave=leave))

                tasks.start_soon(call)
                await requested.wait()
                leave.set()
                await closed.wait()
            await proxy.aclose()
    assert driven[0].messages == []  # the client is gone: nothing to answer


async def test_cancellation_from_outside_propagates_and_closes_the_upstream_connection() -> None:
    requested, closed = anyio.Event(), anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(hanging_upstream(requested, closed)) as upstream:
            proxy = HttpUpstreamApp(upstream, call_timeout=TIMEOUT * 2)
            with anyio.CancelScope() as outside:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(drive, proxy)
                    await requested.wait()
                    outside.cancel()
            await closed.wait()
            await proxy.aclose()
    assert outside.cancelled_caught


async def test_waiting_for_a_free_connection_counts_in_call_timeout() -> None:
    """``max_connections`` bounds exchanges in flight, open streams included: with the one connection held by a
    stream, another call gets 504 within ``call_timeout``; once the stream ends the pool serves again."""
    release = anyio.Event()
    app = event_stream_until_disconnect(anyio.Event(), release)
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as upstream:
            proxy = HttpUpstreamApp(upstream + "/mcp", max_connections=1, call_timeout=0.5)
            async with anyio.create_task_group() as tasks:
                streams: list[Any] = []

                async def open_stream() -> None:
                    streams.append(await drive(proxy))

                tasks.start_soon(open_stream)
                while True:  # until the stream holds the connection
                    waiting = await drive(proxy, "DELETE")
                    if waiting.status == 504:
                        break
                    await anyio.sleep(0.01)
                assert failure_of(waiting.messages[0]) is UpstreamFailure.TIMEOUT
                release.set()
            assert streams[0].status == 200
            assert failure_of(streams[0].messages[-1]) is None
            assert (await drive(proxy, "DELETE")).status == 200
            await proxy.aclose()


async def test_lifespan_shutdown_closes_the_pool() -> None:
    closed = anyio.Event()

    async def keep_alive_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        if await reader.read() == b"":
            closed.set()

    with anyio.fail_after(TIMEOUT):
        async with raw_tcp(keep_alive_once) as upstream:
            proxy = HttpUpstreamApp(upstream)
            assert (await drive(proxy)).body == b"{}"
            events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
            sent: list[Message] = []

            async def receive() -> Message:
                return next(events)

            async def send(message: Message) -> None:
                sent.append(message)

            await proxy({"type": "lifespan"}, receive, send)
            await closed.wait()
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --- the contract with the layer above -----------------------------------------------------------------------------


def test_failure_of_reads_the_header_and_the_final_body_key() -> None:
    start = {"type": "http.response.start", "status": 502, "headers": [(UPSTREAM_ERROR_HEADER, b"too-large")]}
    assert failure_of(start) is UpstreamFailure.TOO_LARGE
    assert failure_of({"type": "http.response.start", "status": 200, "headers": []}) is None
    final = {"type": "http.response.body", "body": b"", "more_body": False, UPSTREAM_ERROR_KEY: "broken"}
    assert failure_of(final) is UpstreamFailure.BROKEN
    assert failure_of({"type": "http.response.body", "body": b"x"}) is None


def test_all_names_exist() -> None:
    assert [name for name in module.__all__ if not hasattr(module, name)] == []
