"""`cache_seconds`: how long an agreement lets the provider's gateway reuse an answer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from policies import PolicyDecisionPoint, PolicyError, load_agreement
from policies.pdp import DecisionRequest
from tests.policies.helpers import BASE, CRA_SERVICE, MIS, PURPOSE


def _write(tmp_path: Path, **changes: Any) -> Path:
    doc = copy.deepcopy(BASE) | changes
    path = tmp_path / "a.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_default_is_never_and_the_decision_carries_it(tmp_path: Path) -> None:
    assert load_agreement(_write(tmp_path)).cache_seconds == 0
    agreement = load_agreement(_write(tmp_path, cache_seconds=120))
    assert agreement.cache_seconds == 120
    decision = PolicyDecisionPoint([agreement]).decide(
        DecisionRequest(client=MIS, service=CRA_SERVICE, purpose=PURPOSE)
    )
    assert decision.allowed
    assert decision.cache_seconds == 120


@pytest.mark.parametrize("value", [-1, 3601, 1.5, "60", True])
def test_out_of_range_or_not_a_whole_number_is_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(PolicyError, match="cache_seconds: must be a whole number of seconds from 0 to 3600"):
        load_agreement(_write(tmp_path, cache_seconds=value))
