"""A stdio MCP server run as a child process, and the slot that keeps one running for its owner.

:class:`ChildProcess` is one run of the command: spawned in its own process group with a minimal environment
(the SDK's ``get_default_environment`` plus what the configuration adds), its stdout read as newline-delimited
frames with the size bound enforced while reading, its stderr logged (line length and rate bounded, never to
stdout), and ended without zombies (stdin closed; SIGTERM to the group after ``kill_timeout``; SIGKILL after
another; then reaped).

Frames the reader hands on:

* :class:`Message` — one strictly parsed JSON-RPC object (I-JSON, :func:`mcps.core.strict.parse_message`);
* :class:`Unreadable` — a *response* that cannot be relayed: longer than ``max_bytes`` (discarded while reading:
  only its first and last kilobyte are kept, to find its ``id``) or not I-JSON. The id is found when it is the
  first member (after ``jsonrpc``) or the last, as every serializer we know writes it; otherwise it is ``None``
  and the owner decides (it fails the call when exactly one is in flight).

Anything else on stdout (banners, debug prints, broken JSON that is not a response) is logged and dropped.

:class:`ChildSlot` owns at most one child at a time: started on first use, restarted on the next use after it
exits, refusing (:class:`UpstreamUnavailable`) while a :class:`RestartPolicy` backoff runs after repeated crashes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc

from mcps.core.errors import McpsError
from mcps.core.strict import Limits, parse_message
from mcps.gateway._sdk import RequestId, get_default_environment

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ChildProcess",
    "ChildSlot",
    "Clock",
    "Frame",
    "Message",
    "RestartPolicy",
    "StdioCommand",
    "Unreadable",
    "UpstreamUnavailable",
    "response_id",
]

logger = logging.getLogger("mcps.gateway.stdio")
stderr_logger = logging.getLogger("mcps.gateway.stdio.stderr")

DEFAULT_MAX_BYTES: Final = 4 * 1024 * 1024
_READ_CHUNK: Final = 64 * 1024
_WRITE_QUEUE: Final = 16
"""Frames waiting for the child's stdin; a sender waits beyond that (the child is not reading)."""
_PEEK: Final = 1024
"""Bytes kept from each end of an unreadable line, to find the id of the response it was."""
_LOG_LINE_CHARS: Final = 1000
_LOG_LINES_PER_WINDOW: Final = 100
_LOG_WINDOW: Final = 10.0

Clock = Callable[[], float]


class UpstreamUnavailable(Exception):
    """The upstream cannot take a message now: it failed to start, it exited, or it is backing off after crashes.

    ``str()`` is short and safe for a peer; the cause stays in ``__cause__`` and the log.
    """


@dataclass(frozen=True)
class StdioCommand:
    """The command of a stdio MCP server: ``argv``, environment added to the default one, working directory."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(part, str) and part for part in self.argv):
            raise ValueError("a stdio command needs a non-empty argv of non-empty strings")

    def environment(self) -> dict[str, str]:
        """The child's whole environment: the SDK's safe defaults (HOME, PATH, …) overlaid with ``env``."""
        return {**get_default_environment(), **self.env}


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed child may be started again (on the next message that needs it).

    The first crash restarts at once; each further consecutive crash doubles the wait, from ``initial_delay`` up
    to ``max_delay``. A child that ran ``reset_after`` seconds before it exited starts the count again.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.initial_delay <= self.max_delay or self.reset_after <= 0:
            raise ValueError("restart delays must satisfy 0 <= initial_delay <= max_delay and reset_after > 0")

    def delay(self, crashes: int) -> float:
        """Seconds to wait before the next start after ``crashes`` consecutive crashes."""
        if crashes <= 1:
            return 0.0
        return float(min(self.initial_delay * 2 ** min(crashes - 2, 64), self.max_delay))


@dataclass(frozen=True)
class Message:
    """One JSON-RPC message from the child, strictly parsed."""

    value: dict[str, Any]


@dataclass(frozen=True)
class Unreadable:
    """A response from the child that cannot be relayed; the id of the request it answers, when found."""

    request_id: RequestId | None


Frame = Message | Unreadable
FrameHandler = Callable[[Frame], Awaitable[None]]

_JSONRPC: Final = rb'"jsonrpc"\s*:\s*"2\.0"\s*,\s*'
_ID_VALUE: Final = rb'(?P<id>-?[0-9]{1,16}|"(?:[^"\\]|\\.){0,256}")'
_HEAD: Final = re.compile(
    rb"\A\s*\{\s*(?:" + _JSONRPC + rb")?(?:\"id\"\s*:\s*" + _ID_VALUE + rb"\s*,\s*)?(?:" + _JSONRPC + rb")?"
    rb'"(?P<member>[A-Za-z_]+)"\s*:'
)
_TAIL: Final = re.compile(rb'[{,]\s*"id"\s*:\s*' + _ID_VALUE + rb"\s*\}\s*\Z")


def response_id(head: bytes, tail: bytes) -> tuple[bool, RequestId | None]:
    """Whether an unreadable line is a JSON-RPC response, and its id, from its first and last bytes only.

    A response is recognised by its first member after ``jsonrpc``/``id`` being ``result`` or ``error``; its id is
    taken from the head (``{"jsonrpc":"2.0","id":7,"result":…``) or else from the tail (``…,"id":7}``), where a
    value followed by the closing brace of the line can only be a member of the top-level object.
    """
    match = _HEAD.match(head)
    if match is None or match["member"] not in (b"result", b"error"):
        return False, None
    raw = match["id"]
    if raw is None and (tail_match := _TAIL.search(tail)) is not None:
        raw = tail_match["id"]
    if raw is None:
        return True, None
    try:
        value = json.loads(raw)
    except ValueError:
        return True, None
    return True, value if isinstance(value, int | str) and not isinstance(value, bool) else None


def encode_line(message: Mapping[str, Any]) -> bytes:
    """One frame for the child's stdin. ASCII-only JSON (``\\u`` escapes), so encoding cannot fail."""
    return json.dumps(message, separators=(",", ":")).encode("ascii") + b"\n"


class _Peek:
    """The first and last :data:`_PEEK` bytes of a line too long to keep."""

    def __init__(self, start: bytes) -> None:
        self.head = start[:_PEEK]
        self.tail = start[-_PEEK:]
        self.size = len(start)

    def feed(self, data: bytes) -> None:
        if len(self.head) < _PEEK:
            self.head += data[: _PEEK - len(self.head)]
        self.tail = (self.tail + data)[-_PEEK:]
        self.size += len(data)


class _RateLimitedLog:
    """At most :data:`_LOG_LINES_PER_WINDOW` lines per :data:`_LOG_WINDOW` seconds; the rest are counted."""

    def __init__(self, log: logging.Logger, level: int, clock: Clock) -> None:
        self._log, self._level, self._clock = log, level, clock
        self._window_start = clock()
        self._lines = 0
        self._suppressed = 0

    def __call__(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= _LOG_WINDOW:
            if self._suppressed:
                self._log.log(self._level, "%d more lines suppressed", self._suppressed)
            self._window_start, self._lines, self._suppressed = now, 0, 0
        if self._lines >= _LOG_LINES_PER_WINDOW:
            self._suppressed += 1
            return
        self._lines += 1
        self._log.log(self._level, message, *args)


class ChildProcess:
    """One run of a stdio MCP server. :meth:`run` spawns it and returns once it has ended and been reaped."""

    def __init__(
        self,
        command: StdioCommand,
        *,
        name: str,
        max_bytes: int,
        kill_timeout: float,
        clock: Clock,
        write_timeout: float = math.inf,
    ) -> None:
        self.command = command
        self.name = name
        self.pid: int | None = None
        self.started_at = clock()
        self.exited = anyio.Event()
        self.deliberate = False
        """Whether it was stopped on purpose (not a crash)."""
        self._limits = Limits(max_bytes=max_bytes)
        self._kill_timeout = kill_timeout
        self._write_timeout = write_timeout
        self._scope = anyio.CancelScope()
        self._queue_send, self._queue_receive = anyio.create_memory_object_stream[bytes](_WRITE_QUEUE)
        self._stdout_log = _RateLimitedLog(logger, logging.WARNING, clock)
        self._stderr_log = _RateLimitedLog(stderr_logger, logging.INFO, clock)

    async def run(self, on_frame: FrameHandler, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        """Spawn (``task_status.started(pid)``), relay frames to ``on_frame`` until stdout ends, then end it.

        Raises ``OSError`` (before ``started``) when the command cannot be started.
        """
        try:
            process = await anyio.open_process(
                list(self.command.argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.command.cwd,
                env=self.command.environment(),
                start_new_session=True,
            )
        except BaseException:
            self._close_queue()
            self.exited.set()
            raise
        self.pid = process.pid
        logger.info("upstream %s: started pid %d", self.name, process.pid)
        try:
            with self._scope:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._write_loop, process, tasks.cancel_scope)
                    tasks.start_soon(self._stderr_loop, process)
                    task_status.started(process.pid)
                    await self._read_loop(process, on_frame)
                    tasks.cancel_scope.cancel()
        finally:
            self._close_queue()
            with anyio.CancelScope(shield=True):
                await self._terminate(process)
            self.exited.set()

    def stop(self, *, deliberate: bool = True) -> None:
        """Have :meth:`run` end the child (it terminates and reaps it); wait on :attr:`exited` for that."""
        self.deliberate = self.deliberate or deliberate
        self._scope.cancel()

    async def send(self, message: Mapping[str, Any]) -> None:
        """Queue one message for the child's stdin; raises :class:`UpstreamUnavailable` once it has ended.

        A child that takes no input for ``write_timeout`` (its stdin and the queue full) is hung: it is ended
        (as a crash) rather than left to hold its owner.
        """
        with anyio.move_on_after(self._write_timeout):
            try:
                await self._queue_send.send(encode_line(message))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                raise UpstreamUnavailable("upstream server exited") from exc
            return
        logger.warning("upstream %s (pid %s): not reading its stdin; ending it", self.name, self.pid)
        self.stop(deliberate=False)
        raise UpstreamUnavailable("upstream server is not responding")

    def send_nowait(self, message: Mapping[str, Any]) -> None:
        """Queue a message if there is room (for courtesy messages such as cancellations); else drop it."""
        with suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._queue_send.send_nowait(encode_line(message))

    def _close_queue(self) -> None:
        self._queue_send.close()
        self._queue_receive.close()

    async def _write_loop(self, process: anyio.abc.Process, scope: anyio.CancelScope) -> None:
        stdin = process.stdin
        if stdin is None:  # pragma: no cover - spawned with a pipe
            return
        try:
            async for line in self._queue_receive:
                await stdin.send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            logger.warning("upstream %s (pid %s): stdin closed; ending it", self.name, self.pid)
            scope.cancel()  # a child that cannot be written to cannot serve: treat it as exited

    async def _read_loop(self, process: anyio.abc.Process, on_frame: FrameHandler) -> None:
        stdout = process.stdout
        if stdout is None:  # pragma: no cover - spawned with a pipe
            return
        line = bytearray()
        oversize: _Peek | None = None
        while True:
            try:
                chunk = await stdout.receive(_READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                logger.info("upstream %s (pid %s): stdout closed", self.name, self.pid)
                return
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                piece = chunk[start:] if end < 0 else chunk[start:end]
                if oversize is not None:
                    oversize.feed(piece)
                elif len(line) + len(piece) > self._limits.max_bytes:
                    oversize = _Peek(bytes(line))
                    oversize.feed(piece)
                    line.clear()
                else:
                    line += piece
                if end < 0:
                    break
                start = end + 1
                frame: Frame | None
                if oversize is not None:
                    frame = self._unreadable(oversize.head, oversize.tail, oversize.size, "longer than the limit")
                    oversize = None
                else:
                    frame = self._decode(bytes(line))
                    line.clear()
                if frame is not None:
                    await on_frame(frame)

    def _decode(self, line: bytes) -> Frame | None:
        if not line.strip():
            return None
        try:
            return Message(parse_message(line, self._limits))
        except McpsError as error:
            return self._unreadable(line[:_PEEK], line[-_PEEK:], len(line), error.code.mcps)

    def _unreadable(self, head: bytes, tail: bytes, size: int, why: str) -> Unreadable | None:
        is_response, request_id = response_id(head, tail)
        self._stdout_log(
            "upstream %s (pid %s) wrote an unreadable %s of %d bytes (%s)",
            self.name,
            self.pid,
            "response" if is_response else "line",
            size,
            why,
        )
        return Unreadable(request_id) if is_response else None

    async def _stderr_loop(self, process: anyio.abc.Process) -> None:
        stderr = process.stderr
        if stderr is None:  # pragma: no cover - spawned with a pipe
            return
        pending = b""
        dropping = False
        try:
            async for chunk in stderr:
                *complete, rest = chunk.split(b"\n")
                for piece in complete:
                    if not dropping:
                        self._stderr_line(pending + piece)
                    pending, dropping = b"", False
                if not dropping:
                    pending += rest
                    if len(pending) > 4 * _LOG_LINE_CHARS:
                        self._stderr_line(pending)
                        pending, dropping = b"", True
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return

    def _stderr_line(self, raw: bytes) -> None:
        text = raw[: 4 * _LOG_LINE_CHARS].decode("utf-8", "replace").rstrip("\r")[:_LOG_LINE_CHARS]
        if text:
            self._stderr_log("upstream %s (pid %s): %r", self.name, self.pid, text)

    async def _terminate(self, process: anyio.abc.Process) -> None:
        """Close stdin; SIGTERM the group after ``kill_timeout``; SIGKILL after another; reap. Never raises."""
        if process.stdin is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.aclose()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if await self._reaped(process):
                break
            logger.warning("upstream %s (pid %d): still running; sending %s", self.name, process.pid, sig.name)
            self._signal_group(process, sig)
        else:
            if not await self._reaped(process):
                logger.error("upstream %s (pid %d): survived SIGKILL; abandoned", self.name, process.pid)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stream.aclose()
        logger.info("upstream %s (pid %d): ended (%s)", self.name, process.pid, process.returncode)

    async def _reaped(self, process: anyio.abc.Process) -> bool:
        with anyio.move_on_after(self._kill_timeout):
            await process.wait()
            return True
        return False

    @staticmethod
    def _signal_group(process: anyio.abc.Process, sig: signal.Signals) -> None:
        if process.returncode is not None:
            return  # reaped: its id may belong to someone else by now
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # its own session and group (start_new_session): the whole tree


ExitHandler = Callable[[ChildProcess], Awaitable[None]]
StartHandler = Callable[[ChildProcess], Awaitable[None]]


class ChildSlot:
    """At most one running :class:`ChildProcess` for one owner (a 2025 session, or the shared 2026 upstream).

    ``on_frame`` gets every frame; ``on_exit`` runs (shielded) after a child has ended, however it ended;
    ``on_start`` runs after each *restart* (not the first start) before the child is handed out, and may raise
    :class:`UpstreamUnavailable` to refuse it (the child is then ended as a crash).
    """

    def __init__(
        self,
        command: StdioCommand,
        *,
        name: str,
        max_bytes: int,
        kill_timeout: float,
        restart: RestartPolicy,
        clock: Clock,
        write_timeout: float,
        on_frame: FrameHandler,
        on_exit: ExitHandler,
        on_restart: StartHandler | None = None,
    ) -> None:
        self.command = command
        self.name = name
        self.child: ChildProcess | None = None
        self._max_bytes = max_bytes
        self._kill_timeout = kill_timeout
        self._restart = restart
        self._clock = clock
        self._write_timeout = write_timeout
        self._on_frame = on_frame
        self._on_exit = on_exit
        self._on_restart = on_restart
        self._lock = anyio.Lock()
        self._closed = False
        self._starts = 0
        self._crashes = 0
        self._not_before = float("-inf")

    @property
    def running(self) -> ChildProcess | None:
        """The child, when one is running."""
        child = self.child
        return child if child is not None and not child.exited.is_set() else None

    async def ensure(self, tasks: anyio.abc.TaskGroup) -> ChildProcess:
        """The running child, started (in ``tasks``) if there is none; :class:`UpstreamUnavailable` if it cannot."""
        async with self._lock:
            if (child := self.running) is not None:
                return child
            if self._closed:
                raise UpstreamUnavailable("upstream session ended")
            if self._clock() < self._not_before:
                raise UpstreamUnavailable("upstream server is restarting")
            child = ChildProcess(
                self.command,
                name=self.name,
                max_bytes=self._max_bytes,
                kill_timeout=self._kill_timeout,
                clock=self._clock,
                write_timeout=self._write_timeout,
            )
            try:
                await tasks.start(self._run, child)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                logger.error("upstream %s: cannot start %r: %s", self.name, self.command.argv[0], reason)  # noqa: TRY400
                raise UpstreamUnavailable("upstream server is unavailable") from exc
            self.child = child
            self._starts += 1
            if self._starts > 1 and self._on_restart is not None:
                try:
                    await self._on_restart(child)
                except UpstreamUnavailable:
                    child.stop(deliberate=False)
                    raise
            return child

    def send_nowait(self, message: Mapping[str, Any]) -> None:
        """Queue a courtesy message to the running child, if any (never starts one)."""
        if (child := self.running) is not None:
            child.send_nowait(message)

    async def stop(self, *, close: bool = True) -> None:
        """End the running child (deliberately: no backoff) and wait until it is reaped. ``close``: for good."""
        self._closed = self._closed or close
        if (child := self.child) is not None:
            child.stop()
            await child.exited.wait()

    async def _run(self, child: ChildProcess, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        try:
            await child.run(self._on_frame, task_status=task_status)
        except Exception:
            if child.pid is None:
                raise  # it could not start: ensure() answers for that
            # A fault while relaying (a bug, not input: input faults are refused where they are read) ends this
            # child, whose calls then fail; never its owner, the app or another session.
            logger.exception("upstream %s (pid %d): relay failed; child ended", self.name, child.pid)
        finally:
            if self.child is child:
                self.child = None
            self._count_exit(child)
            if child.pid is not None:
                with anyio.CancelScope(shield=True):
                    await self._on_exit(child)

    def _count_exit(self, child: ChildProcess) -> None:
        if child.deliberate:
            return
        now = self._clock()
        if child.pid is not None and now - child.started_at >= self._restart.reset_after:
            self._crashes = 0
        self._crashes += 1
        self._not_before = now + self._restart.delay(self._crashes)
        if child.pid is not None:
            logger.warning(
                "upstream %s (pid %d) exited unexpectedly (%d in a row)", self.name, child.pid, self._crashes
            )
