"""A clerical review queue in SQLite: uncertain pairs in, reviewers' decisions out as training labels.

Pairs whose probability falls in an uncertain band (default 0.5 <= p < 0.95) are enqueued from a
crosswalk (once each). Decisions are appended, never updated (triggers refuse UPDATE and DELETE), so
the history says who decided what and when; the latest decision of a pair counts. `labels()` turns
decided pairs into Splink's pairwise-label format (`source_dataset_l, unique_id_l, source_dataset_r,
unique_id_r, clerical_match_score`), which `matching.train(..., labels=...)` uses to estimate m.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

import pandas as pd

from matching.errors import MatchingError

Decision = Literal["match", "non-match", "unsure"]
DECISIONS: tuple[str, ...] = get_args(Decision)
LABEL_COLUMNS: tuple[str, ...] = (
    "source_dataset_l",
    "unique_id_l",
    "source_dataset_r",
    "unique_id_r",
    "clerical_match_score",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pair (
    pair_id INTEGER PRIMARY KEY,
    left_source TEXT NOT NULL,
    left_id TEXT NOT NULL,
    right_source TEXT NOT NULL,
    right_id TEXT NOT NULL,
    match_probability REAL NOT NULL,
    match_weight REAL,
    enqueued_at TEXT NOT NULL,
    UNIQUE (left_source, left_id, right_source, right_id)
);
CREATE TABLE IF NOT EXISTS decision (
    decision_id INTEGER PRIMARY KEY,
    pair_id INTEGER NOT NULL REFERENCES pair(pair_id),
    decision TEXT NOT NULL CHECK (decision IN ('match', 'non-match', 'unsure')),
    reviewer TEXT NOT NULL CHECK (length(reviewer) > 0),
    note TEXT NOT NULL DEFAULT '',
    decided_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_pair ON decision(pair_id, decision_id);
CREATE TRIGGER IF NOT EXISTS decision_no_update BEFORE UPDATE ON decision
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decision_no_delete BEFORE DELETE ON decision
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"""


_PAIRS_WITH_LATEST = """
SELECT p.*, l.decision, l.reviewer, l.decided_at FROM pair p
LEFT JOIN (
    SELECT d.* FROM decision d
    WHERE d.decision_id = (SELECT MAX(decision_id) FROM decision WHERE pair_id = d.pair_id)
) l ON l.pair_id = p.pair_id
"""


class ReviewError(MatchingError):
    """The review queue refuses an operation (unknown pair, bad decision, bad band)."""


@dataclass(frozen=True, slots=True)
class ReviewPair:
    pair_id: int
    left_source: str
    left_id: str
    right_source: str
    right_id: str
    match_probability: float
    match_weight: float | None
    decision: str | None = None
    reviewer: str | None = None
    decided_at: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    pair_id: int
    decision: str
    reviewer: str
    note: str
    decided_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ReviewQueue:
    """The queue kept in one SQLite file (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.parent.is_dir():
            raise ReviewError(f"cannot open review queue {path}: no directory {path.parent}")
        try:
            self._conn = sqlite3.connect(path)
            self._conn.row_factory = sqlite3.Row
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ReviewError(f"cannot open review queue {path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReviewQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def enqueue(self, pairs: pd.DataFrame, low: float = 0.5, high: float = 0.95) -> int:
        """Add crosswalk pairs with low <= p < high (already queued pairs are skipped); returns how many."""
        if not 0.0 <= low < high <= 1.0:
            raise ReviewError(f"the uncertain band needs 0 <= low < high <= 1, got [{low:g}, {high:g})")
        band = pairs[(pairs["match_probability"] >= low) & (pairs["match_probability"] < high)]
        band = band.sort_values("match_probability", ascending=True, kind="stable")
        weights = band["match_weight"] if "match_weight" in band else pd.Series([None] * len(band), index=band.index)
        now = _now()
        rows = [
            (str(ls), str(li), str(rs), str(ri), float(p), None if pd.isna(w) else float(w), now)
            for ls, li, rs, ri, p, w in zip(
                band["left_source"],
                band["left_id"],
                band["right_source"],
                band["right_id"],
                band["match_probability"],
                weights,
                strict=True,
            )
        ]
        with self._conn:
            before = self._count()
            self._conn.executemany(
                "INSERT OR IGNORE INTO pair (left_source, left_id, right_source, right_id, match_probability, "
                "match_weight, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self._count() - before

    def _count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM pair").fetchone()[0])

    def next(self) -> ReviewPair | None:
        """The undecided pair to review next (the most uncertain: nearest p = 0.5 first), or None."""
        row = self._conn.execute(
            "SELECT * FROM pair WHERE pair_id NOT IN (SELECT pair_id FROM decision) "
            "ORDER BY ABS(match_probability - 0.5), pair_id LIMIT 1"
        ).fetchone()
        return None if row is None else _pair(row)

    def decide(self, pair_id: int, decision: str, reviewer: str, note: str = "") -> HistoryEntry:
        """Record a reviewer's decision (appended; a later decision on the same pair supersedes it)."""
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if not reviewer.strip():
            raise ReviewError("a decision needs a reviewer")
        if self._conn.execute("SELECT 1 FROM pair WHERE pair_id = ?", (pair_id,)).fetchone() is None:
            raise ReviewError(f"no pair {pair_id} in the queue")
        entry = HistoryEntry(pair_id, decision, reviewer.strip(), note, _now())
        with self._conn:
            self._conn.execute(
                "INSERT INTO decision (pair_id, decision, reviewer, note, decided_at) VALUES (?, ?, ?, ?, ?)",
                (entry.pair_id, entry.decision, entry.reviewer, entry.note, entry.decided_at),
            )
        return entry

    def history(self, pair_id: int | None = None) -> list[HistoryEntry]:
        """Every decision in the order made (of one pair, or all)."""
        sql = "SELECT pair_id, decision, reviewer, note, decided_at FROM decision"
        params: tuple[int, ...] = ()
        if pair_id is not None:
            sql += " WHERE pair_id = ?"
            params = (pair_id,)
        rows = self._conn.execute(sql + " ORDER BY decision_id", params).fetchall()
        return [HistoryEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def pairs(self, status: Literal["all", "pending", "decided"] = "all") -> list[ReviewPair]:
        """Queued pairs with their latest decision, if any."""
        sql = _PAIRS_WITH_LATEST
        if status == "pending":
            sql += " WHERE l.decision IS NULL"
        elif status == "decided":
            sql += " WHERE l.decision IS NOT NULL"
        return [_pair(r) for r in self._conn.execute(sql + " ORDER BY p.pair_id").fetchall()]

    def labels(self) -> pd.DataFrame:
        """Decided pairs (latest decision; "unsure" left out) as Splink pairwise labels, 1.0 match / 0.0 not."""
        rows = [
            (p.left_source, p.left_id, p.right_source, p.right_id, 1.0 if p.decision == "match" else 0.0)
            for p in self.pairs("decided")
            if p.decision in ("match", "non-match")
        ]
        return pd.DataFrame(rows, columns=list(LABEL_COLUMNS))


def _pair(row: sqlite3.Row) -> ReviewPair:
    keys = row.keys()
    return ReviewPair(
        pair_id=int(row["pair_id"]),
        left_source=str(row["left_source"]),
        left_id=str(row["left_id"]),
        right_source=str(row["right_source"]),
        right_id=str(row["right_id"]),
        match_probability=float(row["match_probability"]),
        match_weight=None if row["match_weight"] is None else float(row["match_weight"]),
        decision=row["decision"] if "decision" in keys else None,
        reviewer=row["reviewer"] if "reviewer" in keys else None,
        decided_at=row["decided_at"] if "decided_at" in keys else None,
    )
