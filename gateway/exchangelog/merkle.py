"""RFC 9162 Merkle tree hashing, proofs and their verification (section 2.1).

Proof generation works on a `subtree(start, end)` callback so the store can answer it from stored
interior hashes: every range the RFC's recursion asks for is either a perfect aligned subtree (one
stored node) or a right edge that splits into O(log n) of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()

Subtree = Callable[[int, int], bytes]


def leaf_hash(content: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + content).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes, iteratively (a frontier), for small in-memory trees."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.push(leaf)
    return frontier.root()


class Frontier:
    """The perfect subtrees of the tree's binary decomposition: O(log n) hashes give the root of any size."""

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: dict[int, bytes] | None = None) -> None:
        self.size = size
        self.nodes: dict[int, bytes] = dict(nodes or {})

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the (level, index, hash) of every perfect subtree it completes, the leaf first."""
        index = self.size
        created = [(0, index, leaf)]
        h = leaf
        level = 0
        nodes = self.nodes
        while (index >> level) & 1:
            h = node_hash(nodes.pop(level), h)
            level += 1
            created.append((level, index >> level, h))
        nodes[level] = h
        self.size = index + 1
        return created

    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        result: bytes | None = None
        for level in sorted(self.nodes):
            h = self.nodes[level]
            result = h if result is None else node_hash(h, result)
        assert result is not None
        return result


def perfect_subtrees(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees that make up a tree of `size` leaves, left to right."""
    out = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            out.append((level, start >> level))
            start += 1 << level
    return out


def subtree_from_nodes(node: Callable[[int, int], bytes]) -> Subtree:
    """MTH(D[start:end]) from a lookup of perfect subtrees `node(level, index)`."""

    def mth(start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return node(n.bit_length() - 1, start // n)
        k = split(n)
        return node_hash(mth(start, start + k), mth(start + k, end))

    return mth


def inclusion_proof(index: int, size: int, mth: Subtree) -> list[bytes]:
    """PATH(m, D[0:n]) of RFC 9162 section 2.1.3.1, leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    path: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split(end - start)
        if m < k:
            path.append(mth(start + k, end))
            end = start + k
        else:
            path.append(mth(start, start + k))
            start += k
            m -= k
    path.reverse()
    return path


def consistency_proof(old: int, new: int, mth: Subtree) -> list[bytes]:
    """PROOF(m, D[0:n]) of RFC 9162 section 2.1.4.1."""
    if not 0 < old <= new:
        raise ValueError("consistency needs 0 < old size <= new size")
    if old == new:
        return []
    path: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                path.append(mth(start, end))
            return
        k = split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            path.append(mth(start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            path.append(mth(start, start + k))

    subproof(old, 0, new, True)
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Iterable[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if old == new:
        return old_root == new_root and not proof
    if not 0 < old < new or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
