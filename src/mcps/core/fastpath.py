"""A fast path for the strict parse (SPEC.md §3) whose judge is the strict path.

:func:`parse_fast` either returns exactly the object :func:`mcps.core.strict.parse_message` would return for the
same bytes — equal, with the same types and member order — or ``None``, and then the caller runs
``parse_message``, which decides: every refusal keeps its code, and nothing about the verification order changes.
The fast path never refuses anything itself. A message it returns is *plain* (``dict``/``list``/``str``/``bool``/
``None``/``int`` within ±(2^53−1), no ``float``, no character above U+FFFF, no lone surrogate), so its canonical
form, and that of any part of it, is :func:`mcps.core.canonical.jcs_plain` without the type walk.

Design note: why the fast path never accepts what the strict path refuses
==========================================================================

It decodes with msgspec's C decoder (its ``float_hook`` refuses every number with a fraction or an exponent) and
writes the whole message with orjson (``OPT_SORT_KEYS | OPT_STRICT_INTEGER``), and returns the message only if all
of these preconditions hold; any other input, and any exception from either library, means ``None``:

P1. ``len(raw) ≤ max_bytes`` (rule 1, MCPS-018, cannot fire).
P2. ``raw`` holds no ``\\u`` (no ``\\u`` escape at all: no escaped surrogate, rule 7; no escaped ``:``, see P7;
    no escaped control character other than the short forms; no astral character spelled as a surrogate pair).
P3. the bytes are ASCII, or CPython's strict UTF-8 decoder (the one ``parse_message`` uses, rule 2) accepts them
    and the text has no character above U+FFFF.
P4. ``raw.count(b"[") + raw.count(b"{") ≤ max_depth``: no value can nest deeper than the number of brackets that
    open it, so rule 8 (MCPS-023) cannot fire; this is the guard ``parse_message`` itself uses.
P5. msgspec decodes ``raw`` as one JSON value (RFC 8259 grammar: rule 3) with no float (its ``float_hook`` raises)
    and the value is an object (rules 9 and 10). msgspec rejects ``NaN``/``Infinity`` (rule 5) and invalid JSON.
P6. orjson writes the value with ``OPT_STRICT_INTEGER``, which refuses any integer beyond ±(2^53−1) (rule 6).
P7. **No duplicate member** (rule 4): ``raw`` and the canonical output hold the same number of ``:`` bytes.

P7 is exact under P2 and P5. In the input, a ``:`` byte is either a member separator or a character of a string
literal: JSON has no other place for it, UTF-8 never uses byte 0x3A inside a multi-byte sequence, and ``\\:`` is
not an escape (the decoder refuses it). Without ``\\u``, each ``:`` in a decoded string comes from exactly one
``:`` byte of its literal. So ``count(raw) = Σ over members (1 + colons in its name) + colons in the other
strings``. Like every common decoder, msgspec keeps one member per name (the last) and drops the others whole.
The canonical output writes one ``:`` per member it holds and each string's ``:`` unescaped (JCS escapes only
``"``, ``\\`` and controls), so ``count(canonical) = count(raw) − Σ over dropped members (1 + the colons in its name
and value)``: equal if and only if no member was dropped, i.e. no object had two members with the same name.

With P1–P7 every input rule of §3 holds, so ``parse_message`` accepts the same bytes. Both decoders then build the
same value: CPython's ``json`` with its hooks and msgspec both map an object to a ``dict`` in member order, an
array to a ``list``, a string to the same ``str`` (same escapes, P2 excludes ``\\u``), ``true``/``false``/``null``
to ``True``/``False``/``None``, and an integer literal to the same ``int`` (no floats: P5). The strict path's
integral-float rule (``1.0`` is the integer 1) never applies, because a literal with ``.``/``e``/``E`` is a float
to msgspec and P5 sent it to the strict path.

``tests/unit/test_fastpath.py`` checks the equivalence with hypothesis in CI (generated messages, then mutated:
duplicates, escaped keys, numbers, surrogates, invalid UTF-8), and ``fuzz/targets.py``'s ``fastpath`` target runs
the same differential property for ``make fuzz`` (millions of mutated inputs): the fast path never returns a value
where the strict path refuses, never a different value, and never a different canonical form.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import orjson

from mcps.core.strict import DEFAULT_LIMITS, Limits, parse_message

__all__ = ["parse", "parse_fast"]

_JCS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_BACKSLASH: Final = b"\\"
_UNICODE_ESCAPE: Final = b"\\u"
_COLON: Final = b":"


def _no_floats(_text: str) -> Any:
    raise ValueError("a float: the strict path reads it")


_DECODER: Final = msgspec.json.Decoder(float_hook=_no_floats)


def parse_fast(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any] | None:
    """The object ``parse_message(raw, limits)`` returns, or ``None``: then run ``parse_message``, which decides.

    ``None`` is not a refusal. See the module docstring for the preconditions (P1–P7) and why they suffice.
    """
    if type(raw) is not bytes:
        raw = bytes(raw)
    if (
        len(raw) > limits.max_bytes  # P1
        or (_BACKSLASH in raw and _UNICODE_ESCAPE in raw)  # P2 (one memchr when there is no escape at all)
        or raw.count(b"[") + raw.count(b"{") > limits.max_depth  # P4
    ):
        return None
    if not raw.isascii():  # P3
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if max(text) > "\uffff":
            return None
    try:
        value = _DECODER.decode(raw)  # P5
        if type(value) is not dict:
            return None
        canonical = orjson.dumps(value, option=_JCS)  # P6
    except Exception:  # noqa: BLE001 - any doubt from either library sends the message to the strict path
        return None
    if canonical.count(_COLON) != raw.count(_COLON):  # P7
        return None
    return value


def parse(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """:func:`~mcps.core.strict.parse_message`, by the fast path when it applies: the same object, or the same
    :class:`~mcps.core.errors.McpsError`."""
    message = parse_fast(raw, limits)
    return parse_message(raw, limits) if message is None else message
