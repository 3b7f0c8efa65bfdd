"""Verification of a live log: every leaf recomputed from its record, the stored tree checked, and every
signed tree head's signature, time stamp and root compared with the recomputed tree.

Order of checks: signed tree heads' signatures (a forged head invalidates the reference), then records
against leaves in index order (the first bad index wins), then stored interior hashes, then roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from gateway.exchangelog import store
from gateway.exchangelog.errors import TamperError
from gateway.exchangelog.merkle import EMPTY_ROOT, node_hash, perfect_subtrees
from gateway.exchangelog.treehead import SignedTreeHead, verify_sth
from gateway.exchangelog.tsa import TimestampError, verify_token


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    records: int
    tree_heads: int
    kind: str | None = None
    index: int | None = None
    message: str = ""
    archived: int = 0
    unsigned_tail: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def failed(cls, error: TamperError, records: int, tree_heads: int) -> VerifyReport:
        return cls(False, records, tree_heads, error.kind, error.index, error.message)

    def summary(self) -> str:
        if self.ok:
            text = f"ok: {self.records} records, {self.tree_heads} signed tree heads"
            if self.archived:
                text += f" ({self.archived} archived records checked by leaf hash only)"
            if self.unsigned_tail:
                text += f"; {self.unsigned_tail} newest records not yet covered by a signed tree head"
            return text
        where = f" at index {self.index}" if self.index is not None else ""
        return f"FAILED: {self.kind}{where}: {self.message}"

    def raise_for_problem(self) -> None:
        if not self.ok:
            raise TamperError(self.kind or "altered", self.index, self.message)


def check_heads(heads: Sequence[SignedTreeHead], cert_pem: str | None, node: str) -> None:
    previous = 0
    for sth in heads:
        verify_sth(sth, cert_pem)
        if sth.node != node:
            raise TamperError("tree-head", None, f"signed tree head of size {sth.size} names another node")
        if sth.size < previous:
            raise TamperError("tree-head", None, f"signed tree head of size {sth.size} is smaller than an earlier one")
        previous = sth.size
        if sth.tsa_token is not None:
            try:
                verify_token(sth.tsa_token, sth.tsa_digest())
            except TimestampError as exc:
                raise TamperError("signature", None, f"time stamp of tree head size {sth.size}: {exc}") from exc


def _classify(i: int, recs: list[bytes], leaves: list[bytes]) -> TamperError:
    """Name the first mismatch by looking at what follows it (R = record hashes, L = leaf hashes from i)."""
    r_later = set(leaves[1:])
    l_later = set(recs[1:])
    r_in_l = recs[0] in r_later
    l_in_r = leaves[0] in l_later
    if r_in_l and l_in_r:
        return TamperError("reordered", i, "records are not in the order they were logged")
    if l_in_r:
        return TamperError("inserted", i, "a record was inserted that the tree never contained")
    if r_in_l:
        return TamperError("removed", i, "a record is missing from the log")
    return TamperError("altered", i, "the record does not hash to its leaf")


def _raw_rows(conn: Connection, sql: str, params: tuple[int, ...], chunk: int = 50_000) -> Iterator[tuple[Any, ...]]:
    """Keyset pages over (idx) through the driver cursor: SQLAlchemy row objects cost more than hashing."""
    p = "%s" if conn.dialect.name == "postgresql" else "?"
    query = sql.replace("?", p) + f" AND idx >= {p} ORDER BY idx LIMIT {chunk}"
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    low = 0
    try:
        while True:
            cur.execute(query, (*params, low))
            batch = cur.fetchall()
            yield from batch
            if len(batch) < chunk:
                return
            low = batch[-1][0] + 1
    finally:
        cur.close()


def verify_log(conn: Connection, heads: Sequence[SignedTreeHead], cert_pem: str | None, node: str) -> VerifyReport:
    size, _ = store.get_meta(conn, "size")
    archived_before, _ = store.get_meta(conn, "archived_before")
    archived = archived_before or 0
    count = 0
    try:
        check_heads(heads, cert_pem, node)
        leaf_rows = _raw_rows(conn, "SELECT idx, hash FROM log_node WHERE level = ?", (0,))
        rec_rows = _raw_rows(conn, "SELECT idx, content FROM log_record WHERE 1 = ?", (1,))
        sha = hashlib.sha256
        i = 0
        # Archived prefix: records moved to an archive bundle; their leaves stay and still make the roots.
        while i < archived:
            row = next(leaf_rows, None)
            if row is None or row[0] != i:
                raise TamperError("removed", i, "a leaf hash is missing from the tree")
            i += 1
        for idx, content in rec_rows:
            if idx != i:
                if idx < archived:
                    raise TamperError("inserted", idx, "a record sits in the archived range")
                raise TamperError("removed", i, "a record is missing from the log")
            leaf_row = next(leaf_rows, None)
            if leaf_row is None:
                raise TamperError("inserted", i, "a record has no leaf in the tree")
            if leaf_row[0] != i:
                raise TamperError("removed", i, "a leaf hash is missing from the tree")
            h = sha(b"\x00" + content.encode("utf-8")).digest()
            if h != bytes(leaf_row[1]):
                raise _mismatch(conn, i, h, bytes(leaf_row[1]))
            count += 1
            i += 1
        extra_leaf = next(leaf_rows, None)
        total = max(size or 0, max((sth.size for sth in heads), default=0))
        if extra_leaf is not None or i < total:
            raise TamperError("truncated", i, f"the log ends at {i} records but the tree says {total}")
        wanted = {key for sth in heads for key in perfect_subtrees(sth.size)}
        found = _check_interior(conn, i, wanted)
        for sth in heads:
            root = _fold([found[key] for key in perfect_subtrees(sth.size)])
            if root.hex() != sth.root:
                raise TamperError(
                    "altered",
                    None,
                    f"the records up to size {sth.size} no longer give the signed root (rewritten consistently)",
                )
        latest = max((sth.size for sth in heads), default=0)
        return VerifyReport(True, count, len(heads), archived=archived, unsigned_tail=i - latest)
    except TamperError as error:
        return VerifyReport.failed(error, count, len(heads))


def _fold(subtrees: list[bytes]) -> bytes:
    """Root from the perfect subtrees of a size, left to right (RFC 9162: right-most pairs first)."""
    if not subtrees:
        return EMPTY_ROOT
    root = subtrees[-1]
    for h in reversed(subtrees[:-1]):
        root = node_hash(h, root)
    return root


def _mismatch(conn: Connection, i: int, first_record: bytes, first_leaf: bytes, window: int = 100_000) -> TamperError:
    recs = [first_record]
    for _idx, content in conn.execute(
        select(store.records.c.idx, store.records.c.content)
        .where(store.records.c.idx > i)
        .order_by(store.records.c.idx)
        .limit(window)
    ):
        recs.append(hashlib.sha256(b"\x00" + content.encode("utf-8")).digest())
    leaves = [first_leaf]
    for (h,) in conn.execute(
        select(store.nodes.c.hash)
        .where(store.nodes.c.level == 0, store.nodes.c.idx > i)
        .order_by(store.nodes.c.idx)
        .limit(window)
    ):
        leaves.append(h)
    return _classify(i, recs, leaves)


def _check_interior(conn: Connection, size: int, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored interior hashes agree with the leaves below them (proofs are built from them).

    Returns the perfect subtree hashes in `wanted` (those that make up the signed sizes), checked.
    """
    found: dict[tuple[int, int], bytes] = {}
    level = 0
    width = size
    while True:
        lower = _raw_rows(conn, "SELECT idx, hash FROM log_node WHERE level = ?", (level,))
        if width < 2:
            for idx, h in lower:
                if (level, idx) in wanted:
                    found[(level, idx)] = bytes(h)
            return found
        upper = _raw_rows(conn, "SELECT idx, hash FROM log_node WHERE level = ?", (level + 1,))
        expected = 0
        for idx, h in upper:
            left = next(lower, None)
            right = next(lower, None)
            if left is None or right is None:
                break
            if (level, left[0]) in wanted:
                found[(level, left[0])] = bytes(left[1])
            if (level, right[0]) in wanted:
                found[(level, right[0])] = bytes(right[1])
            if idx != expected or node_hash(bytes(left[1]), bytes(right[1])) != bytes(h):
                first = expected << (level + 1)
                raise TamperError("altered", first, "a stored interior hash does not match the leaves below it")
            expected += 1
        if expected != width // 2:
            raise TamperError("removed", expected << (level + 1), "a stored interior hash is missing")
        for idx, h in lower:  # an odd last node at this level has no parent yet
            if (level, idx) in wanted:
                found[(level, idx)] = bytes(h)
        level += 1
        width //= 2
