"""RFC 9162 hashing and proofs: reference roots from transparency-dev/merkle, exhaustive proof round trips,
mutations refused, and proofs from stored level-8 nodes equal to proofs from leaves."""

from __future__ import annotations

import pytest

from mcps.audit.merkle import (
    EMPTY_ROOT,
    STORED_LEVEL_STEP,
    CompactRange,
    ListNodeSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    range_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from mcps.core.errors import ErrorCode, McpsError

# transparency-dev/merkle testonly/constants.go (Apache-2.0): leaf inputs and the roots of every prefix.
LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in LEAF_INPUTS]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1 (recursive), for comparison."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    from mcps.audit.merkle import node_hash  # noqa: PLC0415

    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


@pytest.mark.parametrize("size", range(9))
def test_reference_roots(size: int) -> None:
    assert root_from_leaves(LEAVES[:size]).hex() == ROOTS[size]


def test_compact_range_matches_recursive_definition() -> None:
    leaves = _leaves(70)
    tree, pushed = CompactRange(), CompactRange()
    for n, leaf in enumerate(leaves, 1):
        tree.append(leaf)
        pushed.push(leaf)
        assert tree.root() == pushed.root() == _reference_root(leaves[:n])
        assert (pushed.size, pushed.hashes) == (tree.size, tree.hashes)


def test_compact_range_reports_stored_levels() -> None:
    leaves = _leaves(1 << 9)
    tree = CompactRange()
    completed = [node for leaf in leaves for node in tree.append(leaf)]
    assert [(level, index) for level, index, _ in completed] == [(8, 0), (8, 1)]
    assert completed[1][2] == _reference_root(leaves[256:512])
    assert STORED_LEVEL_STEP == 8


def test_compact_range_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="popcount"):
        CompactRange(3, [EMPTY_ROOT])


def test_all_proofs_round_trip_small_trees() -> None:
    for size in range(1, 33):
        leaves = _leaves(size)
        source = ListNodeSource(leaves)
        root = root_from_leaves(leaves)
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_proof(source, index, size), root)
        for old in range(size + 1):
            old_root = root_from_leaves(leaves[:old])
            verify_consistency(old, size, old_root, root, consistency_proof(source, old, size))


class _StoredNodes(ListNodeSource):
    """Serves level-8 nodes from what CompactRange reported, like a store does, and counts what it reads."""

    def __init__(self, leaves: list[bytes]) -> None:
        super().__init__(leaves)
        tree = CompactRange()
        self.nodes = {(lv, i): h for leaf in leaves for lv, i, h in tree.append(leaf)}
        self.read = 0

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        self.read += end - start
        return super().leaf_hashes(start, end)

    def stored_nodes(self, level: int, start: int, end: int) -> list[bytes]:
        self.read += end - start
        return [self.nodes[(level, i)] for i in range(start, end) if (level, i) in self.nodes]


def test_proofs_from_stored_nodes_equal_proofs_from_leaves() -> None:
    leaves = _leaves(3000)
    plain, stored = ListNodeSource(leaves), _StoredNodes(leaves)
    for index, size in [(0, 3000), (2999, 3000), (1234, 2048), (700, 1500)]:
        assert inclusion_proof(stored, index, size) == inclusion_proof(plain, index, size)
    for old, new in [(1, 3000), (256, 3000), (1000, 2999), (2047, 2048)]:
        assert consistency_proof(stored, old, new) == consistency_proof(plain, old, new)
    stored.read = 0
    range_hash(stored, 0, 3000)
    assert stored.read < 3000 // 8  # mostly level-8 nodes, not leaves


def test_missing_stored_hashes_are_reported() -> None:
    leaves = _leaves(600)
    stored = _StoredNodes(leaves)
    stored.nodes.clear()
    with pytest.raises(McpsError) as caught:
        inclusion_proof(stored, 0, 600)
    assert caught.value.code is ErrorCode.AUDIT_INVALID


def _refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(McpsError) as caught:
        call()
    assert caught.value.code is ErrorCode.AUDIT_INVALID


def test_inclusion_mutations_are_refused() -> None:
    leaves = _leaves(13)
    source = ListNodeSource(leaves)
    root = root_from_leaves(leaves)
    proof = inclusion_proof(source, 5, 13)
    _refused(lambda: verify_inclusion(leaves[6], 5, 13, proof, root))  # wrong leaf
    _refused(lambda: verify_inclusion(leaves[5], 6, 13, proof, root))  # wrong index
    _refused(lambda: verify_inclusion(leaves[5], 5, 40, proof, root))  # wrong size
    _refused(lambda: verify_inclusion(leaves[5], 5, 13, proof[:-1], root))  # short
    _refused(lambda: verify_inclusion(leaves[5], 5, 13, [*proof, root], root))  # long
    _refused(lambda: verify_inclusion(leaves[5], 5, 13, [proof[0][:31], *proof[1:]], root))  # bad hash length
    _refused(lambda: verify_inclusion(leaves[5], 13, 13, proof, root))  # index outside the tree
    flipped = [bytes([proof[1][0] ^ 1]) + proof[1][1:] if i == 1 else p for i, p in enumerate(proof)]
    _refused(lambda: verify_inclusion(leaves[5], 5, 13, flipped, root))


def test_consistency_mutations_are_refused() -> None:
    leaves = _leaves(21)
    source = ListNodeSource(leaves)
    old_root, new_root = root_from_leaves(leaves[:6]), root_from_leaves(leaves)
    proof = consistency_proof(source, 6, 21)
    _refused(lambda: verify_consistency(6, 21, new_root, new_root, proof))
    _refused(lambda: verify_consistency(6, 21, old_root, old_root, proof))
    _refused(lambda: verify_consistency(7, 21, old_root, new_root, proof))
    _refused(lambda: verify_consistency(6, 21, old_root, new_root, proof[:-1]))
    _refused(lambda: verify_consistency(6, 21, old_root, new_root, [*proof, old_root]))
    _refused(lambda: verify_consistency(6, 21, old_root, new_root, []))
    _refused(lambda: verify_consistency(21, 6, new_root, old_root, proof))
    _refused(lambda: verify_consistency(21, 21, new_root, old_root, []))  # equal sizes, other roots
    _refused(lambda: verify_consistency(0, 21, EMPTY_ROOT, new_root, proof))  # from empty: proof must be empty
    verify_consistency(0, 21, EMPTY_ROOT, new_root, [])
