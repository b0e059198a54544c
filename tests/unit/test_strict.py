"""Strict I-JSON parsing (SPEC.md §3): every rejection has its own code, and nothing else ever escapes.

Rules, in order: size (MCPS-018, before decoding), UTF-8 and JSON syntax (MCPS-019), duplicate keys
(MCPS-020), non-finite or out-of-range numbers (MCPS-021), lone surrogates (MCPS-022), depth (MCPS-023),
batches (MCPS-024), a top level that is not an object (MCPS-025).
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcps.core.canonical import canonicalize, canonicalize_reference
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.strict import DEFAULT_LIMITS, Limits, canonical_numbers, check_depth, parse_message, read_limited

MAX_SAFE = 2**53 - 1


def refusal(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> ErrorCode:
    with pytest.raises(McpsError) as caught:
        parse_message(raw, limits)
    return caught.value.code


def test_plain_message_is_parsed() -> None:
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":[1,2.5]}}}'
    assert parse_message(raw) == json.loads(raw)


def test_default_limits() -> None:
    assert Limits(max_bytes=4 * 1024 * 1024, max_depth=64) == DEFAULT_LIMITS


@pytest.mark.parametrize("bad", [{"max_bytes": 0}, {"max_depth": 0}])
def test_limits_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Limits(**bad)


# --- 1. size ----------------------------------------------------------------------------------------------------


def _object_of_size(size: int) -> bytes:
    raw = b'{"a":"' + b"x" * (size - 8) + b'"}'
    assert len(raw) == size
    return raw


def test_size_exactly_max_bytes_is_accepted() -> None:
    limits = Limits(max_bytes=100)
    assert parse_message(_object_of_size(100), limits) == {"a": "x" * 92}


def test_one_byte_over_max_bytes_is_refused() -> None:
    assert refusal(_object_of_size(101), Limits(max_bytes=100)) is ErrorCode.MESSAGE_TOO_LARGE


def test_size_is_checked_before_decoding() -> None:
    """Invalid UTF-8 and broken JSON over the limit are refused for their size, not their content."""
    assert refusal(b"\xff" * 101, Limits(max_bytes=100)) is ErrorCode.MESSAGE_TOO_LARGE
    assert refusal(b"[" * 101, Limits(max_bytes=100)) is ErrorCode.MESSAGE_TOO_LARGE


def test_bytearray_and_memoryview_are_accepted() -> None:
    raw = b'{"a":1}'
    assert parse_message(bytearray(raw)) == {"a": 1}
    assert parse_message(memoryview(raw)) == {"a": 1}


def test_read_limited_reads_up_to_the_limit() -> None:
    limits = Limits(max_bytes=10)
    assert read_limited(io.BytesIO(b"0123456789"), limits) == b"0123456789"


def test_read_limited_refuses_one_byte_more_without_reading_everything() -> None:
    stream = io.BytesIO(b"x" * 1000)
    with pytest.raises(McpsError) as caught:
        read_limited(stream, Limits(max_bytes=10))
    assert caught.value.code is ErrorCode.MESSAGE_TOO_LARGE
    assert stream.tell() == 11


# --- 2–3. UTF-8 and syntax --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"a":"\xff"}', id="invalid-byte"),
        pytest.param(b'{"a":"\xc0\xaf"}', id="overlong"),
        pytest.param(b'{"a":"\xed\xa0\x80"}', id="encoded-surrogate"),
        pytest.param(b'{"a":"\xe2\x82"}', id="truncated-sequence"),
        pytest.param(b'\xef\xbb\xbf{"a":1}', id="utf8-bom"),
        pytest.param('{"a":1}'.encode("utf-16"), id="utf16-with-bom"),
        pytest.param('{"a":1}'.encode("utf-16-le"), id="utf16-le"),
        pytest.param('{"a":1}'.encode("utf-32"), id="utf32"),
    ],
)
def test_not_utf8_json_is_refused(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.MALFORMED_JSON


@pytest.mark.parametrize(
    "raw",
    [b"", b" ", b"{", b'{"a":1', b'{"a":1,}', b"{'a':1}", b'{"a":01}', b'{"a":1}{"b":2}', b'{"a":1} x', b'{"a":.5}'],
)
def test_syntax_errors_are_refused(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.MALFORMED_JSON


def test_whitespace_around_the_value_is_allowed() -> None:
    assert parse_message(b' \t\r\n{"a":1}\n') == {"a": 1}


# --- 4. duplicate keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"name":"safe","name":"rm_rf"}', id="top-level"),
        pytest.param(b'{"params":{"name":"safe","name":"rm_rf"}}', id="nested"),
        pytest.param(b'{"a":[{"b":{"c":1,"c":1}}]}', id="deep-same-value"),
        pytest.param(b'{"name":"safe","n\\u0061me":"rm_rf"}', id="escaped-spelling"),
    ],
)
def test_duplicate_keys_are_refused(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.DUPLICATE_KEY


def test_same_key_in_sibling_objects_is_fine() -> None:
    assert parse_message(b'{"a":{"k":1},"b":{"k":2}}') == {"a": {"k": 1}, "b": {"k": 2}}


# --- 5–6. numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400 + b".0"])
def test_non_finite_numbers_are_refused(literal: bytes) -> None:
    assert refusal(b'{"a":[' + literal + b"]}") is ErrorCode.NUMBER_NOT_IJSON


@pytest.mark.parametrize("number", [MAX_SAFE, -MAX_SAFE, 10**15, 0])
def test_safe_integers_are_accepted(number: int) -> None:
    assert parse_message(b'{"a":%d}' % number) == {"a": number}


@pytest.mark.parametrize("number", [2**53, -(2**53), 10**20, -(10**30)])
def test_integers_beyond_2_53_are_refused(number: int) -> None:
    assert refusal(b'{"a":{"b":[%d]}}' % number) is ErrorCode.NUMBER_NOT_IJSON


def test_integer_key_spelling_is_not_a_number() -> None:
    assert parse_message(b'{"9007199254740993":"x"}') == {"9007199254740993": "x"}


def test_large_doubles_are_numbers_not_integers() -> None:
    assert parse_message(b'{"a":9007199254740993.0,"b":1e300}') == {"a": 9007199254740992.0, "b": 1e300}


@pytest.mark.parametrize("digits", [4300, 4301, 10_000])
def test_very_long_integer_literal_is_refused(digits: int) -> None:
    """Regression: CPython's int() limit (4300 digits) raised a bare ValueError out of parse_message."""
    assert refusal(b'{"a":' + b"7" * digits + b"}") is ErrorCode.NUMBER_NOT_IJSON
    assert refusal(b'{"a":-' + b"7" * digits + b"}") is ErrorCode.NUMBER_NOT_IJSON


# --- 7. lone surrogates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"a":"\\ud800"}', id="high"),
        pytest.param(b'{"a":"\\uDBFF x"}', id="high-uppercase"),
        pytest.param(b'{"a":"\\udc00"}', id="low"),
        pytest.param(b'{"a":"\\udc00\\ud800"}', id="reversed-pair"),
        pytest.param(b'{"\\ud800":1}', id="in-key"),
        pytest.param(b'{"a":["x",{"b":"\\ud83d"}]}', id="nested-truncated-pair"),
    ],
)
def test_lone_surrogates_are_refused(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.INVALID_STRING


def test_escaped_surrogate_pair_is_accepted() -> None:
    assert parse_message(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_escaped_backslash_before_u_is_not_a_surrogate() -> None:
    assert parse_message(b'{"a":"\\\\ud800"}') == {"a": "\\ud800"}


# --- 8. depth ---------------------------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    """An object of exactly ``depth`` levels, alternating objects and arrays."""
    inner = b"1"
    for level in range(depth - 1):
        inner = b"[" + inner + b"]" if level % 2 == 0 else b'{"k":' + inner + b"}"
    return b'{"k":' + inner + b"}"


def test_depth_exactly_max_depth_is_accepted() -> None:
    assert isinstance(parse_message(_nested(64)), dict)


def test_depth_one_over_max_depth_is_refused() -> None:
    assert refusal(_nested(65)) is ErrorCode.TOO_DEEP


def test_custom_max_depth() -> None:
    limits = Limits(max_depth=3)
    assert parse_message(b'{"a":[{}]}', limits) == {"a": [{}]}
    assert refusal(b'{"a":[{"b":[]}]}', limits) is ErrorCode.TOO_DEEP


def test_brackets_inside_strings_do_not_count() -> None:
    assert parse_message(b'{"a":"' + b"[{" * 100 + b'"}') == {"a": "[{" * 100}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="arrays"),
        pytest.param(b"[" * 100_000, id="arrays-unclosed"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="objects"),
    ],
)
def test_hundred_thousand_levels_are_refused_without_crashing(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.TOO_DEEP


def test_check_depth_counts_scalars_as_zero() -> None:
    check_depth(1, 1)
    check_depth({"a": [1]}, 2)
    with pytest.raises(McpsError) as caught:
        check_depth({"a": [1]}, 1)
    assert caught.value.code is ErrorCode.TOO_DEEP


# --- 9–10. shape ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"[]", b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]'])
def test_top_level_array_is_a_refused_batch(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.BATCH_REJECTED


@pytest.mark.parametrize("raw", [b"1", b'"text"', b"null", b"true", b"2.5"])
def test_top_level_scalar_is_refused(raw: bytes) -> None:
    assert refusal(raw) is ErrorCode.NOT_JSONRPC


# --- hypothesis: nothing but McpsError escapes ------------------------------------------------------------------


def _parse_or_refuse(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    try:
        result = parse_message(raw, limits)
    except McpsError:
        return
    assert isinstance(result, dict)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_mcps_errors(raw: bytes) -> None:
    _parse_or_refuse(raw)


_JSON_TOKENS = st.sampled_from(
    [
        "{", "}", "[", "]", ":", ",", '"', '"a"', '"name"', "\\", "\\u", "d800", "\\ud800", "\\udc00", "\\n",
        "0", "-", "1", "9007199254740993", "1e400", "1.5", "e", "NaN", "Infinity", "-Infinity", "true", "null",
        " ", "\ufeff", "\U0001f600", "\x00",
    ]
)  # fmt: skip
_JSON_LIKE_TEXT = st.one_of(
    st.lists(_JSON_TOKENS, max_size=40).map("".join),
    st.text(max_size=100),
)


@settings(max_examples=500, deadline=None)
@given(_JSON_LIKE_TEXT, st.integers(min_value=1, max_value=8))
def test_arbitrary_json_like_text_raises_only_mcps_errors(text: str, max_depth: int) -> None:
    _parse_or_refuse(text.encode("utf-8", "surrogatepass"), Limits(max_bytes=4096, max_depth=max_depth))


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)),
        max_leaves=20,
    )
)
def test_python_json_dumps_output_raises_only_mcps_errors(value: object) -> None:
    """What a lenient encoder writes (NaN, huge integers, escaped lone surrogates) is parsed or refused."""
    _parse_or_refuse(json.dumps({"v": value}).encode("ascii"))


# --- numbers are read as the canonical form writes them (issue 9 §1.7) -------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "value"),
    [
        ("125", 125),
        ("125.0", 125),
        ("1.25E2", 125),
        ("1.25e+2", 125),
        ("12500e-2", 125),
        ("-0.0", 0),
        ("-0", 0),
        ("0e10", 0),
        ("-1.5e1", -15),
        ("9007199254740991.0", MAX_SAFE),
        ("-9.007199254740991E15", -MAX_SAFE),
    ],
)
def test_number_respelled_in_transit_is_read_as_the_signed_integer(spelling: str, value: int) -> None:
    """Regression: a signed ``125`` rewritten as ``1.25E2`` verified (same canonical form) and reached a tool as the
    float ``125.0``. An integral number within ±(2^53−1) is the integer the canonical form writes."""
    parsed = parse_message(b'{"n":' + spelling.encode() + b"}")["n"]
    assert parsed == value
    assert type(parsed) is int


@pytest.mark.parametrize(
    "spelling",
    ["1.5", "1e-7", "-2.5E-3", "9007199254740992.0", "1e16", "1e20", "-1e300", "0.30000000000000004"],
)
def test_other_doubles_stay_floats(spelling: str) -> None:
    parsed = parse_message(b'{"n":' + spelling.encode() + b"}")["n"]
    assert type(parsed) is float
    assert parsed == float(spelling)


_FINITE = st.floats(allow_nan=False, allow_infinity=False)


def _spellings(number: float) -> list[str]:
    text = repr(number)
    mantissa, _, exponent = f"{number:.17e}".partition("e")
    return [text, text.upper(), f"{mantissa}e{int(exponent)}", f"{mantissa}E{int(exponent):+d}"]


@settings(max_examples=500, deadline=None)
@given(st.one_of(_FINITE, st.integers(-MAX_SAFE, MAX_SAFE).map(float)))
def test_the_reading_of_a_number_is_its_canonical_form_however_spelled(number: float) -> None:
    """Every spelling of one double reads as one value, whose canonical form is that of the double (so a
    signature over it is unchanged), and which is an ``int`` exactly when JCS writes an integer I-JSON allows."""
    expected = canonicalize_reference({"n": number})
    readings = [parse_message(b'{"n":' + spelling.encode() + b"}")["n"] for spelling in _spellings(number)]
    for reading in readings:
        assert canonicalize({"n": reading}) == expected
        assert canonicalize_reference({"n": reading}) == expected
        assert type(reading) is (int if number.is_integer() and abs(number) <= MAX_SAFE else float)
    assert len({(type(reading), reading) for reading in readings}) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-MAX_SAFE, MAX_SAFE), _FINITE, st.text()),
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)),
        max_leaves=20,
    )
)
def test_canonical_numbers_reads_another_parser_s_value_as_the_strict_parser_does(value: object) -> None:
    """:func:`canonical_numbers` (for values an SDK parsed) agrees with the strict parser and keeps JCS unchanged."""
    before = json.dumps(value)
    normalized = canonical_numbers(value)
    assert json.dumps(value) == before  # the input is not modified
    assert normalized == parse_message(json.dumps({"v": value}).encode())["v"]
    assert canonicalize({"v": normalized}) == canonicalize({"v": value})
