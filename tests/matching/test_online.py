from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matching import CRA_PERSON, MSP_BENEFICIARY, MatchingError, OnlineMatcher, load, sweep, train
from matching.evaluate import markdown_table
from matching.record import CANONICAL_COLUMNS


def _raw(row: pd.Series) -> dict[str, object]:
    return {c: row[c] for c in CANONICAL_COLUMNS if c in row.index and c != "source"}


def _online_pairs(matcher: OnlineMatcher, queries: pd.DataFrame, top: int) -> pd.DataFrame:
    rows = []
    for _, query in queries.iterrows():
        for candidate in matcher.match(_raw(query), top=top):
            rows.append((query["record_id"], candidate.record_id, candidate.match_weight, candidate.match_probability))
    return pd.DataFrame(rows, columns=["left_id", "right_id", "match_weight", "match_probability"])


def test_weights_equal_splink_predictions(febrl4, febrl_model):
    """The online matcher finds the same candidates as Splink and gives them the same weights (1e-6)."""
    left, right, _ = febrl4
    queries = left.sample(400, random_state=3)
    matcher = OnlineMatcher(febrl_model, right)
    ours = _online_pairs(matcher, queries, top=10_000)
    linker = matcher.model.linker(queries, right)
    theirs = linker.inference.predict().as_pandas_dataframe()
    theirs = theirs.rename(columns={"record_id_l": "left_id", "record_id_r": "right_id"})
    joined = ours.merge(theirs, on=["left_id", "right_id"], how="outer", suffixes=("", "_splink"), indicator=True)
    assert (joined["_merge"] == "both").all(), joined["_merge"].value_counts()
    assert len(joined) > 400
    difference = (joined["match_weight"] - joined["match_weight_splink"]).abs().max()
    assert difference < 1e-6
    assert (joined["match_probability"] - joined["match_probability_splink"]).abs().max() < 1e-9
    # Splink's per-comparison weights too.
    for _, query in queries.head(20).iterrows():
        for candidate in matcher.match(_raw(query), top=3):
            row = theirs[(theirs.left_id == query["record_id"]) & (theirs.right_id == candidate.record_id)].iloc[0]
            for name, weight in candidate.weights.items():
                assert weight == pytest.approx(row[f"mw_{name}"], abs=1e-9)


def test_weights_equal_splink_predict_between(febrl4, febrl_model):
    """Splink's `predict_between` (queries as left, registry as right) gives the same pairs and weights (1e-6).

    The model has no term-frequency adjustments, so no TF table is computed or registered.
    """
    left, right, _ = febrl4
    queries = left.sample(50, random_state=7)
    matcher = OnlineMatcher(febrl_model, right)
    ours = _online_pairs(matcher, queries, top=10_000)
    linker = matcher.model.linker(queries, right, names=("queries", "registry"))
    # The linker's own registered inputs: typed columns, and their names become `source_dataset`.
    query_table, registry_table = (linker._input_tables_dict[n] for n in ("queries", "registry"))
    theirs = linker.inference.predict_between(query_table, registry_table).as_pandas_dataframe()
    assert set(theirs["source_dataset_l"]) == {"queries"}
    assert set(theirs["source_dataset_r"]) == {"registry"}
    theirs = theirs.rename(columns={"record_id_l": "left_id", "record_id_r": "right_id"})
    joined = ours.merge(theirs, on=["left_id", "right_id"], how="outer", suffixes=("", "_splink"), indicator=True)
    assert (joined["_merge"] == "both").all(), joined["_merge"].value_counts()
    assert len(joined) > 50
    assert (joined["match_weight"] - joined["match_weight_splink"]).abs().max() < 1e-6
    assert (joined["match_probability"] - joined["match_probability_splink"]).abs().max() < 1e-9


def test_explanations(febrl4, febrl_model):
    left, right, truth = febrl4
    matcher = OnlineMatcher(febrl_model, right)
    query = left.iloc[0]
    expected = next(b for a, b in truth if a == query["record_id"])
    candidates = matcher.match(_raw(query), top=3)
    best = candidates[0]
    assert best.record_id == expected
    assert best.source == "febrl4b"
    assert best.match_probability > 0.99
    assert set(best.weights) == {c.name for c in febrl_model.comparisons} == set(best.levels)
    prior = matcher.model.prior_weight()
    assert best.match_weight == pytest.approx(prior + sum(best.weights.values()), abs=1e-9)
    assert [c.match_weight for c in candidates] == sorted((c.match_weight for c in candidates), reverse=True)
    assert all(isinstance(label, str) and label for label in best.levels.values())


def test_no_candidates_and_bad_registry(febrl_model, febrl4):
    _, right, _ = febrl4
    matcher = OnlineMatcher(febrl_model, right)
    assert matcher.match({"given_name": "Zzyzx", "surname": "Qqqq"}) == []
    assert matcher.match({}) == []
    with pytest.raises(MatchingError):
        OnlineMatcher(febrl_model, pd.DataFrame({"record_id": ["x"]}))
    with pytest.raises(MatchingError):
        OnlineMatcher(febrl_model, right.iloc[:0])


def test_prior_follows_registry_size(febrl_model, febrl4):
    _, right, _ = febrl4
    matcher = OnlineMatcher(febrl_model, right.head(1000))
    assert matcher.model.prior == pytest.approx(1 / 1000)
    assert len(matcher) == 1000
    kept = OnlineMatcher(febrl_model, right.head(1000), prior_for_registry=False)
    assert kept.model.prior == febrl_model.prior


def _truth(country) -> set[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(country / "truth.sqlite") as conn:
        rows = conn.execute(
            "SELECT m.record_id, c.record_id FROM record m JOIN record c ON m.person_id = c.person_id "
            "WHERE m.source = 'msp' AND c.source = 'cra'"
        ).fetchall()
    return {(str(a), str(b)) for a, b in rows}


def test_sandbox_msp_to_cra_without_ids(country):
    """Programme beneficiaries resolved to civil-registry records by demographics alone (IDs removed)."""
    cra = load(country / "cra.sqlite", CRA_PERSON)
    msp = load(country / "msp.sqlite", MSP_BENEFICIARY)
    model = train(msp, cra, sources=("msp", "cra"))
    matcher = OnlineMatcher(model, cra)
    queries = msp.assign(national_id=None)
    pairs = _online_pairs(matcher, queries, top=1)
    truth = _truth(country)
    # A person may have two CRA records (duplicate registrations): either is a correct link.
    wanted = {(m, c) for m, c in truth if m in set(msp["record_id"])}
    best_per_query: dict[str, set[str]] = {}
    for m, c in wanted:
        best_per_query.setdefault(m, set()).add(c)
    one_truth = set()
    found = dict(zip(pairs.left_id, pairs.right_id, strict=True))
    for m, cs in best_per_query.items():
        one_truth.add((m, found[m]) if found.get(m) in cs else (m, sorted(cs)[0]))
    scores = sweep(pairs, one_truth, thresholds=(0.5, 0.9))
    print("\n" + markdown_table(scores))
    at_half = scores[0]
    assert at_half.f1 >= 0.9, markdown_table(scores)
    assert np.isfinite(pairs["match_weight"]).all()
