"""``mcps gateway run``: serve a gateway on uvicorn until a signal says stop, reloading on SIGHUP.

Signals (the gateway installs its own handlers; uvicorn's, which re-raise the signal after shutdown and so kill the
process before the audit log is closed, are not used):

* **SIGTERM, SIGINT** — graceful shutdown: readiness turns 503 and open GET streams end (:meth:`OpsApp.drain`), the
  listening socket closes (new connections are refused), calls in flight run to their end for up to
  ``shutdown_timeout`` seconds and are then cancelled, the upstream apps stop (stdio children: stdin closed,
  SIGTERM, SIGKILL), and the gateway closes its stores — the audit log last but one, after its last batch is
  committed. The process then exits 0. A second SIGINT skips the wait.
* **SIGHUP** — :func:`~mcps.gateway.reload.reload_gateway`: the policy, tool pins, agents and upstreams, without
  dropping a call; a bad file is refused, logged with its file and line, and the running configuration stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from mcps.gateway.reload import reload_gateway
from mcps.gateway.runtime import Gateway

__all__ = ["serve_gateway"]

logger = logging.getLogger("mcps.gateway")


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: :func:`serve_gateway` handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_gateway(
    gateway: Gateway, *, host: str, port: int, on_started: Callable[[int], None] | None = None
) -> None:
    """Serve ``gateway`` on ``host:port`` until SIGTERM or SIGINT; then shut down gracefully and close it."""
    app = gateway.app
    if app is None:
        raise RuntimeError("serve_gateway needs a gateway made by Gateway.open")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(gateway.config.shutdown_timeout),
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()

    def stop(signum: int) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
            return
        logger.info("mcps gateway: %s: shutting down (calls in flight get %s s)", signal.Signals(signum).name,
                    gateway.config.shutdown_timeout)  # fmt: skip
        app.drain()
        server.should_exit = True

    def reload() -> None:
        task = asyncio.create_task(reload_gateway(gateway), name="mcps gateway reload")
        pending.add(task)
        task.add_done_callback(pending.discard)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    loop.add_signal_handler(signal.SIGHUP, reload)
    watcher = asyncio.create_task(_announce(server, on_started)) if on_started is not None else None
    try:
        await server.serve()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        if watcher is not None:
            watcher.cancel()
        for task in list(pending):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await gateway.aclose()
        logger.info("mcps gateway: stopped")


async def _announce(server: uvicorn.Server, on_started: Callable[[int], None]) -> None:
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    port = next((sock.getsockname()[1] for listener in getattr(server, "servers", []) for sock in listener.sockets), 0)
    on_started(port)
