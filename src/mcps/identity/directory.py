"""Keys named by a ``Signature-Agent`` header: an HTTP Message Signatures Directory (SPEC.md §13.9).

The header (an RFC 8941 String, as SEP-2752 §2.6.1 writes it) holds either

* a ``data:`` URL, ``data:application/http-message-signatures-directory+json;base64,<JWKS>``: the agent publishes
  its own key in the request. Nobody vouches for it: a key found there is trusted at **L0**, its identity is its
  ``kid`` (like a self-signed passport);
* an ``https`` URL of a directory. mcps never fetches a URL an agent names (the verifier would make requests for any
  peer); it reads only directories the service configured in :class:`SignatureAgentDirectories`, each with the level
  its keys get, fetched by :meth:`SignatureAgentDirectories.refresh` beside request handling.

A directory document is a JWK Set parsed strictly (I-JSON, at most 1 MiB); keys that are not EdDSA or ES256 are
skipped; keys are looked up by their RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import KeyId, PublicKey
from mcps.core.strict import Limits, parse_message
from mcps.identity.levels import TrustLevel

__all__ = [
    "DIRECTORY_MEDIA_TYPE",
    "DirectoryKey",
    "SignatureAgentDirectories",
    "directory_keys",
    "inline_directory",
]

DIRECTORY_MEDIA_TYPE: Final = "application/http-message-signatures-directory+json"
MAX_DIRECTORY_BYTES: Final = 1024 * 1024
_DATA_PREFIX: Final = f"data:{DIRECTORY_MEDIA_TYPE};base64,"


@dataclass(frozen=True, slots=True)
class DirectoryKey:
    """A key found through ``Signature-Agent``, with the level its directory gives it."""

    key: PublicKey
    level: TrustLevel
    directory: str


def directory_keys(document: object) -> dict[KeyId, PublicKey]:
    """The EdDSA and ES256 keys of a parsed directory (JWK Set) by thumbprint; MCPS-029 if it is not a JWK Set."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise McpsError(ErrorCode.UNKNOWN_KEY, "signature agent directory is invalid", detail="not a JWK Set")
    found: dict[KeyId, PublicKey] = {}
    for jwk in document["keys"]:
        try:
            key = PublicKey.from_jwk(jwk)
        except McpsError:
            continue  # RSA and other keys a directory may list: not usable here, not an error
        found[key.kid] = key
    return found


def inline_directory(url: str) -> dict[KeyId, PublicKey]:
    """The keys of a ``data:`` directory URL (base64 or base64url, padding optional). MCPS-029 when malformed."""
    if not url.startswith(_DATA_PREFIX) or len(url) > 2 * MAX_DIRECTORY_BYTES:
        raise McpsError(ErrorCode.UNKNOWN_KEY, "signature agent directory is invalid", detail="not a data: directory")
    text = url[len(_DATA_PREFIX) :].rstrip("=")
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
        document = parse_message(raw, Limits(max_bytes=MAX_DIRECTORY_BYTES))
    except (binascii.Error, ValueError):
        raise McpsError(ErrorCode.UNKNOWN_KEY, "signature agent directory is invalid", detail="bad base64") from None
    except McpsError as exc:
        raise McpsError(
            ErrorCode.UNKNOWN_KEY, "signature agent directory is invalid", detail=exc.diagnostics()
        ) from None
    return directory_keys(document)


class SignatureAgentDirectories:
    """The ``https`` directories a service trusts, each with the level its keys get; fetched by :meth:`refresh`.

    A directory not fetched within ``max_stale`` seconds answers nothing (its keys are unknown: MCPS-029), so a
    directory that disappears stops vouching. ``transport`` is an httpx transport for tests."""

    def __init__(
        self,
        directories: Mapping[str, TrustLevel | int],
        *,
        timeout: float = 5.0,
        max_stale: float = 3600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for url in directories:
            if not url.startswith("https://"):
                raise ValueError("a signature agent directory must be an https URL")
        self._levels = {url: TrustLevel.parse(level) for url, level in directories.items()}
        self._keys: dict[str, tuple[float, dict[KeyId, PublicKey]]] = {}
        self._timeout = timeout
        self._max_stale = max_stale
        self._transport = transport
        self._clock = clock

    def get(self, url: str, kid: KeyId) -> DirectoryKey | None:
        level = self._levels.get(url)
        entry = self._keys.get(url)
        if level is None or entry is None or self._clock() - entry[0] > self._max_stale:
            return None
        key = entry[1].get(kid)
        return DirectoryKey(key, level, url) if key is not None else None

    async def refresh(self) -> None:
        """Fetch every directory now; one that fails keeps its previous keys (until ``max_stale``)."""
        async with httpx.AsyncClient(
            transport=self._transport, timeout=self._timeout, follow_redirects=False
        ) as client:
            for url in self._levels:
                try:
                    async with client.stream("GET", url, headers={"accept": DIRECTORY_MEDIA_TYPE}) as response:
                        if response.status_code != 200:
                            continue
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > MAX_DIRECTORY_BYTES:
                                break
                    if len(body) > MAX_DIRECTORY_BYTES:
                        continue
                    keys = directory_keys(parse_message(bytes(body), Limits(max_bytes=MAX_DIRECTORY_BYTES)))
                except (httpx.HTTPError, McpsError):
                    continue
                self._keys[url] = (self._clock(), keys)
