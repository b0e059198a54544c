"""RFC 8785 (JCS): the fast path and the reference path agree with the RFC vectors and with ``rfc8785``.

``mcps.core.canonical.canonicalize`` writes most messages with CPython's C encoder and hands anything that could
differ from JCS to the ``rfc8785`` reference. These tests hold both paths to the reference, byte for byte:

* every RFC 8785 vector from cyberphone/json-canonicalization (``tests/vectors/third_party/jcs``);
* hypothesis-generated I-JSON values that aim at the places the two could differ: escapes and control
  characters, non-ASCII, astral characters (UTF-16 key order), U+E000–U+FFFF (which sort *after* astral
  characters in UTF-16), integers with 16 digits, and floats of every magnitude including ``-0.0``;
* values outside I-JSON, which both paths must refuse with the same code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mcps.core.canonical import canonicalize, canonicalize_reference, parse_canonical
from mcps.core.errors import ErrorCode, McpsError

JCS_DIR = Path(__file__).resolve().parents[1] / "vectors" / "third_party" / "jcs"
JCS_NAMES = sorted(path.stem for path in (JCS_DIR / "input").glob("*.json"))
BOTH_PATHS: list[Callable[[Any], bytes]] = [canonicalize, canonicalize_reference]
MAX_SAFE = 2**53 - 1


def test_all_rfc8785_vectors_are_present() -> None:
    assert JCS_NAMES == ["arrays", "french", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("canon", BOTH_PATHS, ids=["fast", "reference"])
@pytest.mark.parametrize("name", JCS_NAMES)
def test_rfc8785_vector(name: str, canon: Callable[[Any], bytes]) -> None:
    value = json.loads((JCS_DIR / "input" / f"{name}.json").read_text(encoding="utf-8"))
    expected = (JCS_DIR / "output" / f"{name}.json").read_bytes()
    assert canon(value) == expected


# --- hypothesis: generated I-JSON values ------------------------------------------------------------------------

_SPECIAL_CHARS = st.sampled_from(
    ['"', "\\", "/", "\x00", "\x07", "\b", "\t", "\n", "\f", "\r", "\x1f", "\x7f", "\x80", "é", "€", "\u2028"]
)
_PRIVATE_USE_TO_FFFF = st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF, codec="utf-8")
_ASTRAL = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, codec="utf-8")
_ANY_CHAR = st.characters(codec="utf-8")  # every code point except surrogates
_CHARS = st.one_of(_SPECIAL_CHARS, _PRIVATE_USE_TO_FFFF, _ASTRAL, _ANY_CHAR, st.characters(max_codepoint=0x7F))
STRINGS = st.text(alphabet=_CHARS, max_size=12)

INTEGERS = st.one_of(
    st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE),
    st.integers(min_value=10**15, max_value=MAX_SAFE),  # 16 digits: the fast path's hint must see them
    st.integers(min_value=-MAX_SAFE, max_value=-(10**15)),
    st.sampled_from([0, -1, MAX_SAFE, -MAX_SAFE]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True, min_value=-1e-300, max_value=1e-300),
    st.sampled_from([0.0, -0.0, 100.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 1e16, 0.1, 123456789.125]),
    st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE).map(float),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTEGERS, FLOATS, STRINGS)
IJSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(STRINGS, children, max_size=5)),
    max_leaves=25,
)
# Values with no float: the ones the fast path may answer itself.
IJSON_WITHOUT_FLOATS = st.recursive(
    st.one_of(st.none(), st.booleans(), INTEGERS, STRINGS),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(STRINGS, children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(IJSON_VALUES)
def test_fast_path_equals_reference(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert canonicalize(value) == expected
    assert canonicalize_reference(value) == expected


@settings(max_examples=300, deadline=None)
@given(IJSON_WITHOUT_FLOATS)
def test_fast_path_equals_reference_without_floats(value: Any) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(IJSON_VALUES)
def test_canonical_form_is_a_fixed_point(value: Any) -> None:
    """Parsing the canonical bytes and canonicalizing again gives the same bytes (what a verifier does).

    JCS writes an integral double without fraction (``2.0**60`` → ``1152921504606846976``), so, as in
    JavaScript, a literal beyond ±(2^53−1) is read back as a double here.
    """
    once = canonicalize(value)
    assert canonicalize(json.loads(once, parse_int=_int_or_double)) == once


def _int_or_double(text: str) -> int | float:
    number = int(text)
    return number if -MAX_SAFE <= number <= MAX_SAFE else float(text)


def test_utf16_key_order_differs_from_code_point_order() -> None:
    """U+E000 sorts after an astral character in UTF-16 (0xD83D < 0xE000), before it by code point."""
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonicalize(value) == '{"\U0001f600":2,"\ue000":1}'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(100.0, b"100"), (-0.0, b"0"), (1e-7, b"1e-7"), (1e21, b"1e+21"), (1e20, b"100000000000000000000")],
)
def test_es6_number_formatting(value: float, expected: bytes) -> None:
    assert canonicalize(value) == expected


# --- refusals: both paths, same code ----------------------------------------------------------------------------

_BAD_VALUES: list[tuple[str, Any, ErrorCode]] = [
    ("nan", math.nan, ErrorCode.NUMBER_NOT_IJSON),
    ("inf", math.inf, ErrorCode.NUMBER_NOT_IJSON),
    ("-inf", -math.inf, ErrorCode.NUMBER_NOT_IJSON),
    ("2^53", 2**53, ErrorCode.NUMBER_NOT_IJSON),
    ("-2^53", -(2**53), ErrorCode.NUMBER_NOT_IJSON),
    ("10^20", 10**20, ErrorCode.NUMBER_NOT_IJSON),
    ("10^400", 10**400, ErrorCode.NUMBER_NOT_IJSON),
    ("high-surrogate", "a\ud800", ErrorCode.INVALID_STRING),
    ("low-surrogate", "\udc00b", ErrorCode.INVALID_STRING),
    ("surrogate-key", {"\ud83d": 1}, ErrorCode.INVALID_STRING),
    ("surrogate-key-among-others", {"a": 1, "\udfff": 2}, ErrorCode.INVALID_STRING),
]
# Each bad value alone, nested, and next to a float (so that the fast path defers to the reference).
_WRAPPERS: list[tuple[str, Callable[[Any], Any]]] = [
    ("alone", lambda bad: bad),
    ("nested", lambda bad: {"params": {"arguments": [1, "x", bad]}}),
    ("beside-float", lambda bad: [1.5, {"k": bad}]),
    ("beside-astral", lambda bad: ["\U0001f600", bad]),
]


@pytest.mark.parametrize("canon", BOTH_PATHS, ids=["fast", "reference"])
@pytest.mark.parametrize("wrap", [wrap for _, wrap in _WRAPPERS], ids=[name for name, _ in _WRAPPERS])
@pytest.mark.parametrize(
    ("bad", "code"), [(bad, code) for _, bad, code in _BAD_VALUES], ids=[n for n, _, _ in _BAD_VALUES]
)
def test_both_paths_refuse_with_the_same_code(
    canon: Callable[[Any], bytes], wrap: Callable[[Any], Any], bad: Any, code: ErrorCode
) -> None:
    with pytest.raises(McpsError) as caught:
        canon(wrap(bad))
    assert caught.value.code is code


_BAD_SCALARS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=MAX_SAFE + 1),
    st.integers(max_value=-MAX_SAFE - 1),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF).map(lambda s: f"x{s}y"),
)


def _code_of(canon: Callable[[Any], bytes], value: Any) -> ErrorCode | None:
    try:
        canon(value)
    except McpsError as exc:
        return exc.code
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(IJSON_VALUES, max_size=3), _BAD_SCALARS, st.integers(min_value=0, max_value=3))
def test_both_paths_refuse_generated_bad_values_alike(good: list[Any], bad: Any, position: int) -> None:
    value = [*good[:position], {"bad": [bad]}, *good[position:]]
    fast, reference = _code_of(canonicalize, value), _code_of(canonicalize_reference, value)
    assert fast is not None
    assert fast is reference


def test_not_a_json_value_is_refused() -> None:
    for canon in BOTH_PATHS:
        with pytest.raises(McpsError) as caught:
            canon({"a": b"bytes"})
        assert caught.value.code is ErrorCode.MALFORMED_JSON


# --- parse_canonical: the bytes are exactly JCS of the value they hold ----------------------------------------------


def _is_canonical_by_definition(data: bytes) -> bool:
    """The definition, with the reference implementation: parse (integer literals as JCS reads them), write, compare."""
    try:
        value = json.loads(data, parse_int=_int_or_double, parse_constant=_no_constant)
        return bytes(rfc8785.dumps(value)) == data
    except (ValueError, RecursionError, rfc8785.CanonicalizationError):
        return False


def _no_constant(_text: str) -> Any:
    raise ValueError


def _parses(data: bytes) -> bool:
    try:
        parse_canonical(data)
    except McpsError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(IJSON_VALUES)
def test_parse_canonical_reads_every_canonical_form_back(value: Any) -> None:
    data = canonicalize(value)
    assert canonicalize(parse_canonical(data)) == data


_RESPELLINGS = st.sampled_from(
    [
        lambda t: t.replace(":", " : ", 1),
        lambda t: " " + t,
        lambda t: t + "\n",
        lambda t: t.replace("1", "1.0", 1),
        lambda t: t.replace("0", "-0", 1),
        lambda t: t.replace("1", "1e0", 1),
        lambda t: t.replace("a", "\\u0061", 1),
        lambda t: t.replace("/", "\\/", 1),
        lambda t: t.replace("\\u001f", "\\u001F", 1),
        lambda t: t.replace("{", '{"":0,', 1),  # a duplicate when "" is already a key, else out of order or fine
        lambda t: t.replace("{", '{"~":0,', 1),
        lambda t: t.replace("[", "[1e400,", 1),
        lambda t: t.replace("[", '["\\ud800",', 1),
        lambda t: t.replace("[", "[18014398509481985,", 1),
        lambda t: t,
    ]
)


@settings(max_examples=1500, deadline=None)
@given(
    IJSON_VALUES,
    st.booleans(),
    st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]),
    st.booleans(),
    st.lists(_RESPELLINGS, max_size=3),
)
def test_parse_canonical_accepts_exactly_what_the_definition_accepts(
    value: Any, sort_keys: bool, separators: tuple[str, str], ensure_ascii: bool, respellings: list[Any]
) -> None:
    """Written any which way, then respelt: accepted exactly when the bytes are JCS of what they hold."""
    try:
        text = json.dumps(value, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii)
    except ValueError:
        return
    for respell in respellings:
        text = respell(text)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert _parses(data) is _is_canonical_by_definition(data), data


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":1}',
        b'{"b":1,"a":1}',
        b'{"a":1 }',
        b'{"a":1.0}',
        b'{"a":-0}',
        b'{"a":"\\u0061"}',
        b'{"a":"\\/"}',
        b'{"a":9007199254740993}',
        b'{"\xee\x80\x80":1,"\xf0\x9f\x98\x80":2}',  # code point order; JCS orders by UTF-16 code units
        b'{"a":NaN}',
        b'{"a":"\xff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b"",
    ],
)
def test_parse_canonical_refuses_every_other_spelling_with_an_mcps_code(data: bytes) -> None:
    assert not _is_canonical_by_definition(data)
    with pytest.raises(McpsError):
        parse_canonical(data)
