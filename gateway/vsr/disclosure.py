"""Statistical disclosure control for the registry's published oversight tables (counts per district and category).

Policy makers and the public need the figures; none of them needs a name, and a small count can point at one. Small
counts are therefore withheld (primary suppression), and so are enough other cells that a withheld count cannot be
recomputed from what is published (complementary suppression).

The rules, on the table extended by its margins (a "total" column of row sums, a "total" row of column sums and the
grand total in their corner):

1. Primary: a cell with 0 < count < threshold is withheld; so is a zero when zeros are not declared safe. Margins
   follow the same rule: a total is published unless it is itself small, because a small total is as revealing as a
   small cell. A withheld margin is then protected exactly like any other cell: rules 2 and 3 treat the total row and
   the total column as lines of the extended table, so its partners are found among the other totals.
2. Pairs: every line (row or column of the extended table) with a withheld cell has at least two, or its published
   total gives the lone one away by subtraction. Partners are picked greedily: an interior cell before a total (the
   totals are what readers most need), a positive count before a zero (a zero can only move up, so it hides a
   neighbour in one direction only), a cell that completes two lines before one that completes one and one that opens
   a new incomplete line last, then the smallest count, then table order. In a one-row table a column has no other
   interior cell, so the column's total is withheld with it: the only way to protect the cell through that column.
3. Cycles: pairs are necessary but not sufficient; two protected blocks joined by a single withheld cell satisfy rule 2
   and still fix that cell by linear algebra. The extended table is a circulation (source -> row -> column -> sink ->
   source, the row totals, interior cells, column totals and the grand total being the flows), so a withheld count can
   be moved without changing anything published exactly when it lies on a cycle of withheld cells that may move in
   that direction (a cell at zero may only grow). Every primary cell must be able to move both up and, if above zero,
   down; when it cannot, the cheapest chain of published cells that closes such a cycle is withheld too (totals
   costliest, then by count), found by a shortest-path search.

Rules 2 and 3 repeat until nothing changes. Each primary count is then undetermined even to an attacker who solves
the linear programme over all published figures: its feasible interval is wider than one value. The interval is not
promised to reach zero or the threshold; the tests report how often it does. Ties break by table order, so the same
input always gives the same output.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

TOTAL = "total"
# Keys that as_records writes beside the column names.
_RECORD_KEYS = ("row", "suppressed")

Cell = tuple[int, int]
Grid = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
# (totals withheld, counts withheld plus one per cell): lexicographic, so a path through a total is a last resort.
Cost = tuple[int, int]
# node -> (node, cell) for each way flow may move along a cell
Network = dict[int, list[tuple[int, Cell]]]
# (is a total, is zero, -lines completed net, count, row, column)
Preference = tuple[bool, bool, int, int, int, int]


@dataclass(frozen=True, eq=False)
class Suppressed:
    """A table as it may be published, with the record of what was withheld and why (for the operator, not the public).

    Compared by identity: a DataFrame has no single truth value to compare or hash by.
    """

    table: pd.DataFrame
    primary: frozenset[tuple[str, str]]
    complementary: frozenset[tuple[str, str]]
    threshold: int

    def as_records(self) -> list[dict[str, Any]]:
        """Rows for a JSON response; the public view names the withheld columns but not which rule withheld them."""
        records: list[dict[str, Any]] = []
        for row, values in self.table.iterrows():
            record: dict[str, Any] = {"row": row}
            withheld: list[str] = []
            for column, value in values.items():
                if pd.isna(value):
                    record[column] = None
                    withheld.append(column)
                else:
                    record[column] = int(value)
            record["suppressed"] = withheld
            records.append(record)
        return records


def suppress(counts: pd.DataFrame, *, threshold: int = 10, zeros_are_safe: bool = True) -> Suppressed:
    """Withhold small counts and enough partners that none can be derived from what is published (rules above)."""
    rows, columns, interior = _checked(counts, threshold)
    grid = _with_margins(interior)
    primary = (grid < threshold) & ((grid > 0) | (not zeros_are_safe))
    hidden = primary.copy()
    while _pair_lines(grid, hidden) | _close_cycles(grid, hidden, primary):
        pass

    row_labels, column_labels = [*rows, TOTAL], [*columns, TOTAL]
    table = pd.DataFrame(
        grid,
        index=pd.Index(row_labels, name=counts.index.name),
        columns=pd.Index(column_labels, name=counts.columns.name),
    ).astype("Int64")

    def named(mask: Mask) -> frozenset[tuple[str, str]]:
        return frozenset((row_labels[p], column_labels[q]) for p, q in zip(*np.nonzero(mask), strict=True))

    return Suppressed(
        table=table.mask(hidden),
        primary=named(primary),
        complementary=named(hidden & ~primary),
        threshold=threshold,
    )


def _checked(counts: pd.DataFrame, threshold: int) -> tuple[list[str], list[str], Grid]:
    """Refuse anything but a labelled table of whole non-negative counts: a float or a gap here is a bug upstream."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"threshold must be a positive whole number, not {threshold!r}")
    if not isinstance(counts, pd.DataFrame) or counts.shape[0] < 1 or counts.shape[1] < 1:
        raise ValueError("counts must be a table with at least one row and one column")
    rows = _labels(counts.index, "row", reserved=(TOTAL,))
    columns = _labels(counts.columns, "column", reserved=(TOTAL, *_RECORD_KEYS))
    if bool(counts.isna().to_numpy().any()):
        raise ValueError("counts has missing values; a count is a whole number, zero included")
    if not all(
        pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in counts.dtypes
    ):
        raise ValueError("counts must be whole numbers (an integer dtype)")
    interior: Grid = counts.to_numpy(dtype=np.int64)
    if bool((interior < 0).any()):
        raise ValueError("counts must not be negative")
    return rows, columns, interior


def _labels(index: pd.Index, kind: str, *, reserved: tuple[str, ...]) -> list[str]:
    labels: list[Hashable] = list(index)
    if not all(isinstance(label, str) for label in labels):
        raise ValueError(f"every {kind} label must be text")
    if index.has_duplicates:
        raise ValueError(f"{kind} labels must be unique")
    clashes = sorted(set(reserved) & {str(label) for label in labels})
    if clashes:
        raise ValueError(f"{kind} label {clashes[0]!r} is reserved for the published table")
    return [str(label) for label in labels]


def _with_margins(interior: Grid) -> Grid:
    grid: Grid = np.zeros((interior.shape[0] + 1, interior.shape[1] + 1), dtype=np.int64)
    grid[:-1, :-1] = interior
    grid[:-1, -1] = interior.sum(axis=1)
    grid[-1, :-1] = interior.sum(axis=0)
    grid[-1, -1] = interior.sum()
    return grid


def _is_margin(grid: Grid, cell: Cell) -> bool:
    return cell[0] == int(grid.shape[0]) - 1 or cell[1] == int(grid.shape[1]) - 1


def _pair_lines(grid: Grid, hidden: Mask) -> bool:
    """Rule 2: give every line's lone withheld cell a partner; True if anything was withheld."""
    changed = False
    while True:
        per_row, per_column = hidden.sum(axis=1), hidden.sum(axis=0)
        lone_rows, lone_columns = np.flatnonzero(per_row == 1), np.flatnonzero(per_column == 1)
        if lone_rows.size == 0 and lone_columns.size == 0:
            return changed
        candidates = {(int(p), q) for p in lone_rows for q in range(grid.shape[1]) if not hidden[p, q]}
        candidates |= {(p, int(q)) for q in lone_columns for p in range(grid.shape[0]) if not hidden[p, q]}
        best = min((_preference(grid, cell, per_row, per_column), cell) for cell in candidates)[1]
        hidden[best] = True
        changed = True


def _preference(grid: Grid, cell: Cell, per_row: npt.NDArray[np.int_], per_column: npt.NDArray[np.int_]) -> Preference:
    """Rule 2's order of partners, smallest first."""
    # +1 for each line the cell completes, -1 for a line it opens (that line then needs a partner of its own).
    net = sum(1 if n == 1 else -1 if n == 0 else 0 for n in (per_row[cell[0]], per_column[cell[1]]))
    count = int(grid[cell])
    return _is_margin(grid, cell), count == 0, -net, count, cell[0], cell[1]


def _close_cycles(grid: Grid, hidden: Mask, primary: Mask) -> bool:
    """Rule 3: make every primary cell movable both ways; True if anything was withheld."""
    changed = False
    network = _network(grid)
    for p, q in zip(*np.nonzero(primary), strict=True):
        cell = (int(p), int(q))
        tail, head = _ends(grid, cell)
        # Up: a path back from head to tail closes a cycle through the cell's own arc; down: the reverse.
        directions = [(head, tail)] + ([(tail, head)] if grid[cell] > 0 else [])
        for start, goal in directions:
            for extra in _cheapest_cover(grid, network, hidden, cell, start, goal):
                hidden[extra] = True
                changed = True
    return changed


def _ends(grid: Grid, cell: Cell) -> tuple[int, int]:
    """The cell as an arc of the circulation: nodes 0..R are rows (R, the total row, is the sink); then the columns
    (the last, the total column, is the source). Interior cells and the grand total run row -> column, margins the
    other way: source -> row for a row total, column -> sink for a column total."""
    p, q = cell
    row_node, column_node = p, grid.shape[0] + q
    if (p == grid.shape[0] - 1) == (q == grid.shape[1] - 1):
        return row_node, column_node
    return column_node, row_node


def _network(grid: Grid) -> Network:
    """Every way flow may change along one cell: forward always, backward only while the count is above zero."""
    outgoing: Network = {}
    for p in range(grid.shape[0]):
        for q in range(grid.shape[1]):
            tail, head = _ends(grid, (p, q))
            outgoing.setdefault(tail, []).append((head, (p, q)))
            if grid[p, q] > 0:
                outgoing.setdefault(head, []).append((tail, (p, q)))
    return outgoing


def _cheapest_cover(grid: Grid, network: Network, hidden: Mask, cell: Cell, start: int, goal: int) -> list[Cell]:
    """Published cells to withhold so a path start -> goal avoiding `cell` runs through withheld cells only (none if
    one already does). Withheld cells cost nothing, so the search finds an existing path before it buys any cell."""
    best: dict[int, Cost] = {start: (0, 0)}
    came_by: dict[int, tuple[int, Cell]] = {}
    queue: list[tuple[Cost, int]] = [((0, 0), start)]
    while queue:
        cost, node = heapq.heappop(queue)
        if node == goal:
            break
        if cost > best[node]:
            continue
        for head, through in network.get(node, []):
            if through == cell:
                continue
            step = (0, 0) if hidden[through] else (int(_is_margin(grid, through)), int(grid[through]) + 1)
            reached = (cost[0] + step[0], cost[1] + step[1])
            if head not in best or reached < best[head]:
                best[head] = reached
                came_by[head] = (node, through)
                heapq.heappush(queue, (reached, head))
    # The full extended table always holds a path (through the margins), so the goal is always reached.
    bought: list[Cell] = []
    node = goal
    while node != start:
        node, through = came_by[node]
        if not hidden[through]:
            bought.append(through)
    return bought
