"""Trust levels L0–L4 (DESIGN.md §2.4): an ordered type, so ``level >= TrustLevel.L2`` reads as it should."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["DEFAULT_MIN_LEVEL", "TrustLevel"]


class TrustLevel(enum.IntEnum):
    """How far an agent is trusted. Higher is more; comparisons follow the numbers."""

    L0 = 0
    """Anonymous or self-asserted (a self-signed passport, whatever it claims)."""
    L1 = 1
    """Identified by a known issuer."""
    L2 = 2
    """Verified by a trust anchor: the production default minimum."""
    L3 = 3
    """L2, plus an attested origin/owner and a passed security scan."""
    L4 = 4
    """L3, plus a hardware-held key; revocation is always checked fresh (mcps checks it fresh at every level)."""

    @classmethod
    def parse(cls, value: object) -> TrustLevel:
        """A level from its wire form, the integer 0–4, or a :class:`TrustLevel`; raises ``ValueError`` otherwise.

        ``bool`` is refused: in Python ``True == 1``, so ``TrustLevel(True)`` would be L1."""
        if isinstance(value, TrustLevel):
            return value
        if type(value) is not int or not 0 <= value <= 4:
            raise ValueError("a trust level is an integer 0..4")
        return cls(value)

    def __str__(self) -> str:
        return self.name


DEFAULT_MIN_LEVEL: Final = TrustLevel.L2
"""The minimum level a verifier requires unless configured otherwise (production default)."""
