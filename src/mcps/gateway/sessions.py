"""2025-11-25 session pins shared by replicas, in Redis (SPEC.md §12.9).

The front pins each session to its first verified peer (§12.5 step 4). With replicas behind a load balancer, a
session opened through replica A may next reach replica B: B must enforce the same pin, or refuse. So when A sees a
session open (the upstream answered ``initialize`` with an ``Mcp-Session-Id``), it writes the pin before the client
can learn the session id::

    SET <namespace>session:<upstream>:<b64u(SHA-256(session id))>  {"peer": {...} | null}  EX <ttl>

and a replica that does not know a session id asks Redis before it refuses it as unknown (404). DELETE removes
the pin. The pin holds what the relay checks later messages against (the peer's identity, key id, level, scopes,
address and names); every message is still verified in full on the replica that receives it.

What is *not* shared — and so where a load balancer must keep a client on one replica (affinity on
``Mcp-Session-Id``):

* a **stdio upstream's** session: its child process lives on the replica that started it; another replica's
  adapter answers 404 for it (the client then opens a new session);
* an answer to a **request from the upstream** (sampling, elicitation, roots): it must reach the replica that
  relayed the request, which holds the binding the answer is checked against (elsewhere: MCPS-012);
* **resumption** of a POST's stream (``Last-Event-ID``): the replica that forwarded the request holds the state
  its answer is verified and logged with (elsewhere the resumed answer is dropped, never released unverified).

An HTTP upstream's session otherwise works from any replica. When Redis cannot answer, a session this replica does
not know is refused (MCPS-030, HTTP 503), never admitted unpinned; one it knows goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any, Final

import redis.asyncio
from redis.exceptions import RedisError

from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.gateway.relay import Peer, Session
from mcps.identity.levels import TrustLevel
from mcps.policy.model import Principal

__all__ = ["DEFAULT_SESSION_TTL", "RedisSessionPins", "SessionPins"]

logger = logging.getLogger("mcps.gateway")

DEFAULT_SESSION_TTL: Final = 24 * 3600
_MAX_PIN_BYTES: Final = 64 * 1024


class SessionPins:
    """Where session pins are shared: nowhere (one process). :class:`RedisSessionPins` shares them."""

    async def put(self, upstream: str, session_id: str, session: Session) -> None:
        return None

    async def get(self, upstream: str, session_id: str) -> Session | None:
        return None

    async def delete(self, upstream: str, session_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RedisSessionPins(SessionPins):
    """Session pins in Redis under ``prefix`` (the gateway's namespace), kept ``ttl`` seconds after the session
    opened. Owns ``client``."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str,
        ttl: int = DEFAULT_SESSION_TTL,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.ttl = ttl
        self._on_error = on_error

    def _unavailable(self, exc: BaseException) -> McpsError:
        if self._on_error is not None:
            self._on_error()
        return McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"session pins: {type(exc).__name__}")

    def key(self, upstream: str, session_id: str) -> str:
        digest = b64u_encode(hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest())
        return f"{self.prefix}session:{upstream}:{digest}"

    async def put(self, upstream: str, session_id: str, session: Session) -> None:
        value = json.dumps({"peer": _peer_json(session.peer)}, separators=(",", ":"))
        try:
            await self._client.set(self.key(upstream, session_id), value, ex=self.ttl)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def get(self, upstream: str, session_id: str) -> Session | None:
        try:
            raw = await self._client.get(self.key(upstream, session_id))
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if raw is None:
            return None
        try:
            if len(raw) > _MAX_PIN_BYTES:
                raise ValueError("too large")
            data = json.loads(raw)
            return Session(peer=_peer_of(data["peer"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("mcps gateway: session pin in Redis is unreadable (%s); refusing the session", exc)  # noqa: TRY400
            raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail="session pin unreadable") from None

    async def delete(self, upstream: str, session_id: str) -> None:
        try:
            await self._client.delete(self.key(upstream, session_id))
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _peer_json(peer: Peer | None) -> dict[str, Any] | None:
    if peer is None:
        return None
    principal = peer.principal
    return {
        "identity": principal.identity,
        "kid": principal.kid,
        "level": int(principal.level),
        "scopes": sorted(principal.scopes),
        "issuer": principal.issuer,
        "signed": principal.signed,
        "address": peer.address,
        "names": sorted(peer.names),
    }


def _peer_of(data: Any) -> Peer | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise TypeError("peer is not an object")
    principal = Principal(
        identity=_text(data["identity"]),
        kid=None if data["kid"] is None else _text(data["kid"]),
        level=TrustLevel(int(data["level"])),
        scopes=frozenset(_text(scope) for scope in data["scopes"]),
        issuer=None if data["issuer"] is None else _text(data["issuer"]),
        signed=bool(data["signed"]),
    )
    return Peer(principal, _text(data["address"]), frozenset(_text(name) for name in data["names"]))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value
