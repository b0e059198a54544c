"""Signed MCP agents with the official SDK (``mcp`` 2.x): a transport for ``mcp.Client`` and ``ClientSession``.

::

    security = ChannelSecurity(key=agent_key, trusted=PinnedKeys([server_public_key]), nonces=MemoryNonceStore())
    transport = signed_stdio_client(StdioServerParameters(command="python", args=["server.py"]),
                                    security, server_identity="urn:example:files")
    async with Client(transport) as client:
        result = await client.call_tool("read", {"path": "notes.txt"})

Every outgoing message is signed with the agent's key for ``server_identity``. Every incoming message is
verified against the trusted (pinned) server keys, addressed to the agent (``security.identity``, by default
its kid); a response is accepted only when bound to the request it answers (``irt``), once (nonce). A refused
response fails its request with the MCPS code (``mcp.shared.exceptions.MCPError``, ``code`` −33000−n) instead of
leaving it waiting. The server's key must be pinned; the one exception, for a server whose key is not known in
advance, is the explicitly unsafe :class:`~mcps.bindings.tofu.UnsafeTrustOnFirstUse`, which warns on every use.

Tool definitions are always checked (``tools=``, a :class:`~mcps.bindings.tools.ToolGuard`): every listed tool
must carry a valid signature by the server's key, or it is blocked (MCPS-008). Without ``tools=`` the client
pins the first listing for this connection only (:meth:`ToolGuard.session_pins
<mcps.bindings.tools.ToolGuard.session_pins>`, which logs a WARNING); pass a guard built from ``mcps.lock`` to
pin across sessions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import IO, Any, Final

import anyio
from anyio.abc import Process
from mcp.client import Transport
from mcp.client.stdio import StdioServerParameters, get_default_environment

from mcps.bindings._sdk import TransportStreams
from mcps.bindings.channel import ChannelSecurity, SecureChannel
from mcps.bindings.streams import secure_frame_streams, secure_message_streams
from mcps.bindings.tools import ToolGuard

__all__ = ["SignedTransport", "signed_stdio_client"]

logger = logging.getLogger("mcps.bindings")

_CHUNK: Final = 64 * 1024
_EXIT_TIMEOUT: Final = 2.0
"""Seconds a server gets to exit after its stdin closes, then again after SIGTERM, before SIGKILL."""


class _ExchangeChannel(SecureChannel):
    """The channel of a :class:`SignedTransport`: its inner SDK transport (``streamable_http_client``…) makes up an
    unsigned error for a request whose exchange failed, which must end that request (SPEC.md §9.1)."""

    failed_answer_ends_request = True


class SignedTransport:
    """Wrap any SDK client transport (e.g. ``streamable_http_client(url)``): sign out, verify in.

    The inner transport has parsed the bytes already, so duplicate keys are not caught here; signatures,
    audience, binding and replay are. For stdio use :func:`signed_stdio_client`, which also parses strictly.
    """

    def __init__(
        self, inner: Transport, security: ChannelSecurity, *, server_identity: str, tools: ToolGuard | None = None
    ) -> None:
        self._inner = inner
        guard = tools if tools is not None else ToolGuard.session_pins(server_identity)
        self._channel = _ExchangeChannel(security, peer=server_identity, tools=guard)
        self._streams: AbstractAsyncContextManager[TransportStreams] | None = None

    async def __aenter__(self) -> TransportStreams:
        @asynccontextmanager
        async def run() -> AsyncIterator[TransportStreams]:
            async with (
                self._inner as (read_stream, write_stream),
                secure_message_streams(self._channel, read_stream, write_stream) as streams,
            ):
                yield streams

        self._streams = run()
        return await self._streams.__aenter__()

    async def __aexit__(self, *exc_info: object) -> bool | None:
        streams, self._streams = self._streams, None
        if streams is None:
            return None
        return await streams.__aexit__(*exc_info)  # type: ignore[arg-type]


@asynccontextmanager
async def signed_stdio_client(
    server: StdioServerParameters,
    security: ChannelSecurity,
    *,
    server_identity: str,
    tools: ToolGuard | None = None,
    stderr: int | IO[Any] | None = None,
) -> AsyncIterator[TransportStreams]:
    """Spawn an MCP server and talk to it over stdio, every line strictly parsed, verified and signed.

    ``tools`` pins the server's tool definitions (:class:`~mcps.bindings.tools.ToolGuard`, from ``mcps.lock``);
    without it they are pinned for this connection only (:meth:`~mcps.bindings.tools.ToolGuard.session_pins`).

    The server's stderr is inherited unless ``stderr`` names a file (or ``subprocess.DEVNULL``). On exit its
    stdin is closed, then it is terminated, then killed, each step bounded by a short timeout.
    """
    command: Sequence[str] = [server.command, *server.args]
    cwd = Path(server.cwd) if server.cwd is not None else None
    process = await anyio.open_process(
        command, env=get_default_environment() | (server.env or {}), cwd=cwd, stderr=stderr
    )
    guard = tools if tools is not None else ToolGuard.session_pins(server_identity)
    channel = SecureChannel(security, peer=server_identity, tools=guard)
    stdout, stdin = process.stdout, process.stdin
    if stdout is None or stdin is None:  # pragma: no cover - open_process always pipes both by default
        raise RuntimeError("server process has no stdio pipes")

    async def receive_chunk() -> bytes:
        try:
            return await stdout.receive(_CHUNK)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return b""

    async def send_frame(frame: bytes) -> None:
        await stdin.send(frame)

    try:
        async with secure_frame_streams(channel, receive_chunk, send_frame) as streams:
            yield streams
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)


async def _stop(process: Process) -> None:
    if process.stdin is not None:
        await process.stdin.aclose()
    with anyio.move_on_after(_EXIT_TIMEOUT):
        await process.wait()
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(_EXIT_TIMEOUT):
            await process.wait()
    if process.returncode is None:
        logger.warning("mcps: server process did not exit; killing it")
        process.kill()
    await process.aclose()
