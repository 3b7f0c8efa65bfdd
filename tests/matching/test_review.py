"""The clerical review queue: enqueue an uncertain band, decide, keep history, export labels.

Every behaviour on SQLite and on PostgreSQL; the schema comes from the migration, as `kiungo db upgrade`
makes it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError

from gateway.database import engine_url, make_engine
from gateway.migrations import STORES
from matching import ReviewError, ReviewQueue
from tests.postgres import BACKENDS, backend_url, migrated, postgres_fixture

pg_database = postgres_fixture("review")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated review queue: an SQLite file or a PostgreSQL database."""
    found = backend_url(request, tmp_path, "q.sqlite")
    migrated(found, "review").dispose()
    return found


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


def test_enqueue_takes_the_uncertain_band_once(url: str) -> None:
    with ReviewQueue(url) as queue:
        assert queue.enqueue(_crosswalk()) == 3
        assert queue.enqueue(_crosswalk()) == 0
        assert sorted(p.left_id for p in queue.pairs()) == ["m2", "m3", "m4"]
        assert queue.enqueue(_crosswalk(), low=0.2, high=0.6) == 1  # m5 added, m4 already there


def test_next_decide_history_and_labels(url: str) -> None:
    engine = make_engine(url)  # as a caller holding an engine passes it
    with ReviewQueue(engine) as queue:
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

    engine.dispose()
    with ReviewQueue(url) as queue:  # persisted
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


def test_history_is_append_only(url: str) -> None:
    with ReviewQueue(url) as queue:
        queue.enqueue(_crosswalk())
        queue.decide(1, "match", "amina")
    engine = make_engine(url)
    statements = ["UPDATE review_decision SET decision = 'non-match'", "DELETE FROM review_decision"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE review_decision")
    try:
        for statement in statements:
            with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    with ReviewQueue(url) as queue:
        assert [h.decision for h in queue.history()] == ["match"]


def test_missing_file_says_which_command_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    with pytest.raises(ReviewError) as caught:
        ReviewQueue(path)
    assert str(caught.value) == (
        f"no review queue at {path}: create it with `kiungo db upgrade --store review --url sqlite:///{path}`"
    )
    assert not path.exists()
    deeper = tmp_path / "new" / "q.sqlite"
    with pytest.raises(ReviewError, match=f"create it with `mkdir -p {tmp_path / 'new'} && kiungo db upgrade "):
        ReviewQueue(deeper)
    assert not deeper.parent.exists()


def test_unmigrated_database_names_the_command(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in ("review_decision", "review_pair", STORES["review"].version_table):
            conn.execute(text(f"DROP TABLE {table}"))
    shown = make_url(engine_url(url)).render_as_string(hide_password=True)  # as the store opens it
    engine.dispose()
    with pytest.raises(ReviewError) as caught:
        ReviewQueue(url)
    assert str(caught.value) == f"{shown} has no review tables: run `kiungo db upgrade --store review --url {shown}`"


def test_another_revision_is_refused(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {STORES['review'].version_table} SET version_num = 'review_0000'"))
    engine.dispose()
    with pytest.raises(ReviewError, match="at review_0000, this Kiungo needs review_0001: run `kiungo db upgrade"):
        ReviewQueue(url)


def test_refusals(url: str) -> None:
    with ReviewQueue(url) as queue:
        queue.enqueue(_crosswalk())
        with pytest.raises(ReviewError, match="decision must be"):
            queue.decide(1, "maybe", "amina")
        with pytest.raises(ReviewError, match="reviewer"):
            queue.decide(1, "match", "  ")
        with pytest.raises(ReviewError, match="no pair 99"):
            queue.decide(99, "match", "amina")
        with pytest.raises(ReviewError, match="band"):
            queue.enqueue(_crosswalk(), low=0.9, high=0.5)
