"""HTTP message pieces the HTTP API signatures are built from (SPEC.md §13): strict structured fields (RFC 8941 /
RFC 9651, through ``http-sf``), ``Content-Digest`` (RFC 9530) and the RFC 9421 signature base.

Pure and total: every function takes bytes or values and returns a value or raises
:class:`~mcps.core.errors.McpsError` with the code of the defect (never another exception for any input).

* :func:`parse_field` parses a structured field **strictly**: a Dictionary or Parameters member that appears twice
  is refused (RFC 9651 would keep the last one; for a signature field that lets two readers see two values, the same
  reason mcps refuses duplicate JSON members, SPEC.md §3).
* :func:`content_digest` / :func:`check_content_digest` — ``sha-256`` is the one algorithm mcps writes and requires.
* :func:`signature_base` — RFC 9421 §2.5 over a :class:`MessageView`, for the derived components ``@method``,
  ``@target-uri``, ``@authority``, ``@scheme``, ``@path``, ``@query`` and ``@status``, header fields, the ``req``
  parameter (a response covering its request's components, §2.4) and ``key`` (one Dictionary member, §2.1.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import http_sf
from http_sf.innerlist import ser_innerlist, ser_item_or_inner_list

from mcps.core.errors import ErrorCode, McpsError

__all__ = [
    "DIGEST_ALGORITHM",
    "MAX_FIELD_BYTES",
    "Component",
    "MessageView",
    "check_content_digest",
    "content_digest",
    "digest_value",
    "parse_field",
    "serialize_inner_list",
    "signature_base",
]

DIGEST_ALGORITHM: Final = "sha-256"
MAX_FIELD_BYTES: Final = 16 * 1024
"""The longest structured field value mcps parses (an AgentPass certificate chain fits; a passport is ≤ 8 KiB)."""
_DERIVED: Final = frozenset({"@method", "@target-uri", "@authority", "@scheme", "@path", "@query", "@status"})


def _malformed(detail: str, code: ErrorCode = ErrorCode.SIGNATURE_MALFORMED) -> McpsError:
    return McpsError(code, detail=detail)


def _refuse_duplicate(key: str, context: str) -> None:
    raise ValueError(f"duplicate {context} key {key!r}")


def parse_field(value: bytes | str, kind: str, *, name: str = "field", max_bytes: int = MAX_FIELD_BYTES) -> Any:
    """Parse a structured field value of ``kind`` (``dictionary``, ``list`` or ``item``), refusing duplicate keys.

    MCPS-027 for anything that is not one well-formed value of that kind (or longer than ``max_bytes``)."""
    data = value.encode("latin-1", "replace") if isinstance(value, str) else value
    if len(data) > max_bytes:
        raise _malformed(f"{name} is longer than {max_bytes} bytes")
    try:
        return http_sf.parse(data, tltype=kind, on_duplicate_key=_refuse_duplicate)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # StructuredFieldError is a ValueError
        raise _malformed(f"{name} is not a structured field {kind}: {type(exc).__name__}") from None


def serialize_inner_list(items: Sequence[tuple[Any, Mapping[str, Any]]], params: Mapping[str, Any]) -> str:
    """RFC 8941 §4.1.1.1 serialization of an Inner List with its parameters (``@signature-params``)."""
    return ser_innerlist(([(item, dict(p)) for item, p in items], dict(params)))


# --- Content-Digest (RFC 9530) ------------------------------------------------------------------------------------


def digest_value(body: bytes | hashlib._Hash) -> bytes:
    """SHA-256 of ``body`` (or of what a running hash has seen)."""
    return hashlib.sha256(body).digest() if isinstance(body, bytes | bytearray | memoryview) else body.digest()


def content_digest(digest: bytes) -> str:
    """The ``Content-Digest`` field value for a SHA-256 ``digest``: ``sha-256=:<base64>:``."""
    return f"{DIGEST_ALGORITHM}=:{base64.b64encode(digest).decode('ascii')}:"


def check_content_digest(field_value: str | None, digest: bytes) -> None:
    """MCPS-036 unless ``field_value`` is a Dictionary with a ``sha-256`` Byte Sequence equal to ``digest``.

    Other algorithms in the field are ignored (RFC 9530 §2); ``sha-256`` must be there. A missing or unparsable field
    is MCPS-027 (the request is malformed rather than tampered)."""
    if field_value is None:
        raise _malformed("Content-Digest is missing")
    members = parse_field(field_value, "dictionary", name="Content-Digest")
    member = members.get(DIGEST_ALGORITHM)
    if member is None or not isinstance(member[0], bytes) or member[1]:
        raise _malformed("Content-Digest has no sha-256 byte sequence")
    if not hmac.compare_digest(member[0], digest):
        raise McpsError(ErrorCode.CONTENT_DIGEST_MISMATCH, detail="sha-256 of the body differs from Content-Digest")


# --- the signature base (RFC 9421 §2) ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageView:
    """What a signature base reads from one HTTP message.

    ``target_uri`` is the absolute request URI (``scheme://authority/path?query``) as the receiver establishes it;
    ``headers`` maps lower-case field names to their field lines, in order; ``status`` is set for responses, and
    ``request`` is the request a response answers (read by components with the ``req`` parameter)."""

    method: str | None = None
    target_uri: str | None = None
    headers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    status: int | None = None
    request: MessageView | None = None


Component = tuple[str, Mapping[str, Any]]
"""A covered component: its name and its parameters (``req``, ``key``), as parsed from an Inner List."""


def _field_value(view: MessageView, name: str, params: Mapping[str, Any]) -> str:
    lines = view.headers.get(name)
    if not lines:
        raise _malformed(f"covered field {name!r} is not in the message")
    value = ", ".join(line.strip(" \t") for line in lines)  # RFC 9421 §2.1: combined, whitespace trimmed
    key = params.get("key")
    if key is None:
        return value
    members = parse_field(value, "dictionary", name=name)
    if key not in members:
        raise _malformed(f"covered field {name!r} has no member {key!r}")
    return str(ser_item_or_inner_list(members[key]))


def _derived_value(view: MessageView, name: str) -> str:
    if name == "@method":
        if view.method is None:
            raise _malformed("@method of a message that is not a request")
        return view.method.upper()
    if name == "@status":
        if view.status is None:
            raise _malformed("@status of a message that is not a response")
        return f"{view.status:03d}"
    if view.target_uri is None:
        raise _malformed(f"{name} of a message that is not a request")
    if name == "@target-uri":
        return view.target_uri
    parts = urlsplit(view.target_uri)
    if name == "@authority":
        return parts.netloc.lower()
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@path":
        return parts.path or "/"
    return f"?{parts.query}"  # @query: "?" when empty (RFC 9421 §2.2.7)


def _component_value(view: MessageView, name: str, params: Mapping[str, Any]) -> str:
    if params.get("req") is True:
        if view.request is None:
            raise _malformed(f"{name};req on a message that is not a response")
        view = view.request
    if name.startswith("@"):
        return _derived_value(view, name)
    return _field_value(view, name, params)


def _check_component(name: object, params: Mapping[str, Any]) -> str:
    if not isinstance(name, str) or not name or name != name.lower():
        raise _malformed("a covered component is not a lower-case string")
    if name.startswith("@") and name not in _DERIVED:
        raise _malformed(f"derived component {name!r} is not supported")
    for key, value in params.items():
        if key == "req" and value is True:
            continue
        if key == "key" and isinstance(value, str) and not name.startswith("@"):
            continue
        raise _malformed(f"component parameter {key!r} is not supported")
    return name


def signature_base(view: MessageView, components: Sequence[Component], params: Mapping[str, Any]) -> bytes:
    """RFC 9421 §2.5: one line ``"name";params: value`` per covered component, then ``"@signature-params"``.

    MCPS-027 when a component is repeated, unsupported, or absent from the message, or when a value cannot be
    written in a signature base (a newline, or a character outside ASCII)."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, component_params in components:
        checked = _check_component(name, component_params)
        identifier = http_sf.ser((checked, dict(component_params)))
        if identifier in seen:
            raise _malformed(f"component {identifier} is covered twice")
        seen.add(identifier)
        value = _component_value(view, checked, component_params)
        if "\n" in value or "\r" in value:
            raise _malformed(f"component {identifier} has a line break")
        lines.append(f"{identifier}: {value}")
    try:
        signature_params = serialize_inner_list(components, params)
    except (ValueError, TypeError) as exc:
        raise _malformed(f"signature parameters cannot be serialized: {type(exc).__name__}") from None
    lines.append(f'"@signature-params": {signature_params}')
    text = "\n".join(lines)
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise _malformed("a covered value is not ASCII") from None
