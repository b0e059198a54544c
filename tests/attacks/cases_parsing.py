"""Parsing attacks (SPEC.md §3): bytes that some JSON reader would accept, each refused by the strict parse
(:func:`mcps.core.strict.parse_message`) with its own code before anything else reads them.

Each case is a pair of byte strings: the attack, and the same bytes without the defect (the positive control).
The canary sits in a string value of both.
"""

from __future__ import annotations

from collections.abc import Callable

from mcps.core.errors import ErrorCode as E

from .corpus import CANARY, Case, Threat, unique

_C = CANARY.encode()
MIB = 4 * 1024 * 1024


def message(arguments: bytes = b"", *, params: bytes = b"", top: bytes = b"") -> bytes:
    """A tools/call request: ``arguments``, ``params`` and ``top`` are spliced in after the canary argument."""
    return (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call"'
        + top
        + b',"params":{"name":"echo"'
        + params
        + b',"arguments":{"text":"'
        + _C
        + b'"'
        + arguments
        + b"}}}"
    )


def pair(attack: bytes, control: bytes) -> Callable[[bool], bytes]:
    return lambda defect: attack if defect else control


def nested(depth: int, open_: bytes = b'{"a":', close: bytes = b"}") -> bytes:
    """``depth`` levels of nesting in the arguments (the message itself adds 3)."""
    inner = b'"' + _C + b'"'
    return open_ * depth + inner + close * depth


def case(name: str, code: E, summary: str, attack: bytes, control: bytes) -> Case[bytes]:
    return Case(name, code, Threat.NETWORK, pair(attack, control), summary)


CASES: list[Case[bytes]] = unique(
    [
        # --- duplicate keys (MCPS-020): one reader keeps the first, another the last ---------------------------
        case("dup-key-top-level-id", E.DUPLICATE_KEY, "two ids", message(top=b',"id":2'), message(top=b',"jd":2')),
        case(
            "dup-key-tool-name",
            E.DUPLICATE_KEY,
            "tools/call names a safe tool and, again, a dangerous one",
            message(params=b',"name":"rm_rf"'),
            message(params=b',"namf":"rm_rf"'),
        ),
        case(
            "dup-key-unicode-escape",
            E.DUPLICATE_KEY,
            'the second key is spelt with an escape: "n\\u0061me"',
            message(params=b',"n\\u0061me":"rm_rf"'),
            message(params=b',"n\\u0062me":"rm_rf"'),
        ),
        case(
            "dup-key-solidus-escape",
            E.DUPLICATE_KEY,
            'a second signature block spelt "mcps\\/sig"',
            message(params=b',"_meta":{"mcps/sig":1,"mcps\\/sig":2}'),
            message(params=b',"_meta":{"mcps/sig":1,"mcps\\/sih":2}'),
        ),
        case(
            "dup-key-surrogate-pair-escape",
            E.DUPLICATE_KEY,
            "one key as UTF-8, the same key as an escaped surrogate pair",
            message(b',"\xf0\x9f\x98\x80":1,"\\ud83d\\ude00":2'),
            message(b',"\xf0\x9f\x98\x80":1,"\\ud83d\\ude01":2'),
        ),
        case(
            "dup-key-uppercase-escape",
            E.DUPLICATE_KEY,
            'the same key escaped with upper-case hex: "\\u0041" and "A"',
            message(b',"A":1,"\\u0041":2'),
            message(b',"A":1,"\\u0042":2'),
        ),
        case(
            "dup-key-nested-deep",
            E.DUPLICATE_KEY,
            "a duplicate four objects down in the arguments",
            message(b',"a":{"b":{"c":{"path":"/tmp","path":"/etc"}}}'),
            message(b',"a":{"b":{"c":{"path":"/tmp","pati":"/etc"}}}'),
        ),
        case(
            "dup-key-in-array-element",
            E.DUPLICATE_KEY,
            "a duplicate inside an object in an array",
            message(b',"list":[1,{"k":1,"k":2}]'),
            message(b',"list":[1,{"k":1,"l":2}]'),
        ),
        case(
            "dup-key-empty-name",
            E.DUPLICATE_KEY,
            "two members named by the empty string",
            message(b',"":1,"":2'),
            message(b',"":1," ":2'),
        ),
        case(
            "dup-key-whitespace-around-colon",
            E.DUPLICATE_KEY,
            "the duplicate hides behind whitespace",
            message(b' , "text" \t:\n "x"'),
            message(b' , "texu" \t:\n "x"'),
        ),
        case(
            "dup-key-in-meta",
            E.DUPLICATE_KEY,
            "two progress tokens in _meta",
            message(params=b',"_meta":{"progressToken":1,"progressToken":2}'),
            message(params=b',"_meta":{"progressToken":1,"progressTokem":2}'),
        ),
        # --- numbers outside I-JSON (MCPS-021) ----------------------------------------------------------------
        case("nan-literal", E.NUMBER_NOT_IJSON, "NaN", message(b',"n":NaN'), message(b',"n":0')),
        case("infinity-literal", E.NUMBER_NOT_IJSON, "Infinity", message(b',"n":Infinity'), message(b',"n":1')),
        case(
            "negative-infinity-literal",
            E.NUMBER_NOT_IJSON,
            "-Infinity",
            message(b',"n":-Infinity'),
            message(b',"n":-1'),
        ),
        case("float-overflow", E.NUMBER_NOT_IJSON, "1e400", message(b',"n":1e400'), message(b',"n":1e300')),
        case("negative-float-overflow", E.NUMBER_NOT_IJSON, "-1e400", message(b',"n":-1e400'), message(b',"n":-1e300')),
        case(
            "float-overflow-by-rounding",
            E.NUMBER_NOT_IJSON,
            "a literal just above the largest double rounds to infinity",
            message(b',"n":1.7976931348623159e308'),
            message(b',"n":1.7976931348623157e308'),
        ),
        case(
            "integer-above-2p53",
            E.NUMBER_NOT_IJSON,
            "2^53, one past the largest safe integer",
            message(b',"n":9007199254740992'),
            message(b',"n":9007199254740991'),
        ),
        case(
            "integer-below-minus-2p53",
            E.NUMBER_NOT_IJSON,
            "-2^53",
            message(b',"n":-9007199254740992'),
            message(b',"n":-9007199254740991'),
        ),
        case(
            "integer-5000-digits",
            E.NUMBER_NOT_IJSON,
            "an integer literal longer than Python's int-string limit",
            message(b',"n":' + b"7" * 5000),
            message(b',"n":' + b"7" * 15),
        ),
        case(
            "integer-as-id-beyond-2p53",
            E.NUMBER_NOT_IJSON,
            "a request id that no double holds exactly",
            message(top=b',"jd":1').replace(b'"id":1,', b'"id":18446744073709551617,'),
            message(top=b',"jd":1'),
        ),
        # --- strings (MCPS-022) -----------------------------------------------------------------------------
        case(
            "lone-surrogate-high",
            E.INVALID_STRING,
            "\\ud800 alone",
            message(b',"s":"\\ud800"'),
            message(b',"s":"\\ud7ff"'),
        ),
        case(
            "lone-surrogate-low",
            E.INVALID_STRING,
            "\\udc00 alone",
            message(b',"s":"\\udc00"'),
            message(b',"s":"\\ue000"'),
        ),
        case(
            "lone-surrogate-in-key",
            E.INVALID_STRING,
            "a member name holding a lone surrogate",
            message(b',"\\udbff":1'),
            message(b',"\\ud7ff":1'),
        ),
        case(
            "lone-surrogate-uppercase-escape",
            E.INVALID_STRING,
            "\\uD83D alone, upper-case hex",
            message(b',"s":"\\uD83D"'),
            message(b',"s":"\\uD7FF"'),
        ),
        case(
            "reversed-surrogate-pair",
            E.INVALID_STRING,
            "low surrogate before high",
            message(b',"s":"\\ude00\\ud83d"'),
            message(b',"s":"\\ud83d\\ude00"'),
        ),
        case(
            "high-surrogate-then-ascii",
            E.INVALID_STRING,
            "a high surrogate followed by an escaped ASCII letter",
            message(b',"s":"\\ud83d\\u0041"'),
            message(b',"s":"\\ud83d\\ude00"'),
        ),
        case(
            "lone-surrogate-in-tool-name",
            E.INVALID_STRING,
            "the tool name ends in a lone surrogate",
            message(params=b',"title":"echo\\ud800"'),
            message(params=b',"title":"echo\\u00e9"'),
        ),
        # --- UTF-8 and JSON syntax (MCPS-019) ---------------------------------------------------------------
        case(
            "utf8-bom", E.MALFORMED_JSON, "a byte order mark before the object", b"\xef\xbb\xbf" + message(), message()
        ),
        case(
            "utf8-overlong-solidus",
            E.MALFORMED_JSON,
            "an overlong encoding of '/' (C0 AF)",
            message(b',"p":"..\xc0\xafetc"'),
            message(b',"p":"../etc"'),
        ),
        case(
            "utf8-encoded-surrogate",
            E.MALFORMED_JSON,
            "a surrogate encoded as UTF-8 bytes (CESU)",
            message(b',"s":"\xed\xa0\x80"'),
            message(b',"s":"\xee\x80\x80"'),
        ),
        case(
            "utf8-truncated-sequence",
            E.MALFORMED_JSON,
            "a three-byte sequence cut after two",
            message(b',"s":"\xe2\x82"'),
            message(b',"s":"\xe2\x82\xac"'),
        ),
        case(
            "utf8-latin1-byte",
            E.MALFORMED_JSON,
            "a Latin-1 byte",
            message(b',"s":"caf\xe9"'),
            message(b',"s":"caf\xc3\xa9"'),
        ),
        case(
            "utf8-above-max-code-point",
            E.MALFORMED_JSON,
            "a four-byte sequence above U+10FFFF",
            message(b',"s":"\xf4\x90\x80\x80"'),
            message(b',"s":"\xf4\x8f\xbf\xbf"'),
        ),
        case(
            "json-trailing-garbage",
            E.MALFORMED_JSON,
            "bytes after the object",
            message() + b"x",
            message() + b" ",
        ),
        case("json-two-values", E.MALFORMED_JSON, "two objects in one frame", message() + message(), message()),
        case("json-single-quotes", E.MALFORMED_JSON, "a single-quoted string", message(b",'s':1"), message(b',"s":1')),
        case("json-trailing-comma", E.MALFORMED_JSON, "a trailing comma", message(b',"s":1,'), message(b',"s":1')),
        case("json-comment", E.MALFORMED_JSON, "a comment", message(b',"s":1/*x*/'), message(b',"s":1')),
        case("json-unquoted-key", E.MALFORMED_JSON, "an unquoted member name", message(b",s:1"), message(b',"s":1')),
        case(
            "json-raw-control-character",
            E.MALFORMED_JSON,
            "a raw U+0001 inside a string",
            message(b',"s":"a\x01b"'),
            message(b',"s":"a\\u0001b"'),
        ),
        case(
            "json-raw-nul-byte",
            E.MALFORMED_JSON,
            "a raw NUL inside a string",
            message(b',"s":"a\x00b"'),
            message(b',"s":"a\\u0000b"'),
        ),
        case("json-truncated", E.MALFORMED_JSON, "the frame ends mid-object", message()[:-2], message()),
        case("json-hex-number", E.MALFORMED_JSON, "0x10", message(b',"n":0x10'), message(b',"n":16')),
        case("json-leading-zero", E.MALFORMED_JSON, "010", message(b',"n":010'), message(b',"n":10')),
        case("json-plus-sign", E.MALFORMED_JSON, "+1", message(b',"n":+1'), message(b',"n":1')),
        case(
            "json-invalid-escape",
            E.MALFORMED_JSON,
            "an escape JSON does not have",
            message(b',"s":"\\x41"'),
            message(b',"s":"\\u0041"'),
        ),
        # --- depth (MCPS-023) -------------------------------------------------------------------------------
        case(
            "too-deep-objects",
            E.TOO_DEEP,
            "65 levels of objects: the message holds 3, the arguments 62",
            message(b',"d":' + nested(62)),
            message(b',"d":' + nested(61)),
        ),
        case(
            "too-deep-arrays",
            E.TOO_DEEP,
            "65 levels, arrays",
            message(b',"d":' + nested(62, b"[", b"]")),
            message(b',"d":' + nested(61, b"[", b"]")),
        ),
        case(
            "too-deep-recursion-bomb",
            E.TOO_DEEP,
            "200,000 nested arrays: beyond the decoder's recursion limit",
            message(b',"d":' + nested(200_000, b"[", b"]")),
            message(b',"d":' + nested(61, b"[", b"]")),
        ),
        # --- shape (MCPS-024, MCPS-025) ---------------------------------------------------------------------
        case("batch-of-one", E.BATCH_REJECTED, "a JSON-RPC batch of one request", b"[" + message() + b"]", message()),
        case(
            "batch-of-two",
            E.BATCH_REJECTED,
            "a batch: one request signed, one not",
            b"[" + message() + b"," + message() + b"]",
            message(),
        ),
        case(
            "top-level-string",
            E.NOT_JSONRPC,
            "a JSON string, not an object",
            b'"' + _C + b'"',
            b'{"jsonrpc":"2.0","method":"notifications/x","params":{"s":"' + _C + b'"}}',
        ),
        # --- size (MCPS-018) --------------------------------------------------------------------------------
        case(
            "too-large-by-one-byte",
            E.MESSAGE_TOO_LARGE,
            "4 MiB + 1 bytes",
            message().ljust(MIB + 1, b" "),
            message().ljust(MIB, b" "),
        ),
        case(
            "too-large-in-bytes-not-characters",
            E.MESSAGE_TOO_LARGE,
            "under 4 Mi characters but over 4 MiB of UTF-8",
            message(b',"s":"' + "é".encode() * (MIB // 2) + b'"'),
            message(b',"s":"' + b"e" * (MIB // 2) + b'"'),
        ),
    ]
)
