"""Batch linkage and deduplication into a crosswalk, clusters, evaluation against the sandbox truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from matching import (
    CRA_PERSON,
    MSP_BENEFICIARY,
    Crosswalk,
    LinkError,
    TrainedModel,
    evaluate_crosswalk,
    link,
    load,
    read_crosswalk,
    train,
)
from matching.link import PAIR_COLUMNS, _clusters, load_crosswalk
from tests.postgres import BACKENDS, backend_url, migrated, postgres_fixture

pg_database = postgres_fixture("crosswalk")


@pytest.fixture(params=BACKENDS)
def crosswalk_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty crosswalk database as `kiungo db upgrade --store crosswalk` leaves it."""
    url = backend_url(request, tmp_path, "crosswalks.sqlite")
    migrated(url, "crosswalk").dispose()
    return url


@pytest.fixture(scope="module")
def frames(country: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load(country / "msp.sqlite", MSP_BENEFICIARY), load(country / "cra.sqlite", CRA_PERSON)


@pytest.fixture(scope="module")
def model(frames: tuple[pd.DataFrame, pd.DataFrame]) -> TrainedModel:
    msp, cra = frames
    return train(msp, cra, sources=("msp", "cra"))


@pytest.fixture(scope="module")
def crosswalk(model: TrainedModel, frames: tuple[pd.DataFrame, pd.DataFrame]) -> Crosswalk:
    msp, cra = frames
    return link(model, msp, cra, threshold=0.01, cluster_threshold=0.5, sources=("msp", "cra"))


def test_pairs_are_oriented_scored_and_weighted(crosswalk: Crosswalk) -> None:
    pairs = crosswalk.pairs
    assert list(pairs.columns[: len(PAIR_COLUMNS)]) == list(PAIR_COLUMNS)
    assert set(pairs["left_source"]) == {"msp"}
    assert set(pairs["right_source"]) == {"cra"}
    assert (pairs["match_probability"] >= 0.01).all()
    assert pairs["match_probability"].is_monotonic_decreasing
    weights = [c for c in pairs.columns if c.startswith("mw_")]
    assert "mw_surname" in weights
    assert "mw_birth" in weights
    # The prior plus the comparison weights is the match weight.
    prior = pairs["match_weight"] - pairs[weights].sum(axis=1)
    assert prior.max() - prior.min() < 1e-6


def test_clusters_cover_every_record(crosswalk: Crosswalk, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    msp, cra = frames
    clusters = crosswalk.clusters
    assert len(clusters) == len(msp) + len(cra)
    linked = crosswalk.pairs[crosswalk.pairs["match_probability"] >= 0.5]
    by_record = dict(
        zip(zip(clusters["source"], clusters["record_id"], strict=True), clusters["cluster_id"], strict=True)
    )
    for left, right in zip(linked["left_id"], linked["right_id"], strict=True):
        assert by_record[("msp", left)] == by_record[("cra", right)]
    assert (clusters["cluster_size"] >= 1).all()


def test_clusters_are_connected_components() -> None:
    pairs = pd.DataFrame(
        {
            "left_source": ["a", "a", "a"],
            "left_id": ["1", "2", "5"],
            "right_source": ["a", "a", "a"],
            "right_id": ["2", "3", "6"],
            "match_probability": [0.9, 0.8, 0.2],
        }
    )
    records = pd.DataFrame({"record_id": ["1", "2", "3", "4", "5", "6"]})
    clusters = _clusters(pairs, 0.5, [("a", records)])
    ids = dict(zip(clusters["record_id"], clusters["cluster_id"], strict=True))
    assert ids["1"] == ids["2"] == ids["3"]
    assert len({ids["1"], ids["4"], ids["5"], ids["6"]}) == 4
    assert clusters.set_index("record_id").loc["1", "cluster_size"] == 3


def test_crosswalk_round_trips_csv_and_parquet(crosswalk: Crosswalk, tmp_path: Path) -> None:
    for name in ("cw.csv", "cw.parquet"):
        written = crosswalk.write(tmp_path / name)
        assert all(p.exists() for p in written)
        back = read_crosswalk(written[0])
        assert len(back) == len(crosswalk.pairs)
        assert back["left_id"].tolist() == crosswalk.pairs["left_id"].tolist()


def test_crosswalk_round_trips_a_database(crosswalk: Crosswalk, crosswalk_db: str, country: Path) -> None:
    run = crosswalk.write(crosswalk_db, model="model.json")
    back = load_crosswalk(crosswalk_db, run)
    pd.testing.assert_frame_equal(back.pairs, crosswalk.pairs)
    pd.testing.assert_frame_equal(back.clusters, crosswalk.clusters)
    scores, _ = evaluate_crosswalk(read_crosswalk(crosswalk_db), country / "truth.sqlite", (0.5,))
    assert scores[0].f1 > 0.93


def test_linkage_f1_against_truth(crosswalk: Crosswalk, country: Path) -> None:
    scores, counted = evaluate_crosswalk(crosswalk.pairs, country / "truth.sqlite", (0.5, 0.9))
    assert counted.startswith("one link")
    assert scores[0].f1 > 0.93


def test_deduplication(model: TrainedModel, frames: tuple[pd.DataFrame, pd.DataFrame], country: Path) -> None:
    _, cra = frames
    crosswalk = link(model, cra, sources=("cra", "cra"))
    pairs = crosswalk.pairs
    assert len(pairs) > 0
    assert set(pairs["left_source"]) == set(pairs["right_source"]) == {"cra"}
    assert (pairs["left_id"] != pairs["right_id"]).all()
    assert len(crosswalk.clusters) == len(cra)
    scores, counted = evaluate_crosswalk(pairs, country / "truth.sqlite", (0.5,))
    assert counted.startswith("pairwise")
    assert scores[0].recall > 0.5


def test_bad_threshold_and_empty_input(model: TrainedModel, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    msp, cra = frames
    with pytest.raises(LinkError, match="between 0 and 1"):
        link(model, msp, cra, threshold=1.5)
    with pytest.raises(LinkError, match="empty"):
        link(model, msp.head(0), cra)
    with pytest.raises(LinkError, match="no crosswalk"):
        read_crosswalk(Path("/nonexistent/cw.csv"))


def test_training_uses_clerical_labels(frames: tuple[pd.DataFrame, pd.DataFrame], crosswalk: Crosswalk) -> None:
    msp, cra = frames
    sure = crosswalk.pairs.head(40)
    labels = pd.DataFrame(
        {
            "source_dataset_l": sure["left_source"],
            "unique_id_l": sure["left_id"],
            "source_dataset_r": sure["right_source"],
            "unique_id_r": sure["right_id"],
            "clerical_match_score": 1.0,
        }
    )
    labelled = train(msp, cra, sources=("msp", "cra"), labels=labels)
    assert labelled.metadata["clerical_labels"] == 40
    labelled.level_weights()
