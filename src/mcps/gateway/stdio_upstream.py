"""An ASGI app that serves a stdio MCP server (a command we start) as a Streamable HTTP MCP server.

It is the *upstream app* of the gateway for an upstream configured as a command: the gateway's security layer
(an ASGI middleware: verify, sign, countersign, policy, audit) wraps it and sees plain MCP over HTTP, as it would
from a remote server. This app adds no mcps semantics of its own: it relays messages, ``_meta`` and its
``mcps/sig`` members included, and never signs or checks a signature. It only keeps signed messages intact: it
reads a signed 2026-07-28 request's ``kid`` to choose its child, and never rewrites it (see below).

::

    app = StdioUpstreamApp(["python", "server.py"], env={"TOKEN": "…"}, cwd="/srv/tools")
    uvicorn.run(app)  # ASGI lifespan starts and stops it; or ``async with app:`` / ``await app.start()``

Both protocol generations, as the ``mcp`` 2.3 SDK's clients speak them; the ``MCP-Protocol-Version`` header picks
one, as the SDK's session manager does (absent or a handshake version: 2025; anything else: 2026):

* **2025-11-25 / 2025-06-18 (sessions)** — :mod:`mcps.gateway.stdio_legacy`. An ``initialize`` POST without
  ``Mcp-Session-Id`` starts a new child for the new session (a stdio server is one session) and is answered with
  the session id; the session's requests go to its child; DELETE ends the child (reaped before the answer) and
  the session; an unknown session id is 404. The HTTP side is the SDK's own ``StreamableHTTPServerTransport``,
  bridged to the child's pipes. *Why reuse it:* it is the reference for this wire — SSE framing, priming events
  and event ids, ``Last-Event-ID`` resumption, the standalone GET stream, session-id and Accept checks, DELETE —
  and it is public API driven through a pair of message streams, which is exactly what a stdio child offers.
  Its costs, and how they are met: it parses bodies with pydantic and would put the parser's error text in its
  400 answer (so every body is read, bounded and strictly parsed here first, and a bad one answered here with a
  short message); it re-serializes messages from its models (values and every member of ``params``/``result``/
  ``_meta`` survive, so canonical JSON is unchanged; unknown top-level members are dropped, as the SDK does).
* **2026-07-28 (stateless)** — :mod:`mcps.gateway.stdio_modern` and :mod:`mcps.gateway.stdio_lanes`. Every POST
  is self-contained. An *unsigned* request (no ``mcps/sig`` in ``params._meta``) goes to one shared child per
  upstream, multiplexed by rewriting ids (and progress tokens) and mapping them back. A *signed* request is never
  rewritten: the signature covers its ``id`` and ``progressToken``, and an upstream running the mcps server binding
  verifies it end to end and pins its connection to its first signer (SPEC.md §9.2). It goes, unchanged, to a child
  of its signer's own (keyed by the block's ``kid``; at most ``max_signers`` of them, the least recently used idle
  one ended for a new signer), where a request whose id or progress token is already in flight waits until it is
  free, and its answer and notifications come back unchanged, by the original id and token.

Limits and failures (no input from a client or from a child ends the app or another session):

* ``max_bytes`` (default 4 MiB) bounds a request body (413) and each line the child writes (enforced while
  reading; an oversize line is discarded and the request it answered gets a JSON-RPC error).
* ``call_timeout``: a request not answered in time gets a JSON-RPC error (-32603) and its response ends; the
  child is sent ``notifications/cancelled``. Not for a signed 2026-07-28 request, which the app cannot sign a
  cancellation for: its id stays taken on its signer's child until the child answers, and a request that waits
  ``call_timeout`` for an id held that way ends the child (the only way to free it).
* A child that crashes, closes its stdout, or takes no input for ``call_timeout``: it is ended, calls in flight
  on it get -32603 at once, and the next request starts it again (a 2025 session replays its ``initialize``),
  with backoff after repeated crashes (:class:`RestartPolicy`). Lines on its stdout that are not JSON-RPC are
  logged and dropped; a response that cannot be relayed (oversize, not I-JSON) fails its own call only.
* ``max_sessions`` (503 beyond), ``idle_timeout`` (a session with nothing in flight and no open stream for that
  long is ended; so are the idle shared child and idle signers' children). ``max_signers``: signers' children at
  once; a new signer's request waits (within ``call_timeout``) while all are busy, then gets the timeout error.
  Errors sent to a client are short and fixed, never exception text.

DNS-rebinding protection (``Host``/``Origin`` checks) is *not* done here: the gateway's front does it, before
any request reaches this app. Behind anything else, put such a check in front.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from mcps.core.errors import McpsError
from mcps.core.strict import Limits, parse_message
from mcps.gateway._asgi import ClientGone, header, read_body, replaying, send_error
from mcps.gateway._sdk import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MCP_SESSION_ID_HEADER,
    PARSE_ERROR,
    JSONRPCMessage,
    JSONRPCRequest,
    check_accept_headers,
)
from mcps.gateway.stdio_lanes import SignerInfo
from mcps.gateway.stdio_legacy import LegacySession, SessionSettings, as_request_id, validated_message
from mcps.gateway.stdio_modern import ModernUpstream
from mcps.gateway.stdio_process import DEFAULT_MAX_BYTES, Clock, RestartPolicy, StdioCommand, UpstreamUnavailable

__all__ = ["RestartPolicy", "SessionInfo", "SignerInfo", "StdioUpstreamApp"]

logger = logging.getLogger("mcps.gateway.stdio")

DEFAULT_CALL_TIMEOUT: Final = 60.0
DEFAULT_MAX_SESSIONS: Final = 64
DEFAULT_MAX_SIGNERS: Final = 64
DEFAULT_IDLE_TIMEOUT: Final = 30 * 60.0
DEFAULT_KILL_TIMEOUT: Final = 2.0
DEFAULT_REPLAY_BYTES: Final = 1024 * 1024
_SESSION_HEADER: Final = MCP_SESSION_ID_HEADER.encode()


@dataclass(frozen=True)
class SessionInfo:
    """One open 2025 session, for observation: its id, its child's pid (``None`` between a crash and the restart),
    the calls waiting for the child's answer, and whether anything is in flight or streaming (an open GET stream
    counts: a busy session is never ended as idle)."""

    session_id: str
    pid: int | None
    calls: int
    busy: bool


class StdioUpstreamApp:
    """Serve the stdio MCP server ``command`` over Streamable HTTP (both protocol generations). Pure ASGI.

    ``command``: argv of the server. ``env``: variables added to a minimal safe environment (the SDK's
    ``get_default_environment``: HOME, LOGNAME, PATH, SHELL, TERM, USER). ``cwd``: its working directory.
    ``name``: how logs call it. ``max_bytes``: the frame limit, both ways. ``call_timeout``: seconds a request may
    wait for its answer. ``max_sessions``: concurrent 2025 sessions (each a child). ``max_signers``: children for
    signed 2026 requests (one per signer). ``idle_timeout``: seconds after which an idle session (or an idle 2026
    child) is ended; ``None``: never. ``restart``: backoff
    after crashes. ``kill_timeout``: seconds between stdin closed, SIGTERM and SIGKILL when ending a child.
    ``replay_bytes``: SSE events kept per session for ``Last-Event-ID`` resumption (0: none, and no event ids).
    ``clock``: monotonic seconds, for idle and backoff decisions (injected by tests).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_signers: int = DEFAULT_MAX_SIGNERS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        restart: RestartPolicy | None = None,
        kill_timeout: float = DEFAULT_KILL_TIMEOUT,
        replay_bytes: int = DEFAULT_REPLAY_BYTES,
        clock: Clock = time.monotonic,
    ) -> None:
        if isinstance(command, str):
            raise TypeError("command is an argv list, not a shell string")
        if max_bytes < 1 or max_sessions < 1 or max_signers < 1 or replay_bytes < 0:
            raise ValueError("max_bytes, max_sessions and max_signers must be positive, replay_bytes not negative")
        if call_timeout <= 0 or kill_timeout <= 0 or (idle_timeout is not None and idle_timeout <= 0):
            raise ValueError("timeouts must be positive")
        stdio = StdioCommand(tuple(command), dict(env or {}), None if cwd is None else os.fspath(cwd))
        self.settings = SessionSettings(
            command=stdio,
            name=name or os.path.basename(stdio.argv[0]),
            max_bytes=max_bytes,
            call_timeout=call_timeout,
            kill_timeout=kill_timeout,
            restart=restart or RestartPolicy(),
            replay_bytes=replay_bytes,
            clock=clock,
        )
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._limits = Limits(max_bytes=max_bytes)
        self._sessions: dict[str, LegacySession] = {}
        self._modern = ModernUpstream(self.settings, max_signers=max_signers)
        self._tasks: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None

    @property
    def session_count(self) -> int:
        """Open 2025 sessions (each with its own child)."""
        return len(self._sessions)

    def sessions(self) -> list[SessionInfo]:
        """The open 2025 sessions."""
        return [
            SessionInfo(
                session.id,
                child.pid if (child := session.slot.running) else None,
                session.calls,
                session.idle_since is None,
            )
            for session in self._sessions.values()
        ]

    @property
    def shared_pid(self) -> int | None:
        """The pid of the shared 2026-07-28 child (unsigned requests), while one runs."""
        child = self._modern.shared.slot.running
        return None if child is None else child.pid

    def signers(self) -> list[SignerInfo]:
        """The 2026-07-28 children of signers, least recently used first."""
        return self._modern.signer_info()

    @property
    def signers_waiting(self) -> int:
        """Requests of new signers waiting for a child (all ``max_signers`` busy)."""
        return self._modern.signers.waiting

    # lifecycle

    async def start(self) -> None:
        """Get ready to serve (children start on demand). Call :meth:`aclose` from the same task."""
        if self._stack is not None:
            raise RuntimeError("StdioUpstreamApp is already started")
        stack = AsyncExitStack()
        self._tasks = await stack.enter_async_context(anyio.create_task_group())
        self._modern.attach(self._tasks)
        if self.idle_timeout is not None:
            self._tasks.start_soon(self._sweep, self.idle_timeout)
        self._stack = stack

    async def aclose(self) -> None:
        """End every child (stdin closed, SIGTERM, SIGKILL, each after ``kill_timeout``) and wait until all are
        reaped. New requests are refused (503) from the start of this call."""
        stack, tasks, self._stack, self._tasks = self._stack, self._tasks, None, None
        if stack is None or tasks is None:
            return
        self._modern.attach(None)
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as closing:
                for session in list(self._sessions.values()):
                    closing.start_soon(self._discard, session)
                closing.start_soon(self._modern.close)
        tasks.cancel_scope.cancel()
        await stack.aclose()

    async def __aenter__(self) -> StdioUpstreamApp:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def reap_idle(self) -> int:
        """End what has been idle for ``idle_timeout`` (by ``clock``); how many (sessions, 2026 children) it ended.

        Runs periodically while started; tests call it directly with an injected clock.
        """
        if self.idle_timeout is None:
            return 0
        now, ended = self.settings.clock(), 0
        for session in list(self._sessions.values()):
            since = session.idle_since
            if since is not None and now - since >= self.idle_timeout:
                logger.info("upstream %s: session %s idle; ending it", self.settings.name, session.id[:8])
                await self._discard(session)
                ended += 1
        return ended + await self._modern.reap_idle(now, self.idle_timeout)

    async def _sweep(self, idle_timeout: float) -> None:
        while True:
            await anyio.sleep(min(max(idle_timeout / 4, 0.05), 60.0))
            await self.reap_idle()

    # ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if self._tasks is None:
                await send_error(tracked, 503, INTERNAL_ERROR, "upstream is not running")
                return
            version = header(scope, b"mcp-protocol-version")
            if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
                await self._modern.handle(scope, receive, tracked)
            else:
                await self._legacy(scope, receive, tracked)
        except ClientGone:
            return
        except Exception:  # the boundary: a fault here ends this request, never the app or another session
            logger.exception("upstream %s: request failed", self.settings.name)
            if not started:
                await send_error(send, 500, INTERNAL_ERROR, "internal error")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception:
                    logger.exception("upstream %s: start failed", self.settings.name)
                    await send({"type": "lifespan.startup.failed", "message": "stdio upstream failed to start"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # 2025 sessions

    async def _legacy(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        session_id = header(scope, _SESSION_HEADER)
        if session_id is not None:
            session = self._sessions.get(session_id)
            if session is None:
                await send_error(send, 404, INVALID_REQUEST, "Session not found")
                return
            if method == "POST":
                read = await self._read_message(scope, receive, send)
                if read is None:
                    return
                receive = replaying(read[0], receive)
            elif method == "DELETE":
                await session.end_child()  # reaped before the client hears the session is gone
            await session.handle(scope, receive, send)
            if session.transport.is_terminated:
                await self._discard(session)
            return
        if method in ("GET", "DELETE"):
            await send_error(send, 400, INVALID_REQUEST, "Bad Request: Missing session ID")
            return
        if method != "POST":
            await send_error(
                send, 405, INVALID_REQUEST, "Method Not Allowed", headers=[(b"allow", b"GET, POST, DELETE")]
            )
            return
        await self._open_session(scope, receive, send)

    async def _open_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        has_json, has_sse = check_accept_headers(Request(scope))
        if not (has_json and has_sse):
            refusal = "Not Acceptable: Client must accept both application/json and text/event-stream"
            await send_error(send, 406, INVALID_REQUEST, refusal)
            return
        read = await self._read_message(scope, receive, send)
        if read is None:
            return
        body, message = read
        if not isinstance(message, JSONRPCRequest) or message.method != "initialize":
            await send_error(send, 400, INVALID_REQUEST, "Bad Request: Missing session ID")
            return
        if len(self._sessions) >= self.max_sessions or self._tasks is None:
            logger.warning("upstream %s: refusing a session: %d are open", self.settings.name, len(self._sessions))
            await send_error(send, 503, INTERNAL_ERROR, "Too many open sessions")
            return
        session = LegacySession(uuid.uuid4().hex, self.settings)
        self._sessions[session.id] = session
        try:
            await self._tasks.start(self._run_session, session)
        except Exception as exc:
            if not isinstance(exc, UpstreamUnavailable):
                logger.exception("upstream %s: a session failed to start", self.settings.name)
            self._sessions.pop(session.id, None)
            await send_error(send, 502, INTERNAL_ERROR, "upstream server is unavailable", request_id=message.id)
            return
        status: list[int] = []

        async def watch(out: Message) -> None:
            if out["type"] == "http.response.start":
                status.append(out["status"])
            await send(out)

        try:
            await session.handle(scope, replaying(body, receive), watch)
        finally:
            if not status or status[0] >= 400:  # nothing was established: no session, no child
                await self._discard(session)

    async def _run_session(self, session: LegacySession, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await session.run(task_status=task_status)
        except UpstreamUnavailable:
            raise  # before it started: the opening request is answered 502
        except Exception:  # after it started: a fault in the relay ends this session only
            logger.exception("upstream %s: session %s failed", self.settings.name, session.id[:8])
        finally:
            if self._sessions.get(session.id) is session:
                del self._sessions[session.id]

    async def _discard(self, session: LegacySession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        await session.close()

    async def _read_message(self, scope: Scope, receive: Receive, send: Send) -> tuple[bytes, JSONRPCMessage] | None:
        """The POSTed body and its message, read bounded and strictly parsed; ``None`` once refused (answered)."""
        content_type = (header(scope, b"content-type") or "").lower()
        if not content_type.startswith("application/json"):
            await send_error(send, 400, INVALID_REQUEST, "Invalid Content-Type header")
            return None
        body = await read_body(scope, receive, self.settings.max_bytes)
        if body is None:
            await send_error(send, 413, INVALID_REQUEST, "Request body too large")
            return None
        try:
            value: dict[str, Any] = parse_message(body, self._limits)
        except McpsError:
            await send_error(send, 400, PARSE_ERROR, "Parse error")
            return None
        message = validated_message(value)
        if message is None or (value.get("id") is not None and as_request_id(value["id"]) is None):
            await send_error(send, 400, INVALID_PARAMS, "Validation error")  # the SDK's words, without its details
            return None
        return body, message
