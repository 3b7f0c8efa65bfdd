"""Suppressed cells of a published oversight table cannot be derived from what is published, totals included.

The audit plays the attacker: from the published table alone (published cells, published totals, every count at
least zero, integrality relaxed) it solves a linear programme for the least and the greatest value each withheld
cell can take. A primary (small) cell is safe only if that interval is wider than a single value.

Stronger property, reported not asserted: an interval that reaches 0 or the threshold would hide even *that* the count
is small. The design does not promise it, but it mostly holds: over 420 tables drawn like the audit's (thresholds 3, 5
and 10), 99.8% of 773 primary cells with zeros_are_safe=True and 98.8% of 987 with zeros_are_safe=False had such an
interval. The rest stay between two small values, typically a block of small cells protecting each other (see
test_an_interval_may_stay_inside_the_small_range).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog  # type: ignore[import-untyped]

from gateway.vsr.disclosure import TOTAL, Suppressed, suppress

CATEGORIES = ["eligible, enrolled", "eligible, not enrolled", "enrolled, not eligible", "undetermined"]


def table(values: Sequence[Sequence[float]], rows: str = "abcdef", columns: str = "xyzuv") -> pd.DataFrame:
    return pd.DataFrame(values, index=list(rows[: len(values)]), columns=list(columns[: len(values[0])]))


def withheld(result: Suppressed) -> set[tuple[str, str]]:
    mask = result.table.isna()
    return {(str(r), str(c)) for r in mask.index for c in mask.columns if mask.loc[r, c]}


def feasible_interval(published: pd.DataFrame, cell: tuple[str, str]) -> tuple[float, float]:
    """The attacker's bounds on one withheld cell, from the published table alone (margins in the last row/column)."""
    values = published.to_numpy(dtype="float64", na_value=np.nan)
    unknown = [(p, q) for p in range(values.shape[0]) for q in range(values.shape[1]) if math.isnan(values[p, q])]
    variable = {position: k for k, position in enumerate(unknown)}
    lines = [[(p, q) for q in range(values.shape[1])] for p in range(values.shape[0])]
    lines += [[(p, q) for p in range(values.shape[0])] for q in range(values.shape[1])]
    equations, constants = [], []
    for line in lines:
        coefficients, constant = np.zeros(len(unknown)), 0.0
        for position in line:
            sign = -1.0 if position == line[-1] else 1.0  # a line's parts minus its total (its last cell) is zero
            if position in variable:
                coefficients[variable[position]] += sign
            else:
                constant -= sign * values[position]
        equations.append(coefficients)
        constants.append(constant)
    target = np.zeros(len(unknown))
    target[variable[(published.index.get_loc(cell[0]), published.columns.get_loc(cell[1]))]] = 1.0
    bounds = []
    for objective in (target, -target):
        solved = linprog(
            objective, A_eq=np.array(equations), b_eq=np.array(constants), bounds=(0, None), method="highs"
        )
        if solved.status == 3:  # unbounded: only the maximum can be
            bounds.append(math.inf)
            continue
        assert solved.status == 0, solved.message
        bounds.append(float(solved.fun) * (1.0 if objective is target else -1.0))
    return bounds[0], bounds[1]


def audit(counts: pd.DataFrame, result: Suppressed) -> list[tuple[float, float, int]]:
    """Check the publication against the rules and the attacker; return each primary cell's (min, max, true value)."""
    truth = counts.copy()
    truth[TOTAL] = truth.sum(axis=1)
    truth.loc[TOTAL] = truth.sum(axis=0)
    published = result.table
    assert list(published.index) == list(truth.index)
    assert list(published.columns) == list(truth.columns)
    assert str(published.dtypes.iloc[0]) == "Int64"
    shown = published.notna().to_numpy()
    assert (published.to_numpy(dtype="float64", na_value=np.nan)[shown] == truth.to_numpy()[shown]).all()
    assert withheld(result) == result.primary | result.complementary
    assert not result.primary & result.complementary
    # Rule 2: no line of the extended table holds a single withheld cell.
    hidden = published.isna().to_numpy()
    assert 1 not in set(hidden.sum(axis=0)) | set(hidden.sum(axis=1))
    intervals = []
    for cell in sorted(result.primary):
        low, high = feasible_interval(published, cell)
        value = int(truth.loc[cell])
        assert low - 1e-6 <= value <= high + 1e-6, (cell, low, high, value)
        # Network data: the LP's optimum is whole, so "wider than one value" means at least one apart.
        assert high - low >= 1 - 1e-6, f"{cell} is pinned to {low}..{high}\n{published}"
        intervals.append((low, high, value))
    return intervals


def test_a_small_cell_gets_a_block_of_partners() -> None:
    counts = table([[20, 5, 30], [25, 40, 12], [30, 35, 50]])
    result = suppress(counts)
    assert result.primary == {("a", "y")}
    # Smallest partner in row a (20), then the smallest in column x (25), then the cell completing row b and column y.
    assert result.complementary == {("a", "x"), ("b", "x"), ("b", "y")}
    assert result.table.loc[TOTAL].tolist() == [75, 80, 92, 247]
    assert result.table[TOTAL].tolist() == [55, 77, 115, 247]
    assert result.threshold == 10
    audit(counts, result)


def test_small_cells_protect_each_other() -> None:
    counts = table([[3, 4, 50], [2, 6, 40], [30, 30, 30]])
    result = suppress(counts)
    assert result.primary == {("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")}
    assert result.complementary == frozenset()
    [(low, high, _), *_] = audit(counts, result)
    assert (low, high) == (0, 5)


def test_two_per_line_is_not_enough() -> None:
    """Two blocks joined by one small cell: every line has two withheld cells, yet the joining cell is determined."""
    counts = table([[3, 4, 6, 30], [5, 2, 40, 50], [60, 70, 1, 2], [80, 90, 3, 4]], columns="wxyz")
    primaries = {(r, c) for r in "abcd" for c in "wxyz" if 0 < counts.loc[r, c] < 10}
    pairs_only = counts.copy().astype("Int64")
    pairs_only[TOTAL] = pairs_only.sum(axis=1)
    pairs_only.loc[TOTAL] = pairs_only.sum(axis=0)
    for cell in primaries:
        pairs_only.loc[cell] = pd.NA
    assert feasible_interval(pairs_only, ("a", "y")) == pytest.approx((6, 6))  # the audit catches it

    result = suppress(counts)
    assert result.primary == primaries
    assert result.complementary == {("a", "z")}  # closes a cycle a-y, c-y, c-z, a-z
    audit(counts, result)


def test_an_interval_may_stay_inside_the_small_range() -> None:
    """The known limit: undetermined is not the same as "could be zero or large"."""
    counts = table([[5, 1, 30], [1, 1, 30], [30, 30, 30]])
    result = suppress(counts)
    assert result.complementary == frozenset()
    assert audit(counts, result)[0] == (4, 6, 5)


def test_zeros_are_safe_unless_declared_otherwise() -> None:
    counts = table([[0, 25, 30], [15, 20, 35]])
    safe = suppress(counts)
    assert safe.primary == safe.complementary == frozenset()
    assert safe.table.loc["a", "x"] == 0

    unsafe = suppress(counts, zeros_are_safe=False)
    assert unsafe.primary == {("a", "x")}
    # A zero can only grow, so its partners must be able to shrink: positive counts.
    assert unsafe.complementary == {("a", "y"), ("b", "x"), ("b", "y")}
    [(low, high, value)] = audit(counts, unsafe)
    assert (low, high, value) == (0, 15, 0)


def test_a_zero_row_with_unsafe_zeros() -> None:
    counts = table([[0, 0], [20, 30], [40, 50]])
    result = suppress(counts, zeros_are_safe=False)
    assert result.primary == {("a", "x"), ("a", "y"), ("a", TOTAL)}
    audit(counts, result)


def test_one_row_needs_the_column_totals() -> None:
    counts = table([[5, 20, 30]], rows="r")
    result = suppress(counts)
    # The column total of a one-row table is the cell itself: small, so primary too.
    assert result.primary == {("r", "x"), (TOTAL, "x")}
    assert result.complementary == {("r", "y"), (TOTAL, "y")}
    assert result.table[TOTAL].tolist() == [55, 55]
    audit(counts, result)


def test_one_column_needs_the_row_totals() -> None:
    counts = table([[5], [20], [30]], columns="x")
    result = suppress(counts)
    assert result.primary == {("a", "x"), ("a", TOTAL)}
    assert result.complementary == {("b", "x"), ("b", TOTAL)}
    assert result.table.loc[TOTAL].tolist() == [55, 55]
    audit(counts, result)


def test_a_large_one_row_table_is_published_whole() -> None:
    result = suppress(table([[12, 20, 30]], rows="r"))
    assert withheld(result) == set()


def test_all_large_publishes_everything() -> None:
    counts = pd.DataFrame([[120, 40, 15, 33], [88, 10, 21, 10]], index=["Kisumu", "Nakuru"], columns=CATEGORIES)
    result = suppress(counts)
    assert withheld(result) == set()
    assert result.table.loc[TOTAL, TOTAL] == 337
    assert result.table.loc["Nakuru", TOTAL] == 129


def test_all_small_withholds_everything() -> None:
    counts = table([[1, 2], [3, 1]])
    result = suppress(counts)
    everything = {(r, c) for r in ("a", "b", TOTAL) for c in ("x", "y", TOTAL)}
    assert result.primary == everything  # the totals are small too
    assert result.complementary == frozenset()
    assert audit(counts, result)[0][1] == math.inf  # with the grand total gone nothing bounds a cell


def test_records_are_json_and_name_only_what_is_withheld() -> None:
    counts = pd.DataFrame([[120, 4, 15, 33], [88, 10, 21, 10]], index=["Kisumu", "Nakuru"], columns=CATEGORIES)
    result = suppress(counts)
    records = result.as_records()
    json.dumps(records)
    assert [record["row"] for record in records] == ["Kisumu", "Nakuru", TOTAL]
    kisumu = records[0]
    assert kisumu["eligible, not enrolled"] is None
    assert kisumu["total"] == 172
    assert sorted(kisumu["suppressed"]) == sorted(c for r, c in withheld(result) if r == "Kisumu")
    assert records[2]["suppressed"] == []
    assert "primary" not in json.dumps(records)  # the public cannot tell a small cell from its partners


def test_same_input_same_output() -> None:
    counts = table([[5, 5, 5, 30], [5, 30, 30, 5], [30, 5, 30, 30]], columns="wxyz")
    first, second = suppress(counts), suppress(counts.copy())
    assert (first.primary, first.complementary) == (second.primary, second.complementary)
    assert first.table.equals(second.table)


def test_the_threshold_moves_the_line() -> None:
    counts = table([[5, 20], [30, 40]])
    assert suppress(counts, threshold=5).primary == frozenset()
    assert suppress(counts, threshold=6).primary == {("a", "x")}
    assert suppress(counts, threshold=21).primary == {("a", "x"), ("a", "y")}


@pytest.mark.parametrize(
    ("counts", "threshold", "message"),
    [
        (table([[1, -2]]), 10, "negative"),
        (table([[1.0, 2.0]]), 10, "whole numbers"),
        (table([[1, 2]]).astype("Int64").mask(table([[True, False]])), 10, "missing"),
        (pd.DataFrame([[1, 2]], index=["total"], columns=["x", "y"]), 10, "reserved"),
        (pd.DataFrame([[1, 2]], index=["a"], columns=["x", "suppressed"]), 10, "reserved"),
        (pd.DataFrame([[1, 2]], index=["a"], columns=[0, 1]), 10, "text"),
        (pd.DataFrame([[1, 2]], index=["a"], columns=["x", "x"]), 10, "unique"),
        (pd.DataFrame(), 10, "at least one row"),
        (table([[1, 2]]), 0, "threshold"),
        (table([[True, False]]), 10, "whole numbers"),
    ],
)
def test_refuses_what_is_not_a_table_of_counts(counts: pd.DataFrame, threshold: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        suppress(counts, threshold=threshold)


@st.composite
def count_tables(draw: st.DrawFn) -> pd.DataFrame:
    rows, columns = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    count = st.integers(0, 9) | st.integers(0, 40)  # about half the draws small
    values = draw(st.lists(st.lists(count, min_size=columns, max_size=columns), min_size=rows, max_size=rows))
    return table(values)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=count_tables(), threshold=st.sampled_from([3, 5, 10]), zeros_are_safe=st.booleans())
def test_audit_no_suppressed_cell_can_be_derived(counts: pd.DataFrame, threshold: int, zeros_are_safe: bool) -> None:
    result = suppress(counts, threshold=threshold, zeros_are_safe=zeros_are_safe)
    small = {
        (str(r), str(c))
        for r in counts.index
        for c in counts.columns
        if counts.loc[r, c] < threshold and (counts.loc[r, c] > 0 or not zeros_are_safe)
    }
    assert small <= result.primary
    audit(counts, result)
