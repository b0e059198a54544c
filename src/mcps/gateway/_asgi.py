"""Small ASGI helpers shared by the gateway's HTTP handlers: bounded body reading, replaying a read body,
headers, and JSON-RPC error responses (short messages only, never exception text)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from mcps.gateway._sdk import RequestId

__all__ = [
    "ClientGone",
    "error_body",
    "header",
    "read_body",
    "replaying",
    "send_error",
    "send_json",
]


class ClientGone(Exception):
    """The HTTP client disconnected before its request body was complete."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lowercase bytes), decoded as latin-1."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` as soon as it is known to exceed ``limit`` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once (as one message), then whatever ``receive`` yields."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def error_body(code: int, message: str, request_id: RequestId | None = None, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error message (``id`` null unless given)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


async def send_json(
    send: Send, status: int, body: dict[str, Any] | None, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A complete response: ``body`` as compact JSON (or no body)."""
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    out = [*headers, (b"content-length", str(len(content)).encode())]
    if body is not None:
        out.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": content, "more_body": False})


async def send_error(
    send: Send,
    status: int,
    code: int,
    message: str,
    *,
    request_id: RequestId | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A JSON-RPC error response with HTTP ``status``."""
    await send_json(send, status, error_body(code, message, request_id), headers)
