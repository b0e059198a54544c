"""RFC 8785 JSON Canonicalization Scheme (JCS), with a fast path proven byte-identical to the reference.

The reference is the ``rfc8785`` package. For the common MCP message (string keys in the Basic Multilingual
Plane, integers below 2^53, no floating point numbers) JCS output equals what CPython's C JSON encoder writes
with sorted keys, compact separators and ``ensure_ascii=False``: both escape exactly ``"``, ``\\`` and the
C0 controls, with the same short forms and lowercase ``\\u00xx``. The fast path produces that text and then
checks it for anything that could differ:

* a digit followed by ``.``, ``e`` or ``E`` (how CPython writes every finite float) — ES6 number formatting
  differs (``100.0`` → ``100``, ``1e-07`` → ``1e-7``);
* sixteen digits in a row — an integer that may be outside ±(2^53−1), which JCS refuses;
* a character above U+FFFF — JCS sorts keys by UTF-16 code units, CPython by code points;

and hands anything suspicious to the reference implementation. The check is conservative (a string such as
``"v1.2"`` takes the slow path), never lenient. ``tests/unit/test_canonical.py`` proves the paths identical on
the RFC 8785 vectors and on hypothesis-generated values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import rfc8785

from mcps.core.errors import ErrorCode, McpsError

__all__ = ["canonicalize", "canonicalize_reference"]

_SLOW_PATH_HINT: Final = re.compile(r"\d[.eE]|\d{16}|[\U00010000-\U0010FFFF]")


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
    if _FAST_ENCODER is not None:
        try:
            text = "".join(_FAST_ENCODER(value, 0))
        except ValueError as exc:  # allow_nan=False
            raise McpsError(ErrorCode.NUMBER_NOT_IJSON, detail="NaN or infinity") from exc
        except RecursionError as exc:
            raise McpsError(ErrorCode.TOO_DEEP, detail="value is cyclic or nested too deeply") from exc
        except TypeError as exc:
            raise McpsError(ErrorCode.MALFORMED_JSON, "value is not JSON", detail=str(exc)) from exc
        if text.isascii():
            if _SLOW_PATH_HINT.search(text) is None:
                return text.encode("ascii")
        elif _SLOW_PATH_HINT.search(text) is None:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise McpsError(ErrorCode.INVALID_STRING, detail="lone surrogate") from exc
    return canonicalize_reference(value)


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
    except (TypeError, ValueError) as exc:
        raise McpsError(ErrorCode.MALFORMED_JSON, "value is not JSON", detail=str(exc)) from exc
