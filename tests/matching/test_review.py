"""The clerical review queue: enqueue an uncertain band, decide, keep history, export labels."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from matching import ReviewError, ReviewQueue


def _crosswalk() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "left_source": ["msp"] * 5,
            "left_id": ["m1", "m2", "m3", "m4", "m5"],
            "right_source": ["cra"] * 5,
            "right_id": ["c1", "c2", "c3", "c4", "c5"],
            "match_probability": [0.99, 0.94, 0.7, 0.52, 0.3],
            "match_weight": [8.0, 4.0, 1.2, 0.1, -1.2],
        }
    )


def test_enqueue_takes_the_uncertain_band_once(tmp_path: Path) -> None:
    with ReviewQueue(tmp_path / "q.sqlite") as queue:
        assert queue.enqueue(_crosswalk()) == 3
        assert queue.enqueue(_crosswalk()) == 0
        assert sorted(p.left_id for p in queue.pairs()) == ["m2", "m3", "m4"]
        assert queue.enqueue(_crosswalk(), low=0.2, high=0.6) == 1  # m5 added, m4 already there


def test_next_decide_history_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    with ReviewQueue(path) as queue:
        queue.enqueue(_crosswalk())
        first = queue.next()
        assert first is not None
        assert first.left_id == "m4"
        queue.decide(first.pair_id, "match", "amina", "same mother, typo in surname")
        second = queue.next()
        assert second is not None
        assert second.left_id == "m3"
        queue.decide(second.pair_id, "unsure", "amina")
        queue.decide(second.pair_id, "non-match", "baraka", "different village")
        third = queue.next()
        assert third is not None
        assert third.left_id == "m2"
        queue.decide(third.pair_id, "unsure", "baraka")
        assert queue.next() is None

    with ReviewQueue(path) as queue:  # persisted
        history = queue.history(second.pair_id)
        assert [(h.decision, h.reviewer) for h in history] == [("unsure", "amina"), ("non-match", "baraka")]
        assert all(h.decided_at for h in history)
        assert len(queue.history()) == 4
        labels = queue.labels().sort_values("unique_id_l").reset_index(drop=True)
        assert list(labels.columns) == [
            "source_dataset_l",
            "unique_id_l",
            "source_dataset_r",
            "unique_id_r",
            "clerical_match_score",
        ]
        assert labels["unique_id_l"].tolist() == ["m3", "m4"]  # m2 is unsure: no label
        assert labels["clerical_match_score"].tolist() == [0.0, 1.0]
        assert [p.decision for p in queue.pairs("decided")] == ["match", "non-match", "unsure"]
        assert queue.pairs("pending") == []


def test_history_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    with ReviewQueue(path) as queue:
        queue.enqueue(_crosswalk())
        queue.decide(1, "match", "amina")
    with sqlite3.connect(path) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE decision SET decision = 'non-match'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM decision")


def test_refusals(tmp_path: Path) -> None:
    with ReviewQueue(tmp_path / "q.sqlite") as queue:
        queue.enqueue(_crosswalk())
        with pytest.raises(ReviewError, match="decision must be"):
            queue.decide(1, "maybe", "amina")
        with pytest.raises(ReviewError, match="reviewer"):
            queue.decide(1, "match", "  ")
        with pytest.raises(ReviewError, match="no pair 99"):
            queue.decide(99, "match", "amina")
        with pytest.raises(ReviewError, match="band"):
            queue.enqueue(_crosswalk(), low=0.9, high=0.5)
