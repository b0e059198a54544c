"""Strict, bounded parsing of one JSON-RPC message: I-JSON (RFC 7493) only, before anything else looks at it.

CPython's ``json`` module (and pydantic, and so the MCP SDK) accept duplicate object keys and keep the last,
so ``{"name":"safe","name":"rm_rf"}`` would reach a tool as ``rm_rf`` while a log or a policy that read the
first saw ``safe``. They also accept ``NaN``/``Infinity``, lone surrogates and integers of any size. This
module refuses all of those, each with its own code (SPEC.md §3):

==========================  ===========  =========================================================
defect                      code         checked
==========================  ===========  =========================================================
larger than ``max_bytes``   MCPS-018     before decoding (and by readers, while reading)
not UTF-8 / not JSON        MCPS-019     while decoding
duplicate key               MCPS-020     while decoding (``object_pairs_hook``)
NaN, ±Infinity, overflow    MCPS-021     while decoding
integer beyond ±(2^53−1)    MCPS-021     while decoding
lone surrogate              MCPS-022     after decoding
deeper than ``max_depth``   MCPS-023     after decoding (and by the recursion guard while decoding)
top-level array (batch)     MCPS-024     after decoding
top-level not an object     MCPS-025     after decoding
==========================  ===========  =========================================================

Numbers are read as the canonical form (RFC 8785) writes them: an integral number within ±(2^53−1) is an ``int``
however it was spelled (``125``, ``125.0``, ``1.25E2``; ``-0.0`` is ``0``), anything else with a fraction or an
exponent a ``float``. So the value handed on is the one the signature covers, whatever spelling a hop chose.

The after-decoding checks walk the value only when a cheap scan of the text says they could fail, so a typical
message pays for one C-level decode and a few ``str`` scans.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from mcps.core.errors import ErrorCode, McpsError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_SAFE_INTEGER",
    "Limits",
    "canonical_numbers",
    "check_depth",
    "parse_file",
    "parse_message",
    "read_limited",
]

MAX_SAFE_INTEGER: Final = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Input bounds. ``max_bytes`` defaults to 4 MiB, ``max_depth`` to 64 (objects and arrays)."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_depth < 1:
            raise ValueError("limits must be positive")


DEFAULT_LIMITS: Final = Limits()

_MAYBE_SURROGATE: Final = re.compile(r"\\u[dD][89abAB]|\\u[dD][c-fC-F]")


class _DuplicateKeyError(ValueError):
    pass


class _NonFiniteError(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKeyError
    return obj


def _finite_float(text: str) -> float | int:
    """A number with a fraction or an exponent, as the canonical form reads it (RFC 8785 §3.2.2.3).

    JCS writes an integral double within ±(2^53−1) without fraction or exponent (``1.25E2`` and ``125.0`` as
    ``125``, ``-0.0`` as ``0``), so that is how it is read: as that integer. What a receiver hands on then cannot
    depend on how a sender or a hop spelled a number whose canonical form, and so signature, is the same.
    """
    number = float(text)
    if not math.isfinite(number):
        raise _NonFiniteError
    if number.is_integer() and -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        return int(number)
    return number


def _safe_integer(text: str) -> int:
    if len(text) > 17:  # "-9007199254740991" is the longest safe integer; JSON has no leading zeros
        raise _NonFiniteError
    number = int(text)
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        raise _NonFiniteError
    return number


def _refuse_constant(_name: str) -> Any:
    raise _NonFiniteError


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_float=_finite_float,
    parse_int=_safe_integer,
    parse_constant=_refuse_constant,
)


def parse_message(raw: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse one JSON-RPC message strictly. Returns the top-level object or raises :class:`McpsError`."""
    # 1. Size, before any decoding work.
    if len(raw) > limits.max_bytes:
        raise McpsError(ErrorCode.MESSAGE_TOO_LARGE, detail=f"{len(raw)} bytes > limit {limits.max_bytes}")
    # 2. UTF-8, strictly (no BOM, no encoded surrogates, no overlongs).
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise McpsError(ErrorCode.MALFORMED_JSON, "message is not UTF-8", detail=str(exc.reason)) from exc
    # 3. JSON, with duplicate keys and non-finite numbers refused by the decoder hooks.
    try:
        value = _DECODER.decode(text)
    except _DuplicateKeyError as exc:
        raise McpsError(ErrorCode.DUPLICATE_KEY) from exc
    except _NonFiniteError as exc:
        raise McpsError(ErrorCode.NUMBER_NOT_IJSON, detail="NaN, Infinity, float overflow or unsafe integer") from exc
    except RecursionError as exc:
        raise McpsError(ErrorCode.TOO_DEEP, detail="nesting exceeds the decoder's recursion limit") from exc
    except json.JSONDecodeError as exc:
        raise McpsError(ErrorCode.MALFORMED_JSON, detail=f"{exc.msg} at offset {exc.pos}") from exc
    except ValueError as exc:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise McpsError(ErrorCode.NUMBER_NOT_IJSON, detail="integer literal too long") from exc
    # 4. Checks after decoding, each guarded by a cheap scan that cannot miss a defect.
    if text.count("[") + text.count("{") > limits.max_depth:
        check_depth(value, limits.max_depth)
    if "\\u" in text and _MAYBE_SURROGATE.search(text) is not None:
        _check_strings(value)
    # 5. Shape: one object. Batches are refused by name.
    if isinstance(value, list):
        raise McpsError(ErrorCode.BATCH_REJECTED)
    if not isinstance(value, dict):
        raise McpsError(ErrorCode.NOT_JSONRPC, detail="top-level value is not an object")
    return value


def read_limited(stream: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a whole stream, refusing (MCPS-018) as soon as it exceeds ``limits.max_bytes``."""
    data = stream.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise McpsError(ErrorCode.MESSAGE_TOO_LARGE, detail=f"input exceeds {limits.max_bytes} bytes")
    return bytes(data)


def parse_file(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A local JSON file (trust anchors, a key) parsed as strictly as a message: one I-JSON object within
    ``limits``, or :class:`McpsError` with the defect's code. ``OSError`` propagates: the caller names the file."""
    with open(path, "rb") as file:
        return parse_message(read_limited(file, limits), limits)


def check_depth(value: Any, max_depth: int) -> None:
    """Raise MCPS-023 when objects and arrays nest deeper than ``max_depth`` (a scalar has depth 0)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:  # one pass per nesting level, visiting only containers
        depth += 1
        if depth > max_depth:
            raise McpsError(ErrorCode.TOO_DEEP, detail=f"depth exceeds {max_depth}")
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below.extend([child for child in children if isinstance(child, dict | list)])
        level = below


def canonical_numbers(value: Any) -> Any:
    """``value`` with every integral ``float`` within ±(2^53−1) replaced by that ``int``, as :func:`parse_message`
    reads numbers: for values another parser produced (an SDK transport's). Copies only what changes; ``value``
    itself is never modified. A value nested too deeply to walk is returned unchanged (verification refuses it).
    """
    try:
        return _integral_floats_as_ints(value)
    except RecursionError:
        return value


def _integral_floats_as_ints(node: Any) -> Any:
    kind = type(node)
    if kind is float:
        return int(node) if node.is_integer() and -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER else node
    if kind is dict:
        copy: dict[Any, Any] | None = None
        for key, child in node.items():
            new = _integral_floats_as_ints(child)
            if new is not child:
                copy = dict(node) if copy is None else copy
                copy[key] = new
        return node if copy is None else copy
    if kind is list:
        items: list[Any] | None = None
        for index, child in enumerate(node):
            new = _integral_floats_as_ints(child)
            if new is not child:
                items = list(node) if items is None else items
                items[index] = new
        return node if items is None else items
    return node


def _scalars(value: Any) -> Iterator[Any]:
    """Every scalar in ``value``, object keys included."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield from node.keys()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        else:
            yield node


def _check_strings(value: Any) -> None:
    for scalar in _scalars(value):
        if isinstance(scalar, str):
            try:
                scalar.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise McpsError(ErrorCode.INVALID_STRING, detail="lone surrogate") from exc
