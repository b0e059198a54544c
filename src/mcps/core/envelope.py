"""The mcps/sig signature block: sign a JSON-RPC message in its own ``_meta``, and authenticate one (SPEC.md §4–5).

A signed message carries, in the member the protocol already forwards end to end,

* requests and notifications: ``params._meta["mcps/sig"]``;
* results: ``result._meta["mcps/sig"]``;
* errors: ``error.data["mcps/sig"]`` (a non-object ``data`` is moved to ``error.data["mcps/data"]``),

a block ``{v, alg, kid, aud, iat, exp, nonce, [irt], sig}``. The signature covers
``"mcps.v1.message\\n" ‖ JCS(M')`` where ``M'`` is the whole message with the block present minus its ``sig``,
and minus the hop-added members ``mcps/via`` and ``mcps/grant`` of the same container.

This module is pure: no I/O, an explicit ``now``. Steps 3–8 of the verification order are one function each
(:func:`read_block`, :func:`check_window`, :func:`check_audience`, :func:`check_binding`, :func:`check_key`,
:func:`check_signature`); none of them records the nonce (step 9) or checks revocation (step 10), so a message
they pass may be a replay. Applications use :class:`mcps.verifier.MessageVerifier`, which runs every step.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final, NamedTuple, Protocol

from mcps.core.canonical import canonicalize, jcs_plain
from mcps.core.encoding import b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey, PublicKey

__all__ = [
    "DEFAULT_LIFETIME",
    "DEFAULT_SKEW",
    "GRANT_KEY",
    "HOP_KEYS",
    "MAX_LIFETIME",
    "SIGNATURE_CONTEXT",
    "SIG_KEY",
    "VIA_KEY",
    "KeyResolver",
    "MessageKind",
    "PinnedKeys",
    "SignatureBlock",
    "block_container",
    "copy_with_container",
    "message_kind",
    "request_binding",
    "sign_message",
    "signing_input",
    "without_hop_members",
]

SIGNATURE_CONTEXT: Final = b"mcps.v1.message\n"
SIG_KEY: Final = "mcps/sig"
VIA_KEY: Final = "mcps/via"
GRANT_KEY: Final = "mcps/grant"
ERROR_DATA_KEY: Final = "mcps/data"
HOP_KEYS: Final = (VIA_KEY, GRANT_KEY)

VERSION: Final = 1
MAX_LIFETIME: Final = 300
"""``exp − iat`` may not exceed this many seconds."""
DEFAULT_LIFETIME: Final = 60
DEFAULT_SKEW: Final = 30
"""Clock skew a receiver allows on ``iat`` and ``exp``, in seconds."""

NONCE_BYTES: Final = 16
MAX_NONCE_BYTES: Final = 64
_NONCE_CHARS: Final = range((4 * NONCE_BYTES + 2) // 3, (4 * MAX_NONCE_BYTES + 2) // 3 + 1)  # b64u lengths
MAX_AUDIENCE_LENGTH: Final = 2048
# Canonical unpadded base64url of exactly 32 and 64 bytes: the unused low bits of the last character are zero.
_B64U_32_BYTES: Final = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_B64U_64_BYTES: Final = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
# Canonical unpadded base64url of any length: a last group of 2 or 3 characters has zero unused low bits.
_B64U_CANONICAL: Final = re.compile(
    r"(?:[A-Za-z0-9_-]{4})*+"  # whole groups, then an optional last group of 2 or 3 characters
    r"(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?"
)
_BLOCK_MEMBERS: Final = frozenset({"v", "alg", "kid", "aud", "iat", "exp", "nonce", "sig"})
_BLOCK_MEMBERS_WITH_IRT: Final = _BLOCK_MEMBERS | {"irt"}
_ALGORITHMS: Final = {algorithm.value: algorithm for algorithm in Algorithm}


class MessageKind(enum.StrEnum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESULT = "result"
    ERROR = "error"

    @property
    def is_response(self) -> bool:
        return self in (MessageKind.RESULT, MessageKind.ERROR)


def _not_jsonrpc(detail: str) -> McpsError:
    return McpsError(ErrorCode.NOT_JSONRPC, detail=detail)


def _valid_id(value: object, *, allow_null: bool) -> bool:
    if value is None:
        return allow_null
    return isinstance(value, str) or (type(value) is int)


def message_kind(message: Mapping[str, Any]) -> MessageKind:
    """Classify a JSON-RPC 2.0 message, or raise MCPS-025."""
    if message.get("jsonrpc") != "2.0":
        raise _not_jsonrpc("jsonrpc member is not '2.0'")
    if "method" in message:
        if not isinstance(message["method"], str) or "result" in message or "error" in message:
            raise _not_jsonrpc("bad request shape")
        if "params" in message and not isinstance(message["params"], dict):
            raise _not_jsonrpc("params is not an object")
        if "id" not in message:
            return MessageKind.NOTIFICATION
        if not _valid_id(message["id"], allow_null=False):
            raise _not_jsonrpc("request id is not a string or an integer")
        return MessageKind.REQUEST
    if ("result" in message) == ("error" in message):
        raise _not_jsonrpc("a response has exactly one of result and error")
    if "result" in message:
        if not isinstance(message["result"], dict) or not _valid_id(message.get("id"), allow_null=False):
            raise _not_jsonrpc("bad result shape")
        return MessageKind.RESULT
    error = message["error"]
    if (
        not isinstance(error, dict)
        or type(error.get("code")) is not int
        or not isinstance(error.get("message"), str)
        or "id" not in message
        or not _valid_id(message["id"], allow_null=True)
    ):
        raise _not_jsonrpc("bad error shape")
    return MessageKind.ERROR


# --- where the block lives --------------------------------------------------------------------------------------


def _container(message: Mapping[str, Any], kind: MessageKind) -> Any:
    """The object that holds the block in a received message, or ``None`` when there is none."""
    if kind is MessageKind.RESULT:
        holder = message["result"].get("_meta")
    elif kind is MessageKind.ERROR:
        holder = message["error"].get("data")
    else:
        params = message.get("params")
        holder = params.get("_meta") if isinstance(params, dict) else None
    return holder if isinstance(holder, dict) else None


def block_container(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object that holds (or would hold) the block: ``params._meta``, ``result._meta`` or ``error.data``.

    ``None`` when it is absent or not an object. Raises MCPS-025 for a message that is not JSON-RPC.
    """
    container: dict[str, Any] | None = _container(message, message_kind(message))
    return container


def _copy_with_container(message: Mapping[str, Any], kind: MessageKind) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shallow-copy ``message`` along the path to its block container; return (copy, container copy)."""
    copy = dict(message)
    if kind is MessageKind.ERROR:
        error = dict(copy["error"])
        data = error.get("data")
        if data is None:
            container: dict[str, Any] = {}
        elif isinstance(data, dict):
            container = dict(data)
        else:
            container = {ERROR_DATA_KEY: data}
        error["data"] = container
        copy["error"] = error
        return copy, container
    parent_key = "result" if kind is MessageKind.RESULT else "params"
    parent = dict(copy.get(parent_key) or {})
    meta = parent.get("_meta")
    if meta is not None and not isinstance(meta, dict):
        raise _not_jsonrpc("_meta is not an object")
    container = dict(meta or {})
    parent["_meta"] = container
    copy[parent_key] = parent
    return copy, container


def copy_with_container(message: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy of ``message``, shallow except along the path to its block container, and that container's copy.

    The container is created when absent (``params._meta``, ``result._meta``, or ``error.data``, a non-object
    ``data`` moved to ``data["mcps/data"]``), so the caller may add members to it. Raises MCPS-025.
    """
    return _copy_with_container(message, message_kind(message))


def signing_input(message: Mapping[str, Any]) -> bytes:
    """``"mcps.v1.message\\n" ‖ JCS(M')`` for a message that carries a block (its ``sig`` may be present)."""
    kind = message_kind(message)
    container = _container(message, kind)
    if container is None or not isinstance(container.get(SIG_KEY), dict):
        raise McpsError(ErrorCode.SIGNATURE_MISSING)
    return _signing_input(message, kind)


def _signing_input(message: Mapping[str, Any], kind: MessageKind) -> bytes:
    stripped, container = _copy_with_container(message, kind)
    for hop_key in HOP_KEYS:
        container.pop(hop_key, None)
    block = dict(container[SIG_KEY])
    block.pop("sig", None)
    container[SIG_KEY] = block
    return SIGNATURE_CONTEXT + canonicalize(stripped)


def without_hop_members(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without the hop-added members ``mcps/via`` and ``mcps/grant`` of its block container.

    They lie outside every signature (§4.3), so a receiver removes them before it hands a message on (SPEC.md §9.8).
    Returns ``message`` itself when it has none; otherwise a copy along the path to the container. Raises MCPS-025
    for a message that is not JSON-RPC.
    """
    kind = message_kind(message)
    container = _container(message, kind)
    if container is None or not any(hop_key in container for hop_key in HOP_KEYS):
        return message
    stripped, copy = _copy_with_container(message, kind)
    for hop_key in HOP_KEYS:
        copy.pop(hop_key, None)
    return stripped


def request_binding(request_sig: str) -> str:
    """The ``irt`` of a response: ``b64u(SHA-256(UTF-8(request's sig value)))`` (ASCII for every valid sig).

    Total on purpose: a server binds its refusal to whatever ``sig`` string the request carried, even a bad one.
    """
    return b64u_encode(hashlib.sha256(request_sig.encode("utf-8", "surrogatepass")).digest())


# --- signing ----------------------------------------------------------------------------------------------------


def sign_message(
    message: Mapping[str, Any],
    key: PrivateKey,
    *,
    audience: str,
    now: float,
    in_reply_to: str | None = None,
    lifetime: int = DEFAULT_LIFETIME,
) -> dict[str, Any]:
    """Return a signed copy of ``message``. The input is not modified; the copy is shallow except along the path
    to the block, so it shares untouched members (``params.arguments``, say) with the input.

    ``audience`` is the identity of the intended receiver. ``in_reply_to`` is the ``sig`` value of the request
    a result or error answers; it is required for results. Any existing block is replaced.
    """
    kind = message_kind(message)
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be in 1..{MAX_LIFETIME} seconds")
    if not audience or len(audience) > MAX_AUDIENCE_LENGTH:
        raise ValueError("audience must be a non-empty string of at most 2048 characters")
    if kind is MessageKind.RESULT and in_reply_to is None:
        raise ValueError("a result must be bound to its request: pass in_reply_to")
    if in_reply_to is not None and not kind.is_response:
        raise ValueError("in_reply_to is only for results and errors")
    issued_at = int(now)
    block: dict[str, Any] = {
        "v": VERSION,
        "alg": key.alg.value,
        "kid": key.kid,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "nonce": b64u_encode(os.urandom(NONCE_BYTES)),
    }
    if in_reply_to is not None:
        block["irt"] = request_binding(in_reply_to)
    signed, container = _copy_with_container(message, kind)
    container[SIG_KEY] = block
    if VIA_KEY in container or GRANT_KEY in container:
        data = _signing_input(signed, kind)
    else:  # fast path: nothing to strip, the block has no sig yet
        data = SIGNATURE_CONTEXT + canonicalize(signed)
    block["sig"] = b64u_encode(key.sign(data))
    return signed


# --- authenticating: the steps of SPEC.md §5, one function each ------------------------------------------------


class SignatureBlock(NamedTuple):
    """A well-formed ``mcps/sig`` block (shape checked; nothing verified by construction alone).

    A named tuple, so reading one costs no per-field ``__setattr__``: it is built for every message received.
    """

    alg: Algorithm
    kid: KeyId
    aud: str
    iat: int
    exp: int
    nonce: str
    sig: str
    irt: str | None

    @classmethod
    def parse(cls, block: object) -> SignatureBlock:
        """Check the block's shape (SPEC.md §4.2). MCPS-015 for another version, MCPS-027 for the rest."""
        if not isinstance(block, dict):
            raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="block is not an object")
        version = block.get("v")
        if type(version) is int and version != VERSION:
            raise McpsError(ErrorCode.NO_COMMON_VERSION, detail=f"v={version}")
        members = block.keys()
        if members not in (_BLOCK_MEMBERS, _BLOCK_MEMBERS_WITH_IRT) or type(version) is not int or version != VERSION:
            raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="missing, unknown or misspelt members")
        iat, exp, aud = block["iat"], block["exp"], block["aud"]
        if type(iat) is not int or type(exp) is not int:
            raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="iat and exp must be integers")
        if not isinstance(aud, str) or not 0 < len(aud) <= MAX_AUDIENCE_LENGTH:
            raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="aud must be a non-empty string")
        kid, sig, irt = block["kid"], block["sig"], block.get("irt")
        if not (
            isinstance(kid, str)
            and _B64U_32_BYTES.fullmatch(kid)
            and isinstance(sig, str)
            and _B64U_64_BYTES.fullmatch(sig)
            and ((irt is None and "irt" not in block) or (isinstance(irt, str) and _B64U_32_BYTES.fullmatch(irt)))
            and isinstance(nonce := block["nonce"], str)
            and len(nonce) in _NONCE_CHARS
            and _B64U_CANONICAL.fullmatch(nonce)
        ):
            raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="kid, nonce, sig or irt badly encoded")
        alg = _ALGORITHMS.get(block["alg"]) if isinstance(block["alg"], str) else None
        if alg is None:
            raise McpsError(ErrorCode.ALGORITHM_MISMATCH, "signature algorithm is not allowed")
        return cls(alg, KeyId(kid), aud, iat, exp, nonce, sig, irt)


class KeyResolver(Protocol):
    """Finds the public key for a block's ``kid`` (a pinned key, or a passport chain). Raises MCPS-029.

    ``now`` is the verifier's clock, for resolvers whose credentials expire (passports).
    """

    def resolve(self, kid: KeyId, message: Mapping[str, Any], *, now: float) -> PublicKey: ...


class PinnedKeys:
    """A fixed set of trusted public keys, looked up by kid."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self._keys = {key.kid: key for key in keys}
        if not self._keys:
            raise ValueError("PinnedKeys needs at least one key")

    def resolve(self, kid: KeyId, message: Mapping[str, Any], *, now: float) -> PublicKey:
        try:
            return self._keys[kid]
        except KeyError:
            raise McpsError(ErrorCode.UNKNOWN_KEY) from None


def read_block(message: Mapping[str, Any], kind: MessageKind) -> SignatureBlock:
    """Step 3: the block's shape (the version first, so another version is named as such). MCPS-026/027/015/028."""
    container = _container(message, kind)
    if container is None or SIG_KEY not in container:
        raise McpsError(ErrorCode.SIGNATURE_MISSING)
    block = SignatureBlock.parse(container[SIG_KEY])
    if block.irt is not None and not kind.is_response:
        raise McpsError(ErrorCode.SIGNATURE_MALFORMED, detail="irt on a request or notification")
    return block


def check_window(block: SignatureBlock, now: float, skew: int) -> None:
    """Step 4: at most MAX_LIFETIME long, started no later than now + skew, not ended before now − skew. MCPS-006."""
    if not 0 < block.exp - block.iat <= MAX_LIFETIME:
        raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, detail="exp - iat outside 1..300 s")
    if block.iat > now + skew:
        raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, detail="issued in the future")
    if block.exp < now - skew:
        raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, detail="expired")


def check_audience(block: SignatureBlock, names: Collection[str]) -> None:
    """Step 5: addressed to this receiver, by one of its names, exactly. MCPS-011."""
    if block.aud not in names:
        raise McpsError(ErrorCode.AUDIENCE_MISMATCH)


def check_binding(block: SignatureBlock, kind: MessageKind, in_reply_to: str | None) -> None:
    """Step 6: a result or error names the request it answers. MCPS-012."""
    if kind.is_response:
        if in_reply_to is None:
            raise McpsError(ErrorCode.TRANSCRIPT_MISMATCH, detail="no request to bind this response to")
        if block.irt != request_binding(in_reply_to):
            raise McpsError(ErrorCode.TRANSCRIPT_MISMATCH)


def check_key(key: PublicKey, block: SignatureBlock) -> PublicKey:
    """Step 7, after resolution by kid: the key's algorithm must be the one the block names. MCPS-028."""
    if key.alg is not block.alg or key.kid != block.kid:
        raise McpsError(ErrorCode.ALGORITHM_MISMATCH)
    return key


def check_signature(
    key: PublicKey, block: SignatureBlock, message: dict[str, Any], kind: MessageKind, *, plain: bool = False
) -> None:
    """Step 8: the signature over the canonical form, never over the bytes as received. MCPS-004.

    ``plain``: ``message`` came from :func:`mcps.core.fastpath.parse_fast` inside the verifier and is not shared
    yet, so its canonical form needs no type walk and its ``sig`` may be lifted out and put back rather than the
    message copied. ``sig`` is canonical base64url of 64 bytes (checked in step 3), so it decodes as is.
    """
    data = _plain_signing_input(message, kind) if plain else None
    if data is None:
        data = _signing_input(message, kind)
    key.verify(binascii.a2b_base64(block.sig.replace("-", "+").replace("_", "/") + "=="), data)


def _plain_signing_input(message: dict[str, Any], kind: MessageKind) -> bytes | None:
    """The signing input of a plain message that the caller owns, without copying it; ``None`` when the message
    is not in the common shape (hop members present, ``sig`` not the block's last member), so that taking ``sig``
    out and putting it back would change the block's member order: the caller then copies."""
    container = _container(message, kind)
    if container is None or VIA_KEY in container or GRANT_KEY in container:
        return None
    block = container[SIG_KEY]
    if next(reversed(block)) != "sig":
        return None
    sig = block.pop("sig")
    try:
        text = jcs_plain(message)
    finally:
        block["sig"] = sig
    return None if text is None else SIGNATURE_CONTEXT + text
