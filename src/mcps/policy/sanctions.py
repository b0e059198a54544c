"""A compliance hook: screen named arguments against a sanctions list in the OFAC SDN CSV layout.

The list is OFAC's legacy delimited release (as published by the US Treasury): ``sdn.csv`` has no header row and
12 columns — ``ent_num``, ``SDN_Name``, ``SDN_Type``, ``Program``, ``Title``, ``Call_Sign``, ``Vess_type``,
``Tonnage``, ``GRT``, ``Vess_flag``, ``Vess_owner``, ``Remarks`` — with ``-0-`` for an empty value; the optional
``alt.csv`` holds alternate names, 5 columns — ``ent_num``, ``alt_num``, ``alt_type``, ``alt_name``,
``alt_remarks``. Only the entry number and the names are used.

Matching is fuzzy (rapidfuzz): names and screened values are normalised (accents removed, case folded, punctuation
to spaces) and compared with ``token_sort_ratio`` (word order does not matter: "DOE, John" is "John Doe"; the option
``scorer`` may name ``token_set_ratio``, which also matches a value that is a part of a listed name — more matches,
more false ones — or ``WRatio``); a score at or above ``threshold`` (0–100, default 90) is a match and the call is
denied. A value that cannot be screened
(not a string, a number or a list of them) also denies: screening fails closed.

In a policy file::

    hooks = [{ hook = "mcps.policy.sanctions:SanctionsScreen", args = ["counterparty"], list = "sdn.csv",
               alt_list = "alt.csv", threshold = 90 }]
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rapidfuzz import fuzz, process

from mcps.policy.model import CallContext, Objection, Reason

__all__ = ["SanctionsScreen", "SdnName", "load_sdn", "normalise"]

NULL: Final = "-0-"
SDN_COLUMNS: Final = 12
ALT_COLUMNS: Final = 5
DEFAULT_THRESHOLD: Final = 90.0
_NOT_WORD: Final = re.compile(r"[\W_]+")
_OPTIONS: Final = frozenset({"args", "list", "alt_list", "threshold", "scorer"})
SCORERS: Final = {
    "token_sort_ratio": fuzz.token_sort_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
    "WRatio": fuzz.WRatio,
}
"""The rapidfuzz scorers a policy may name (``scorer = "..."``); the default is ``token_sort_ratio``."""


@dataclass(frozen=True, slots=True)
class SdnName:
    """One name on the list (a primary name or an alternate one) and the entry it belongs to."""

    entry: int
    name: str


def normalise(name: str) -> str:
    """Accents removed, case folded, anything but letters and digits turned into single spaces."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_WORD.sub(" ", plain.casefold()).strip()


def _rows(path: Path, columns: int) -> Iterable[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = path.read_text(encoding="cp1252")
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or (len(row) == 1 and row[0].strip() in ("", "\x1a")):  # blank lines, the DOS end-of-file mark
            continue
        if len(row) != columns:
            raise ValueError(f"{path.name} line {number}: {len(row)} columns, the SDN layout has {columns}")
        yield number, [value.strip() for value in row]


def load_sdn(sdn: Path, alt: Path | None = None) -> list[SdnName]:
    """Every name of ``sdn`` (``SDN_Name``) and of ``alt`` (``alt_name``); ``ValueError`` for a malformed file."""
    names: list[SdnName] = []
    for number, row in _rows(sdn, SDN_COLUMNS):
        names.append(_name(sdn, number, row[0], row[1]))
    if alt is not None:
        for number, row in _rows(alt, ALT_COLUMNS):
            names.append(_name(alt, number, row[0], row[3]))
    if not names:
        raise ValueError(f"{sdn.name} holds no names")
    return names


def _name(path: Path, number: int, entry: str, name: str) -> SdnName:
    if not entry.isdigit():
        raise ValueError(f"{path.name} line {number}: ent_num {entry!r} is not a number")
    if not name or name == NULL:
        raise ValueError(f"{path.name} line {number}: the name is empty")
    return SdnName(int(entry), name)


class SanctionsScreen:
    """Deny a call when any screened argument matches a listed name at or above ``threshold``."""

    def __init__(
        self,
        names: Sequence[SdnName],
        *,
        args: Sequence[str],
        threshold: float = DEFAULT_THRESHOLD,
        scorer: str = "token_sort_ratio",
    ) -> None:
        if not args or not all(isinstance(arg, str) and arg for arg in args):
            raise ValueError("args must name at least one argument to screen")
        if not 0 < threshold <= 100:
            raise ValueError("threshold must be in (0, 100]")
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}")
        self.scorer = scorer
        self._scorer = SCORERS[scorer]
        self.args = tuple(args)
        self.threshold = float(threshold)
        pairs = [(normalise(item.name), item) for item in names]
        self._names = [item for text, item in pairs if text]
        self._choices = [text for text, _ in pairs if text]

    @classmethod
    def from_policy(cls, options: Mapping[str, Any], *, base_dir: Path) -> SanctionsScreen:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_OPTIONS))}")
        args = options.get("args")
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise ValueError("args must be a list of argument names")
        threshold = options.get("threshold", DEFAULT_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError("threshold must be a number")  # noqa: TRY004 - from_policy reports bad options so
        scorer = options.get("scorer", "token_sort_ratio")
        if not isinstance(scorer, str):
            raise ValueError("scorer must be a string")  # noqa: TRY004
        paths: list[Path | None] = []
        for option in ("list", "alt_list"):
            value = options.get(option)
            if value is None:
                paths.append(None)
            elif isinstance(value, str) and value:
                paths.append(base_dir / value)
            else:
                raise ValueError(f"{option} must be a file name")
        if paths[0] is None:
            raise ValueError("list (the sdn.csv file) is required")
        try:
            names = load_sdn(paths[0], paths[1])
        except OSError as exc:
            raise ValueError(f"cannot read the sanctions list: {exc.strerror or exc}: {exc.filename}") from None
        return cls(names, args=args, threshold=threshold, scorer=scorer)

    async def screen(self, call: CallContext, *, now: float) -> Objection | None:
        for arg in self.args:
            if arg not in call.arguments:
                continue
            values = _screenable(call.arguments[arg])
            if values is None:
                return Objection(Reason.COMPLIANCE_FAILED.value, f"argument {arg!r} cannot be screened (not text)")
            for value in values:
                found = self.match(value)
                if found is not None:
                    item, score = found
                    detail = f"argument {arg!r} matches SDN entry {item.entry} ({item.name!r}), score {score:.0f}"
                    return Objection(Reason.COMPLIANCE.value, f"{detail} >= {self.threshold:g}")
        return None

    def match(self, value: str) -> tuple[SdnName, float] | None:
        """The best listed name for ``value`` scoring at least ``threshold``, with its score; else ``None``."""
        query = normalise(value)
        if not query:
            return None
        best = process.extractOne(
            query, self._choices, scorer=self._scorer, processor=None, score_cutoff=self.threshold
        )
        if best is None:
            return None
        _, score, index = best
        return self._names[index], float(score)


def _screenable(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None
