"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs, and their verifiers.

Hashing (RFC 9162 §2.1.1), with SHA-256:

* leaf hash ``H(0x00 ‖ data)``; interior node ``H(0x01 ‖ left ‖ right)``;
* the hash of the empty tree is ``H("")``;
* ``MTH(D[n])`` splits ``D`` at ``k``, the largest power of two smaller than ``n``.

Proof *generation* reads hashes through a :class:`NodeSource` (a store, or a list of leaf hashes in memory) so
that it costs O(log n) reads of at most 256 hashes each when the store keeps the hashes of complete subtrees
at levels 8, 16, 24, … (:data:`STORED_LEVEL_STEP`). Proof *verification* follows RFC 9162 §2.1.3.2 and §2.1.4.2
step by step and needs nothing but the proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, Protocol

from mcps.core.errors import ErrorCode, McpsError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "STORED_LEVEL_STEP",
    "CompactRange",
    "ListNodeSource",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
STORED_LEVEL_STEP: Final = 8
"""Stores keep the hash of every complete subtree whose level (log2 of its size) is a positive multiple of 8."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``H(0x00 ‖ data)`` (RFC 9162 §2.1.1)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``H(0x01 ‖ left ‖ right)`` (RFC 9162 §2.1.1)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _invalid(detail: str) -> McpsError:
    return McpsError(ErrorCode.AUDIT_INVALID, "Merkle proof does not verify", detail=detail)


class CompactRange:
    """The right frontier of a growing tree: the roots of its complete subtrees, largest first.

    Appending a leaf costs one hash amortised; :meth:`root` costs one hash per subtree (≤ log2 n). Each merge
    that completes a subtree at a stored level is reported by :meth:`append`, so stores can keep those hashes.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError("a compact range of size n holds popcount(n) hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the ``(level, index, hash)`` of completed subtrees at stored levels."""
        hashes = self.hashes
        completed: list[tuple[int, int, bytes]] = []
        h = leaf
        level = 0
        n = self.size
        while n & 1:
            h = node_hash(hashes.pop(), h)
            level += 1
            n >>= 1
            if level % STORED_LEVEL_STEP == 0:
                completed.append((level, n, h))  # n is now the index of this subtree within its level
        hashes.append(h)
        self.size += 1
        return completed

    def push(self, leaf: bytes) -> None:
        """:meth:`append` for a reader that keeps no stored levels (verification): the same frontier, less work."""
        hashes = self.hashes
        h = leaf
        n = self.size
        while n & 1:
            h = _sha256(b"\x01" + hashes.pop() + h).digest()
            n >>= 1
        hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        """``MTH`` of the leaves appended so far."""
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes."""
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()


class NodeSource(Protocol):
    """Where proofs read hashes from."""

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``start`` … ``end - 1``."""
        ...

    def stored_nodes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes of the complete subtrees at ``level`` (a multiple of 8) with indexes ``start`` … ``end - 1``."""
        ...


class ListNodeSource:
    """A :class:`NodeSource` over leaf hashes held in memory (tests, small logs); it stores no nodes."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves = list(leaves)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self._leaves[start:end]

    def stored_nodes(self, level: int, start: int, end: int) -> list[bytes]:
        size = 1 << level
        return [root_from_leaves(self._leaves[i * size : (i + 1) * size]) for i in range(start, end)]


def _fold_perfect(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def _perfect_hash(source: NodeSource, start: int, level: int) -> bytes:
    """Hash of the complete subtree of ``2**level`` leaves starting at ``start`` (aligned)."""
    base = level - level % STORED_LEVEL_STEP
    count = 1 << (level - base)
    first = start >> base
    parts = source.leaf_hashes(first, first + count) if base == 0 else source.stored_nodes(base, first, first + count)
    if len(parts) != count:
        raise McpsError(ErrorCode.AUDIT_INVALID, "audit log is incomplete", detail=f"missing hashes near {start}")
    return _fold_perfect(parts)


def range_hash(source: NodeSource, start: int, end: int) -> bytes:
    """``MTH(D[start:end])`` for a range that is a node of the tree (``start`` aligned to its left subtree)."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return _perfect_hash(source, start, n.bit_length() - 1)
    k = _split(n)
    return node_hash(range_hash(source, start, start + k), range_hash(source, start + k, end))


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """``PATH(m, D[n])`` (RFC 9162 §2.1.3.1) for leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError("index must be inside the tree")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:  # iterative form of the recursion; siblings collected top-down, returned bottom-up
        k = _split(end - start)
        if index < start + k:
            proof.append(range_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(source, start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """``PROOF(m, D[n])`` (RFC 9162 §2.1.4.1); empty when ``old_size`` is 0 or equals ``new_size``."""
    if not 0 <= old_size <= new_size:
        raise ValueError("need 0 <= old_size <= new_size")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:  # SUBPROOF(m, D[start:end], complete), iteratively; nodes collected bottom-up at the end
        n = end - start
        if m == n:
            if not complete:
                proof.append(range_hash(source, start, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(range_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(source, start, start + k))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2. Returns ``None`` or raises MCPS-033."""
    if not 0 <= index < size:  # step 1
        raise _invalid("leaf index is outside the tree")
    if any(len(p) != HASH_SIZE for p in proof):
        raise _invalid("proof hash of the wrong length")
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4.1
            raise _invalid("inclusion proof is too long")
        if fn & 1 or fn == sn:  # 4.2
            r = node_hash(p, r)
            if not fn & 1:  # 4.2.1
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:  # 4.3
            r = node_hash(r, p)
        fn >>= 1  # 4.4
        sn >>= 1
    if sn != 0 or r != root:  # step 5
        raise _invalid("inclusion proof does not lead to the root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2. Returns ``None`` or raises MCPS-033."""
    if not 0 <= old_size <= new_size:
        raise _invalid("old tree is larger than the new tree")
    if any(len(p) != HASH_SIZE for p in proof):
        raise _invalid("proof hash of the wrong length")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise _invalid("equal sizes need an empty proof and equal roots")
        return
    if old_size == 0:
        if proof:
            raise _invalid("a proof from the empty tree must be empty")
        return
    if not proof:  # step 1
        raise _invalid("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: first is an exact power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    if fn & 1:  # step 4
        while fn & 1:
            fn >>= 1
            sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6.1
            raise _invalid("consistency proof is too long")
        if fn & 1 or fn == sn:  # 6.2
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:  # 6.2.1
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:  # 6.3
            sr = node_hash(sr, c)
        fn >>= 1  # 6.4
        sn >>= 1
    if fr != old_root or sr != new_root or sn != 0:  # step 7
        raise _invalid("consistency proof does not match the roots")
