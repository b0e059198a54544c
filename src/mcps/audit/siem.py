"""SIEM formatters: one audit entry to one line of CEF, LEEF 2.0 or RFC 5424 syslog (SPEC.md "Audit log", A.9).

Each formatter takes a parsed entry (:func:`mcps.audit.entry.parse_entry`, which carries its ``index``) and returns
one line without its line terminator. They are pure and total: a hand-edited row with odd member types still
formats (non-string values are written as compact JSON), and every character a format cannot carry on one line is
either escaped with that format's own rule or, when the format has no rule for it, replaced by U+FFFD.

Only references leave the box: hashes of arguments and results, never ``arguments``, ``result`` or ``data``; the
full entry is in the log and :mod:`mcps.audit.evidence` proves it by ``index``.

Severity: a denial is ``high`` (CEF/LEEF 7, syslog warning), an error code without a denial ``medium`` (5, notice),
anything else ``low`` (3, informational). Syslog facility 13 is "log audit" (RFC 5424 §6.2.1, table 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from mcps._version import __version__

__all__ = [
    "FORMATTERS",
    "SYSLOG_SD_ID",
    "cef_line",
    "leef_line",
    "safe_syslog_name",
    "severity",
    "syslog_line",
]

_VENDOR: Final = "mcps"
_PRODUCT: Final = "mcps"
SYSLOG_SD_ID: Final = "mcps@32473"
"""SD-ID of the structured data element (RFC 5424 §7.2.2; 32473 is the documentation PEN of RFC 5612)."""
_FACILITY_LOG_AUDIT: Final = 13
_SYSLOG_SEVERITY: Final = {7: 4, 5: 5, 3: 6}  # CEF severity -> RFC 5424 severity (warning, notice, info)
_NILVALUE: Final = "-"
_REPLACEMENT: Final = "\ufffd"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_PRINTUSASCII: Final = re.compile(r"[\x21-\x7e]+")

# (entry member, CEF extension key, CEF custom label or None, LEEF / syslog name), in output order.
_FIELDS: Final = (
    ("decision", "act", None, "decision"),
    ("code", "reason", None, "code"),
    ("agent", "suser", None, "agent"),
    ("tool", "cs1", "tool", "tool"),
    ("method", "cs2", "method", "method"),
    ("request_id", "cs3", "requestId", "requestId"),
    ("kid", "cs4", "kid", "kid"),
    ("upstream", "cs5", "upstream", "upstream"),
    ("args_hash", "cs6", "argsHash", "argsHash"),
    ("result_hash", "flexString1", "resultHash", "resultHash"),
    ("latency_ms", "cn1", "latencyMs", "latencyMs"),
    ("trust_level", "cn2", "trustLevel", "trustLevel"),
)


def severity(entry: Mapping[str, Any]) -> int:
    """CEF severity (0–10) of an entry: 7 for a denial, 5 for an error code, 3 otherwise."""
    if entry.get("decision") == "deny" or entry.get("event") == "deny":
        return 7
    if entry.get("code") is not None:
        return 5
    return 3


def _text(value: object) -> str:
    """A member as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _present(entry: Mapping[str, Any]) -> list[tuple[str, str, str | None, str, str]]:
    return [(m, cef, label, name, _text(entry[m])) for m, cef, label, name in _FIELDS if entry.get(m) is not None]


def _outcome(entry: Mapping[str, Any]) -> str | None:
    if entry.get("decision") == "deny" or entry.get("code") is not None:
        return "failure"
    if entry.get("decision") == "allow":
        return "success"
    return None


def _iso_time(time_ms: object) -> str | None:
    """RFC 3339 UTC timestamp with milliseconds (RFC 5424 §6.2.3), or None when ``time_ms`` is not a usable time."""
    if type(time_ms) is not int:
        return None
    seconds, millis = divmod(time_ms, 1000)
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if not 1 <= moment.year <= 9999:  # pragma: no cover - fromtimestamp raises first on every platform we run
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


# --- CEF (ArcSight "Implementing ArcSight CEF", revision 25) ------------------------------------------------------


def _cef_header(value: str) -> str:
    """Header field: ``\\`` and ``|`` are backslash-escaped; newlines are only allowed in extension values."""
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return _CONTROL.sub(_REPLACEMENT, value)


def _cef_value(value: str) -> str:
    """Extension value: ``\\`` and ``=`` are backslash-escaped, CR and LF are written ``\\r`` and ``\\n``."""
    value = value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")
    return _CONTROL.sub(_REPLACEMENT, value)


def cef_line(entry: Mapping[str, Any], *, version: str = __version__) -> str:
    """``CEF:0|mcps|mcps|<version>|<event>|<name>|<severity>|<extension>`` for one entry."""
    event = _text(entry.get("event", "unknown"))
    name = f"{event} {_text(entry['tool'])}" if entry.get("tool") is not None else event
    header = [_VENDOR, _PRODUCT, version, event, name]
    pairs: list[tuple[str, str]] = [("externalId", _text(entry.get("index"))), ("rt", _text(entry.get("time")))]
    for _member, key, label, _name, value in _present(entry):
        if label is not None:
            pairs.append((f"{key}Label", label))
        pairs.append((key, value))
    outcome = _outcome(entry)
    if outcome is not None:
        pairs.append(("outcome", outcome))
    extension = " ".join(f"{key}={_cef_value(value)}" for key, value in pairs)
    return "CEF:0|" + "|".join(_cef_header(h) for h in header) + f"|{severity(entry)}|{extension}"


# --- LEEF 2.0 (IBM QRadar "Log Event Extended Format", version 2) -------------------------------------------------

_LEEF_DELIMITER: Final = "\t"
_LEEF_DELIMITER_DECLARED: Final = "x09"
_LEEF_TIME_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def _leef_header(value: str) -> str:
    """Header field: ``\\`` and ``|`` are backslash-escaped; control characters cannot appear."""
    return _cef_header(value)


def _leef_value(value: str) -> str:
    """Attribute value: ``\\`` is doubled; the delimiter (tab), CR and LF are written ``\\t``, ``\\r``, ``\\n``.

    LEEF splits attributes on the delimiter and a key from its value on the first ``=``, so ``=`` inside a value
    needs no escape; a raw tab in a value would start a forged attribute, so it never appears.
    """
    value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
    return _CONTROL.sub(_REPLACEMENT, value)


def leef_line(entry: Mapping[str, Any], *, version: str = __version__) -> str:
    """``LEEF:2.0|mcps|mcps|<version>|<event>|x09|`` then tab-separated ``key=value`` attributes."""
    event = _text(entry.get("event", "unknown"))
    header = [_VENDOR, _PRODUCT, version, event]
    pairs: list[tuple[str, str]] = [("index", _text(entry.get("index")))]
    when = _iso_time(entry.get("time"))
    if when is not None:
        pairs += [("devTime", when), ("devTimeFormat", _LEEF_TIME_FORMAT)]
    pairs += [("cat", event), ("sev", str(severity(entry)))]
    for member, _key, _label, name, value in _present(entry):
        pairs.append(("usrName" if member == "agent" else name, value))
    attributes = _LEEF_DELIMITER.join(f"{key}={_leef_value(value)}" for key, value in pairs)
    return "LEEF:2.0|" + "|".join(_leef_header(h) for h in header) + f"|{_LEEF_DELIMITER_DECLARED}|{attributes}"


# --- RFC 5424 syslog with structured data --------------------------------------------------------------------------


def safe_syslog_name(value: object, *, max_length: int = 255) -> str:
    """A HOSTNAME or PROCID as RFC 5424 §6.2.4/§6.2.6 allow it (1..max PRINTUSASCII), else the NILVALUE ``-``."""
    if not isinstance(value, str) or len(value) > max_length or _PRINTUSASCII.fullmatch(value) is None:
        return _NILVALUE
    return value


def _sd_value(value: str) -> str:
    """PARAM-VALUE (RFC 5424 §6.3.3): ``"``, ``\\`` and ``]`` are backslash-escaped; UTF-8 passes through.

    The RFC has no escape for control characters and a line-framed transport would split on CR or LF, so they are
    replaced by U+FFFD.
    """
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return _CONTROL.sub(_REPLACEMENT, value)


def syslog_line(
    entry: Mapping[str, Any],
    *,
    hostname: str | None = None,
    procid: str | None = None,
    facility: int = _FACILITY_LOG_AUDIT,
) -> str:
    """``<PRI>1 TIMESTAMP HOSTNAME mcps PROCID MSGID [mcps@32473 index="…" …] MSG`` (RFC 5424 §6).

    MSGID is the entry's event (``[a-z][a-z0-9_.-]{0,31}``, within MSGID's 32 PRINTUSASCII); MSG is a short ASCII
    summary, so it needs no BOM (§6.4). Absent or unusable header fields are the NILVALUE ``-``.
    """
    if type(facility) is not int or not 0 <= facility <= 23:
        raise ValueError("syslog facility must be 0..23")
    pri = facility * 8 + _SYSLOG_SEVERITY[severity(entry)]
    event = _text(entry.get("event", ""))
    msgid = safe_syslog_name(event, max_length=32)
    params: list[tuple[str, str]] = [("index", _text(entry.get("index"))), ("event", event)]
    params += [(name, value) for _member, _key, _label, name, value in _present(entry)]
    if entry.get("prev") is not None:
        params.append(("prev", _text(entry["prev"])))
    sd = "[" + SYSLOG_SD_ID + "".join(f' {name}="{_sd_value(value)}"' for name, value in params) + "]"
    summary = " ".join(
        part
        for part in ("mcps audit entry", _text(entry.get("index")), msgid, safe_syslog_name(entry.get("decision")))
        if part != _NILVALUE
    )
    header = [
        f"<{pri}>1",
        _iso_time(entry.get("time")) or _NILVALUE,
        safe_syslog_name(hostname),
        "mcps",
        safe_syslog_name(procid, max_length=128),
        msgid,
    ]
    return " ".join(header) + " " + sd + " " + _CONTROL.sub(_REPLACEMENT, summary)


FORMATTERS: Final[Mapping[str, Callable[[Mapping[str, Any]], str]]] = {
    "cef": cef_line,
    "leef": leef_line,
    "syslog": syslog_line,
}
"""Formatters by ``mcps audit export --format`` name, with their default options."""
