"""StdioUpstreamApp on the wire: hand-made HTTP requests against a real uvicorn, for what an SDK client never
sends (malformed bodies, wrong headers, unknown sessions) and to look at what it answers (status, content type,
``_meta`` relayed unchanged, SSE event ids and resumption)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from mcps.core.canonical import canonicalize

from .stdio_harness import ENVELOPE, LEGACY, MODERN, TIMEOUT, FakeClock, RawClient, messages, process_gone, upstream

SIGNATURE_LIKE = {
    "v": 1,
    "alg": "EdDSA",
    "kid": "kid-é",
    "aud": "urn:test:upstream",
    "nested": {"z": [1, 2.5, None, True, "\u2028"], "a": {}},
    "sig": "AAAA",
}


def no_exception_text(body: dict[str, Any]) -> None:
    message = body["error"]["message"]
    assert len(message) < 80
    assert not any(word in message for word in ("Error", "line", "column", "Traceback"))


async def test_meta_members_are_relayed_unchanged_2025() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                await raw.initialize()
                sent = {"mcps/sig": SIGNATURE_LIKE, "x.example/trace": "00-abc-01"}
                answer = await raw.call(1, "meta", {}, **sent)
            finally:
                await raw.aclose()
    received = json.loads(answer["result"]["content"][0]["text"])
    assert canonicalize(received) == canonicalize(sent)  # the child saw exactly what the client sent
    result_meta = answer["result"]["_meta"]
    assert canonicalize(result_meta["mcps/sig"]) == canonicalize(SIGNATURE_LIKE)  # and the answer came back whole
    assert result_meta["x.example/upstream"] == ["é", 1.5, None, True, 2**53 - 1]


async def test_meta_members_are_relayed_unchanged_2026() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                sent = {"mcps/sig": SIGNATURE_LIKE, "x.example/trace": "00-abc-01"}
                response = await raw.modern(7, "tools/call", {"name": "meta", "arguments": {}, "_meta": sent})
            finally:
                await raw.aclose()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["id"] == 7
    received = json.loads(answer["result"]["content"][0]["text"])
    assert canonicalize(received) == canonicalize({**ENVELOPE, **sent})
    assert canonicalize(answer["result"]["_meta"]["mcps/sig"]) == canonicalize(SIGNATURE_LIKE)


async def test_2025_06_18_session_is_served() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                result = await raw.initialize("2025-06-18")
                assert result["protocolVersion"] == "2025-06-18"
                listed = messages(await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
                assert "echo" in {tool["name"] for tool in listed[-1]["result"]["tools"]}
            finally:
                await raw.aclose()


async def test_unknown_session_is_404_and_starts_nothing() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url):
            raw = RawClient(url)
            raw.session_id = "not-a-session"
            try:
                for method in ("POST", "GET", "DELETE"):
                    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}' if method == "POST" else None
                    response = await raw.http.request(method, url, content=body, headers=raw.headers())
                    assert response.status_code == 404
                    assert response.json()["error"]["message"] == "Session not found"
            finally:
                await raw.aclose()
            assert app.session_count == 0


async def test_request_without_session_that_is_not_initialize_starts_no_child() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url):
            raw = RawClient(url)
            try:
                response = await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert response.status_code == 400
                assert response.json()["error"]["message"] == "Bad Request: Missing session ID"
                for method in ("GET", "DELETE"):
                    assert (await raw.http.request(method, url, headers=raw.headers())).status_code == 400
            finally:
                await raw.aclose()
            assert app.session_count == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":', id="truncated"),
        pytest.param(b"\xff\xfe not utf-8", id="not-utf8"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"initialize","method":"tools/call"}', id="duplicate-key"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"n":NaN}}', id="nan"),
    ],
)
@pytest.mark.parametrize("era", [LEGACY, MODERN])
async def test_malformed_body_is_a_parse_error_without_exception_text(body: bytes, era: str) -> None:
    headers = {"mcp-protocol-version": MODERN} if era == MODERN else {}
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url):
            raw = RawClient(url)
            try:
                response = await raw.post(body, headers)
                assert response.status_code == 400
                assert response.json()["error"]["code"] == -32700
                no_exception_text(response.json())
                if era == LEGACY:  # and inside a session too
                    await raw.initialize()
                    inside = await raw.post(body)
                    assert inside.status_code == 400
                    no_exception_text(inside.json())
                    assert app.session_count == 1
            finally:
                await raw.aclose()


@pytest.mark.parametrize("era", [LEGACY, MODERN])
async def test_oversize_body_is_refused_before_it_is_read_whole(era: str) -> None:
    headers = {"mcp-protocol-version": MODERN} if era == MODERN else {}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": "x" * 5000}}).encode()
    with anyio.fail_after(TIMEOUT):
        async with upstream(max_bytes=4096) as (app, url):
            raw = RawClient(url)
            try:
                response = await raw.post(body, headers)
            finally:
                await raw.aclose()
            assert response.status_code == 413
            assert app.session_count == 0


async def test_batch_and_non_request_bodies_are_refused() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url):
            raw = RawClient(url)
            try:
                batch = await raw.post([{"jsonrpc": "2.0", "id": 1, "method": "initialize"}])
                assert batch.status_code == 400
                shape = await raw.post({"jsonrpc": "2.0", "id": 1, "method": 5})
                assert (shape.status_code, shape.json()["error"]["message"]) == (400, "Validation error")
                modern = await raw.post([1], {"mcp-protocol-version": MODERN})
                assert modern.status_code == 400
                for bad_id in (True, [1]):  # 1.0 is the integer 1 as the canonical form reads it (SPEC §3)
                    legacy = await raw.post({"jsonrpc": "2.0", "id": bad_id, "method": "initialize", "params": {}})
                    assert legacy.status_code == 400
                    modern = await raw.modern(bad_id, "tools/list", {})
                    assert modern.status_code == 400
            finally:
                await raw.aclose()
            assert app.session_count == 0


async def test_max_sessions_refuses_one_more_and_starts_no_child() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream(max_sessions=1) as (app, url):
            first, second = RawClient(url), RawClient(url)
            try:
                await first.initialize()
                params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}
                refused = await second.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
                assert refused.status_code == 503
                assert [info.pid is not None for info in app.sessions()] == [True]
            finally:
                await first.aclose()
                await second.aclose()


async def test_2026_answers_json_without_notifications_and_sse_with_them() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                plain = await raw.modern(1, "tools/call", {"name": "echo", "arguments": {"text": "a"}})
                assert plain.headers["content-type"].startswith("application/json")
                assert plain.json()["result"]["content"][0]["text"] == "a"
                arguments = {"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "tok"}}
                streamed = await raw.modern(1, "tools/call", arguments)
                assert streamed.headers["content-type"].startswith("text/event-stream")
                frames = messages(streamed)
                assert [frame.get("method") for frame in frames] == ["notifications/progress"] * 2 + [None]
                assert {frame["params"]["progressToken"] for frame in frames[:2]} == {"tok"}  # mapped back
                assert frames[-1]["id"] == 1
            finally:
                await raw.aclose()


async def test_2026_same_ids_from_concurrent_requests_do_not_cross() -> None:
    answers: dict[str, Any] = {}
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                async with anyio.create_task_group() as tasks:

                    async def call(word: str) -> None:
                        params = {"name": "echo", "arguments": {"text": word}, "_meta": {"progressToken": 1}}
                        answers[word] = (await raw.modern(1, "tools/call", params)).json()

                    for word in ("alpha", "beta", "gamma", "delta"):
                        tasks.start_soon(call, word)
            finally:
                await raw.aclose()
    for word, answer in answers.items():
        assert (answer["id"], answer["result"]["content"][0]["text"]) == (1, word)


async def test_2026_client_closing_its_response_cancels_the_call() -> None:
    """Closing the response stream is how a 2026 client cancels: the call is dropped (the child is told), so the
    shared child is idle at once instead of after ``call_timeout``."""
    clock = FakeClock()
    with anyio.fail_after(TIMEOUT):
        async with upstream(clock=clock, idle_timeout=60.0) as (app, url):
            raw = RawClient(url)
            try:
                params = {"name": "hang", "arguments": {}, "_meta": {"progressToken": "t"}}
                content, headers = raw.modern_request(1, "tools/call", params)
                async with raw.http.stream("POST", url, content=content, headers=headers) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):  # the hang tool's progress: it is running
                            break
            finally:
                await raw.aclose()
            pid = app.shared_pid
            while not await app.reap_idle():  # the disconnect reaches the server asynchronously
                clock.advance(60.0)
                await anyio.sleep(0.01)
            assert pid is not None
            assert process_gone(pid)


async def test_2026_http_refusals_match_the_sdk() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                get = await raw.http.get(url, headers=raw.headers({"mcp-protocol-version": MODERN}))
                assert (get.status_code, get.headers.get("allow")) == (405, "POST")
                json_only = await raw.modern(1, "tools/list", {}, {"accept": "application/json"})
                assert json_only.status_code == 406
                mismatch = await raw.modern(1, "tools/list", {}, {"mcp-method": "tools/call"})
                assert (mismatch.status_code, mismatch.json()["error"]["code"]) == (400, -32020)
                param = await raw.modern(
                    2, "tools/call", {"name": "route", "arguments": {"region": "eu"}}, {"mcp-param-region": "us"}
                )
                assert (param.status_code, param.json()["error"]["code"]) == (400, -32020)
                good = await raw.modern(
                    3, "tools/call", {"name": "route", "arguments": {"region": "eu"}}, {"mcp-param-region": "eu"}
                )
                assert good.json()["result"]["content"][0]["text"] == "routed to eu"
                unknown = await raw.modern(4, "no/such/method", {})
                assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, -32601)
                note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
                assert (await raw.post(note, {"mcp-protocol-version": MODERN})).status_code == 202
                unsupported = await raw.post(note, {"mcp-protocol-version": "2099-01-01"})
                assert (unsupported.status_code, unsupported.json()["error"]["code"]) == (400, -32022)
            finally:
                await raw.aclose()


async def test_2025_sse_events_carry_ids_and_a_stream_can_be_resumed() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url):
            raw = RawClient(url)
            try:
                await raw.initialize()
                params = {"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "p"}}
                response = await raw.post({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params})
                ids = [line[3:].strip() for line in response.text.split("\n") if line.startswith("id:")]
                assert len(ids) == 4  # priming event, two progress notifications, the result
                headers = raw.headers({"last-event-id": ids[1]})
                replayed: list[dict[str, Any]] = []
                async with raw.http.stream("GET", url, headers=headers) as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data:") and line[5:].strip():
                            replayed.append(json.loads(line[5:]))
                            if "id" in replayed[-1]:
                                break
                assert [frame.get("method") for frame in replayed] == ["notifications/progress", None]
                assert replayed[-1]["id"] == 5
            finally:
                await raw.aclose()


async def test_aclose_ends_and_reaps_every_child() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url):
            clients = [RawClient(url), RawClient(url)]
            try:
                for client in clients:
                    await client.initialize()
                pids = [info.pid for info in app.sessions()]
                await clients[0].modern(1, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
                pids.append(app.shared_pid)
            finally:
                for client in clients:
                    await client.aclose()
            assert len({pid for pid in pids if pid is not None}) == 3
        # uvicorn has shut the app down (lifespan): every child ended and reaped, no session left
    assert all(process_gone(pid) for pid in pids if pid is not None)
    assert app.session_count == 0
