"""One error type for every refusal, each with a stable code (SPEC.md §9).

An :class:`McpsError` carries three things:

* ``code`` — an :class:`ErrorCode`, stable across versions (``MCPS-004``), with its JSON-RPC code (``-33004``);
* ``message`` — a short sentence that is safe to send to a remote peer: it never contains input bytes,
  exception text, paths or key material;
* ``detail`` — an optional longer explanation that stays local (logs, the CLI's diagnostics).

Codes 001–015 keep the meanings already used by MCPS adopters; the rest are added after them.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["ErrorCode", "McpsError"]


class ErrorCode(enum.Enum):
    """Stable refusal codes. ``value`` is the number; ``mcps`` and ``jsonrpc`` are the wire forms."""

    PASSPORT_MALFORMED = 1
    PASSPORT_EXPIRED = 2
    REVOKED = 3
    BAD_SIGNATURE = 4
    REPLAY = 5
    TIMESTAMP_OUT_OF_WINDOW = 6
    TRUST_AUTHORITY_UNREACHABLE = 7
    TOOL_CHANGED = 8
    INSUFFICIENT_TRUST = 9
    RATE_LIMITED = 10
    AUDIENCE_MISMATCH = 11
    TRANSCRIPT_MISMATCH = 12
    PASSPORT_TOO_LARGE = 13
    CHAIN_TOO_DEEP = 14
    NO_COMMON_VERSION = 15
    POLICY_DENIED = 16
    GRANT_INVALID = 17
    MESSAGE_TOO_LARGE = 18
    MALFORMED_JSON = 19
    DUPLICATE_KEY = 20
    NUMBER_NOT_IJSON = 21
    INVALID_STRING = 22
    TOO_DEEP = 23
    BATCH_REJECTED = 24
    NOT_JSONRPC = 25
    SIGNATURE_MISSING = 26
    SIGNATURE_MALFORMED = 27
    ALGORITHM_MISMATCH = 28
    UNKNOWN_KEY = 29
    STORE_UNAVAILABLE = 30
    GRANT_REPLAYED = 31
    GRANT_MISMATCH = 32
    AUDIT_INVALID = 33
    HOP_INVALID = 34
    UPSTREAM_UNAVAILABLE = 35
    CONTENT_DIGEST_MISMATCH = 36
    CERTIFICATE_INVALID = 37

    @property
    def mcps(self) -> str:
        """The code as written on the wire and in logs, e.g. ``MCPS-004``."""
        return f"MCPS-{self.value:03d}"

    @property
    def jsonrpc(self) -> int:
        """The JSON-RPC error code, ``-33000 - n``."""
        return -33000 - self.value

    @property
    def default_message(self) -> str:
        return _DEFAULT_MESSAGES[self]

    @classmethod
    def from_mcps(cls, text: str) -> ErrorCode:
        """Parse ``MCPS-004``; raises ``ValueError`` for anything else."""
        prefix, _, number = text.partition("-")
        if prefix != "MCPS" or len(number) != 3 or not number.isdigit():
            raise ValueError("not an MCPS code")
        return cls(int(number))


_DEFAULT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.PASSPORT_MALFORMED: "passport is malformed",
    ErrorCode.PASSPORT_EXPIRED: "passport is expired or not yet valid",
    ErrorCode.REVOKED: "credential has been revoked",
    ErrorCode.BAD_SIGNATURE: "signature does not verify",
    ErrorCode.REPLAY: "message was already seen (replay)",
    ErrorCode.TIMESTAMP_OUT_OF_WINDOW: "message is outside its validity window",
    ErrorCode.TRUST_AUTHORITY_UNREACHABLE: "trust authority is unreachable",
    ErrorCode.TOOL_CHANGED: "tool definition changed or unsigned",
    ErrorCode.INSUFFICIENT_TRUST: "trust level is insufficient",
    ErrorCode.RATE_LIMITED: "rate limit exceeded",
    ErrorCode.AUDIENCE_MISMATCH: "message is addressed to another audience",
    ErrorCode.TRANSCRIPT_MISMATCH: "response is not bound to its request",
    ErrorCode.PASSPORT_TOO_LARGE: "passport is too large",
    ErrorCode.CHAIN_TOO_DEEP: "delegation chain is too deep",
    ErrorCode.NO_COMMON_VERSION: "unsupported signature version",
    ErrorCode.POLICY_DENIED: "denied by policy",
    ErrorCode.GRANT_INVALID: "grant is missing or invalid",
    ErrorCode.MESSAGE_TOO_LARGE: "message is too large",
    ErrorCode.MALFORMED_JSON: "message is not valid JSON",
    ErrorCode.DUPLICATE_KEY: "message contains a duplicate object key",
    ErrorCode.NUMBER_NOT_IJSON: "message contains a number outside I-JSON",
    ErrorCode.INVALID_STRING: "message contains an invalid string",
    ErrorCode.TOO_DEEP: "message is nested too deeply",
    ErrorCode.BATCH_REJECTED: "JSON-RPC batches are not accepted",
    ErrorCode.NOT_JSONRPC: "message is not a JSON-RPC 2.0 message",
    ErrorCode.SIGNATURE_MISSING: "message is not signed",
    ErrorCode.SIGNATURE_MALFORMED: "signature block is malformed",
    ErrorCode.ALGORITHM_MISMATCH: "signature algorithm is not allowed for this key",
    ErrorCode.UNKNOWN_KEY: "signing key is not trusted",
    ErrorCode.STORE_UNAVAILABLE: "security state store is unavailable",
    ErrorCode.GRANT_REPLAYED: "grant was already used",
    ErrorCode.GRANT_MISMATCH: "grant does not match this call",
    ErrorCode.AUDIT_INVALID: "audit log or audit evidence does not verify",
    ErrorCode.HOP_INVALID: "hop record is missing or invalid",
    ErrorCode.UPSTREAM_UNAVAILABLE: "upstream server is unavailable",
    ErrorCode.CONTENT_DIGEST_MISMATCH: "content digest does not match the body",
    ErrorCode.CERTIFICATE_INVALID: "agent certificate is invalid",
}


class McpsError(Exception):
    """A refusal. ``str()`` is ``"MCPS-004: signature does not verify"``: short and safe for a peer."""

    def __init__(self, code: ErrorCode, message: str | None = None, *, detail: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else code.default_message
        self.detail = detail
        super().__init__(f"{code.mcps}: {self.message}")

    def diagnostics(self) -> str:
        """A longer, local-only explanation (for logs and the CLI). Never send it to a peer."""
        if self.detail:
            return f"{self.code.mcps}: {self.message} ({self.detail})"
        return str(self)

    def to_jsonrpc_error(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` member to send to a peer: code, safe message and the MCPS code."""
        return {"code": self.code.jsonrpc, "message": self.message, "data": {"mcps_code": self.code.mcps}}

    def __repr__(self) -> str:
        return f"McpsError({self.code.mcps}, {self.message!r})"
