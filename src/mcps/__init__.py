"""mcps — message-layer security for the Model Context Protocol.

The public surface (SPEC.md has the wire format):

* :class:`MessageSigner` / :class:`MessageVerifier` — sign and verify JSON-RPC messages;
* :class:`PrivateKey` / :class:`PublicKey` / :class:`PinnedKeys` — EdDSA and ES256 keys, RFC 7638 kids;
* :class:`MemoryNonceStore` and the other :class:`NonceStore` backends — replay defence;
* :class:`McpsError` / :class:`ErrorCode` — every refusal, with a stable code.
"""

from mcps.core.canonical import canonicalize
from mcps.core.envelope import MessageKind, PinnedKeys, request_binding
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import Algorithm, KeyId, PrivateKey, PublicKey
from mcps.core.strict import Limits, parse_message
from mcps.stores.nonces import MemoryNonceStore, NonceStore
from mcps.stores.redis_nonces import RedisNonceStore
from mcps.stores.sqlite_nonces import SqliteNonceStore
from mcps.verifier import MessageSigner, MessageVerifier, VerifiedMessage

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
