"""Runner for the binding tables over Streamable HTTP: the frame server behind :class:`McpsHttpMiddleware`, served
by a real uvicorn on 127.0.0.1 (one server, in a thread, shared by the cases); every frame is one POST."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from mcps.bindings.http import signed_streamable_http_app

from .binding_harness import TIMEOUT, check_answered, check_attack, liveness
from .cases_bindings import FRAME_CASES, HTTP_CASES, Frames, HttpRefusal, HttpRequest
from .corpus import Case, assert_no_canary, case_params
from .frame_server import build_server, security
from .pki import SERVER

HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2026-07-28",
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = signed_streamable_http_app(build_server(), security(), json_response=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on", ws="none", http="h11"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()


class Endpoint:
    """The MCP endpoint with one keep-alive client."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client

    def request(self, method: str, content: Any, headers: dict[str, str]) -> httpx.Response:
        return self.client.request(method, self.url, content=content, headers=headers)


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[Endpoint]:
    with httpx.Client(timeout=TIMEOUT) as client:
        yield Endpoint(base_url, client)


def routing_headers(raw: bytes) -> dict[str, str]:
    """The SDK's routing headers for the message in ``raw`` (for a body that does not parse: those of a call)."""
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return {**HEADERS, "mcp-method": "tools/call", "mcp-name": "echo"}
    headers = {**HEADERS, "mcp-method": message["method"]}
    params = message.get("params")
    if isinstance(params, dict) and isinstance(params.get("name"), str):
        headers["mcp-name"] = params["name"]
    return headers


def post(http: Endpoint, raw: bytes) -> tuple[int, dict[str, Any] | None]:
    response = http.request("POST", raw, routing_headers(raw))
    if not response.content:
        return response.status_code, None
    try:
        return response.status_code, response.json()
    except ValueError:  # not a JSON-RPC answer at all (a bare 500): reported as such by the checks
        return response.status_code, {"not-json": response.text}


@pytest.mark.parametrize("case", case_params(FRAME_CASES, surface="http"))
def test_http_attack(case: Case[Frames], http: Endpoint) -> None:
    control = case.build(False)
    replies = [reply for _, reply in (post(http, raw) for raw in control.frames) if reply is not None]
    check_answered(replies, control.call_id)

    attack = case.build(True)
    *before, last = attack.frames
    for raw in before:
        status, reply = post(http, raw)
        assert status == 200, reply
        assert reply is not None
        assert "result" in reply, reply
    answered = [post(http, last)]
    live_id, live = liveness()
    answered.append(post(http, live))
    replies = [reply for _, reply in answered if reply is not None]
    statuses = {index: status for index, (status, reply) in enumerate(r for r in answered if r[1] is not None)}
    check_attack(case, "http", attack, replies, live_id, statuses=statuses)


def send(http: Endpoint, request: HttpRequest) -> httpx.Response:
    headers = {**routing_headers(request.body or b""), **(request.headers or {})}
    if request.body is not None and request.chunked:
        body = request.body

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        return http.request(request.method, chunks(), headers)
    return http.request(request.method, request.body, headers)


@pytest.mark.parametrize("case", case_params(HTTP_CASES))
def test_http_request_attack(case: Case[HttpRequest], http: Endpoint) -> None:
    control = send(http, case.build(False))
    assert control.status_code == 200, control.text
    assert "result" in control.json()
    response = send(http, case.build(True))
    expected: HttpRefusal = case.expect
    assert response.status_code == expected.status, response.text
    assert_no_canary(response.text)
    if expected.code is not None:
        refusal = response.json()
        assert refusal["error"]["data"]["mcps_code"] == expected.code.mcps
        assert refusal["error"]["data"]["mcps/sig"]["kid"] == SERVER.kid
