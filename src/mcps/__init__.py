"""mcps — message-layer security for the Model Context Protocol.

The public surface (SPEC.md has the wire format):

* :class:`MessageSigner` / :class:`MessageVerifier` — sign and verify JSON-RPC messages;
* :class:`PrivateKey` / :class:`PublicKey` / :class:`PinnedKeys` — EdDSA and ES256 keys, RFC 7638 kids;
* :class:`MemoryNonceStore` and the other :class:`NonceStore` backends — replay defence;
* :class:`McpsError` / :class:`ErrorCode` — every refusal, with a stable code.

Each layer exports what applications use from one place: :mod:`mcps.identity` (passports, anchors, the passport
resolver, revocation, grants), :mod:`mcps.stores` (nonce and revocation backends), :mod:`mcps.audit` (the
Merkle log) and :mod:`mcps.bindings` (the MCP SDK). ``import mcps`` imports no backend's client library (redis,
psycopg, httpx, the MCP SDK): :class:`SqliteNonceStore` and :class:`RedisNonceStore` are imported on first use.
"""

from typing import TYPE_CHECKING

from mcps.core._exports import lazy_exports as _lazy_exports
from mcps.core.canonical import canonicalize
from mcps.core.envelope import MessageKind, PinnedKeys, request_binding
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey, PublicKey
from mcps.core.strict import Limits, parse_message
from mcps.stores.nonces import MemoryNonceStore, NonceStore
from mcps.verifier import MessageSigner, MessageVerifier, VerifiedMessage

if TYPE_CHECKING:
    from mcps.stores.redis_nonces import RedisNonceStore
    from mcps.stores.sqlite_nonces import SqliteNonceStore

__all__ = [
    "Algorithm",
    "ErrorCode",
    "KeyId",
    "Limits",
    "McpsError",
    "MemoryNonceStore",
    "MessageKind",
    "MessageSigner",
    "MessageVerifier",
    "NonceStore",
    "PinnedKeys",
    "PrivateKey",
    "PublicKey",
    "RedisNonceStore",
    "SqliteNonceStore",
    "VerifiedMessage",
    "canonicalize",
    "parse_message",
    "request_binding",
]

__version__ = "0.1.0"

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is still an error there
    __getattr__, __dir__ = _lazy_exports(
        __name__, {"RedisNonceStore": "mcps.stores.redis_nonces", "SqliteNonceStore": "mcps.stores.sqlite_nonces"}
    )
