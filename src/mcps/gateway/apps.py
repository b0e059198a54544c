"""Upstream apps over their lifetime: each started in a task of its own, counted while serving, retired after a reload.

An upstream app that needs a task of its own (:class:`~mcps.gateway.stdio_upstream.StdioUpstreamApp`: its children
and sweeper live in a task group, which must be entered and left in one task) is started by :class:`AppKeeper` in
a *keeper* task that also stops it, so apps can be started and stopped at any time — at server start-up, on a
reload, at shutdown — from any task. :class:`Tracked` wraps an app to count the requests it is serving, so a
reload retires a replaced app only once its calls have ended (or their bound has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["AppKeeper", "Tracked"]

logger = logging.getLogger("mcps.gateway")

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Tracked:
    """An upstream ASGI app that counts the requests it is serving; other attributes are the app's."""

    def __init__(self, app: Any) -> None:
        self.inner = app
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.active += 1
        try:
            await self.inner(scope, receive, send)
        finally:
            self.active -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class AppKeeper:
    """Starts and stops upstream apps, each app that has ``start`` in a keeper task of its own."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    async def start(self, app: Any) -> None:
        """Start ``app`` (no-op for an app without ``start``); raises what its ``start`` raised."""
        app = getattr(app, "inner", app)
        if getattr(app, "start", None) is None or id(app) in self._kept:
            return
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(self._keep(app, started, stop), name="mcps upstream app")
        self._kept[id(app)] = (stop, task)
        try:
            await started
        except BaseException:
            self._kept.pop(id(app), None)
            raise

    @staticmethod
    async def _keep(app: Any, started: asyncio.Future[None], stop: asyncio.Event) -> None:
        try:
            await app.start()
        except Exception as exc:  # noqa: BLE001 - handed to the caller of start()
            started.set_exception(exc)
            return
        except BaseException:
            started.cancel()
            raise
        started.set_result(None)
        try:
            await stop.wait()
        finally:
            await app.aclose()

    async def stop(self, app: Any) -> None:
        """Stop ``app``: through its keeper task when it has one, else its ``aclose``."""
        app = getattr(app, "inner", app)
        kept = self._kept.pop(id(app), None)
        try:
            if kept is not None:
                kept[0].set()
                await kept[1]
            else:
                close = getattr(app, "aclose", None)
                if close is not None:
                    await close()
        except Exception:
            logger.exception("mcps gateway: error while stopping an upstream app")

    async def stop_all(self) -> None:
        for stop, task in list(self._kept.values()):
            stop.set()
            with contextlib.suppress(Exception):
                await task
        self._kept.clear()

    async def retire(self, app: Any, *, bound: float) -> None:
        """Stop ``app`` once it serves no request, or after ``bound`` seconds (its calls' own time limit)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while getattr(app, "active", 0) and loop.time() < deadline:  # noqa: ASYNC110 - requests end on their own; poll the count
            await asyncio.sleep(0.05)
        if getattr(app, "active", 0):
            logger.warning("mcps gateway: a replaced upstream app still serves requests; stopping it")
        await self.stop(app)
