"""Our Merkle code against a direct transcription of RFC 9162 section 2.1 (recursive, no stored nodes)."""

from __future__ import annotations

import hashlib

import pytest

from gateway.exchangelog import merkle


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31])
def test_roots_and_proofs_match_the_rfc(n: int) -> None:
    data = [f"leaf {i}".encode() for i in range(n)]
    leaves = [merkle.leaf_hash(x) for x in data]
    assert merkle.root_from_leaves(leaves) == ref_mth(data)

    def mth(a: int, b: int) -> bytes:
        return ref_mth(data[a:b])

    for i in range(n):
        proof = merkle.inclusion_proof(i, n, mth)
        assert proof == ref_path(i, data)
        assert merkle.verify_inclusion(leaves[i], i, n, proof, ref_mth(data))
        assert not merkle.verify_inclusion(leaves[i], (i + 1) % n, n, proof, ref_mth(data)) or n == 1
    for m in range(1, n + 1):
        proof = merkle.consistency_proof(m, n, mth)
        assert proof == (ref_subproof(m, data, True) if m < n else [])
        assert merkle.verify_consistency(m, n, ref_mth(data[:m]), ref_mth(data), proof)


def test_frontier_gives_every_intermediate_root() -> None:
    data = [bytes([i]) for i in range(40)]
    frontier = merkle.Frontier()
    for i, x in enumerate(data):
        frontier.push(merkle.leaf_hash(x))
        assert frontier.root() == ref_mth(data[: i + 1])
