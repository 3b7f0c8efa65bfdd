"""The Spark backend: FEBRL4 trained and linked on Spark (pyspark local mode) as accurately as on DuckDB.

Slow (Spark start-up and Splink's many small jobs: a few minutes). Skipped, saying why, when pyspark or
Java is missing, except in CI (CI=true), where a missing Spark is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time

import pandas as pd
import pytest

from matching import TrainedModel, link, train

pytestmark = pytest.mark.slow

IN_CI = os.environ.get("CI", "").lower() == "true"


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[dev]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed (Spark needs Java 17 or later)"
    return None


@pytest.fixture(scope="module")
def spark_ready() -> None:
    missing = _spark_missing()
    if missing is None:
        return
    if IN_CI:
        pytest.fail(f"the Spark backend must be tested in CI: {missing}")
    pytest.skip(f"Spark backend not testable here: {missing}")


def test_febrl4_trains_and_links_on_spark(
    spark_ready: None,
    febrl4: tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, str]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    left, right, truth = febrl4
    started = time.perf_counter()
    model = train(left, right, expected_match_rate=1.0, sources=("febrl4a", "febrl4b"), backend="spark")
    assert model.metadata["backend"] == "spark"
    # The model file is the same kind as DuckDB's: DuckDB SQL, readable by the online matcher.
    path = tmp_path_factory.mktemp("spark-model") / "model.json"
    model.save(path)
    loaded = TrainedModel.load(path)
    text = path.read_text(encoding="utf-8")
    assert '"sql_dialect": "spark"' not in text
    assert "jaro_winkler_similarity(" in text

    crosswalk = link(loaded, left, right, threshold=0.5, sources=("febrl4a", "febrl4b"), backend="spark")
    elapsed = time.perf_counter() - started
    pairs = crosswalk.pairs
    assert set(pairs["left_source"]) == {"febrl4a"}
    assert set(pairs["right_source"]) == {"febrl4b"}
    best = pairs.drop_duplicates("left_id")  # pairs are sorted by probability: one link per left record
    found = set(zip(best["left_id"], best["right_id"], strict=True))
    true_positives = len(found & truth)
    precision = true_positives / len(found)
    recall = true_positives / len(truth)
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.99, f"F1 {f1:.4f} (precision {precision:.4f}, recall {recall:.4f})"
    assert len(crosswalk.clusters) == len(left) + len(right)
    print(f"spark FEBRL4: F1 {f1:.4f} in {elapsed:.0f} s")
