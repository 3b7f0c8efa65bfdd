"""Scoring a crosswalk against ground truth: the sandbox's `truth.sqlite` (record -> person).

Linking two sources is judged one link per left record (`evaluate.sweep`), as the registry uses it;
deduplicating one source is judged pairwise (every pair of records of the same person is a true pair).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from matching.errors import SourceError
from matching.evaluate import DEFAULT_THRESHOLDS, Score, best_links, sweep


def read_truth(path: Path, sources: Iterable[str]) -> pd.DataFrame:
    """`source, record_id, person_id` rows of the given sources from a sandbox truth database."""
    if not path.exists():
        raise SourceError(f"no truth database at {path}")
    wanted = sorted(set(sources))
    marks = ", ".join("?" for _ in wanted)
    sql = f"SELECT source, record_id, person_id FROM record WHERE source IN ({marks})"  # noqa: S608
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            frame = pd.read_sql_query(sql, conn, params=tuple(wanted))
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise SourceError(f"cannot read the truth table from {path}: {exc}") from exc
    frame["record_id"] = frame["record_id"].astype(str)
    return frame


def true_pairs(truth: pd.DataFrame, left_source: str, right_source: str) -> set[tuple[str, str]]:
    """Every (left id, right id) of the same person; for one source, unordered pairs with left < right."""
    left = truth[truth["source"] == left_source][["record_id", "person_id"]]
    right = truth[truth["source"] == right_source][["record_id", "person_id"]]
    joined = left.merge(right, on="person_id", suffixes=("_l", "_r"))
    pairs = zip(joined["record_id_l"], joined["record_id_r"], strict=True)
    if left_source == right_source:
        return {(a, b) for a, b in pairs if a < b}
    return set(pairs)


def pairwise_sweep(
    pairs: pd.DataFrame, truth: set[tuple[str, str]], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[Score]:
    """Deduplication scores: each unordered pair at or above the threshold against the true pairs."""
    a, b = pairs["left_id"].astype(str), pairs["right_id"].astype(str)
    keyed = pd.DataFrame(
        {"x": a.where(a < b, b), "y": b.where(a < b, a), "match_probability": pairs["match_probability"]}
    )
    out = []
    for t in thresholds:
        kept = keyed[keyed["match_probability"] >= t]
        found = set(zip(kept["x"], kept["y"], strict=True))
        tp = len(found & truth)
        out.append(Score(t, tp, len(found) - tp, len(truth) - tp))
    return out


def evaluate_crosswalk(
    pairs: pd.DataFrame, truth_path: Path, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> tuple[list[Score], str]:
    """Scores across thresholds and the way they were counted ("one link per left record" or "pairwise")."""
    if pairs.empty:
        raise SourceError("the crosswalk has no pairs")
    left_source, right_source = str(pairs["left_source"].iloc[0]), str(pairs["right_source"].iloc[0])
    truth = read_truth(truth_path, (left_source, right_source))
    if truth.empty:
        raise SourceError(f"{truth_path} has no records of {left_source!r} or {right_source!r}")
    wanted = true_pairs(truth, left_source, right_source)
    if left_source == right_source:
        return pairwise_sweep(pairs, wanted, thresholds), "pairwise (deduplication)"
    # A left record may truly match several right records (duplicates): credit whichever was linked.
    best = dict(zip(best_links(pairs)["left_id"], best_links(pairs)["right_id"], strict=True))
    by_left: dict[str, set[str]] = {}
    for a, b in wanted:
        by_left.setdefault(a, set()).add(b)
    one_truth = {(a, best[a] if best.get(a) in bs else min(bs)) for a, bs in by_left.items()}
    return sweep(pairs, one_truth, thresholds), "one link per left record"
