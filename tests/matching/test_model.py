from __future__ import annotations

import json

import pandas as pd
import pytest

from matching import ModelError, TrainedModel, TrainingError, sweep, train
from matching.evaluate import markdown_table, plot


def test_trained_model_has_weights_for_every_level(febrl_model):
    weights = febrl_model.level_weights()
    names = [c.name for c in febrl_model.comparisons]
    # FEBRL has no sex, second name or mother's name: those comparisons are dropped, and recorded as such.
    assert "sex" not in names
    assert set(febrl_model.metadata["dropped_comparisons"]) == {"second_name", "sex", "mother_name"}
    for comparison, w in zip(febrl_model.comparisons, weights, strict=True):
        assert len(w) == len(comparison.levels)
        exact = [i for i, lv in enumerate(comparison.levels) if lv.kind == "exact"]
        assert w[exact[0]] > 0 > w[-1], comparison.name


def test_prior_is_set_for_the_target_size(febrl_model):
    assert febrl_model.prior == pytest.approx(1 / 5000)
    bigger = febrl_model.for_target_size(1_000_000)
    assert bigger.prior == pytest.approx(1e-6)
    assert febrl_model.prior == pytest.approx(1 / 5000)  # unchanged


def test_save_and_load_round_trip(febrl_model, tmp_path):
    path = tmp_path / "model.json"
    febrl_model.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "kiungo-matching-model"
    assert document["version"] == 1
    meta = document["metadata"]
    assert meta["sources"] == ["febrl4a", "febrl4b"]
    assert meta["sizes"] == [5000, 5000]
    assert meta["splink_version"] == "5.0.0"
    assert "trained_at" in meta
    assert "settings" in meta
    loaded = TrainedModel.load(path)
    assert loaded.comparisons == febrl_model.comparisons
    assert loaded.blocking == febrl_model.blocking
    for a, b in zip(loaded.level_weights(), febrl_model.level_weights(), strict=True):
        assert (a == b).all()


def test_load_refuses_bad_files(febrl_model, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError):
        TrainedModel.load(bad)
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="not a Kiungo"):
        TrainedModel.load(bad)
    febrl_model.save(bad)
    document = json.loads(bad.read_text())
    document["version"] = 99
    bad.write_text(json.dumps(document))
    with pytest.raises(ModelError, match="version"):
        TrainedModel.load(bad)
    document["version"] = 1
    document["splink"]["comparisons"][0]["comparison_levels"][1]["m_probability"] = None
    bad.write_text(json.dumps(document))
    with pytest.raises(ModelError, match="never estimated"):
        TrainedModel.load(bad)


def test_train_refuses_empty_and_unnormalised_input(febrl4):
    left, right, _ = febrl4
    with pytest.raises(TrainingError):
        train(left.iloc[:0], right)
    with pytest.raises(TrainingError, match="normalised"):
        train(pd.DataFrame({"record_id": ["a"], "given_name": ["x"]}), right)


def test_febrl4_batch_link_f1(febrl4, febrl_model, tmp_path):
    """Splink's own batch prediction with the trained model: one link per record, F1 >= 0.999."""
    left, right, truth = febrl4
    linker = febrl_model.linker(left, right)
    pairs = linker.inference.predict().as_pandas_dataframe()
    pairs = pairs.rename(columns={"record_id_l": "left_id", "record_id_r": "right_id"})
    scores = sweep(pairs, truth, thresholds=(0.01, 0.5, 0.99))
    best = max(scores, key=lambda s: s.f1)
    assert best.f1 >= 0.999, markdown_table(scores)
    assert "| 0.5 |" in markdown_table(scores)
    plot(scores, tmp_path / "f1.png")
    assert (tmp_path / "f1.png").stat().st_size > 1000
