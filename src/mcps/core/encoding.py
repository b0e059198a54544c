"""Strict base64url without padding (RFC 4648 §5), the only binary encoding on the mcps wire.

Decoding is canonical: padding, characters outside the alphabet, and encodings whose unused trailing bits are
not zero are all refused, so every byte string has exactly one accepted text form. This matters because some
values (a signature, a nonce) are hashed or compared as text.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["b64u_decode", "b64u_encode", "is_b64u"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64u_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Decode canonical unpadded base64url; raises ``ValueError`` for any other form."""
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not canonical base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - the alphabet check above makes this unreachable
        raise ValueError("not canonical base64url") from exc
    if b64u_encode(data) != text:
        raise ValueError("not canonical base64url (non-zero trailing bits)")
    return data


def is_b64u(text: object, *, min_bytes: int = 0, max_bytes: int = 1 << 20) -> bool:
    """True when ``text`` is canonical base64url of ``min_bytes``..``max_bytes`` bytes."""
    if not isinstance(text, str) or len(text) > (4 * max_bytes + 2) // 3:  # longer than any encoding that fits
        return False
    try:
        size = len(b64u_decode(text))
    except ValueError:
        return False
    return min_bytes <= size <= max_bytes
