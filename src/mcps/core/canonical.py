"""RFC 8785 JSON Canonicalization Scheme (JCS), with fast paths proven byte-identical to the reference.

The reference is the ``rfc8785`` package. For a *plain* value — only ``dict`` (``str`` keys), ``list``, ``str``,
``bool``, ``None`` and ``int`` within ±(2^53−1), exact types, no ``float`` — JCS is what ``orjson`` writes with
``OPT_SORT_KEYS | OPT_STRICT_INTEGER`` (:func:`jcs_plain`) whenever no string has a character above U+FFFF: both
write objects and arrays with no whitespace, integers in decimal, ``true``/``false``/``null``, and strings as
UTF-8 with exactly ``"``, ``\\`` and the C0 controls escaped (``\\b \\t \\n \\f \\r`` short, the others as
lowercase ``\\u00xx``); orjson sorts keys by their UTF-8 bytes, which is code-point order, which is JCS's UTF-16
order for text without astral characters. orjson refuses a lone surrogate (the reference path then names it) and,
with ``OPT_STRICT_INTEGER``, an integer beyond 53 bits.

For other values JCS equals what CPython's C JSON encoder writes with sorted keys, compact separators and
``ensure_ascii=False`` whenever

* every key is a ``str`` and every value a plain JSON type (``dict``, ``list``, ``str``, ``int``, ``bool``, ``None``,
  ``float``; subclasses and tuples take the reference path);
* every ``int`` is within ±(2^53−1) (JCS refuses the others);
* every ``float`` is written the same way by CPython's ``repr`` and by ES6 ``Number.prototype.toString``: both use
  the shortest round-trip digits, and both use plain notation for a non-integral value with 1e-4 ≤ |x| < 1e16.
  An integral float below 2^53 is written as the integer (``100.0`` → ``100``), so it is replaced by that ``int``
  in a copy; any other float (``1e-05``, ``1e+16``, NaN) takes the reference path;
* the text has no character above U+FFFF (JCS sorts keys by UTF-16 code units, CPython by code points; checked
  only when the text is not ASCII).

Both escape exactly ``"``, ``\\`` and the C0 controls, with the same short forms and lowercase ``\\u00xx``.
``tests/unit/test_canonical.py`` proves the two paths identical on the RFC 8785 vectors and on hypothesis-generated
values.

:func:`parse_canonical` is the other direction, for bytes that must *be* a canonical form (stored audit entries): it
returns the value only when the bytes are exactly its JCS, so that what is hashed and what is read are one thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

import orjson
import rfc8785

from mcps.core.errors import ErrorCode, McpsError

__all__ = ["canonicalize", "canonicalize_reference", "jcs_plain", "parse_canonical"]

_MAX_SAFE_INTEGER: Final = 2**53 - 1
_ASTRAL: Final = re.compile(r"[\U00010000-\U0010FFFF]")
_ASTRAL_UTF8: Final = re.compile(rb"[\xf0-\xf4]")  # the lead byte of every 4-byte UTF-8 sequence (U+10000 and up)
_ORJSON_JCS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def jcs_plain(value: Any) -> bytes | None:
    """``JCS(value)`` for a *plain* value (see the module docstring), or ``None`` when this writer cannot vouch
    for it: a lone surrogate, an integer beyond ±(2^53−1), or a character above U+FFFF. The caller guarantees
    plainness (:func:`canonicalize` walks the value; a message from :func:`mcps.core.fastpath.parse_fast` is plain
    by construction) and takes the general path on ``None``.
    """
    try:
        text = orjson.dumps(value, option=_ORJSON_JCS)
    except orjson.JSONEncodeError:
        return None
    if text.isascii() or _ASTRAL_UTF8.search(text) is None:
        return text
    return None


def _refuse_type(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _make_fast_encoder() -> Callable[[Any, int], list[str]] | None:
    try:
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:  # pragma: no cover - CPython always has the C accelerator
        return None
    if c_make_encoder is None:  # pragma: no cover
        return None
    # (markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan)
    encoder: Callable[[Any, int], list[str]] = c_make_encoder(
        None, _refuse_type, encode_basestring, None, ":", ",", True, False, False
    )
    return encoder


_FAST_ENCODER: Final = _make_fast_encoder()


def canonicalize(value: Any) -> bytes:
    """Return ``JCS(value)`` as UTF-8 bytes, or raise :class:`McpsError` for a value outside I-JSON.

    Object keys must be ``str``. Errors: ``MCPS-021`` (NaN, infinity, integer outside ±(2^53−1)),
    ``MCPS-022`` (lone surrogate), ``MCPS-023`` (cyclic or absurdly deep), ``MCPS-019`` (not a JSON value).
    """
    plain = _plain(value)
    if plain:
        written = jcs_plain(value)
        if written is not None:
            return written
    try:
        ready = value if plain else _with_integral_floats_as_ints(value)
    except RecursionError as exc:
        raise McpsError(ErrorCode.TOO_DEEP, detail="value is cyclic or nested too deeply") from exc
    if _FAST_ENCODER is not None and ready is not _NEEDS_REFERENCE:
        try:
            text = "".join(_FAST_ENCODER(ready, 0))
        except RecursionError as exc:
            raise McpsError(ErrorCode.TOO_DEEP, detail="value is cyclic or nested too deeply") from exc
        if text.isascii():
            return text.encode("ascii")
        if _ASTRAL.search(text) is None:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise McpsError(ErrorCode.INVALID_STRING, detail="lone surrogate") from exc
    return canonicalize_reference(value)


_PLAIN_WALK_BUDGET: Final = 100_000


def _plain(value: Any) -> bool:
    """True when ``value`` holds only str-keyed dicts, lists, str, bool, None and safe ints (no float).

    Only containers go on the stack; their scalars are checked in place. Gives up (False) after
    ``_PLAIN_WALK_BUDGET`` containers, so a cyclic value cannot make it loop: the recursive walk then decides, and
    a cycle ends there in ``RecursionError``.
    """
    stack: list[Any] = [[value]]
    budget = _PLAIN_WALK_BUDGET
    while stack:
        budget -= 1
        if budget < 0:
            return False
        node = stack.pop()
        if type(node) is dict:
            for key in node:
                if type(key) is not str:
                    return False
            children = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is dict or kind is list:
                stack.append(child)
            elif kind is not int or not -_MAX_SAFE_INTEGER <= child <= _MAX_SAFE_INTEGER:
                return False
    return True


_NEEDS_REFERENCE: Final = object()


def _with_integral_floats_as_ints(node: Any) -> Any:
    """``node`` (or a copy) that the C encoder writes as JCS, or ``_NEEDS_REFERENCE``. See the module docstring."""
    kind = type(node)
    if kind is float:
        magnitude = abs(node)
        if node.is_integer():
            return int(node) if magnitude <= _MAX_SAFE_INTEGER else _NEEDS_REFERENCE
        return node if 1e-4 <= magnitude < 1e16 else _NEEDS_REFERENCE  # NaN fails both comparisons
    if kind is str or kind is bool or kind is int or node is None:
        return node if kind is not int or -_MAX_SAFE_INTEGER <= node <= _MAX_SAFE_INTEGER else _NEEDS_REFERENCE
    if kind is dict:
        copy: dict[str, Any] | None = None
        for key, child in node.items():
            new = _with_integral_floats_as_ints(child)
            if type(key) is not str or new is _NEEDS_REFERENCE:
                return _NEEDS_REFERENCE
            if new is not child:
                copy = dict(node) if copy is None else copy
                copy[key] = new
        return node if copy is None else copy
    if kind is list:
        items: list[Any] | None = None
        for index, child in enumerate(node):
            new = _with_integral_floats_as_ints(child)
            if new is _NEEDS_REFERENCE:
                return _NEEDS_REFERENCE
            if new is not child:
                items = list(node) if items is None else items
                items[index] = new
        return node if items is None else items
    return _NEEDS_REFERENCE


def canonicalize_reference(value: Any) -> bytes:
    """``JCS(value)`` by the ``rfc8785`` reference implementation, with errors mapped to MCPS codes."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.IntegerDomainError, rfc8785.FloatDomainError) as exc:
        raise McpsError(ErrorCode.NUMBER_NOT_IJSON, detail=str(exc)) from exc
    except rfc8785.CanonicalizationError as exc:
        if "UTF-8" in str(exc):
            raise McpsError(ErrorCode.INVALID_STRING, detail="lone surrogate") from exc
        raise McpsError(ErrorCode.MALFORMED_JSON, "value is not JSON", detail=str(exc)) from exc
    except RecursionError as exc:
        raise McpsError(ErrorCode.TOO_DEEP, detail="value is cyclic or nested too deeply") from exc
    except UnicodeEncodeError as exc:  # a lone surrogate in an object key (sorted by UTF-16 code units)
        raise McpsError(ErrorCode.INVALID_STRING, detail="lone surrogate") from exc
    except (TypeError, ValueError) as exc:
        raise McpsError(ErrorCode.MALFORMED_JSON, "value is not JSON", detail=str(exc)) from exc


# --- parse_canonical ----------------------------------------------------------------------------------------------


class _NotFastPath(Exception):
    """Raised by the fast decoder's hooks: a number with a fraction, an exponent or a constant (NaN) is there."""


def _not_fast(_text: str) -> Any:
    raise _NotFastPath


def _int_or_double(text: str) -> int | float:
    """A JSON integer literal as JCS reads it: an ``int`` within ±(2^53−1), else the double it denotes (JCS writes an
    integral double such as ``1e20`` as ``100000000000000000000``)."""
    number = int(text)
    return number if -_MAX_SAFE_INTEGER <= number <= _MAX_SAFE_INTEGER else float(text)


def _refuse_constant(_text: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_FAST_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder(  # the C scanner where there is one
    parse_float=_not_fast, parse_constant=_not_fast
).scan_once  # type: ignore[attr-defined]
_DECODER: Final = json.JSONDecoder(parse_int=_int_or_double, parse_constant=_refuse_constant)
_DIGITS: Final = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_SIXTEEN_DIGITS: Final = b"0" * 16
"""Sixteen digits in a row somewhere: an integer literal there could be outside ±(2^53−1)."""
_STRING: Final = rb'"[^"\\\x00-\x1f]*"'
_MEMBER: Final = _STRING + rb":(?:" + _STRING + rb"|-?[1-9][0-9]{0,14}|0|true|false|null)"
_FLAT_CANONICAL_SHAPE: Final = re.compile(rb"\{(?:" + _MEMBER + rb"(?:," + _MEMBER + rb")*)?\}")
"""One object of scalars, spelt as JCS spells them: no whitespace, strings without escapes (so without ``"``, ``\\``
or controls, which JCS escapes, and every other character raw, as JCS writes it), integers of at most 15 digits
without leading zeros or ``-0``. Its members are then in JCS order and each once exactly when the keys, read in
order, are strictly increasing and as many as the ``":`` in the text (a string without escapes holds no ``"``)."""


def _not_canonical() -> McpsError:
    return McpsError(
        ErrorCode.MALFORMED_JSON,
        "value is not in canonical form (RFC 8785)",
        detail="the bytes are not the canonical form of the value they hold",
    )


def parse_canonical(data: bytes) -> Any:
    """The JSON value whose ``JCS`` is exactly ``data``, or :class:`McpsError`.

    ``data`` must be UTF-8 JSON that :func:`canonicalize` writes back byte for byte: no whitespace, members in JCS
    order and each once, numbers and strings spelt as JCS spells them, nothing outside I-JSON. Numbers are read as
    JCS writes them (an integer literal beyond ±(2^53−1) is the double it denotes). A value nested deeper than the
    decoder can follow is refused (MCPS-023), never a ``RecursionError``.

    Three ways to the same answer, cheapest first (``tests/unit/test_canonical.py`` holds them to the definition):
    an object of scalars whose text has the canonical shape needs only its key order checked; a value with no
    ``float``, no 16-digit run and no character above U+FFFF is written again by the C encoder (the
    :func:`canonicalize` fast path with nothing left that could make it differ from JCS) and compared; anything else
    is decided by the definition: parse, :func:`canonicalize`, compare.
    """
    raw = data if type(data) is bytes else bytes(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise McpsError(ErrorCode.MALFORMED_JSON, "value is not UTF-8", detail=str(exc.reason)) from exc
    encoder = _FAST_ENCODER
    if encoder is not None and (raw.isascii() or _ASTRAL.search(text) is None):  # UTF-16 order = code point order
        try:
            if _FLAT_CANONICAL_SHAPE.fullmatch(raw) is not None:
                value, _ = _FAST_SCAN(text, 0)
                keys = list(value)
                if len(keys) != raw.count(b'":') or keys != sorted(keys):
                    raise _not_canonical()
                return value
            if _SIXTEEN_DIGITS not in raw.translate(_DIGITS):
                value, end = _FAST_SCAN(text, 0)
                if end != len(text) or "".join(encoder(value, 0)) != text:
                    raise _not_canonical()
                return value
        except _NotFastPath:
            pass  # a number the C encoder does not write as JCS: decided by the definition below
        except RecursionError as exc:
            raise McpsError(ErrorCode.TOO_DEEP, detail="nesting exceeds the decoder's recursion limit") from exc
        except (StopIteration, ValueError) as exc:
            raise McpsError(ErrorCode.MALFORMED_JSON, detail="not one JSON value") from exc
    try:
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise McpsError(ErrorCode.TOO_DEEP, detail="nesting exceeds the decoder's recursion limit") from exc
    except ValueError as exc:  # JSONDecodeError, NaN, an integer literal longer than Python reads
        raise McpsError(ErrorCode.MALFORMED_JSON, detail="not one JSON value") from exc
    if canonicalize(value) != raw:
        raise _not_canonical()
    return value
