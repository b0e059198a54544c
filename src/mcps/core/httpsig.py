"""Signed HTTP requests and responses for plain HTTP APIs (SPEC.md §13): three header formats, one signature base.

Every format signs an RFC 9421 signature base (:func:`~mcps.core.http_fields.signature_base`) over at least
``@method``, ``@target-uri`` and ``content-digest``, plus every credential header the request carries; they differ
only in where the signature and its parameters travel:

* **RFC 9421** (``Signature-Input`` / ``Signature``), profiled as SEP-2752 does (SPEC.md §13.3): one signature, its
  covered components listed on the wire, parameters ``created``, ``nonce``, ``keyid``, ``tag`` (``expires``
  optional, ``alg`` ignored);
* **Agent-Signature**, the field of the OpenAPI ``x-agent-trust`` registry entry: an RFC 8941 Dictionary
  ``sig=:…:, keyid="…", created=…, expires=…, nonce="…"``; the components are fixed by the profile and the base's
  ``@signature-params`` carries ``tag="x-agent-trust"`` (SPEC.md §13.4);
* **ATTP** (``X-Agent-Trust``, ``X-Agent-Signature``, ``X-Agent-Nonce``, ``X-Agent-Timestamp``): the passport in
  ``X-Agent-Trust`` names the key; the base's ``@signature-params`` carries ``tag="attp"`` (SPEC.md §13.5).

Parsing here is shape only (pure, no clock, no keys): :func:`parse_request_signature` returns an
:class:`UnverifiedRequestSignature` or raises with the defect's code. Verification (time, audience, key, nonce, …)
is the job of :mod:`mcps.http_api`. Responses are signed with RFC 9421 in every case, bound to the request by
covering its signature with the ``req`` parameter (§13.7).
"""

from __future__ import annotations

import base64
import enum
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.http_fields import Component, MessageView, parse_field, serialize_inner_list, signature_base
from mcps.core.keys import KeyId, PrivateKey

__all__ = [
    "AGENT_SIGNATURE",
    "ATTP_NONCE",
    "ATTP_SIGNATURE",
    "ATTP_TIMESTAMP",
    "ATTP_TRUST",
    "ATTP_VERSION",
    "CERTIFICATE_HEADER",
    "CONTENT_DIGEST",
    "CREDENTIAL_HEADERS",
    "DEFAULT_HTTP_LIFETIME",
    "PASSPORT_HEADER",
    "REQUIRED_COMPONENTS",
    "RESPONSE_LABEL",
    "SIGNATURE",
    "SIGNATURE_AGENT",
    "SIGNATURE_INPUT",
    "SignatureFormat",
    "UnverifiedRequestSignature",
    "UnverifiedResponseSignature",
    "expected_response_components",
    "parse_request_signature",
    "parse_response_signature",
    "sign_request",
    "sign_response",
]

SIGNATURE_INPUT: Final = "signature-input"
SIGNATURE: Final = "signature"
SIGNATURE_AGENT: Final = "signature-agent"
AGENT_SIGNATURE: Final = "agent-signature"
ATTP_TRUST: Final = "x-agent-trust"
ATTP_SIGNATURE: Final = "x-agent-signature"
ATTP_NONCE: Final = "x-agent-nonce"
ATTP_TIMESTAMP: Final = "x-agent-timestamp"
ATTP_VERSION: Final = "x-attp-version"
PASSPORT_HEADER: Final = "mcps-passport"
CERTIFICATE_HEADER: Final = "x-agentpass-certificate"
CONTENT_DIGEST: Final = "content-digest"
RESPONSE_LABEL: Final = "mcps"

REQUIRED_COMPONENTS: Final = ("@method", "@target-uri", CONTENT_DIGEST)
CREDENTIAL_HEADERS: Final = (PASSPORT_HEADER, CERTIFICATE_HEADER, SIGNATURE_AGENT)
"""Headers that, when a request carries them, every format's signature must cover."""
DEFAULT_HTTP_LIFETIME: Final = 60
MAX_LIFETIME: Final = 300
"""``expires − created`` may not exceed this; a signature without ``expires`` lives this long (SPEC.md §13.6)."""
AGENT_SIGNATURE_TAG: Final = "x-agent-trust"
ATTP_TAG: Final = "attp"
RESPONSE_TAG: Final = "mcps-response"
MAX_TAG_LENGTH: Final = 256
_NONCE_BYTES: Final = 16
_TAG: Final = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,255}")
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_RFC9421_PARAMS: Final = frozenset({"created", "expires", "nonce", "keyid", "tag", "alg"})
_AGENT_SIGNATURE_MEMBERS: Final = frozenset({"sig", "keyid", "created", "expires", "nonce"})
_RESPONSE_PARAMS: Final = frozenset({"created", "expires", "nonce", "keyid", "tag"})


class SignatureFormat(enum.StrEnum):
    RFC9421 = "rfc9421"
    AGENT_SIGNATURE = "agent-signature"
    ATTP = "attp"


def _malformed(detail: str) -> McpsError:
    return McpsError(ErrorCode.SIGNATURE_MALFORMED, detail=detail)


@dataclass(frozen=True, slots=True)
class UnverifiedRequestSignature:
    """A request signature whose shape was checked and nothing else: not its time, key, signature or freshness.

    ``kid`` is ``None`` for ATTP (the passport names the key). ``binding`` is the component a signed response covers
    to bind itself to this request (§13.7)."""

    format: SignatureFormat
    components: tuple[Component, ...]
    params: Mapping[str, Any]
    kid: KeyId | None
    created: int
    expires: int | None
    nonce: str
    tag: str | None
    signature: bytes
    binding: Component

    @property
    def lifetime_end(self) -> int:
        """``expires``, or ``created`` + 300 s when the signature has none."""
        return self.expires if self.expires is not None else self.created + MAX_LIFETIME

    def base(self, view: MessageView) -> bytes:
        return signature_base(view, self.components, self.params)


# --- reading request headers --------------------------------------------------------------------------------------


def _one(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    lines = headers.get(name)
    if not lines:
        return None
    return ", ".join(line.strip(" \t") for line in lines)


def _int(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise _malformed(f"{name} is not a non-negative integer")
    return value


def _kid(value: object) -> KeyId:
    if not isinstance(value, str) or len(value) != 43:
        raise _malformed("keyid is not a JWK thumbprint")
    try:
        if len(b64u_decode(value)) != 32:
            raise ValueError
    except ValueError:
        raise _malformed("keyid is not a JWK thumbprint") from None
    return KeyId(value)


def _nonce(value: object, *, min_bytes: int) -> str:
    if not isinstance(value, str) or len(value) > 86:
        raise _malformed("nonce is not base64url")
    try:
        size = len(b64u_decode(value))
    except ValueError:
        raise _malformed("nonce is not base64url") from None
    if not min_bytes <= size <= 64:
        raise _malformed(f"nonce is not {min_bytes} to 64 bytes")
    return value


def _signature(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != 64:
        raise _malformed("signature is not 64 bytes")
    return value


def _credential_components(headers: Mapping[str, Sequence[str]], *, exclude: str = "") -> list[Component]:
    return [(name, {}) for name in CREDENTIAL_HEADERS if name != exclude and headers.get(name)]


def parse_request_signature(headers: Mapping[str, Sequence[str]]) -> UnverifiedRequestSignature | None:
    """The request's signature, in whichever format it carries one; ``None`` when it carries none at all.

    ``headers`` maps lower-case names to field lines. MCPS-027 for a malformed signature, or for headers of more
    than one format (which signature decides would be ambiguous)."""
    present = [
        fmt
        for fmt, names in (
            (SignatureFormat.RFC9421, (SIGNATURE_INPUT, SIGNATURE)),
            (SignatureFormat.AGENT_SIGNATURE, (AGENT_SIGNATURE,)),
            (SignatureFormat.ATTP, (ATTP_SIGNATURE, ATTP_NONCE, ATTP_TIMESTAMP)),
        )
        if any(headers.get(name) for name in names)
    ]
    if not present:
        return None
    if len(present) > 1:
        raise _malformed("headers of more than one signature format")
    if present[0] is SignatureFormat.RFC9421:
        return _parse_rfc9421(headers)
    if present[0] is SignatureFormat.AGENT_SIGNATURE:
        return _parse_agent_signature(headers)
    return _parse_attp(headers)


def _parse_rfc9421(headers: Mapping[str, Sequence[str]]) -> UnverifiedRequestSignature:
    inputs = parse_field(_one(headers, SIGNATURE_INPUT) or "", "dictionary", name="Signature-Input")
    values = parse_field(_one(headers, SIGNATURE) or "", "dictionary", name="Signature")
    if len(inputs) != 1 or inputs.keys() != values.keys():
        raise _malformed("Signature-Input and Signature must hold one signature with one label")
    label = next(iter(inputs))
    items, params = inputs[label]
    if not isinstance(items, list):
        raise _malformed("a Signature-Input member is not an inner list")
    signature, signature_params = values[label]
    if signature_params:
        raise _malformed("the Signature member has parameters")
    unknown = params.keys() - _RFC9421_PARAMS
    if unknown or not {"created", "nonce", "keyid", "tag"} <= params.keys():
        raise _malformed("signature parameters are not created, nonce, keyid, tag (expires, alg)")
    components: list[Component] = [(name, dict(p)) for name, p in items]
    covered = {name for name, p in components if not p}
    required = {*REQUIRED_COMPONENTS, *(name for name, _ in _credential_components(headers))}
    if not required <= covered:
        raise _malformed(f"covered components lack {sorted(required - covered)}")
    tag = params["tag"]
    if not isinstance(tag, str) or _TAG.fullmatch(tag) is None:
        raise _malformed("tag is not 1 to 256 printable characters")
    expires = params.get("expires")
    return UnverifiedRequestSignature(
        SignatureFormat.RFC9421,
        tuple(components),
        dict(params),
        _kid(params["keyid"]),
        _int(params["created"], "created"),
        None if expires is None else _int(expires, "expires"),
        _nonce(params["nonce"], min_bytes=12),  # SEP-2752: at least 96 bits
        tag,
        _signature(signature),
        (SIGNATURE, {"req": True, "key": label}),
    )


def _parse_agent_signature(headers: Mapping[str, Sequence[str]]) -> UnverifiedRequestSignature:
    members = parse_field(_one(headers, AGENT_SIGNATURE) or "", "dictionary", name="Agent-Signature")
    if members.keys() != _AGENT_SIGNATURE_MEMBERS or any(p for _, p in members.values()):
        raise _malformed("Agent-Signature members are not exactly sig, keyid, created, expires, nonce")
    kid = _kid(members["keyid"][0])
    created = _int(members["created"][0], "created")
    expires = _int(members["expires"][0], "expires")
    nonce = _nonce(members["nonce"][0], min_bytes=_NONCE_BYTES)
    components = (*((name, {}) for name in REQUIRED_COMPONENTS), *_credential_components(headers))
    params = {"created": created, "expires": expires, "nonce": nonce, "keyid": kid, "tag": AGENT_SIGNATURE_TAG}
    return UnverifiedRequestSignature(
        SignatureFormat.AGENT_SIGNATURE,
        tuple(components),
        params,
        kid,
        created,
        expires,
        nonce,
        AGENT_SIGNATURE_TAG,
        _signature(members["sig"][0]),
        (AGENT_SIGNATURE, {"req": True}),
    )


def _parse_attp(headers: Mapping[str, Sequence[str]]) -> UnverifiedRequestSignature:
    version = _one(headers, ATTP_VERSION)
    if version not in (None, "1", "1.0"):
        raise McpsError(ErrorCode.NO_COMMON_VERSION, detail="X-ATTP-Version is not 1")
    signature, nonce, timestamp = (_one(headers, name) for name in (ATTP_SIGNATURE, ATTP_NONCE, ATTP_TIMESTAMP))
    if not headers.get(ATTP_TRUST) or signature is None or nonce is None or timestamp is None:
        raise _malformed("ATTP needs X-Agent-Trust, X-Agent-Signature, X-Agent-Nonce and X-Agent-Timestamp")
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise _malformed("X-Agent-Timestamp is not an integer")
    try:
        raw = b64u_decode(signature) if len(signature) <= 86 else b""
    except ValueError:
        raw = b""
    created = int(timestamp)
    nonce = _nonce(nonce, min_bytes=_NONCE_BYTES)
    components = (*((name, {}) for name in REQUIRED_COMPONENTS), (ATTP_TRUST, {}), *_credential_components(headers))
    params = {"created": created, "nonce": nonce, "tag": ATTP_TAG}
    return UnverifiedRequestSignature(
        SignatureFormat.ATTP,
        tuple(components),
        params,
        None,
        created,
        None,
        nonce,
        ATTP_TAG,
        _signature(raw),
        (ATTP_SIGNATURE, {"req": True}),
    )


# --- signing requests ---------------------------------------------------------------------------------------------


def sign_request(
    fmt: SignatureFormat,
    key: PrivateKey,
    view: MessageView,
    *,
    now: float,
    lifetime: int = DEFAULT_HTTP_LIFETIME,
    tag: str | None = None,
    extra_components: Sequence[str] = (),
    label: str = "sig1",
    nonce: str | None = None,
) -> dict[str, str]:
    """The signature headers for the request in ``view`` (which must already hold ``content-digest`` and any
    credential header). ``tag`` is the RFC 9421 client identifier (default: the key's kid); ``extra_components``
    are more header fields to cover (RFC 9421 only). ``nonce`` is for test vectors only: never reuse one."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be in 1..{MAX_LIFETIME} seconds")
    created = int(now)
    nonce = nonce or b64u_encode(os.urandom(_NONCE_BYTES))
    credentials = _credential_components(view.headers)
    if fmt is SignatureFormat.RFC9421:
        names = [*REQUIRED_COMPONENTS, *(name for name, _ in credentials), *extra_components]
        components: list[Component] = [(name, {}) for name in dict.fromkeys(names)]
        params: dict[str, Any] = {
            "created": created,
            "expires": created + lifetime,
            "nonce": nonce,
            "keyid": key.kid,
            "tag": tag or key.kid,
        }
        signature = key.sign(signature_base(view, components, params))
        return {
            "Signature-Input": f"{label}={serialize_inner_list(components, params)}",
            "Signature": f"{label}=:{_b64(signature)}:",
        }
    if fmt is SignatureFormat.AGENT_SIGNATURE:
        components = [*((name, {}) for name in REQUIRED_COMPONENTS), *credentials]
        params = {"created": created, "expires": created + lifetime, "nonce": nonce, "keyid": key.kid}
        params["tag"] = AGENT_SIGNATURE_TAG
        signature = key.sign(signature_base(view, components, params))
        value = f'sig=:{_b64(signature)}:, keyid="{key.kid}", created={created}, expires={created + lifetime}, '
        return {"Agent-Signature": value + f'nonce="{nonce}"'}
    if not view.headers.get(ATTP_TRUST):
        raise ValueError("ATTP needs the passport in X-Agent-Trust")
    components = [*((name, {}) for name in REQUIRED_COMPONENTS), (ATTP_TRUST, {}), *credentials]
    params = {"created": created, "nonce": nonce, "tag": ATTP_TAG}
    signature = key.sign(signature_base(view, components, params))
    return {
        "X-Agent-Signature": b64u_encode(signature),
        "X-Agent-Nonce": nonce,
        "X-Agent-Timestamp": str(created),
        "X-ATTP-Version": "1",
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")  # RFC 8941 byte sequences: standard base64


# --- signed responses ---------------------------------------------------------------------------------------------


def expected_response_components(request: UnverifiedRequestSignature | Component) -> tuple[Component, ...]:
    """The components a response to this request covers, in order: status, its body's digest, and the request's
    method, target URI and signature (``req``)."""
    binding = request if isinstance(request, tuple) else request.binding
    return (
        ("@status", {}),
        (CONTENT_DIGEST, {}),
        ("@method", {"req": True}),
        ("@target-uri", {"req": True}),
        binding,
    )


@dataclass(frozen=True, slots=True)
class UnverifiedResponseSignature:
    components: tuple[Component, ...]
    params: Mapping[str, Any]
    kid: KeyId
    created: int
    expires: int
    signature: bytes

    def base(self, view: MessageView) -> bytes:
        return signature_base(view, self.components, self.params)


def sign_response(
    key: PrivateKey,
    view: MessageView,
    binding: Component,
    *,
    now: float,
    lifetime: int = DEFAULT_HTTP_LIFETIME,
    nonce: str | None = None,
) -> dict[str, str]:
    """``Signature-Input`` and ``Signature`` for the response in ``view`` (with its ``content-digest`` and its
    ``request``), bound to the request through ``binding``."""
    created = int(now)
    components = expected_response_components(binding)
    params = {
        "created": created,
        "expires": created + lifetime,
        "nonce": nonce or b64u_encode(os.urandom(_NONCE_BYTES)),
        "keyid": key.kid,
        "tag": RESPONSE_TAG,
    }
    signature = key.sign(signature_base(view, components, params))
    return {
        "Signature-Input": f"{RESPONSE_LABEL}={serialize_inner_list(components, params)}",
        "Signature": f"{RESPONSE_LABEL}=:{_b64(signature)}:",
    }


def parse_response_signature(headers: Mapping[str, Sequence[str]], binding: Component) -> UnverifiedResponseSignature:
    """The response's signature, which must cover exactly :func:`expected_response_components` (MCPS-026 when the
    response carries none, MCPS-027 when it is malformed or covers anything else, MCPS-012 when it is bound to
    another signature of the request)."""
    if not headers.get(SIGNATURE_INPUT) and not headers.get(SIGNATURE):
        raise McpsError(ErrorCode.SIGNATURE_MISSING, "response is not signed")
    inputs = parse_field(_one(headers, SIGNATURE_INPUT) or "", "dictionary", name="Signature-Input")
    values = parse_field(_one(headers, SIGNATURE) or "", "dictionary", name="Signature")
    if len(inputs) != 1 or inputs.keys() != values.keys():
        raise _malformed("response must hold one signature with one label")
    label = next(iter(inputs))
    items, params = inputs[label]
    if not isinstance(items, list) or params.keys() != _RESPONSE_PARAMS or params.get("tag") != RESPONSE_TAG:
        raise _malformed("response signature parameters are not created, expires, nonce, keyid, tag")
    components = tuple((name, dict(p)) for name, p in items)
    expected = expected_response_components(binding)
    if components[:-1] != expected[:-1] or len(components) != len(expected):
        raise _malformed("response signature does not cover the profile's components")
    if components[-1] != expected[-1]:
        raise McpsError(ErrorCode.TRANSCRIPT_MISMATCH, detail="response is bound to another request signature")
    signature, signature_params = values[label]
    if signature_params:
        raise _malformed("the Signature member has parameters")
    _nonce(params["nonce"], min_bytes=_NONCE_BYTES)
    return UnverifiedResponseSignature(
        components,
        dict(params),
        _kid(params["keyid"]),
        _int(params["created"], "created"),
        _int(params["expires"], "expires"),
        _signature(signature),
    )
