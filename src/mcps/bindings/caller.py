"""The verified caller of the request being handled, readable from inside a tool function.

The bindings verify every inbound message before the SDK sees it. For each request they run the SDK's handler
in a ``contextvars`` context that holds a :class:`Caller`; the SDK's dispatcher runs each request in the
context its transport stream hands over (``ReadStream.last_context``, mcp 2.x), so the value is per request,
never per process, and a tool reads it with :func:`current_caller`::

    @server.tool()
    def delete(path: str) -> str:
        caller = current_caller()          # raises outside a verified request
        audit(caller.kid, path)
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from mcps.core.keys import KeyId, PublicKey
from mcps.verifier import VerifiedMessage

__all__ = ["Caller", "NoVerifiedCaller", "current_caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request being handled: its key, verified. (Agent, level and scopes join with passports.)"""

    kid: KeyId
    key: PublicKey
    message: VerifiedMessage

    @property
    def audience(self) -> str:
        """The identity replies to this caller are addressed to (``aud``): its key id."""
        return self.kid


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
