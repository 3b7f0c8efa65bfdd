"""Online matching: one query record against a registry held in memory, in well under 10 ms.

Splink's `predict_between` costs hundreds of milliseconds per record (SQL generation and two passes),
too slow for a virtual-registry query. This matcher keeps the registry's normalised columns as numpy
arrays and a blocking index (dicts from blocking-key values to row ids), finds the candidates a Splink
prediction with the same blocking rules would find, evaluates the model's declared comparison levels
on them and adds Splink's level weights to the prior: the match weights equal Splink's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jellyfish
import numpy as np
import pandas as pd

from matching.comparisons import Comparison, Level
from matching.errors import MatchingError
from matching.model import TrainedModel
from matching.normalise import MODEL_COLUMNS, normalise_frame, normalise_record

_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A registry record that may be the queried person, with why the model thinks so."""

    record_id: str
    source: str | None
    match_weight: float
    match_probability: float
    #: Per comparison, the match weight it contributed (0 where a side was missing).
    weights: dict[str, float]
    #: Per comparison, the level that held (`exact birth_date`, `jaro_winkler given_name 0.92`, ...).
    levels: dict[str, str]


def probability(match_weight: np.ndarray) -> np.ndarray:
    """Splink's conversion of match weights to probabilities (stable for large magnitudes)."""
    w = np.asarray(match_weight, dtype=np.float64)
    small = np.power(2.0, -np.abs(w))
    return np.where(w >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


class OnlineMatcher:
    """A trained model and a registry in memory; `match` scores one record against the registry.

    The prior is reset for the registry's size unless `prior_for_registry` is False: the model was
    trained on tables of other sizes, and a registry ten times larger needs a prior ten times smaller.
    """

    def __init__(
        self, model: TrainedModel, registry: pd.DataFrame, *, prior_for_registry: bool = True, index: bool = True
    ) -> None:
        missing = [c for c in MODEL_COLUMNS if c not in registry.columns]
        if missing:
            raise MatchingError(f"registry is not normalised (missing {missing}); use matching.normalise_frame")
        if len(registry) == 0:
            raise MatchingError("the registry is empty")
        registry = registry.reset_index(drop=True)
        self.model = model.for_target_size(len(registry)) if prior_for_registry else model
        self._comparisons: tuple[Comparison, ...] = self.model.comparisons
        self._weights = self.model.level_weights()
        self._prior_weight = self.model.prior_weight()
        self._ids = registry["record_id"].astype(str).to_numpy()
        self._sources = registry["source"].to_numpy(dtype=object)
        self._columns: dict[str, np.ndarray] = {}
        for column in MODEL_COLUMNS:
            if column == "birth_year":
                self._columns[column] = registry[column].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                values: np.ndarray = registry[column].to_numpy(dtype=object).copy()
                values[np.asarray(pd.isna(values), dtype=bool)] = None
                self._columns[column] = values
        self._index = [self._build_index(registry, key) for key in self.model.blocking] if index else []

    def __len__(self) -> int:
        return len(self._ids)

    @staticmethod
    def _build_index(registry: pd.DataFrame, key: tuple[str, ...]) -> dict[tuple[Any, ...], np.ndarray]:
        frame = registry[list(key)].dropna()
        if "birth_year" in key:
            frame = frame.astype({"birth_year": "int64"})
        groups = frame.groupby(list(key), sort=False).indices
        registry_positions = frame.index.to_numpy()
        out: dict[tuple[Any, ...], np.ndarray] = {}
        for value, rows in groups.items():
            k = value if isinstance(value, tuple) else (value,)
            out[tuple(int(v) if isinstance(v, np.integer) else v for v in k)] = registry_positions[rows]
        return out

    def candidates(self, query: Mapping[str, Any]) -> np.ndarray:
        """Registry rows sharing at least one blocking key with the (normalised) query."""
        found: list[np.ndarray] = []
        for key, index in zip(self.model.blocking, self._index, strict=True):
            value = tuple(query.get(c) for c in key)
            if any(v is None for v in value):
                continue
            found.append(index.get(value, _EMPTY))
        if not found:
            return _EMPTY
        return np.unique(np.concatenate(found))

    def match(self, record: Mapping[str, Any], top: int = 5) -> list[Candidate]:
        """The `top` best candidates for a raw canonical record, best first."""
        query = normalise_record(record)
        return self._ranked(query, self.candidates(query), top)

    def score_all(self, record: Mapping[str, Any], top: int = 5) -> list[Candidate]:
        """Every registry row scored, blocking or not: for a handful of candidates found elsewhere."""
        query = normalise_record(record)
        return self._ranked(query, np.arange(len(self._ids), dtype=np.int64), top)

    def _ranked(self, query: Mapping[str, Any], rows: np.ndarray, top: int) -> list[Candidate]:
        if rows.size == 0:
            return []
        levels = self.levels(query, rows)
        contributions = np.stack([w[lv] for w, lv in zip(self._weights, levels, strict=True)], axis=1)
        total = self._prior_weight + contributions.sum(axis=1)
        order = np.argsort(-total, kind="stable")[:top]
        probabilities = probability(total[order])
        names = [c.name for c in self._comparisons]
        return [
            Candidate(
                record_id=str(self._ids[rows[i]]),
                source=self._sources[rows[i]],
                match_weight=float(total[i]),
                match_probability=float(p),
                weights={n: float(contributions[i, j]) for j, n in enumerate(names)},
                levels={n: self._comparisons[j].levels[int(levels[j][i])].label for j, n in enumerate(names)},
            )
            for i, p in zip(order, probabilities, strict=True)
        ]

    def levels(self, query: Mapping[str, Any], rows: np.ndarray) -> list[np.ndarray]:
        """Per comparison, the index of the level that holds for each candidate row."""
        out: list[np.ndarray] = []
        for comparison in self._comparisons:
            chosen = np.full(rows.size, -1, dtype=np.int64)
            for i, level in enumerate(comparison.levels):
                open_ = chosen < 0
                if not open_.any():
                    break
                holds = self._holds(level, query, rows, open_)
                chosen[open_ & holds] = i
            out.append(chosen)
        return out

    def _holds(self, level: Level, query: Mapping[str, Any], rows: np.ndarray, open_: np.ndarray) -> np.ndarray:
        c = level.columns
        n = rows.size
        match level.kind:
            case "else":
                return np.ones(n, dtype=bool)
            case "null":
                mask = np.zeros(n, dtype=bool)
                for column in c:
                    if query.get(column) is None:
                        return np.ones(n, dtype=bool)
                    mask |= self._missing(column, rows)
                return mask
            case "exact":
                return self._equal(c[0], query.get(c[0]), rows)
            case "swap":
                crossed: np.ndarray = self._equal(c[1], query.get(c[0]), rows)
                crossed &= self._equal(c[0], query.get(c[1]), rows)
                return crossed
            case "jaro_winkler" | "levenshtein":
                return self._similar(level, query.get(c[0]), rows, open_)
            case "year_only":
                date, year = c
                same_year = self._equal(year, query.get(year), rows)
                if query.get(date) is None:
                    return same_year
                same_year &= self._missing(date, rows)
                return same_year
            case "within":
                q = query.get(c[0])
                if q is None:
                    return np.zeros(n, dtype=bool)
                values = self._columns[c[0]][rows]
                with np.errstate(invalid="ignore"):
                    return np.asarray(np.abs(values - float(q)) <= float(level.threshold or 0), dtype=bool)
        raise MatchingError(f"unknown level kind {level.kind!r}")  # pragma: no cover - Level validates kinds

    def _missing(self, column: str, rows: np.ndarray) -> np.ndarray:
        values = self._columns[column][rows]
        if values.dtype == np.float64:
            return np.asarray(np.isnan(values), dtype=bool)
        return np.array([v is None for v in values], dtype=bool)

    def _equal(self, column: str, value: Any, rows: np.ndarray) -> np.ndarray:
        if value is None:
            return np.zeros(rows.size, dtype=bool)
        values = self._columns[column][rows]
        if values.dtype == np.float64:
            return np.asarray(values == float(value))
        return np.asarray(values == value, dtype=bool)

    def _similar(self, level: Level, value: Any, rows: np.ndarray, open_: np.ndarray) -> np.ndarray:
        mask = np.zeros(rows.size, dtype=bool)
        if value is None:
            return mask
        values = self._columns[level.columns[0]][rows]
        threshold = float(level.threshold or 0)
        for i in np.flatnonzero(open_):
            other = values[i]
            if other is None:
                continue
            if level.kind == "jaro_winkler":
                mask[i] = jellyfish.jaro_winkler_similarity(value, other) >= threshold
            else:
                mask[i] = jellyfish.levenshtein_distance(value, other) <= threshold
        return mask


def score_candidates(
    model: TrainedModel, record: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]], *, registry_size: int
) -> list[Candidate]:
    """Score a record against candidates another system proposed (e.g. a registry's own search).

    The prior is the one for the whole registry the candidates came from (`registry_size` rows), not
    for the handful proposed: they were found by a looser search, and a small prior keeps a weak
    resemblance from looking like a match.
    """
    if not candidates:
        return []
    frame = normalise_frame(pd.DataFrame([dict(c) for c in candidates]))
    matcher = OnlineMatcher(model.for_target_size(registry_size), frame, prior_for_registry=False, index=False)
    return matcher.score_all(record, top=len(candidates))
