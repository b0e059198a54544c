"""Fuzz targets: every reader of untrusted bytes in mcps, each wrapped so that one call takes one input.

The property every target checks: any input yields a value, an :class:`~mcps.core.errors.McpsError`, or the refusal
the reader documents (``ValueError`` for the lock-file, known-keys, audit-entry and receipt parsers) — never another
exception, never a hang. A target returns normally for an accepted or a refused input; anything else it raises is
a finding. Coroutines are driven without an event loop (:func:`run_sync`): the readers must not wait on anything
for an input that is already in memory.

Structured targets (``passport``, ``grant``, ``revocation-list``) take two JSON documents, a JWS header and
payload, and sign them with the key the verifier trusts (a TEST KEY), so that mutations reach the claim checks
instead of stopping at the signature.

All keys here are TEST KEYS derived from public seeds: never use them for anything else.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from cryptography.hazmat.primitives.asymmetric import ed25519

from mcps.audit.checkpoint import open_checkpoint, sign_checkpoint
from mcps.audit.entry import AuditEvent, build_entry, parse_entry
from mcps.audit.evidence import check_evidence
from mcps.audit.log import Receipt
from mcps.audit.merkle import ListNodeSource, inclusion_proof, leaf_hash, root_from_leaves
from mcps.audit.verify import verify_log
from mcps.bindings.channel import ChannelSecurity, SecureChannel
from mcps.bindings.grants import GrantRequirement
from mcps.bindings.http import McpsHttpMiddleware
from mcps.bindings.http_client import StrictResponses, _body_kind
from mcps.bindings.sse import SseRewriter
from mcps.bindings.streams import OVERSIZE, LineReader, to_envelope
from mcps.bindings.tofu import UnsafeTrustOnFirstUse, UnsafeTrustWarning
from mcps.bindings.tools import ToolGuard
from mcps.core.canonical import canonicalize, jcs_plain
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.envelope import PinnedKeys, _plain_signing_input, message_kind, sign_message, signing_input
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.fastpath import parse_fast
from mcps.core.keys import PrivateKey, load_public_jwk
from mcps.core.strict import Limits, parse_message
from mcps.core.tools import parse_lockfile, sign_tool
from mcps.identity.anchors import TrustAnchor, TrustAnchors
from mcps.identity.chains import _verify_chain as verify_chain  # the private primitive on its own
from mcps.identity.grants import GrantVerifier, mint_grant
from mcps.identity.jws import parse_compact
from mcps.identity.levels import TrustLevel
from mcps.identity.passports import issue_passport, parse_passport
from mcps.identity.revocation import issue_revocation_list, verify_revocation_list
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import MessageVerifier

__all__ = [
    "MAX_LEN",
    "TARGETS",
    "Style",
    "Target",
    "fastpath_differential",
    "mutate",
    "run_sync",
    "spell",
    "spelled",
    "strategy",
]

NOW = 1_763_683_200
SERVER_ID = "urn:mcps:fuzz:server"
GATEWAY_ID = "urn:mcps:fuzz:gateway"
MAX_LEN = 4096
"""Longest input the fuzzers make."""
LIMITS = Limits(max_bytes=64 * 1024)
"""Smaller than the default so that size checks are reached by mutation too."""


def _key(name: str) -> PrivateKey:
    """TEST KEY — never use in production: derived from a public seed."""
    seed = hashlib.sha256(f"mcps fuzz TEST KEY: {name}".encode()).digest()
    return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


AGENT, SERVER, GATEWAY, ANCHOR, LOG = (_key(n) for n in ("agent", "server", "gateway", "anchor", "log"))
ANCHORS = TrustAnchors([TrustAnchor(ANCHOR.public_key, TrustLevel.L3)])


def run_sync(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (every await completes at once); a reader that does wait is a finding."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("the reader waited on something for an input already in memory")


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    seeds: list[bytes]
    allowed: tuple[type[BaseException], ...] = (McpsError,)
    """Exceptions that are the reader's documented refusals. Empty for the transport readers (stdio, HTTP, SSE): they
    answer or drop every input and raise nothing, not even McpsError."""
    dictionary: list[bytes] = field(default_factory=list)
    known: dict[str, str] = field(default_factory=dict)
    """Findings already reported, by the start of ``"<ExceptionType>: <message>"``: what they are (an issue
    reference). Used to label them in the report; they still count as unhandled."""

    def classify(self, kind: str) -> str | None:
        return next((note for prefix, note in self.known.items() if kind.startswith(prefix)), None)

    def check(self, data: bytes) -> BaseException | None:
        """Run one input; ``None`` when the property holds, else the unexpected exception."""
        try:
            self.run(data)
        except Exception as exc:  # noqa: BLE001 - anything not documented is the finding
            return None if isinstance(exc, self.allowed) else exc
        return None


JSON_TOKENS = [
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\\u0000",
    b"1e400",
    b"NaN",
    b"-0.0",
    b"9007199254740993",
    b"18446744073709551617",
    b"true",
    b"null",
    b'"mcps/sig"',
    b'"_meta"',
    b'"id"',
    b'"id":"\\ud800"',
    b'"method"',
    b"\xff",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xef\xbb\xbf",
    b"\r\n",
    b"\n",
    b"[[[[[[[[[[[[[[[[",
    b"]]]]]]]]]]]]]]]]",
]
DEEP = b"[" * 1500 + b"]" * 1500
"""Deeper than CPython's recursion limit, well inside ``MAX_LEN``: every JSON seed set has one such input."""


def with_deep(seed: bytes) -> bytes:
    """``seed`` (a JSON object) with one more member nested 1500 deep."""
    return b'{"deep":' + DEEP + b"," + seed[1:] if seed.startswith(b"{") else seed


def mutate(seed: bytes, rnd: random.Random, dictionary: list[bytes], seeds: list[bytes]) -> bytes:
    """A few random edits of ``seed``: the mutation-based generator of the hypothesis engine."""
    data = bytearray(seed)
    for _ in range(rnd.randint(1, 8)):
        where = rnd.randint(0, len(data))
        operation = rnd.randrange(7)
        if operation == 0 and data:
            data[min(where, len(data) - 1)] ^= 1 << rnd.randrange(8)
        elif operation == 1 and dictionary:
            data[where:where] = rnd.choice(dictionary)
        elif operation == 2:
            del data[where : where + rnd.randint(1, 16)]
        elif operation == 3 and data:
            start = rnd.randrange(len(data))
            data[where:where] = data[start : start + rnd.randint(1, 64)]
        elif operation == 4:
            data[where:where] = bytes([rnd.randrange(256)])
        elif operation == 5 and seeds:
            other = rnd.choice(seeds)
            data = data[:where] + other[rnd.randint(0, len(other)) :]
        elif operation == 6 and data:
            data[where : where + 1] = bytes([rnd.choice(b'{}[]":,\\0123456789.eE-+ \n\rtfn')])
    return bytes(data[:MAX_LEN])


def strategy(target: Target) -> Any:
    """Hypothesis strategy for a target: raw bytes, or (mostly) mutations of its seeds."""
    from hypothesis import strategies as st  # noqa: PLC0415

    mutated = st.builds(
        lambda seed, rnd: mutate(seed, rnd, target.dictionary, target.seeds),
        st.sampled_from(target.seeds),
        st.randoms(use_true_random=False),
    )
    return st.one_of(st.binary(max_size=256), mutated, mutated, mutated)


# --- messages -------------------------------------------------------------------------------------------------


def _call(request_id: object = 1, **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi", "n": 125}, **params},
    }


def _signed(message: dict[str, Any], key: PrivateKey = AGENT, **kwargs: Any) -> dict[str, Any]:
    return sign_message(message, key, audience=kwargs.pop("aud", SERVER_ID), now=NOW, **kwargs)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


REQUEST = _signed(_call())
REQUEST_SIG = REQUEST["params"]["_meta"]["mcps/sig"]["sig"]
MESSAGE_SEEDS = [
    _dumps(REQUEST),
    _dumps(_signed({"jsonrpc": "2.0", "method": "notifications/initialized"})),
    _dumps(
        _signed(
            {"jsonrpc": "2.0", "id": "r", "result": {"content": []}}, SERVER, aud=AGENT.kid, in_reply_to=REQUEST_SIG
        )
    ),
    _dumps(
        _signed(
            {"jsonrpc": "2.0", "id": 2, "error": {"code": -1, "message": "m", "data": [1]}},
            SERVER,
            aud=AGENT.kid,
            in_reply_to=REQUEST_SIG,
        )
    ),
    b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
    b'{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"echo","n":1.5}}',
    with_deep(b'{"jsonrpc":"2.0","id":3,"method":"ping"}'),
]


def _strict(data: bytes) -> None:
    parse_message(data, LIMITS)


def _envelope(data: bytes) -> None:
    verifier = MessageVerifier(
        audience=SERVER_ID,
        keys=PinnedKeys([AGENT.public_key]),
        nonces=MemoryNonceStore(),
        limits=LIMITS,
        clock=lambda: NOW,
    )
    run_sync(verifier.verify(data))
    run_sync(
        MessageVerifier(
            audience=AGENT.kid,
            keys=PinnedKeys([SERVER.public_key]),
            nonces=MemoryNonceStore(),
            limits=LIMITS,
            clock=lambda: NOW,
        ).verify(data, in_reply_to=REQUEST_SIG)
    )


# --- the fast path against its judge --------------------------------------------------------------------------


def same_value(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (``1`` is not ``True``) and the same member order."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same_value(a[name], b[name]) for name in a)
    if type(a) is list:
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _verify_outcome(data: bytes, *, fast: bool) -> tuple[str, Any]:
    """What the server-side and agent-side verifiers make of ``data``: fast path (``verify``) or strict path
    (``parse_message`` + ``verify_parsed``)."""
    outcomes: list[tuple[str, Any]] = []
    for audience, key, in_reply_to in ((SERVER_ID, AGENT, None), (AGENT.kid, SERVER, REQUEST_SIG)):
        verifier = MessageVerifier(
            audience=audience, keys=PinnedKeys([key.public_key]), nonces=MemoryNonceStore(), limits=LIMITS
        )
        try:
            if fast:
                verified = run_sync(verifier.verify(data, in_reply_to=in_reply_to, now=NOW))
            else:
                message = parse_message(data, LIMITS)
                verified = run_sync(verifier.verify_parsed(message, in_reply_to=in_reply_to, now=NOW))
        except McpsError as refusal:
            outcomes.append(("refused", refusal.code))
            continue
        outcomes.append(("verified", (verified.message, verified.kind, verified.block)))
    return outcomes[0][0] + "/" + outcomes[1][0], outcomes


def fastpath_differential(data: bytes) -> None:
    """The fast path (``parse_fast``, ``jcs_plain``, the verifier's plain signing input) judged by the strict path.

    Raises ``AssertionError`` when the fast path accepts what the strict path refuses, or yields another value,
    another canonical form, another signing input, or another verification outcome (accepted message or code).
    """
    fast = parse_fast(data, LIMITS)
    try:
        strict: Any = parse_message(data, LIMITS)
    except McpsError as refusal:
        if fast is not None:
            raise AssertionError(f"fast path accepted what the strict path refuses ({refusal.code.value})") from None
        strict = None
    if fast is not None:
        if not same_value(fast, strict):
            raise AssertionError("fast path returned another value than the strict path")
        if jcs_plain(fast) != canonicalize(strict):
            raise AssertionError("fast path wrote another canonical form")
        try:
            expected = signing_input(strict)
        except McpsError:
            expected = None
        if expected is not None:
            plain = _plain_signing_input(fast, message_kind(fast))
            if plain is not None and plain != expected:
                raise AssertionError("fast path computed another signing input")
            if not same_value(fast, strict):
                raise AssertionError("computing the signing input changed the message")
    if fast is None:
        # The verifier then runs parse_message itself: the strict path on both sides, nothing to compare. (Comparing
        # anyway would compare two calls of the strict parser at different stack depths, and for an input that is
        # both malformed and nested near the recursion limit CPython's decoder may stop at either defect first.)
        return
    fast_outcome, fast_details = _verify_outcome(data, fast=True)
    strict_outcome, strict_details = _verify_outcome(data, fast=False)
    for (kind_f, got_f), (kind_s, got_s) in zip(fast_details, strict_details, strict=True):
        if kind_f != kind_s or (kind_f == "refused" and got_f is not got_s):
            raise AssertionError(f"verifier outcome differs: fast {fast_outcome} {got_f}, strict {strict_outcome}")
        if kind_f == "verified" and not (same_value(got_f[0], got_s[0]) and got_f[1:] == got_s[1:]):
            raise AssertionError("verifier accepted another message on the fast path")


_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass
class Style:
    """How one document is spelled: chosen once per document, applied by a seeded ``random.Random``."""

    rnd: random.Random
    escapes: float  # share of characters written as \u escapes (0 for most documents: the fast path's input)
    duplicates: float  # chance that an object gets a duplicate member
    floats: float  # chance that an integer is spelled as a float (1.0, 1e0)
    spaces: list[str]


def _spell_string(text: str, style: Style) -> str:
    out = []
    for char in text:
        point = ord(char)
        if (point < 0x20 and char not in _SHORT) or style.rnd.random() < style.escapes:
            if point > 0xFFFF:  # a surrogate pair
                high, low = 0xD800 + ((point - 0x10000) >> 10), 0xDC00 + ((point - 0x10000) & 0x3FF)
                out.append(f"\\u{high:04x}\\u{low:04X}")
            else:
                out.append(f"\\u{point:04x}" if style.rnd.random() < 0.5 else f"\\u{point:04X}")
        elif char in _SHORT:
            out.append(_SHORT[char])
        elif char == "/" and style.rnd.random() < 0.5:
            out.append("\\/")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def spell(node: Any, style: Style) -> str:
    space = style.rnd.choice(style.spaces)
    kind = type(node)
    if kind is dict:
        members = list(node.items())
        if members and style.rnd.random() < style.duplicates:  # a duplicate member, anywhere
            name, value = style.rnd.choice(members)
            members.insert(style.rnd.randint(0, len(members)), (name, style.rnd.choice([value, 1, "x:y", None])))
        body = ",".join(f"{space}{_spell_string(name, style)}{space}:{spell(value, style)}" for name, value in members)
        return "{" + body + space + "}"
    if kind is list:
        return "[" + ",".join(space + spell(item, style) for item in node) + space + "]"
    if kind is str:
        return _spell_string(node, style)
    if node is True or node is False or node is None:
        return json.dumps(node)
    if kind is int:
        if style.rnd.random() < style.floats:
            return style.rnd.choice([f"{node}.0", f"{node}e0", f"{node}E+0"])
        return str(node)
    return repr(node) if style.rnd.random() < 0.5 else f"{node:.17e}"


_TEXT_PIECES = [
    "a", "b", "name", ":", "::", '"', "\\", "/", "\n", "\t", "\b", "\x01", "\x1f", " ", "é", "€", "\uffff",
    "😀", "\ud800", "x:y",
]  # fmt: skip


def _random_value(rnd: random.Random, depth: int = 0) -> Any:
    """A JSON value for :func:`spelled`: text from pieces that matter to the fast path, numbers near its limits."""
    roll = rnd.random()
    if depth < 3 and roll < 0.25:
        return {_random_text(rnd): _random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))}
    if depth < 3 and roll < 0.4:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return rnd.choice(
        [
            None,
            True,
            False,
            rnd.randint(-1000, 1000),
            rnd.choice([2**53 - 1, -(2**53) + 1, 2**53, 2**64 + 1]),
            rnd.choice([0.5, 1e-7, 1e16, 100.0, -0.0]),
            _random_text(rnd),
            _random_text(rnd),
        ]
    )


def _random_text(rnd: random.Random) -> str:
    pieces = _TEXT_PIECES if rnd.random() < 0.2 else _TEXT_PIECES[:12]
    return "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 5)))


def spelled(data: bytes) -> bytes:
    """A message chosen and spelled by ``data`` (as a random seed): a signed request with random arguments (so that
    verification reaches the signature) or a seed message, written by :func:`spell` with duplicate members,
    ``\\u`` escapes, integers as floats and whitespace at rates drawn per document, and sometimes mutated bytewise."""
    rnd = random.Random(hashlib.sha256(data).digest())  # noqa: S311 - test data chosen by the fuzzer
    value: Any
    try:
        value = _signed(_call(arguments={_random_text(rnd): _random_value(rnd) for _ in range(rnd.randint(0, 4))}))
    except McpsError:  # a lone surrogate or a number the signer refuses: spelled unsigned
        value = _call(arguments=_random_value(rnd))
    style = Style(
        rnd=rnd,
        escapes=rnd.choice([0.0, 0.0, 0.0, 0.02, 0.3]),
        duplicates=rnd.choice([0.0, 0.0, 0.0, 0.05, 0.3]),
        floats=rnd.choice([0.0, 0.0, 0.1]),
        spaces=rnd.choice([[""], ["", " "], ["\n", "\t", "\r\n ", ""]]),
    )
    raw = spell(value, style).encode("utf-8", "surrogatepass")
    return mutate(raw, rnd, FASTPATH_TOKENS, MESSAGE_SEEDS) if rnd.random() < 0.1 else raw


def _fastpath(data: bytes) -> None:
    """The ``fastpath`` target: the input as it is, and the message it spells (:func:`spelled`), each judged."""
    fastpath_differential(data)
    fastpath_differential(spelled(data))


def _fastpath_seeds() -> list[bytes]:
    """Signed messages in several spellings: the common shape, non-ASCII and astral text, short escapes, ``:`` in
    strings, ``\\u`` escapes, floats, a duplicate member, a big integer."""
    arguments: dict[str, Any] = {"text": 'a:b::c "q" \\ \n\t é €', "url": "https://x.example:8443/p", "n": 7}
    signed = _signed(_call(arguments=arguments))
    plain = json.dumps(signed, separators=(",", ":"), ensure_ascii=False).encode()
    return [
        *MESSAGE_SEEDS,
        plain,
        json.dumps(signed).encode(),  # ensure_ascii: \\u escapes, spaces
        json.dumps(_signed(_call(arguments={"a": 1, "b": [True, None, "x:y"]})), indent=1).encode(),
        plain.replace(b'"n":7', b'"n":7.0'),
        plain.replace(b'"n":7', b'"n":7,"n":8'),
        plain.replace(b'"n":7', b'"n":9007199254740993'),
        plain.replace(b'"url"', b'"\\u0075rl"'),
        plain.replace("é".encode(), "😀".encode()),
        plain.replace(b'"text"', b'"te:xt"'),
    ]


FASTPATH_TOKENS = [
    *JSON_TOKENS,
    b"\\u003a",
    b"\\u003A",
    b'"text":"dup"',
    b',"n":1',
    b"\\ud83d\\ude00",
    "😀".encode(),
    "é".encode(),
    b"\\n",
    b"\\/",
    b"1.0",
    b"1e2",
    b"-0",
    b"9007199254740991",
    b"9007199254740992",
    b"\t",
    b"\x0b",
    b"\xc2\xa0",
]


def _server_security(grants: bool = False) -> ChannelSecurity:
    nonces = MemoryNonceStore()
    requirement = None
    if grants:
        verifier = GrantVerifier(issuers=[GATEWAY.public_key], audience=SERVER_ID, nonces=nonces, clock=lambda: NOW)
        requirement = GrantRequirement(verifier, tools={"rm_rf"})
    return ChannelSecurity(
        key=SERVER,
        identity=SERVER_ID,
        trusted=PinnedKeys([AGENT.public_key]),
        nonces=nonces,
        grants=requirement,
        limits=LIMITS,
        clock=lambda: NOW,
    )


def _chunks(data: bytes) -> Iterator[bytes]:
    """``data`` cut where its bytes say (so the fuzzer controls the chunking too)."""
    position = 0
    while position < len(data):
        size = 1 + data[position] % 97
        yield data[position : position + size]
        position += size


def _stdio(data: bytes) -> None:
    """The stdio path: LineReader over chunks, then the channel (server or agent side) and the SDK envelope."""
    side = data[:1] == b"A"
    channel = (
        SecureChannel(
            ChannelSecurity(
                key=AGENT,
                trusted=PinnedKeys([SERVER.public_key]),
                nonces=MemoryNonceStore(),
                limits=LIMITS,
                clock=lambda: NOW,
            ),
            peer=SERVER_ID,
        )
        if side
        else SecureChannel(_server_security(grants=data[:1] == b"G"), peer=None)
    )
    if side:  # the agent has a call outstanding: a response to it is verified, not dropped
        channel.send(_call())
    chunks = _chunks(data[1:])

    async def receive() -> bytes:
        return next(chunks, b"")

    reader = LineReader(receive, LIMITS.max_bytes)

    async def drive() -> None:
        while (line := await reader.read_line()) is not None:
            if line is OVERSIZE or not isinstance(line, bytes):
                continue
            decision = await channel.receive_raw(line)
            if decision.deliver is not None:
                with contextlib.suppress(ValueError):  # pydantic's ValidationError: the binding answers it (§9.1)
                    to_envelope(decision.deliver)

    run_sync(drive())


async def _json_app(scope: Any, receive: Any, send: Any) -> None:
    """A stand-in for the SDK's app: answers a request with a JSON result, anything else with 202."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    posted = json.loads(body)
    if "id" not in posted or "method" not in posted:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = _dumps({"jsonrpc": "2.0", "id": posted["id"], "result": {"ok": True}})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


def _http(data: bytes) -> None:
    """The HTTP body path: McpsHttpMiddleware with the body in fuzzer-chosen chunks; it must always answer."""
    middleware = McpsHttpMiddleware(_json_app, security=_server_security(grants=data[:1] == b"G"))
    chunks = list(_chunks(data[1:])) or [b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not chunks:
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [(b"content-type", b"application/json")]}
    run_sync(middleware(scope, receive, send))
    if not sent or sent[0]["type"] != "http.response.start":
        raise AssertionError("the middleware sent no response")


def _sse(data: bytes) -> None:
    """The SSE parser as the agent's HTTP client uses it: each event's data parsed strictly."""

    def check(event: str | McpsError) -> str | None:
        if isinstance(event, McpsError):  # over the size limit, or not UTF-8
            return None
        try:
            parse_message(event.encode("utf-8"), LIMITS)
        except McpsError:
            return None
        return event

    rewriter = SseRewriter(check, max_bytes=LIMITS.max_bytes)
    for chunk in _chunks(data):
        rewriter.feed(chunk)
    rewriter.close()


class _Body(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


class _Server(httpx2.AsyncBaseTransport):
    def __init__(self, content_type: str, chunks: list[bytes]) -> None:
        self.content_type, self.chunks = content_type, chunks

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": self.content_type}
        return httpx2.Response(200, headers=headers, stream=_Body(self.chunks), request=request)


CONTENT_TYPES = [
    "application/json",
    "text/event-stream",
    "application/jsonx",
    "Application/JSON; charset=utf-8",
    "application/json, text/html",
    " text/event-stream",
    "text/event-streamx",
    "text/plain",
    "",
]
_POSTED = _dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo"}})


def _http_client(data: bytes) -> None:
    """The agent's HTTP response path (StrictResponses): a body under a fuzzer-chosen Content-Type, in fuzzer-chosen
    chunks. Property: every body the SDK would read as JSON, and every SSE event's data, parses strictly."""
    content_type = CONTENT_TYPES[data[0] % len(CONTENT_TYPES)] if data else ""
    transport = StrictResponses(_Server(content_type, list(_chunks(data[1:]))), LIMITS, {})

    async def exchange() -> bytes:
        request = httpx2.Request("POST", "http://server.test/mcp", content=_POSTED)
        response = await transport.handle_async_request(request)
        return await response.aread()

    out = run_sync(exchange())
    kind = _body_kind(content_type)
    if kind == "json" and out:
        parse_message(out, LIMITS)  # McpsError here is a finding: allowed=() for this target
    if kind == "sse":
        for line in out.replace(b"\r\n", b"\n").split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip():
                parse_message(line[5:].strip(), LIMITS)


SSE_SEEDS = [
    b"event: message\r\ndata: " + MESSAGE_SEEDS[2] + b"\r\n\r\n",
    b': ping\n\nid: 7\ndata:\n\ndata: {"a":\ndata: 1}\n\n',
    b"data: x\rdata: y\r\r",
]


# --- tokens ---------------------------------------------------------------------------------------------------


def _split_json_pair(data: bytes) -> tuple[bytes, bytes]:
    header, _, payload = data.partition(b"\x00")
    return header, payload


def _signed_token(data: bytes, key: PrivateKey) -> str:
    """Header and payload (raw bytes, as the fuzzer made them) signed with ``key``."""
    header, payload = _split_json_pair(data)
    head, body = b64u_encode(header), b64u_encode(payload)
    return f"{head}.{body}.{b64u_encode(key.sign(f'{head}.{body}'.encode()))}"


def _pair_seed(token: str) -> bytes:
    head, body, _ = token.split(".")
    return b64u_decode(head) + b"\x00" + b64u_decode(body)


PASSPORT = issue_passport(
    ANCHOR,
    iss="https://issuer.fuzz",
    sub="agent-1",
    agent_key=AGENT.public_key,
    level=2,
    scopes=["tools:call"],
    now=NOW,
    aud=[SERVER_ID],
)


def _passport(data: bytes) -> None:
    token = _signed_token(data, ANCHOR)
    parse_passport(token)
    verify_chain(token, None, anchors=ANCHORS, audience=SERVER_ID, now=NOW, skew=30)


def _token(data: bytes) -> None:
    """Any string as a compact JWS of each kind, unsigned: the form checks before any signature."""
    text = data.decode("utf-8", errors="surrogateescape")
    for typ in ("mcps-passport+jwt", "mcps-grant+jwt"):
        with contextlib.suppress(McpsError):
            parse_compact(text, typ=typ, max_bytes=8192, error=_CODE, too_large=_CODE, bad_signature=_CODE)
    verify_chain(text, [text], anchors=ANCHORS, audience=SERVER_ID, now=NOW, skew=30)


_CODE = ErrorCode.PASSPORT_MALFORMED
GRANT = mint_grant(
    GATEWAY,
    iss=GATEWAY_ID,
    sub=AGENT.kid,
    aud=SERVER_ID,
    tool="echo",
    arguments={"text": "hi", "n": 125},
    request_sig=REQUEST_SIG,
    level=2,
    now=NOW,
)


def _grant(data: bytes) -> None:
    token = _signed_token(data, GATEWAY)
    verifier = GrantVerifier(
        issuers=[GATEWAY.public_key], audience=SERVER_ID, nonces=MemoryNonceStore(), clock=lambda: NOW
    )
    run_sync(
        verifier.verify(
            token, tool="echo", arguments={"text": "hi", "n": 125}, request_sig=REQUEST_SIG, agent=AGENT.kid
        )
    )


REVOCATION_LIST = issue_revocation_list(ANCHOR, iss="https://issuer.fuzz", jtis=["j1"], subs=["agent-2"], now=NOW)


def _revocation_list(data: bytes) -> None:
    verify_revocation_list(_signed_token(data, ANCHOR), anchors=ANCHORS, now=NOW)


# --- files ----------------------------------------------------------------------------------------------------

_SHM = "/dev/shm"  # noqa: S108 - only as the parent of a private mkdtemp directory
_scratch: list[Path] = []


def _file(name: str, data: bytes) -> Path:
    """``data`` written to a scratch file (in memory where ``/dev/shm`` exists), removed at exit."""
    if not _scratch:
        memory = _SHM if os.path.isdir(_SHM) else None
        _scratch.append(Path(tempfile.mkdtemp(prefix="mcps-fuzz-", dir=memory)))
        atexit.register(shutil.rmtree, _scratch[0], ignore_errors=True)
    path = _scratch[0] / name
    path.write_bytes(data)
    return path


def _anchors(data: bytes) -> None:
    TrustAnchors.load(_file("anchors.jwks", data))


def _jwk(data: bytes) -> None:
    load_public_jwk(_file("key.jwk", data))


def _lockfile(data: bytes) -> None:
    parse_lockfile(data)


def _known_keys(data: bytes) -> None:
    path = _file("known_keys.json", data)
    path.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafeTrustWarning)
        UnsafeTrustOnFirstUse(SERVER_ID, path=path)


def _tools(data: bytes) -> None:
    """A tools/list result from the server, as the agent's ToolGuard reads it (after its message signature)."""
    result = parse_message(data, LIMITS)
    ToolGuard(None).filter_result({"jsonrpc": "2.0", "id": 1, "result": result}, SERVER.public_key)


ECHO_TOOL = {"name": "echo", "description": "Echo.", "inputSchema": {"type": "object"}}
TOOLS_SEED = _dumps({"tools": [sign_tool(ECHO_TOOL, SERVER, now=NOW), {"name": "x"}], "nextCursor": "2"})
LOCK_SEED = (
    b'{"mcps_lock": 1, "servers": {"urn:x": {"kid": "'
    + SERVER.kid.encode()
    + b'", "tools": {"echo": "'
    + SERVER.kid.encode()
    + b'"}}}}'
)

# --- audit ----------------------------------------------------------------------------------------------------

_LOG_ORIGIN = f"mcps.audit/{LOG.kid}"


def _entries(count: int) -> list[bytes]:
    rows: list[bytes] = []
    prev = None
    for index in range(count):
        data = build_entry(
            AuditEvent(event="call", tool="echo", request_id=index), index=index, prev=prev, time_ms=NOW * 1000
        )
        rows.append(data)
        prev = leaf_hash(data)
    return rows


ROWS = _entries(5)
LEAVES = [leaf_hash(row) for row in ROWS]
CHECKPOINT = sign_checkpoint(LOG, _LOG_ORIGIN, 5, root_from_leaves(LEAVES))
EVIDENCE = _dumps(
    {
        "type": "mcps-audit-evidence",
        "v": 1,
        "log": _LOG_ORIGIN,
        "index": 2,
        "entry": json.loads(ROWS[2]),
        "proof": [b64u_encode(h) for h in inclusion_proof(ListNodeSource(LEAVES), 2, 5)],
        "checkpoint": CHECKPOINT.note,
    }
)


def _evidence(data: bytes) -> None:
    check_evidence(data, LOG.public_key)


def _checkpoint(data: bytes) -> None:
    open_checkpoint(data, LOG.public_key, _LOG_ORIGIN)


def _entry(data: bytes) -> None:
    parse_entry(data)


class _Rows:
    """A log source whose rows are the fuzzer's: ``\\x00``-separated entries (leaves recomputed, so mutations
    reach the structural checks), and the genuine checkpoints."""

    def __init__(self, data: bytes) -> None:
        self.rows = data.split(b"\x00")

    def iter_raw_entries(self) -> Iterator[tuple[Any, Any, Any]]:
        for index, row in enumerate(self.rows):
            yield index, leaf_hash(row), row

    def raw_checkpoints(self) -> list[tuple[Any, Any]]:
        return [(5, CHECKPOINT.note)]


def _log_rows(data: bytes) -> None:
    verify_log(_Rows(data), LOG.public_key, _LOG_ORIGIN)


def _receipt(data: bytes) -> None:
    Receipt.from_json(parse_message(data, LIMITS))


KNOWN_KEYS_SEED = _dumps({"mcps_known_keys": 1, "servers": {"urn:x": SERVER.public_key.to_jwk()}})
RECEIPT_SEED = _dumps({"log": _LOG_ORIGIN, "index": 2, "leaf": b64u_encode(LEAVES[2])})


def json_seeds(seed: bytes) -> list[bytes]:
    """A valid document, and the same with a member nested deeper than the recursion limit."""
    return [seed, with_deep(seed)]


TARGETS: dict[str, Target] = {
    target.name: target
    for target in [
        Target("strict", _strict, MESSAGE_SEEDS, dictionary=JSON_TOKENS),
        Target("envelope", _envelope, MESSAGE_SEEDS, dictionary=JSON_TOKENS),
        Target("fastpath", _fastpath, _fastpath_seeds(), dictionary=FASTPATH_TOKENS),
        Target(
            "stdio",
            _stdio,
            [b"S" + seed + b"\n" for seed in MESSAGE_SEEDS]
            + [b"A" + MESSAGE_SEEDS[2] + b"\n", b"G" + MESSAGE_SEEDS[0] + b"\r\n"],
            allowed=(),
            dictionary=JSON_TOKENS,
        ),
        Target("http", _http, [b"S" + seed for seed in MESSAGE_SEEDS], allowed=(), dictionary=JSON_TOKENS),
        Target(
            "sse", _sse, SSE_SEEDS, allowed=(), dictionary=[*JSON_TOKENS, b"data:", b"event:", b"id:", b"retry:", b"\r"]
        ),
        Target(
            "http-client",
            _http_client,
            [bytes([0]) + MESSAGE_SEEDS[2], bytes([1]) + b"data: " + MESSAGE_SEEDS[2] + b"\n\n"],
            allowed=(),
            dictionary=[*JSON_TOKENS, b"data:", b"\r"],
        ),
        Target("passport", _passport, [_pair_seed(PASSPORT)], dictionary=JSON_TOKENS),
        Target("token", _token, [PASSPORT.encode(), GRANT.encode()], dictionary=[b".", b"-", b"_", b"="]),
        Target("grant", _grant, [_pair_seed(GRANT)], dictionary=JSON_TOKENS),
        Target("revocation-list", _revocation_list, [_pair_seed(REVOCATION_LIST)], dictionary=JSON_TOKENS),
        Target(
            "anchors",
            _anchors,
            json_seeds(_dumps(ANCHORS.to_jwks())),
            dictionary=JSON_TOKENS,
        ),
        Target(
            "jwk",
            _jwk,
            json_seeds(_dumps(AGENT.public_key.to_jwk())),
            dictionary=JSON_TOKENS,
        ),
        Target("lockfile", _lockfile, json_seeds(LOCK_SEED), allowed=(McpsError, ValueError), dictionary=JSON_TOKENS),
        Target(
            "known-keys",
            _known_keys,
            json_seeds(KNOWN_KEYS_SEED),
            allowed=(McpsError, ValueError),
            dictionary=JSON_TOKENS,
        ),
        Target("tools", _tools, json_seeds(TOOLS_SEED), dictionary=JSON_TOKENS),
        Target(
            "evidence",
            _evidence,
            json_seeds(EVIDENCE),
            dictionary=JSON_TOKENS,
        ),
        Target("checkpoint", _checkpoint, [CHECKPOINT.note.encode()], dictionary=[b"\n", "\u2014 ".encode(), b"+"]),
        Target(
            "audit-entry",
            _entry,
            json_seeds(ROWS[1]),
            allowed=(McpsError, ValueError),
            dictionary=JSON_TOKENS,
        ),
        Target(
            "audit-rows",
            _log_rows,
            [b"\x00".join(ROWS), b"\x00".join([*ROWS[:2], with_deep(ROWS[2])])],
            dictionary=JSON_TOKENS,
        ),
        Target("receipt", _receipt, json_seeds(RECEIPT_SEED), allowed=(McpsError, ValueError), dictionary=JSON_TOKENS),
    ]
}
