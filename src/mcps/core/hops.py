"""Hop records: an intermediary's countersignature on a message it forwards (SPEC.md §12.3–12.4).

A gateway forwards a message with the signature of the side that made it intact and appends one record to the
array ``mcps/via`` in the message's block container (next to ``mcps/sig``)::

    {"v": 1, "alg": "EdDSA", "kid": "<hop key>", "iss": "<hop identity>", "aud": "<next receiver>",
     "iat": 1763683200, "on_behalf": false, "grant": "<b64u(H(grant))>", "receipt": {...}, "sig": "<b64u>"}

The record signs ``"mcps.v1.via\\n" ‖ JCS(record − sig + {"prev": <previous sig>})``, where the previous sig is
that of the record before it, or of the message's ``mcps/sig`` block for the first record. The block's signature
covers the whole message except the hop members, so each record covers the message, its grant (by hash), its
receipt and every record before it.

This module is pure (no I/O, an explicit ``now``): :func:`countersign` appends a record, :func:`verify_hops`
checks every record of a received message in the order of §12.4 and returns them, or raises one
:class:`~mcps.core.errors.McpsError`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.canonical import canonicalize
from mcps.core.encoding import b64u_encode
from mcps.core.envelope import GRANT_KEY, SIG_KEY, VIA_KEY, KeyResolver, block_container, copy_with_container
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey

__all__ = [
    "HOP_CONTEXT",
    "MAX_HOPS",
    "MAX_HOP_AGE",
    "VerifiedHop",
    "countersign",
    "grant_hash",
    "hop_signing_input",
    "verify_hops",
]

HOP_CONTEXT: Final = b"mcps.v1.via\n"
MAX_HOPS: Final = 4
"""A message may pass at most this many intermediaries."""
MAX_HOP_AGE: Final = 300
"""A hop record older than this (plus the skew) is refused, like a message block (§4.4)."""
_VERSION: Final = 1
_MAX_NAME: Final = 2048
_REQUIRED: Final = frozenset({"v", "alg", "kid", "iss", "aud", "iat", "on_behalf", "sig"})
_OPTIONAL: Final = frozenset({"grant", "receipt"})
_B64U_32: Final = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_B64U_64: Final = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
_ALGORITHMS: Final = {algorithm.value: algorithm for algorithm in Algorithm}


def grant_hash(token: str) -> str:
    """``b64u(H(ascii(token)))``: how a hop record names the grant it attached."""
    return b64u_encode(hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())


def hop_signing_input(record: Mapping[str, Any], prev: str) -> bytes:
    """``"mcps.v1.via\\n" ‖ JCS(record − sig + {"prev": prev})``."""
    body = {name: value for name, value in record.items() if name != "sig"}
    body["prev"] = prev
    return HOP_CONTEXT + canonicalize(body)


@dataclass(frozen=True, slots=True)
class VerifiedHop:
    """One hop record whose shape, chain, time, key and signature have been verified."""

    kid: KeyId
    iss: str
    aud: str
    iat: int
    on_behalf: bool
    grant: str | None
    receipt: Mapping[str, Any] | None


def countersign(
    message: Mapping[str, Any],
    key: PrivateKey,
    *,
    identity: str,
    audience: str,
    now: float,
    on_behalf: bool = False,
    grant: str | None = None,
    receipt: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a copy of a signed ``message`` with this hop's record appended to ``mcps/via``.

    ``grant`` is the grant token this hop put in ``mcps/grant`` (it is recorded by hash); ``receipt`` the hop's
    audit receipt for the message. ``on_behalf`` says that this hop made the message's ``mcps/sig`` itself.
    """
    copy, container = copy_with_container(message)
    block = container.get(SIG_KEY)
    if not isinstance(block, dict) or not isinstance(block.get("sig"), str):
        raise McpsError(ErrorCode.SIGNATURE_MISSING, detail="only a signed message can be countersigned")
    if not identity or len(identity) > _MAX_NAME or not audience or len(audience) > _MAX_NAME:
        raise ValueError("identity and audience must be non-empty strings of at most 2048 characters")
    existing = container.get(VIA_KEY, [])
    if not isinstance(existing, list) or len(existing) >= MAX_HOPS:
        raise McpsError(ErrorCode.HOP_INVALID, detail="mcps/via is not an array with room for one more record")
    prev = existing[-1]["sig"] if existing else block["sig"]
    record: dict[str, Any] = {
        "v": _VERSION,
        "alg": key.alg.value,
        "kid": key.kid,
        "iss": identity,
        "aud": audience,
        "iat": int(now),
        "on_behalf": on_behalf,
    }
    if grant is not None:
        record["grant"] = grant_hash(grant)
    if receipt is not None:
        record["receipt"] = dict(receipt)
    record["sig"] = b64u_encode(key.sign(hop_signing_input(record, prev)))
    container[VIA_KEY] = [*existing, record]
    return copy


def _hop_invalid(detail: str) -> McpsError:
    return McpsError(ErrorCode.HOP_INVALID, detail=detail)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_NAME


def _valid_receipt(value: object) -> bool:
    if not isinstance(value, dict) or value.keys() != {"log", "index", "leaf"}:
        return False
    index = value["index"]
    return (
        _is_name(value["log"])
        and type(index) is int
        and index >= 0
        and isinstance(value["leaf"], str)
        and _B64U_32.fullmatch(value["leaf"]) is not None
    )


def _check_shape(record: object) -> dict[str, Any]:
    """Step 2 for one record: exactly the members of §12.3, each well formed."""
    if not isinstance(record, dict):
        raise _hop_invalid("hop record is not an object")
    version = record.get("v")
    if type(version) is int and version != _VERSION:
        raise McpsError(ErrorCode.NO_COMMON_VERSION, detail=f"hop record v={version}")
    members = record.keys()
    if not (_REQUIRED <= members <= _REQUIRED | _OPTIONAL) or type(version) is not int:
        raise _hop_invalid("hop record has missing or unknown members")
    well_formed = (
        isinstance(record["kid"], str)
        and _B64U_32.fullmatch(record["kid"]) is not None
        and isinstance(record["sig"], str)
        and _B64U_64.fullmatch(record["sig"]) is not None
        and _is_name(record["iss"])
        and _is_name(record["aud"])
        and type(record["iat"]) is int
        and type(record["on_behalf"]) is bool
        and ("grant" not in record or (isinstance(record["grant"], str) and _B64U_32.fullmatch(record["grant"])))
        and ("receipt" not in record or _valid_receipt(record["receipt"]))
    )
    if not well_formed:
        raise _hop_invalid("hop record member badly formed")
    if not isinstance(record["alg"], str) or record["alg"] not in _ALGORITHMS:
        raise McpsError(ErrorCode.ALGORITHM_MISMATCH, "hop algorithm is not allowed")
    return record


def verify_hops(
    message: Mapping[str, Any],
    *,
    keys: KeyResolver,
    names: Collection[str],
    now: float,
    skew: int,
    required: bool,
) -> tuple[VerifiedHop, ...]:
    """Check the hop records of a message whose own signature is already verified (SPEC.md §12.4 steps 1–7).

    ``keys`` resolves the trusted intermediaries' keys, ``names`` are the receiver's own names (its identity and
    its key's kid). Returns the verified records in order (empty when there are none and none are required).
    """
    container = block_container(message) or {}
    block = container.get(SIG_KEY)
    if not isinstance(block, dict) or not isinstance(block.get("sig"), str) or type(block.get("iat")) is not int:
        raise McpsError(ErrorCode.SIGNATURE_MISSING, detail="hops of an unsigned message")
    # 1. Presence.
    if VIA_KEY not in container:
        if required:
            raise _hop_invalid("hop record required and missing")
        return ()  # nothing to check; a grant without hops is checked on its own (§7.6)
    # 2. Shape.
    via = container[VIA_KEY]
    if not isinstance(via, list) or not 1 <= len(via) <= MAX_HOPS:
        raise _hop_invalid(f"mcps/via is not an array of 1..{MAX_HOPS} records")
    records = [_check_shape(record) for record in via]
    # 3. Chain: each hop names the next, the last names this receiver; only the first may have made the block.
    for before, after in itertools.pairwise(records):
        if after["iss"] != before["aud"]:
            raise _hop_invalid("hop records are not chained (iss is not the previous aud)")
    if records[-1]["aud"] not in names:
        raise McpsError(ErrorCode.AUDIENCE_MISMATCH, "hop record is addressed to another audience")
    if any(record["on_behalf"] for record in records[1:]):
        raise _hop_invalid("only the first hop may have signed the message on a peer's behalf")
    if records[0]["on_behalf"] and records[0]["kid"] != block.get("kid"):
        raise _hop_invalid("a hop that signed on a peer's behalf must have made the message's block")
    # 4. Time: not before the message was signed, not in the future, not older than a block may live.
    for record in records:
        iat = record["iat"]
        if iat > now + skew or iat < block["iat"] - skew or iat < now - MAX_HOP_AGE - skew:
            raise McpsError(ErrorCode.TIMESTAMP_OUT_OF_WINDOW, "hop record is outside its validity window")
    # 5–6. Keys and signatures, in order.
    prev: str = block["sig"]
    verified: list[VerifiedHop] = []
    for record in records:
        key = keys.resolve(KeyId(record["kid"]), message, now=now)
        if key.alg is not _ALGORITHMS[record["alg"]] or key.kid != record["kid"]:
            raise McpsError(ErrorCode.ALGORITHM_MISMATCH, "hop algorithm does not match its key")
        key.verify(base64.urlsafe_b64decode(record["sig"] + "=="), hop_signing_input(record, prev))
        prev = record["sig"]
        verified.append(
            VerifiedHop(
                KeyId(record["kid"]),
                record["iss"],
                record["aud"],
                record["iat"],
                record["on_behalf"],
                record.get("grant"),
                record.get("receipt"),
            )
        )
    # 7. The grant the message carries is the one the last hop attached (and its issuer is that hop).
    last = verified[-1]
    token = container.get(GRANT_KEY)
    if token is not None:
        if last.grant is None or not isinstance(token, str) or grant_hash(token) != last.grant:
            raise McpsError(ErrorCode.GRANT_MISMATCH, detail="grant is not the one the last hop attached")
    elif last.grant is not None:
        raise McpsError(ErrorCode.GRANT_INVALID, "grant is missing", detail="the last hop names a grant")
    return tuple(verified)
