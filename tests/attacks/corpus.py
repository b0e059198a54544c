"""The attack corpus: one named case per attack, as data, with the MCPS code it must get and a positive control.

A case is a :class:`Case`: a kebab-case ``name`` (the attack), the ``code`` the defender must answer with, the
``threat`` it comes from (SECURITY.md groups the corpus by threat), and ``build(defect)``, which returns the input a
surface's runner feeds to mcps: ``build(True)`` is the attack, ``build(False)`` the same input minus the defect.
Each runner (``test_<surface>.py``) checks, for every case of its table, that

1. the control is accepted — so a refusal of the attack can only come from the defect;
2. the attack is refused with ``code`` (or, for the few cases whose defence is not a refusal, gets the outcome the
   case states);
3. no text of the attacker's input appears in anything a peer can see: every attack carries :data:`CANARY`, and
   refusal bodies, peer-safe error messages and CLI output are searched for it.

Echoes by design, excluded from the search: a refusal carries the refused request's ``id`` (JSON-RPC needs it), and
a refusal is addressed (``aud``) to the identity the refused request claimed (SPEC.md §9.1). Attacks put the
canary elsewhere.

A case written for behaviour that a fix on another branch brings carries ``xfail``: it is run as
``pytest.mark.xfail(strict=True)``, so it turns into a failure (XPASS) as soon as the fix is merged, and the mark
is then removed.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pytest

from mcps.core.errors import ErrorCode, McpsError

__all__ = [
    "CANARY",
    "Case",
    "Threat",
    "assert_no_canary",
    "case_params",
    "peer_view",
]

CANARY = "Qz7CANARYx9W"
"""Put in every attack input; must never come back in anything a peer sees. Alphanumeric, so it survives any
escaping (JSON, base64url alphabets, scope tokens) unchanged and is found however the output is encoded."""

_NAME = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
T = TypeVar("T")


class Threat(enum.Enum):
    """Who attacks (SECURITY.md, threat model)."""

    NETWORK = "network attacker between hops"
    GATEWAY = "malicious gateway"
    UPSTREAM = "malicious or compromised upstream server"
    AGENT = "malicious agent"
    DATABASE = "holder of the database"
    LOG_KEY = "insider with the log key"
    TRUST_FILE = "supplier of a trust file (anchors, keys, lock, known keys)"


@dataclass(frozen=True)
class Case(Generic[T]):
    """One attack. ``build(True)`` is the attack, ``build(False)`` its positive control."""

    name: str
    code: ErrorCode | None
    """The refusal the attack must get; ``None`` when the defence is an outcome (the runner's ``expect``)."""
    threat: Threat
    build: Callable[[bool], T]
    summary: str
    expect: Any = None
    """Surface-specific expectation beyond the code (an audit defect kind, an HTTP status, a delivered value)."""
    xfail: str | None = None
    surfaces: tuple[str, ...] = ()
    """For binding cases: the surfaces the attack runs on (``stdio``, ``sdk``, ``http``)."""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if _NAME.fullmatch(self.name) is None:
            raise ValueError(f"case name {self.name!r} is not kebab-case")


def case_params(cases: Iterable[Case[Any]], *, surface: str | None = None) -> list[Any]:
    """``pytest.param`` per case, id = its name, xfail(strict) when the case waits for a fix."""
    params = []
    for case in cases:
        if surface is not None and case.surfaces and surface not in case.surfaces:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def unique(cases: Sequence[Case[Any]]) -> list[Case[Any]]:
    """``cases``, refusing two cases with one name (a name is the attack's identity)."""
    seen: set[str] = set()
    for case in cases:
        if case.name in seen:
            raise ValueError(f"two cases are named {case.name!r}")
        seen.add(case.name)
    return list(cases)


def peer_view(message: Any) -> str:
    """What a peer can read in ``message``, minus the two echoes SPEC.md §9.1 requires (``id``, refusal ``aud``)."""
    if isinstance(message, bytes | bytearray):
        try:
            message = json.loads(message)
        except ValueError:
            return bytes(message).decode("utf-8", "replace")
    if isinstance(message, dict):
        message = dict(message)
        message.pop("id", None)
        error = message.get("error")
        if isinstance(error, dict) and isinstance(error.get("data"), dict):
            data = dict(error["data"])
            block = data.get("mcps/sig")
            if isinstance(block, dict):
                data["mcps/sig"] = {key: value for key, value in block.items() if key != "aud"}
            message["error"] = {**error, "data": data}
    return json.dumps(message, ensure_ascii=False) if not isinstance(message, str) else message


def assert_no_canary(*seen: Any) -> None:
    """Nothing a peer can see holds the canary: strings, bytes, refusal dicts and :class:`McpsError` s."""
    for item in seen:
        if isinstance(item, McpsError):
            texts = [str(item), item.message, repr(item), json.dumps(item.to_jsonrpc_error())]
        elif isinstance(item, str):
            texts = [item]
        else:
            texts = [peer_view(item)]
        for text in texts:
            assert CANARY not in text, f"attacker input echoed to the peer: {text[:300]!r}"


def assert_carries_canary(attack: Any) -> None:
    """Guard for the corpus itself: an attack that holds no canary would make the leak check vacuous."""
    text = (
        attack
        if isinstance(attack, str)
        else (bytes(attack).decode("latin-1") if isinstance(attack, bytes | bytearray) else json.dumps(attack))
    )
    assert CANARY in text, "the attack input carries no canary"
