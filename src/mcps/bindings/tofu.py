"""Trust on first use, for a client that has no pinned server key: UNSAFE, named so, and loud about it.

::

    trusted = UnsafeTrustOnFirstUse("urn:example:files", path="known_keys.json")
    security = ChannelSecurity(key=agent_key, trusted=trusted, nonces=MemoryNonceStore())

:class:`UnsafeTrustOnFirstUse` is a :class:`~mcps.core.envelope.KeyResolver` that trusts whichever key signs the
first message it is asked about, and from then on that key only (any other kid: MCPS-029). Whoever answers
first — the real server or someone in the middle — is trusted; nothing vouches for that first key. Pin the
server's key instead (:class:`~mcps.core.envelope.PinnedKeys`) or verify its passport
(:class:`~mcps.identity.PassportResolver`) wherever that is possible.

The key is learnt from the message itself (SPEC.md §9.7): the wire names a key only by its thumbprint, so the
server must carry it in a passport (``mcps/passport``, its ``cnf.jwk``; a self-signed one will do). The passport
is read for that key and its ``sub`` only (which must be the server's identity): its issuer, level, scopes and
times are not checked. The key is pinned only after the message's signature verifies with it. A server without a
passport cannot be trusted on first use (MCPS-029).

``path`` names a known-keys file, like OpenSSH's ``known_hosts``, keyed by server identity. When it holds a key
for this identity the resolver behaves exactly like ``PinnedKeys`` with that key; otherwise the first key is
learnt and written to the file (atomically, mode 0600), under an exclusive lock on a sibling ``.lock`` file so
that processes pinning at once neither lose each other's entries nor pin two keys. The file is refused (as
OpenSSH's StrictModes would) when it is a symbolic link, is owned by another user, or may be written by group or
others, and so is a directory that group or others may write without the sticky bit: anyone who can plant a key
there would be trusted.

Every use warns: an :class:`UnsafeTrustWarning` (shown every time: this module adds an ``always`` filter for it,
after any the application set) and a WARNING on the ``mcps.bindings`` logger when the resolver is made, and
again each time it pins a key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from mcps.core.encoding import b64u_decode
from mcps.core.envelope import SIG_KEY, SignatureBlock, block_container, signing_input
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PublicKey
from mcps.core.strict import parse_message
from mcps.identity.passports import parse_passport
from mcps.identity.resolver import PASSPORT_KEY
from mcps.stores.files import replace_atomically

__all__ = ["KNOWN_KEYS_VERSION", "UnsafeTrustOnFirstUse", "UnsafeTrustWarning"]

logger = logging.getLogger("mcps.bindings")

KNOWN_KEYS_VERSION: Final = 1


class UnsafeTrustWarning(UserWarning):
    """Emitted each time an ``Unsafe…`` trust mode is set up or trusts something nobody vouched for."""


# Python shows an identical warning from one place once by default; an unsafe mode must warn on every use.
warnings.filterwarnings("always", category=UnsafeTrustWarning, append=True)


class UnsafeTrustOnFirstUse:
    """A :class:`~mcps.core.envelope.KeyResolver` for one server: the first key that signs for it is pinned.

    ``server_identity`` is the server's identity (what the client addresses it as), the key of its entry in the
    known-keys file at ``path``. Without ``path`` the pin lives as long as this object: share one object between
    the connections that should agree on the key.
    """

    def __init__(self, server_identity: str, *, path: str | os.PathLike[str] | None = None) -> None:
        if not server_identity:
            raise ValueError("server_identity must be a non-empty string")
        self.server_identity = server_identity
        self._path = Path(path) if path is not None else None
        self._key = _read_known_keys(self._path).get(server_identity) if self._path is not None else None
        if self._key is not None:
            _warn(
                f"UNSAFE: trust on first use for {server_identity}: trusting key {self._key.kid} recorded in "
                f"{self._path} on an earlier first use, and no other; nobody vouched for it"
            )
        else:
            _warn(
                f"UNSAFE: trust on first use for {server_identity}: the first key that signs for it will be "
                "trusted, whoever holds it; pin the server's key (PinnedKeys) instead"
            )

    @property
    def pinned(self) -> PublicKey | None:
        """The key trusted for this server, once one is pinned (or read from the known-keys file)."""
        return self._key

    def resolve(self, kid: KeyId, message: Mapping[str, Any], *, now: float) -> PublicKey:
        """The pinned key when ``kid`` names it; before any pin, the key the message carries (pinned here)."""
        if self._key is not None:
            if kid != self._key.kid:
                raise McpsError(
                    ErrorCode.UNKNOWN_KEY, detail=f"{self.server_identity} is pinned to key {self._key.kid}, not {kid}"
                )
            return self._key
        key = _key_carried_by(kid, message, self.server_identity)
        self._pin(key)
        return key

    def _pin(self, key: PublicKey) -> None:
        where = ""
        if self._path is not None:
            try:
                with _locked(self._path):
                    known = _read_known_keys(self._path)  # again: another process may have pinned it meanwhile
                    recorded = known.get(self.server_identity)
                    if recorded is not None and recorded.kid != key.kid:
                        raise McpsError(
                            ErrorCode.UNKNOWN_KEY,
                            detail=f"{self._path} now pins {self.server_identity} to {recorded.kid}, not {key.kid}",
                        )
                    _write_known_keys(self._path, {**known, self.server_identity: key})
            except (OSError, ValueError) as exc:  # not recorded, so not pinned: refused, never trusted for this run
                raise McpsError(ErrorCode.STORE_UNAVAILABLE, detail=f"cannot record in {self._path}: {exc}") from exc
            where = f", recorded in {self._path}"
        self._key = key
        _warn(
            f"UNSAFE: trust on first use: pinned key {key.kid} for {self.server_identity}{where}; nobody vouched for it"
        )


def _key_carried_by(kid: KeyId, message: Mapping[str, Any], server_identity: str) -> PublicKey:
    """The passport key of a message signed with it: the ``cnf.jwk`` whose thumbprint is ``kid``, verified.

    The passport's ``sub`` must be ``server_identity`` (a consistency check only: nothing vouches for it), so a
    client pointed at the wrong server does not record that server's key under this one's name. The verifier
    asks for the key before it checks the signature (SPEC.md §5 steps 7 and 8), so the signature is checked here
    once as well: a key is never pinned for a message it did not sign.
    """
    container = block_container(message)
    passport = container.get(PASSPORT_KEY) if container is not None else None
    if container is None or passport is None:
        raise McpsError(ErrorCode.UNKNOWN_KEY, detail="no key pinned yet, and no passport to learn the key from")
    claims = parse_passport(passport).claims  # MCPS-001 or MCPS-013 for a malformed passport
    key = claims.key
    if key.kid != kid:
        raise McpsError(ErrorCode.UNKNOWN_KEY, "signing key is not the passport's key")
    if claims.sub != server_identity:
        raise McpsError(ErrorCode.UNKNOWN_KEY, detail=f"passport is for {claims.sub!r}, not {server_identity!r}")
    block = SignatureBlock.parse(container.get(SIG_KEY))
    if block.alg is not key.alg:
        raise McpsError(ErrorCode.ALGORITHM_MISMATCH)
    key.verify(b64u_decode(block.sig), signing_input(message))  # MCPS-004: nothing pinned
    return key


def _warn(text: str) -> None:
    warnings.warn(text, UnsafeTrustWarning, stacklevel=3)
    logger.warning("mcps: %s", text)


# --- the known-keys file -----------------------------------------------------------------------------------------


def _known_keys_error(path: Path, detail: str) -> ValueError:
    return ValueError(f"{path} is not a valid mcps known-keys file: {detail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``.<name>.lock`` beside ``path`` (mode 0600), held for the block."""
    _check_directory(path.parent)
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # releases the lock


def _check_directory(directory: Path) -> None:
    """``ValueError`` for a directory where others could plant or swap the file (group/other-writable, no sticky)."""
    mode = directory.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise ValueError(f"{directory} is writable by group or others (mode {stat.S_IMODE(mode):04o})")


def _read_known_keys(path: Path) -> dict[str, PublicKey]:
    """Server identity → key, from ``{"mcps_known_keys": 1, "servers": {identity: JWK}}``; a missing file is empty.

    Parsed strictly (I-JSON, no duplicate keys). ``ValueError`` for any other content, and for a file someone else
    could have planted a key in: a symbolic link, another user's file, a file group or others may write, or one in
    a directory they may write.
    """
    _check_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as exc:  # ELOOP: a symbolic link
        raise ValueError(f"{path} cannot be opened as a regular file: {exc.strerror}") from exc
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_uid not in (os.geteuid(), 0):
            raise ValueError(f"{path} is not a regular file owned by this user")
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            mode = stat.S_IMODE(status.st_mode)
            raise ValueError(f"{path} is writable by group or others (mode {mode:04o}); run: chmod 600 {path}")
        raw = handle.read()
    try:
        data = parse_message(raw)
    except McpsError as exc:
        raise _known_keys_error(path, exc.diagnostics()) from exc
    version = data.get("mcps_known_keys")
    if data.keys() != {"mcps_known_keys", "servers"} or type(version) is not int or version != KNOWN_KEYS_VERSION:
        raise _known_keys_error(path, f'top level must be {{"mcps_known_keys": {KNOWN_KEYS_VERSION}, "servers": ...}}')
    servers = data["servers"]
    if not isinstance(servers, dict):
        raise _known_keys_error(path, "servers is not an object")
    try:
        return {identity: PublicKey.from_jwk(jwk) for identity, jwk in servers.items()}
    except McpsError as exc:
        raise _known_keys_error(path, exc.diagnostics()) from exc


def _write_known_keys(path: Path, keys: Mapping[str, PublicKey]) -> None:
    """Replace the file atomically (a temporary file of mode 0600, synced, renamed over it)."""
    servers = {identity: key.to_jwk() for identity, key in keys.items()}
    text = json.dumps({"mcps_known_keys": KNOWN_KEYS_VERSION, "servers": servers}, indent=2, sort_keys=True) + "\n"
    replace_atomically(path, text.encode("utf-8"))
