"""Conditions in CEL (the Common Expression Language), compiled and type-checked once, when the policy is loaded.

The implementation is ``cel-expr-python``, the CEL team's Python binding of cel-cpp (README and BENCHMARKS.md say
why: a type checker, and ~3 µs per evaluation). What an expression sees (SPEC.md §11.4):

=================  ==================  ==========================================================================
name               CEL type            value
=================  ==================  ==========================================================================
``args``           ``map(string, dyn)`` the call's arguments as parsed: integers stay ``int``, other numbers are
                                       ``double``, ``true``/``false`` are ``bool``, ``null`` is ``null``
``caller.id``      ``string``          the agent id (or the kid of a pinned-key caller)
``caller.kid``     ``string``          the signing key's id; ``""`` for an unsigned client
``caller.level``   ``int``             the effective trust level, 0–4
``caller.scopes``  ``list(string)``    the passport's scopes, sorted
``caller.issuer``  ``string``          the passport's ``iss``; ``""`` without a passport
``caller.signed``  ``bool``            false only for an unsigned client
``caller.claims``  ``map(string, dyn)`` the passport's claims (empty without a passport)
``server``         ``string``          the server the call is for
``method``         ``string``          the JSON-RPC method
``tool``           ``string``          the tool of a ``tools/call``; ``""`` otherwise
=================  ==================  ==========================================================================

An expression must have type ``bool`` (or ``dyn``, checked when evaluated). A syntax error, an unknown name or a
type error is a load error. At run time anything but ``true`` — ``false``, an error such as a missing argument
(``args.amount`` when there is none: use ``has(args.amount)``), a non-boolean result — denies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cel_expr_python import cel

from mcps.policy.model import CallContext

__all__ = ["CelError", "Condition"]

_T = cel.Type
_VARIABLES: Final = {
    "args": _T.Map(_T.STRING, _T.DYN),
    "caller.id": _T.STRING,
    "caller.kid": _T.STRING,
    "caller.level": _T.INT,
    "caller.scopes": _T.List(_T.STRING),
    "caller.issuer": _T.STRING,
    "caller.signed": _T.BOOL,
    "caller.claims": _T.Map(_T.STRING, _T.DYN),
    "server": _T.STRING,
    "method": _T.STRING,
    "tool": _T.STRING,
}
_ENV: Final = cel.NewEnv(variables=_VARIABLES)
# One environment per variable, without it: an expression that no longer compiles there references that variable.
_WITHOUT: Final = {
    name: cel.NewEnv(variables={other: kind for other, kind in _VARIABLES.items() if other != name})
    for name in _VARIABLES
}
_GETTERS: Final[dict[str, Callable[[CallContext], Any]]] = {
    "args": lambda call: call.arguments if type(call.arguments) is dict else dict(call.arguments),
    "caller.id": lambda call: call.caller.identity,
    "caller.kid": lambda call: call.caller.kid or "",
    "caller.level": lambda call: int(call.caller.level),
    "caller.scopes": lambda call: sorted(call.caller.scopes),
    "caller.issuer": lambda call: call.caller.issuer or "",
    "caller.signed": lambda call: call.caller.signed,
    "caller.claims": lambda call: dict(call.caller.claims),
    "server": lambda call: call.server,
    "method": lambda call: call.method,
    "tool": lambda call: call.tool or "",
}
_BOOL_TYPES: Final = ("bool", "dyn")


class CelError(ValueError):
    """An expression that does not compile or does not type-check (the message is the checker's, with a caret)."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled expression. :meth:`check` returns ``None`` when it holds for a call, else why not (local)."""

    source: str
    names: tuple[str, ...]
    """The variables the expression references: only these are converted to CEL values for each call."""
    _program: Any

    @classmethod
    def compile(cls, source: str) -> Condition:
        if not source.strip():
            raise CelError("the expression is empty")
        try:
            program = _ENV.compile(source)
        except RuntimeError as exc:
            raise CelError(_clean(str(exc))) from None
        kind = program.return_type().name().lower()
        if kind not in _BOOL_TYPES:
            raise CelError(f"the expression has type {kind}, not bool")
        return cls(source, _references(source), program)

    def check(self, call: CallContext) -> str | None:
        """``None`` if the expression is ``true`` for ``call``, else the reason (local detail, no values)."""
        try:
            value = self._program.eval(data={name: _GETTERS[name](call) for name in self.names})
            result = value.value()
            if result is True:
                return None
            kind = value.type().name().lower()
        except Exception as exc:  # noqa: BLE001 - any failure to evaluate denies (fail closed)
            return f"evaluation failed: {type(exc).__name__}"
        if kind == "bool":
            return "evaluated to false"
        if kind == "error":
            return f"evaluation error: {_first_words(str(result))}"
        return f"evaluated to {kind}, not bool"


def _references(source: str) -> tuple[str, ...]:
    names = []
    for name in _VARIABLES:
        if name.rpartition(".")[2] not in source:
            continue
        try:
            _WITHOUT[name].compile(source)
        except RuntimeError:
            names.append(name)
    return tuple(names)


def _first_words(text: str) -> str:
    """An evaluation error without the part that may quote an argument's value (after the first ``:``)."""
    code, _, rest = text.partition(":")
    return code if code.isupper() and rest else text[:80]


def _clean(message: str) -> str:
    """The checker's message without its status prefix and suffix, e.g. ``1:16: Syntax error: ...``."""
    text = message.removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]").strip()
    return text.replace("ERROR: <input>:", "", 1)
