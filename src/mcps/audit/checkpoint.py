"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes, signed with Ed25519.

A checkpoint commits a log, identified by its *origin*, to a tree size and a root hash::

    mcps.audit/0x2Z…            <- origin (also the signing key's name)
    1024                         <- tree size, decimal, no leading zeros
    5dnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=   <- root hash, standard base64 with padding
                                 <- blank line ends the note text
    — mcps.audit/0x2Z… 3Dk1Lc…   <- "— " name, base64(key hash ‖ Ed25519 signature)

* The signed message is the note text: every byte before the blank line, including the final newline
  (signed-note §"Signed notes").
* The key hash is the first four bytes of ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)``; the verifier key string
  is ``name+<key hash, 8 hex digits>+base64(0x01 ‖ public key)`` (signed-note §"Ed25519").
* A note may carry other signatures (witness cosignatures); they are ignored, but a signature line that names
  our key and does not verify makes the whole note invalid.

The Go ``golang.org/x/mod/sumdb/note`` test vectors pass against this module (``tests/audit/test_checkpoint.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, PrivateKey, PublicKey

__all__ = [
    "Checkpoint",
    "NoteSignedByAnotherKey",
    "key_hash",
    "open_checkpoint",
    "open_note",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verifier_key",
]

_ED25519: Final = b"\x01"
_SIG_PREFIX: Final = "\u2014 "  # em dash, space
_MAX_SIGNATURES: Final = 100
_MAX_NOTE_BYTES: Final = 64 * 1024
_NAME: Final = re.compile(r"[^\s+]+")
_SIZE: Final = re.compile(r"0|[1-9][0-9]{0,18}")


def _bad(detail: str) -> McpsError:
    return McpsError(ErrorCode.AUDIT_INVALID, "checkpoint does not verify", detail=detail)


class NoteSignedByAnotherKey(McpsError):
    """The note is signed under the expected name, but by another key: the key given is not the log's key (or the
    note was re-signed with another). Raised by :func:`open_note` instead of a bare "no signature"."""

    def __init__(self, name: str, found: list[bytes], wanted: bytes) -> None:
        super().__init__(
            ErrorCode.AUDIT_INVALID,
            "checkpoint is not signed by this key",
            detail=f"{name} is signed by key hash {', '.join(h.hex() for h in found)}, the key given is {wanted.hex()}",
        )


def _raw_ed25519(key: PublicKey) -> bytes:
    if key.alg is not Algorithm.EDDSA:
        raise McpsError(ErrorCode.ALGORITHM_MISMATCH, detail="signed notes are signed with Ed25519 keys only")
    return b64u_decode(key.to_jwk()["x"])


def _check_name(name: str) -> None:
    if _NAME.fullmatch(name) is None:
        raise ValueError("a key name is non-empty and has no spaces or '+'")


def key_hash(name: str, key: PublicKey) -> bytes:
    """The 4-byte key hash of an Ed25519 note key: ``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ key)[:4]``."""
    _check_name(name)
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + _raw_ed25519(key)).digest()[:4]


def verifier_key(name: str, key: PublicKey) -> str:
    """The signed-note verifier key string, ``name+hash+base64(0x01 ‖ key)``."""
    encoded = base64.b64encode(_ED25519 + _raw_ed25519(key)).decode()
    return f"{name}+{key_hash(name, key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, PublicKey]:
    """Parse a verifier key string; raises ``ValueError`` when it is malformed or its hash does not match."""
    name, sep1, rest = text.partition("+")
    hash_hex, sep2, encoded = rest.partition("+")
    try:
        _check_name(name)
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("malformed verifier key") from exc
    if not (sep1 and sep2) or len(raw) != 33 or raw[:1] != _ED25519 or re.fullmatch(r"[0-9a-f]{8}", hash_hex) is None:
        raise ValueError("malformed verifier key")
    key = PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw[1:])})
    if key_hash(name, key).hex() != hash_hex:
        raise ValueError("verifier key hash does not match the key")
    return name, key


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise ValueError("note text is non-empty lines, each ending in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text has control characters")


def sign_note(text: str, name: str, key: PrivateKey) -> str:
    """Sign ``text`` (lines ending in newlines) and return the whole note."""
    _check_text(text)
    signature = key.sign(text.encode())
    encoded = base64.b64encode(key_hash(name, key.public_key) + signature).decode()
    return f"{text}\n{_SIG_PREFIX}{name} {encoded}\n"


def open_note(note: str | bytes, name: str, key: PublicKey) -> str:
    """Return the text of ``note`` once a signature by ``(name, key)`` verifies; raise MCPS-033 otherwise."""
    if isinstance(note, bytes):
        if len(note) > _MAX_NOTE_BYTES:
            raise _bad("note is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad("note is not UTF-8") from exc
    if len(note) > _MAX_NOTE_BYTES:
        raise _bad("note is too large")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise _bad("malformed note")
    text += "\n"
    try:
        _check_text(text)
    except ValueError as exc:
        raise _bad(f"malformed note: {exc}") from exc
    lines = signatures[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise _bad("too many signatures")
    try:
        wanted = key_hash(name, key)
    except ValueError as exc:  # a name read from an evidence file, say: a refusal like any other, not a crash
        raise _bad("the log name is not a key name (empty, or holding whitespace or '+')") from exc
    verified = False
    other_keys: list[bytes] = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise _bad("malformed signature line")
        signer, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        try:
            _check_name(signer)
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad("malformed signature line") from exc
        if not space or len(raw) < 5:
            raise _bad("malformed signature line")
        if signer == name and raw[:4] == wanted:
            try:
                key.verify(raw[4:], text.encode())
            except McpsError as exc:
                raise _bad(f"invalid signature for key {name}") from exc
            verified = True
        elif signer == name:
            other_keys.append(raw[:4])
    if not verified and other_keys:
        raise NoteSignedByAnotherKey(name, other_keys, wanted)
    if not verified:
        raise _bad(f"note has no signature by {name}")
    return text


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified (or just signed) checkpoint. ``note`` is the exact signed text, to ship or store as is."""

    origin: str
    size: int
    root: bytes
    note: str


def sign_checkpoint(key: PrivateKey, origin: str, size: int, root: bytes) -> Checkpoint:
    """Sign a ``tlog-checkpoint`` for ``(size, root)``; the key's note name is the origin."""
    if size < 0 or len(root) != 32:
        raise ValueError("bad tree head")
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return Checkpoint(origin, size, root, sign_note(text, origin, key))


def open_checkpoint(note: str | bytes, key: PublicKey, origin: str) -> Checkpoint:
    """Verify a checkpoint signed by ``key`` for the log ``origin`` and parse its body; raise MCPS-033 otherwise."""
    text = open_note(note, origin, key)
    lines = text[:-1].split("\n")
    if len(lines) < 3 or lines[0] != origin:
        raise _bad("checkpoint is for another log")
    if _SIZE.fullmatch(lines[1]) is None:
        raise _bad("checkpoint tree size is malformed")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise _bad("checkpoint root hash is malformed") from exc
    if len(root) != 32 or base64.b64encode(root).decode() != lines[2]:
        raise _bad("checkpoint root hash is malformed")
    if isinstance(note, bytes):
        note = note.decode()
    return Checkpoint(origin, int(lines[1]), root, note)
