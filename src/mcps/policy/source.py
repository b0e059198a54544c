"""Where things are in a TOML file: line numbers for policy errors (``tomllib`` gives values, not positions).

The file's table headers (``[a.b]``, ``[[a.b]]``) are found line by line; each header line is parsed by ``tomllib``
itself, so quoting and whitespace in keys are handled as TOML does, and a line that only looks like a header (in
a multi-line array or string) is not taken for one unless it parses as one. Array-of-tables headers are numbered
in order, as TOML numbers them. A value is located at its key's line within the span of the innermost header that
holds it, else at that header's line. A path no header holds (inline tables, dotted keys) is located at the line
of its last key if that key appears once in the file, else not at all.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["SourceMap"]

_HEADER: Final = re.compile(r"\s*\[")

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Header:
    line: int
    path: Path
    """The header's full path with array-of-tables indices, e.g. ``("servers", "pay", "tools", 2, "spend")``."""


def _header_path(text: str) -> tuple[tuple[str, ...], bool] | None:
    try:
        parsed: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    keys: list[str] = []
    is_array = False
    while isinstance(parsed, dict) and len(parsed) == 1:
        key, parsed = next(iter(parsed.items()))
        keys.append(key)
        if isinstance(parsed, list) and len(parsed) == 1:
            is_array, parsed = True, parsed[0]
            if parsed:
                return None
            break
    if not keys or (isinstance(parsed, dict) and parsed):
        return None
    return tuple(keys), is_array


class SourceMap:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._headers: list[_Header] = []
        counts: dict[Path, int] = {}
        for number, line in enumerate(self.lines, start=1):
            if not _HEADER.match(line):
                continue
            found = _header_path(line.strip())
            if found is None:
                continue
            keys, is_array = found
            full: list[str | int] = []
            for depth, key in enumerate(keys, start=1):
                full.append(key)
                if (depth < len(keys) or not is_array) and tuple(full) in counts:
                    full.append(counts[tuple(full)] - 1)  # inside the latest element of that array of tables
            if is_array:
                array = tuple(full)
                counts[array] = counts.get(array, 0) + 1
                full.append(counts[array] - 1)
            self._headers.append(_Header(number, tuple(full)))

    def line_of(self, path: Path) -> int | None:
        """The line that best locates ``path`` (keys and array indices from the top of the document)."""
        best: _Header | None = None
        for header in self._headers:
            if path[: len(header.path)] == header.path and (best is None or len(header.path) > len(best.path)):
                best = header
        if best is None:
            return self._unique_key_line(path)
        rest = path[len(best.path) :]
        if rest and isinstance(rest[0], str):
            end = next((h.line for h in self._headers if h.line > best.line), len(self.lines) + 1)
            found = self._key_line(rest[0], best.line + 1, end)
            if found is not None:
                return found
        return best.line

    def _key_line(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]")
        for number in range(start, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return None

    def _unique_key_line(self, path: Path) -> int | None:
        keys = [part for part in path if isinstance(part, str)]
        if not keys:
            return None
        pattern = re.compile(rf"(?:^|[\s{{,.]){re.escape(keys[-1])}\s*=")
        hits = [number for number, line in enumerate(self.lines, start=1) if pattern.search(line)]
        return hits[0] if len(hits) == 1 else None
