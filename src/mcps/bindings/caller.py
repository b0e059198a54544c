"""The verified caller of the request being handled, readable from inside a tool function.

The bindings verify every inbound message before the SDK sees it. For each request they run the SDK's handler
in a ``contextvars`` context that holds a :class:`Caller`; the SDK's dispatcher runs each request in the
context its transport stream hands over (``ReadStream.last_context``, mcp 2.x), so the value is per request,
never per process, and a tool reads it with :func:`current_caller`::

    @server.tool()
    def delete(path: str) -> str:
        caller = current_caller()          # raises outside a verified request
        if "files:delete" not in caller.scopes:
            raise PermissionError("not allowed")
        audit(caller.identity, caller.level, caller.grant, path)

A caller known through its passport (:class:`~mcps.identity.PassportResolver`) has an agent id, an effective
trust level and scopes; a caller known only by a pinned key has its kid as identity, no level and no scopes.
``grant`` is the verified per-call grant when the server requires or received one (:mod:`mcps.bindings.grants`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from mcps.core.keys import KeyId, PublicKey
from mcps.identity.chains import VerifiedAgent
from mcps.identity.grants import VerifiedGrant
from mcps.identity.levels import TrustLevel
from mcps.verifier import VerifiedMessage

__all__ = ["Caller", "NoVerifiedCaller", "current_caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request being handled, verified: its key, its passport identity when it has one, its grant."""

    kid: KeyId
    key: PublicKey
    message: VerifiedMessage
    """The verified request, hop members (``mcps/via``, ``mcps/grant``) removed (SPEC.md §9.8)."""
    grant: VerifiedGrant | None = None
    """The verified grant for this very call (``tools/call`` only), when one was required or sent."""

    @property
    def agent(self) -> VerifiedAgent | None:
        """The verified passport path, when the key was resolved through a passport."""
        return self.message.agent

    @property
    def identity(self) -> str:
        """The agent id from the passport; the key id for a caller known only by a pinned key."""
        agent = self.message.agent
        return agent.agent_id if agent is not None else self.kid

    @property
    def level(self) -> TrustLevel | None:
        """The effective trust level (capped along the passport path); ``None`` without a passport."""
        agent = self.message.agent
        return agent.level if agent is not None else None

    @property
    def scopes(self) -> frozenset[str]:
        """The passport's scopes; empty without a passport."""
        agent = self.message.agent
        return agent.scopes if agent is not None else frozenset()

    @property
    def audience(self) -> str:
        """The identity replies to this caller are addressed to (``aud``): :attr:`identity`."""
        return self.identity


class NoVerifiedCaller(LookupError):
    """Raised by :func:`current_caller` outside a request verified by an mcps binding."""


_CALLER: Final[contextvars.ContextVar[Caller]] = contextvars.ContextVar("mcps_caller")


def current_caller() -> Caller:
    """The verified caller of the current request. Raises :class:`NoVerifiedCaller` when there is none."""
    try:
        return _CALLER.get()
    except LookupError:
        raise NoVerifiedCaller("no verified caller: this code is not running for an mcps-verified request") from None


@contextmanager
def bound_caller(caller: Caller) -> Iterator[None]:
    """Within this block (and tasks started from it), :func:`current_caller` returns ``caller``."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


def context_for(caller: Caller, base: contextvars.Context | None) -> contextvars.Context:
    """A copy of ``base`` (or of the current context) in which :func:`current_caller` returns ``caller``."""
    context = base.copy() if base is not None else contextvars.copy_context()
    context.run(_CALLER.set, caller)
    return context
