"""Trust anchors fetched from an issuer's ``issuerKeysUrl`` (e.g. ``/.well-known/agent-trust-keys``), cached.

The document is the same JWK Set as an anchors file (:mod:`mcps.identity.anchors`, every key with
``mcps_max_tl``). Key resolution is synchronous and does no I/O, so fetching happens beside it:
:meth:`RemoteTrustAnchors.refresh` (call it at start-up and on a schedule, or let :meth:`RemoteTrustAnchors.refreshing`
run a background task) replaces the snapshot that :meth:`RemoteTrustAnchors.get` reads.

Fail closed:

* the response is read with a size limit and a timeout, parsed strictly (duplicate keys refused), and must be a
  valid anchors set as a whole — otherwise the fetch fails and the previous snapshot stays;
* a source that has never been fetched, or whose last good fetch is older than ``max_stale``, refuses every lookup
  with MCPS-007 (trust authority unreachable) when ``required`` — the default. When not required, it answers
  "no such anchor", so passports from that issuer are refused as unknown (MCPS-029);
* the URL must be ``https``; plain ``http`` only with ``unsafe_allow_http=True``, which warns on every fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Final

import httpx

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId
from mcps.core.strict import Limits, parse_message
from mcps.identity.anchors import MAX_JWKS_BYTES, TrustAnchor, TrustAnchors

__all__ = ["DEFAULT_MAX_STALE", "DEFAULT_REFRESH_INTERVAL", "DEFAULT_TIMEOUT", "RemoteTrustAnchors"]

DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_REFRESH_INTERVAL: Final = 300.0
DEFAULT_MAX_STALE: Final = 3600.0
MAX_DOCUMENT_BYTES: Final = MAX_JWKS_BYTES

_log = logging.getLogger("mcps.identity.remote_anchors")


def _unreachable(detail: str) -> McpsError:
    return McpsError(ErrorCode.TRUST_AUTHORITY_UNREACHABLE, detail=detail)


class RemoteTrustAnchors:
    """Anchors from ``url``, refreshed by :meth:`refresh`; lookups fail closed once the snapshot is too old.

    ``transport`` is an ``httpx`` transport for tests (``httpx.MockTransport``); ``clock`` is injectable.
    """

    def __init__(
        self,
        url: str,
        *,
        required: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        max_stale: float = DEFAULT_MAX_STALE,
        unsafe_allow_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        scheme = httpx.URL(url).scheme
        if scheme != "https" and not (scheme == "http" and unsafe_allow_http):
            raise ValueError("issuerKeysUrl must be https (plain http needs unsafe_allow_http=True)")
        if not 0 < refresh_interval <= max_stale or timeout <= 0:
            raise ValueError("need 0 < refresh_interval <= max_stale and a positive timeout")
        self.url = url
        self.required = required
        self._timeout = timeout
        self._refresh_interval = refresh_interval
        self._max_stale = max_stale
        self._unsafe_http = scheme == "http"
        self._transport = transport
        self._clock = clock
        self._anchors: TrustAnchors | None = None
        self._fetched_at = 0.0

    @property
    def fetched_at(self) -> float | None:
        """When the current snapshot was fetched, or ``None`` before the first good fetch."""
        return self._fetched_at if self._anchors is not None else None

    def get(self, kid: KeyId) -> TrustAnchor | None:
        """:class:`~mcps.identity.anchors.AnchorSource`: the anchor from the last good fetch, if still fresh."""
        if self._anchors is None or self._clock() - self._fetched_at > self._max_stale:
            if self.required:
                raise _unreachable(f"no fresh issuer keys from {self.url}")
            return None
        return self._anchors.get(kid)

    async def refresh(self) -> TrustAnchors:
        """Fetch and validate the document now; on success it becomes the snapshot. Raises MCPS-007 on failure."""
        if self._unsafe_http:
            warnings.warn(f"UNSAFE: fetching trust anchors over plain http from {self.url}", stacklevel=2)
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout, follow_redirects=False
            ) as client:
                body = await self._read_limited(client)
        except httpx.HTTPError as exc:
            raise _unreachable(f"{self.url}: {type(exc).__name__}") from exc
        try:
            anchors = TrustAnchors.from_jwks(parse_message(body, Limits(max_bytes=MAX_DOCUMENT_BYTES)))
        except McpsError as exc:
            raise _unreachable(f"{self.url}: invalid anchors document ({exc.diagnostics()})") from exc
        self._anchors, self._fetched_at = anchors, self._clock()
        return anchors

    async def _read_limited(self, client: httpx.AsyncClient) -> bytes:
        async with client.stream("GET", self.url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                raise _unreachable(f"{self.url}: HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _unreachable(f"{self.url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
            return bytes(body)

    @contextlib.asynccontextmanager
    async def refreshing(self) -> AsyncIterator[RemoteTrustAnchors]:
        """Fetch once (MCPS-007 if that fails and ``required``), then refresh every ``refresh_interval`` in the
        background until the block exits. A failed background refresh keeps the previous snapshot (and logs)."""
        try:
            await self.refresh()
        except McpsError:
            if self.required:
                raise
            _log.warning("initial fetch of %s failed; continuing without its anchors", self.url)
        task = asyncio.create_task(self._refresh_forever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except McpsError as exc:
                _log.warning("refresh of trust anchors failed: %s", exc.diagnostics())
