"""A clerical review queue: uncertain pairs in, reviewers' decisions out as training labels.

Pairs whose probability falls in an uncertain band (default 0.5 <= p < 0.95) are enqueued from a
crosswalk (once each). Decisions are appended, never updated (triggers refuse UPDATE and DELETE, on
SQLite and PostgreSQL alike), so the history says who decided what and when; the latest decision of a
pair counts. `labels()` turns decided pairs into Splink's pairwise-label format (`source_dataset_l,
unique_id_l, source_dataset_r, unique_id_r, clerical_match_score`), which `matching.train(..., labels=...)`
uses to estimate m.

SQLAlchemy 2 Core on an SQLite file (the default) or PostgreSQL (reviewers working from several
machines); the schema is created by `kiungo db upgrade --store review`, never by the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

import pandas as pd
from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from matching.database import open_engine, require_schema, where
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

#: The migration this code was written for (gateway/migrations/versions/review).
SCHEMA_REVISION: Final = "review_0001"

metadata = MetaData()

pairs_table = Table(
    "review_pair",
    metadata,
    Column("pair_id", Integer, primary_key=True, autoincrement=True),
    Column("left_source", Text, nullable=False),
    Column("left_id", Text, nullable=False),
    Column("right_source", Text, nullable=False),
    Column("right_id", Text, nullable=False),
    Column("match_probability", Double, nullable=False),
    Column("match_weight", Double, nullable=True),
    Column("enqueued_at", String(32), nullable=False),
    UniqueConstraint("left_source", "left_id", "right_source", "right_id", name="uq_review_pair_records"),
)

decisions_table = Table(
    "review_decision",
    metadata,
    Column("decision_id", Integer, primary_key=True, autoincrement=True),
    Column("pair_id", Integer, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reviewer", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("decided_at", String(32), nullable=False),
    ForeignKeyConstraint(["pair_id"], ["review_pair.pair_id"], name="fk_review_decision_pair"),
    CheckConstraint("decision IN (" + ", ".join(f"'{d}'" for d in DECISIONS) + ")", name="ck_review_decision_decision"),
    CheckConstraint("length(reviewer) > 0", name="ck_review_decision_reviewer"),
    Index("ix_review_decision_pair", "pair_id", "decision_id"),
)


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
    """The queue in an SQLite file (a Path) or a database by URL or Engine, migrated by `kiungo db upgrade`."""

    def __init__(self, db: str | Path | Engine) -> None:
        self.engine, self._owned = open_engine(db, ReviewError)
        self.url = where(self.engine)
        try:
            require_schema(
                self.engine,
                store="review",
                what="review queue",
                metadata=metadata,
                revision=SCHEMA_REVISION,
                error=ReviewError,
            )
        except SQLAlchemyError as exc:
            self.close()
            raise ReviewError(f"cannot open review queue {self.url} ({type(exc).__name__})") from None
        except ReviewError:
            self.close()
            raise

    def close(self) -> None:
        """Release the database (an engine the queue was given is left to its owner)."""
        if self._owned:
            self.engine.dispose()

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
            {
                "left_source": str(ls),
                "left_id": str(li),
                "right_source": str(rs),
                "right_id": str(ri),
                "match_probability": float(p),
                "match_weight": None if pd.isna(w) else float(w),
                "enqueued_at": now,
            }
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
        with self.engine.begin() as conn:
            before = _count(conn)
            if rows:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                conn.execute(dialect.insert(pairs_table).on_conflict_do_nothing(), rows)
            return _count(conn) - before

    def next(self) -> ReviewPair | None:
        """The undecided pair to review next (the most uncertain: nearest p = 0.5 first), or None."""
        p = pairs_table.c
        stmt = (
            select(pairs_table)
            .where(p.pair_id.not_in(select(decisions_table.c.pair_id)))
            .order_by(func.abs(p.match_probability - 0.5), p.pair_id)
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else _pair(row)

    def decide(self, pair_id: int, decision: str, reviewer: str, note: str = "") -> HistoryEntry:
        """Record a reviewer's decision (appended; a later decision on the same pair supersedes it)."""
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if not reviewer.strip():
            raise ReviewError("a decision needs a reviewer")
        entry = HistoryEntry(pair_id, decision, reviewer.strip(), note, _now())
        with self.engine.begin() as conn:
            if conn.execute(select(pairs_table.c.pair_id).where(pairs_table.c.pair_id == pair_id)).first() is None:
                raise ReviewError(f"no pair {pair_id} in the queue")
            conn.execute(
                decisions_table.insert().values(
                    pair_id=entry.pair_id,
                    decision=entry.decision,
                    reviewer=entry.reviewer,
                    note=entry.note,
                    decided_at=entry.decided_at,
                )
            )
        return entry

    def history(self, pair_id: int | None = None) -> list[HistoryEntry]:
        """Every decision in the order made (of one pair, or all)."""
        d = decisions_table.c
        stmt = select(d.pair_id, d.decision, d.reviewer, d.note, d.decided_at).order_by(d.decision_id)
        if pair_id is not None:
            stmt = stmt.where(d.pair_id == pair_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [HistoryEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def pairs(self, status: Literal["all", "pending", "decided"] = "all") -> list[ReviewPair]:
        """Queued pairs with their latest decision, if any."""
        d = decisions_table.c
        last = select(d.pair_id, func.max(d.decision_id).label("decision_id")).group_by(d.pair_id).subquery()
        latest = (
            select(d.pair_id, d.decision, d.reviewer, d.decided_at)
            .join(last, last.c.decision_id == d.decision_id)
            .subquery()
        )
        stmt = select(pairs_table, latest.c.decision, latest.c.reviewer, latest.c.decided_at).outerjoin(
            latest, latest.c.pair_id == pairs_table.c.pair_id
        )
        if status == "pending":
            stmt = stmt.where(latest.c.decision.is_(None))
        elif status == "decided":
            stmt = stmt.where(latest.c.decision.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(pairs_table.c.pair_id)).mappings().all()
        return [_pair(r) for r in rows]

    def labels(self) -> pd.DataFrame:
        """Decided pairs (latest decision; "unsure" left out) as Splink pairwise labels, 1.0 match / 0.0 not."""
        rows = [
            (p.left_source, p.left_id, p.right_source, p.right_id, 1.0 if p.decision == "match" else 0.0)
            for p in self.pairs("decided")
            if p.decision in ("match", "non-match")
        ]
        return pd.DataFrame(rows, columns=list(LABEL_COLUMNS))


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(pairs_table)).scalar_one())


def _pair(row: Any) -> ReviewPair:
    return ReviewPair(
        pair_id=int(row["pair_id"]),
        left_source=str(row["left_source"]),
        left_id=str(row["left_id"]),
        right_source=str(row["right_source"]),
        right_id=str(row["right_id"]),
        match_probability=float(row["match_probability"]),
        match_weight=None if row["match_weight"] is None else float(row["match_weight"]),
        decision=row.get("decision"),
        reviewer=row.get("reviewer"),
        decided_at=row.get("decided_at"),
    )
