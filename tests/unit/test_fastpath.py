"""The fast path (``mcps.core.fastpath``, ``jcs_plain``, the verifier's plain signing input) judged by the strict path.

Property (the design note in ``src/mcps/core/fastpath.py``): for any bytes, ``parse_fast`` returns ``None`` or
exactly what ``parse_message`` returns — same value, same types, same member order — and the canonical form, the
signing input and the verifier's outcome (accepted message, or the refusal's code) are those of the strict path.

Inputs are written by a JSON writer that can spell one value many ways — duplicate members, ``\\u`` escapes of any
character (``:`` included), surrogate pairs and lone surrogates, whitespace, integers as floats, big integers —
around signed messages (so that the signature step is reached) and around arbitrary values; then some are mutated
bytewise (``fuzz/targets.py``'s mutator: bit flips, cuts, splices, invalid UTF-8). ``make fuzz`` runs the same
property (target ``fastpath``) over millions of mutated inputs.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcps.core.canonical import canonicalize_reference, jcs_plain
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.fastpath import parse_fast
from mcps.core.strict import Limits, parse_message


def _load_targets() -> ModuleType:
    name = "mcps_fuzz_targets"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[2] / "fuzz" / "targets.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


targets = _load_targets()
EXAMPLES = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))

# --- a writer that spells one value many ways -------------------------------------------------------------------

_CHARS = st.characters(codec=None, categories=None)  # every code point, lone surrogates included
_BMP = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Cc"))
_TEXT = st.one_of(
    st.text(alphabet=_BMP, max_size=6),
    st.text(alphabet=_BMP, max_size=6),
    st.text(alphabet=_CHARS, max_size=6),
    st.sampled_from([":", "a:b", "é", "😀", "\n"]),
)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) - 2, 2**53 + 2),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=12
)
_SMALL_INTEGERS = st.integers(-(2**53) + 1, 2**53 - 1)
_PLAIN_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), _SMALL_INTEGERS, st.text(alphabet=_BMP, max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet=_BMP, max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _inputs(draw: Any) -> bytes:
    """Bytes around a signed message (mostly) or any value, spelled by :func:`_write`, sometimes mutated."""
    if draw(st.integers(0, 3)):
        arguments = draw(
            st.dictionaries(_TEXT, draw(st.sampled_from([_PLAIN_VALUES, _PLAIN_VALUES, _VALUES])), max_size=4)
        )
        try:
            value: Any = targets._signed(targets._call(arguments=arguments))
        except McpsError:  # a lone surrogate or a number the signer refuses: the value as it is
            value = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": arguments}}
    else:
        value = draw(_VALUES)
    style = targets.Style(
        rnd=random.Random(draw(st.integers(0, 2**32))),  # noqa: S311 - test data
        escapes=draw(st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.3])),
        duplicates=draw(st.sampled_from([0.0, 0.0, 0.0, 0.05, 0.3])),
        floats=draw(st.sampled_from([0.0, 0.0, 0.1])),
        spaces=draw(st.sampled_from([[""], ["", " "], ["\n", "\t", "\r\n ", ""]])),
    )
    raw = targets.spell(value, style).encode("utf-8", "surrogatepass")
    if style.rnd.random() < 0.2:
        raw = targets.mutate(raw, style.rnd, targets.FASTPATH_TOKENS, targets.TARGETS["fastpath"].seeds)
    return bytes(raw)


# --- properties -------------------------------------------------------------------------------------------------


@EXAMPLES
@given(_inputs())
def test_fast_path_agrees_with_the_strict_path(raw: bytes) -> None:
    targets.fastpath_differential(raw)


@EXAMPLES
@given(st.binary(max_size=200))
def test_fast_path_agrees_on_arbitrary_bytes(raw: bytes) -> None:
    targets.fastpath_differential(raw)


_ANY_PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), _SMALL_INTEGERS, st.text(alphabet=_CHARS, max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet=_CHARS, max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)


@EXAMPLES
@given(_ANY_PLAIN)
def test_jcs_plain_is_jcs_or_declines(value: Any) -> None:
    """On plain values orjson's output is the reference's, or ``None`` (lone surrogate, astral character)."""
    try:
        expected: bytes | None = canonicalize_reference(value)
    except McpsError:
        expected = None
    written = jcs_plain(value)
    assert written is None or written == expected
    if expected is not None and expected.isascii():
        assert written == expected


# --- the preconditions, one by one (each input is one the strict path accepts or refuses) ----------------------

SIGNED = json.dumps(targets.REQUEST, separators=(",", ":")).encode()


def test_the_common_message_takes_the_fast_path() -> None:
    assert parse_fast(SIGNED) == parse_message(SIGNED)


@pytest.mark.parametrize(
    ("name", "raw", "code"),
    [
        ("duplicate-member", b'{"a":1,"a":1}', ErrorCode.DUPLICATE_KEY),
        ("duplicate-member-with-colons", b'{"a":"x:y","b":{"c":":","c":":"}}', ErrorCode.DUPLICATE_KEY),
        ("duplicate-member-hidden-by-escaped-colon", b'{"a":"\\u003a","a":1}', ErrorCode.DUPLICATE_KEY),
        ("escaped-colon-balances-a-duplicate", b'{"k":"::","k":"\\u003a"}', ErrorCode.DUPLICATE_KEY),
        ("lone-surrogate", b'{"a":"\\ud800"}', ErrorCode.INVALID_STRING),
        ("unsafe-integer", b'{"a":9007199254740992}', ErrorCode.NUMBER_NOT_IJSON),
        ("huge-integer", b'{"a":' + b"9" * 400 + b"}", ErrorCode.NUMBER_NOT_IJSON),
        ("overflowing-float", b'{"a":1e400}', ErrorCode.NUMBER_NOT_IJSON),
        ("nan", b'{"a":NaN}', ErrorCode.NUMBER_NOT_IJSON),
        ("too-deep", b'{"a":' + b"[" * 64 + b"]" * 64 + b"}", ErrorCode.TOO_DEEP),
        ("batch", b"[]", ErrorCode.BATCH_REJECTED),
        ("not-an-object", b'"x"', ErrorCode.NOT_JSONRPC),
        ("encoded-surrogate", b'{"a":"\xed\xa0\x80"}', ErrorCode.MALFORMED_JSON),
        ("overlong-utf8", b'{"a":"\xc0\xaf"}', ErrorCode.MALFORMED_JSON),
        ("byte-order-mark", b"\xef\xbb\xbf{}", ErrorCode.MALFORMED_JSON),
        ("vertical-tab-as-whitespace", b"{\x0b}", ErrorCode.MALFORMED_JSON),
        ("no-break-space-as-whitespace", b"{\xc2\xa0}", ErrorCode.MALFORMED_JSON),
        ("trailing-comma", b'{"a":1,}', ErrorCode.MALFORMED_JSON),
        ("trailing-data", b"{}{}", ErrorCode.MALFORMED_JSON),
        ("too-large", b'{"a":"' + b"x" * 2000 + b'"}', ErrorCode.MESSAGE_TOO_LARGE),
    ],
)
def test_the_fast_path_declines_what_the_strict_path_refuses(name: str, raw: bytes, code: ErrorCode) -> None:
    assert parse_fast(raw, Limits(max_bytes=1024)) is None, name
    with pytest.raises(McpsError) as refused:
        parse_message(raw, Limits(max_bytes=1024))
    assert refused.value.code is code


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1.0}',  # an integral float: the strict path reads the integer 1
        b'{"a":1e2}',
        b'{"a":"\\u00e9"}',  # any \u escape
        '{"a":"😀"}'.encode(),  # above U+FFFF (JCS sorts by UTF-16 code units)
    ],
)
def test_the_fast_path_leaves_accepted_outliers_to_the_strict_path(raw: bytes) -> None:
    assert parse_fast(raw) is None
    parse_message(raw)


def _at_depth(depth: int, call: Any) -> Any:
    return call() if depth == 0 else _at_depth(depth - 1, call)


@pytest.mark.parametrize("depth", [0, 20, 60, 120])
def test_a_malformed_input_nested_near_the_recursion_limit_is_no_fast_path_finding(depth: int) -> None:
    """Found by the differential fuzzer's first harness: for bytes that are both malformed and nested ~1000 deep,
    CPython's decoder reports whichever defect it meets first at the current stack depth (MCPS-019 or MCPS-023).
    The fast path declines such input (P4), so the verifier runs the strict parser on both sides of the comparison;
    the harness compares verifier outcomes only where the fast path took the message."""
    raw = b'{"a":' + b"[" * 990 + b"1 2" + b"]" * 990 + b"}"
    assert parse_fast(raw) is None
    _at_depth(depth, lambda: targets.fastpath_differential(raw))
