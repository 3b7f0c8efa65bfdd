"""Training a Splink 5 model on DuckDB, and the versioned file that keeps it.

u comes from random sampling, m from EM over several blocking rules, and the prior is set from the
size of the table matched against (not estimated): a prior fitted to a 5,000-row table would make a
1,000,000-row registry produce false positives. The file holds Splink's own model JSON plus what the
online matcher needs to reproduce its weights exactly (the level declarations and blocking keys).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from matching.backends import Backend, check_backend, database_api, from_dialect, register, to_dialect
from matching.comparisons import DEFAULT_BLOCKING, DEFAULT_COMPARISONS, DEFAULT_EM_BLOCKING, Comparison
from matching.errors import ModelError, TrainingError
from matching.normalise import MODEL_COLUMNS

if TYPE_CHECKING:
    from splink import Linker

FORMAT = "kiungo-matching-model"
FORMAT_VERSION = 1
#: What Splink uses for a level never seen in training, and the floor it clamps m and u to.
_NOT_OBSERVED = "level not observed in training dataset"
_NOT_OBSERVED_PROBABILITY = 1e-6
_CLAMP_MIN = 1e-300


def prior_for(target_rows: int, expected_match_rate: float) -> float:
    """Probability two random records match when a share of queries has one match among `target_rows`."""
    if target_rows < 1:
        raise TrainingError("the target table is empty")
    return min(max(expected_match_rate / target_rows, 1e-12), 0.5)


@dataclass(frozen=True)
class TrainedModel:
    """A trained model: Splink's settings with m/u, the level declarations, and training metadata."""

    splink_settings: dict[str, Any]
    comparisons: tuple[Comparison, ...]
    blocking: tuple[tuple[str, ...], ...]
    expected_match_rate: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prior(self) -> float:
        return float(self.splink_settings["probability_two_random_records_match"])

    def prior_weight(self) -> float:
        """Splink's prior as a match weight: log2(p / (1 - p))."""
        p = self.prior
        return math.log2(p / (1 - p))

    def for_target_size(self, target_rows: int) -> TrainedModel:
        """The same model with the prior set for matching against a table of `target_rows`."""
        settings = json.loads(json.dumps(self.splink_settings))
        settings["probability_two_random_records_match"] = prior_for(target_rows, self.expected_match_rate)
        return replace(self, splink_settings=settings)

    def level_weights(self) -> list[np.ndarray]:
        """Per comparison, the match weight of each level in declaration order, computed as Splink does."""
        out: list[np.ndarray] = []
        trained = self.splink_settings["comparisons"]
        if len(trained) != len(self.comparisons):
            raise ModelError("model file: comparisons do not match their declarations")
        for comparison, splink_comparison in zip(self.comparisons, trained, strict=True):
            levels = splink_comparison["comparison_levels"]
            if len(levels) != len(comparison.levels):
                raise ModelError(f"model file: levels of {comparison.name!r} do not match their declaration")
            weights = [_level_weight(comparison.name, level) for level in levels]
            out.append(np.array(weights, dtype=np.float64))
        return out

    def linker(
        self,
        *frames: pd.DataFrame,
        names: tuple[str, ...] = ("records_left", "records_right"),
        backend: Backend = "duckdb",
    ) -> Linker:
        """A Splink linker holding this model on a fresh `backend` database, for batch prediction and checks."""
        from splink import Linker

        db_api = database_api(check_backend(backend))
        tables = [register(db_api, _for_splink(f), n) for f, n in zip(frames, names, strict=False)]
        settings = to_dialect(json.loads(json.dumps(self.splink_settings)), backend)
        return Linker(tables if len(tables) > 1 else tables[0], settings, log_level=None)

    def save(self, path: Path) -> None:
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "metadata": self.metadata,
            "expected_match_rate": self.expected_match_rate,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "blocking": [list(b) for b in self.blocking],
            "splink": self.splink_settings,
        }
        path.write_text(json.dumps(document, indent=2, sort_keys=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainedModel:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model {path}: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ModelError(f"{path} is not a Kiungo matching model")
        if document.get("version") != FORMAT_VERSION:
            raise ModelError(f"{path}: model format version {document.get('version')!r}, expected {FORMAT_VERSION}")
        try:
            model = cls(
                splink_settings=document["splink"],
                comparisons=tuple(Comparison.from_dict(c) for c in document["comparisons"]),
                blocking=tuple(tuple(b) for b in document["blocking"]),
                expected_match_rate=float(document["expected_match_rate"]),
                metadata=document.get("metadata", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: malformed model: {exc}") from exc
        model.level_weights()  # fail now, not at the first query, when parameters are missing
        return model


def _level_weight(comparison: str, level: dict[str, Any]) -> float:
    if level.get("is_null_level"):
        return 0.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if m is None or u is None:
        raise ModelError(f"comparison {comparison!r} level {level.get('label_for_charts')!r} was never estimated")
    m = _NOT_OBSERVED_PROBABILITY if m == _NOT_OBSERVED else float(m)
    u = _NOT_OBSERVED_PROBABILITY if u == _NOT_OBSERVED else float(u)
    return math.log2(max(m, _CLAMP_MIN) / max(u, _CLAMP_MIN))


def _neutralise_unestimated(model_dict: dict[str, Any]) -> list[str]:
    """Fill levels training never saw, the way Splink treats unobserved levels, and say which.

    No m (EM never saw the level among matches): m = u, weight 0, no evidence either way. No u (random
    sampling never saw it among non-matches): Splink's "level not observed" (1e-6), i.e. rare by chance.
    """
    filled: list[str] = []
    for comparison in model_dict["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m is not None and u is not None:
                continue
            if u is None:
                level["u_probability"] = u = _NOT_OBSERVED
            if m is None:
                level["m_probability"] = u
            filled.append(f"{comparison['output_column_name']}: {level.get('label_for_charts')}")
    return filled


def _informative(frame: pd.DataFrame, comparison: Comparison) -> bool:
    """A comparison whose columns are empty in a table can never be estimated: train without it."""
    nullable = [lv.columns for lv in comparison.levels if lv.kind == "null"]
    columns = nullable[0] if nullable else comparison.columns
    return all(c in frame.columns and bool(frame[c].notna().any()) for c in columns)


def _named(table: pa.Table, name: str) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"kiungo_name": name.encode()})


def _iso_dates(column: pd.Series) -> pd.Series:
    """Birth dates as ISO `YYYY-MM-DD` text (None when unknown), whatever type they came in as.

    Both backends compare dates as text (exact, Levenshtein on the string); a datetime or date column
    would otherwise be typed, and printed, differently by DuckDB and Spark.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.dt.strftime("%Y-%m-%d").astype(object).where(column.notna(), None)

    def one(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            return None
        if isinstance(value, datetime | date):
            return value.strftime("%Y-%m-%d")
        return value

    return column.map(one)


def _for_splink(frame: pd.DataFrame) -> pa.Table:
    """Typed columns: an all-empty column would otherwise reach DuckDB as INTEGER and break string SQL."""
    missing = [c for c in MODEL_COLUMNS if c not in frame.columns]
    if missing:
        raise TrainingError(f"frame is not normalised (missing {missing}); use matching.normalise_frame")
    schema = pa.schema([(c, pa.int64() if c == "birth_year" else pa.string()) for c in MODEL_COLUMNS])
    columns = frame[list(MODEL_COLUMNS)].copy()
    columns["birth_date"] = _iso_dates(columns["birth_date"])
    return pa.Table.from_pandas(columns, schema=schema, preserve_index=False)


def _train_on_labels(
    model_dict: dict[str, Any],
    tables: list[pa.Table],
    labels: pd.DataFrame | None,
    em_sessions: int,
    backend: Backend = "duckdb",
) -> int:
    """Blend in m estimated from clerically confirmed matches; returns how many labels were used.

    Splink averages m over its training sessions; its own label session fails when an EM session left
    an m below its 1e-300 floor, so the labels are estimated on a fresh linker holding the EM model
    (m clamped) and averaged in here as one more session: m = (k * m_EM + m_labels) / (k + 1).
    Splink counts every label row as a match, so only pairs scored 1.0 are used.
    """
    from splink import Linker

    if labels is None or labels.empty:
        return 0
    columns = ["source_dataset_l", "unique_id_l", "source_dataset_r", "unique_id_r"]
    missing = [c for c in [*columns, "clerical_match_score"] if c not in labels.columns]
    if missing:
        raise TrainingError(f"labels lack columns {missing}")
    matches = labels[labels["clerical_match_score"].astype(float) >= 1.0][columns].astype(str)
    matches = matches.rename(columns={"unique_id_l": "record_id_l", "unique_id_r": "record_id_r"})
    if matches.empty:
        return 0
    settings = json.loads(json.dumps(model_dict))
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            m = level.get("m_probability")
            if isinstance(m, float):
                level["m_probability"] = max(m, _CLAMP_MIN)
    db_api = database_api(backend)
    registered = [register(db_api, t, n) for t, n in tables_named(tables)]
    linker = Linker(
        registered if len(registered) > 1 else registered[0], to_dialect(settings, backend), log_level=logging.ERROR
    )
    labels_table = linker.table_management.register_table(matches, "__kiungo_clerical_labels", overwrite=True)
    try:
        linker.training.estimate_m_from_pairwise_labels(labels_table)  # type: ignore[no-untyped-call]
    except Exception as exc:  # Splink raises plain errors; training must say why
        raise TrainingError(f"cannot estimate m from the clerical labels: {exc}") from exc
    trained = from_dialect(linker.misc.save_model_to_json(), backend)
    for before, after in zip(model_dict["comparisons"], trained["comparisons"], strict=True):
        for old, new in zip(before["comparison_levels"], after["comparison_levels"], strict=True):
            m_old, m_new = old.get("m_probability"), new.get("m_probability")
            if isinstance(m_old, float) and isinstance(m_new, float) and m_new != max(m_old, _CLAMP_MIN):
                old["m_probability"] = (em_sessions * m_old + m_new) / (em_sessions + 1)
    return len(matches)


def tables_named(tables: list[pa.Table]) -> list[tuple[pa.Table, str]]:
    return [(t, str(t.schema.metadata[b"kiungo_name"].decode())) for t in tables]


def train(
    left: pd.DataFrame,
    right: pd.DataFrame | None = None,
    *,
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS,
    blocking: tuple[tuple[str, ...], ...] = DEFAULT_BLOCKING,
    em_blocking: tuple[tuple[str, ...], ...] = DEFAULT_EM_BLOCKING,
    expected_match_rate: float = 0.9,
    u_max_pairs: float = 2e6,
    seed: int = 42,
    sources: tuple[str, ...] = ("records_left", "records_right"),
    labels: pd.DataFrame | None = None,
    backend: Backend = "duckdb",
) -> TrainedModel:
    """Train on normalised frames: link `left` to `right`, or deduplicate `left` when `right` is None.

    `expected_match_rate` is the share of `left` records expected to have a match in `right`; with the
    size of `right` it sets the prior. `labels` (clerical decisions, `matching.ReviewQueue.labels()`:
    `source_dataset_l, unique_id_l, source_dataset_r, unique_id_r, clerical_match_score`) add an m
    estimate from the pairs scored 1.0, after EM; the source names must be those in `sources`.
    `backend` is where Splink runs (`"duckdb"`, or `"spark"`: see `matching.backends`); the model is
    the same kind either way (its SQL is kept in DuckDB's dialect).
    """
    from splink import Linker, SettingsCreator, block_on

    check_backend(backend)
    if len(left) == 0 or (right is not None and len(right) == 0):
        raise TrainingError("cannot train on an empty table")
    started = datetime.now(UTC)
    frames = [left] if right is None else [left, right]
    dropped = [c.name for c in comparisons if not all(_informative(f, c) for f in frames)]
    comparisons = tuple(c for c in comparisons if c.name not in dropped)
    target = len(right) if right is not None else max(len(left) - 1, 1)
    prior = prior_for(target, expected_match_rate)
    settings = SettingsCreator(
        link_type="link_only" if right is not None else "dedupe_only",
        unique_id_column_name="record_id",
        probability_two_random_records_match=prior,
        comparisons=[to_dialect(c.splink_dict(), backend) for c in comparisons],
        blocking_rules_to_generate_predictions=[block_on(*cols) for cols in blocking],
        retain_intermediate_calculation_columns=True,
    )
    db_api = database_api(backend)
    arrow = [_named(_for_splink(left), sources[0])]
    if right is not None:
        arrow.append(_named(_for_splink(right), sources[1]))
    tables = [register(db_api, t, n) for t, n in tables_named(arrow)]
    linker = Linker(tables if right is not None else tables[0], settings, log_level=logging.ERROR)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    failed_em: list[list[str]] = []
    for cols in em_blocking:
        snapshot = linker.misc.save_model_to_json()
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*cols))
        except ValueError:
            # Splink refuses an m that underflowed below 1e-300 during EM (a level almost never seen
            # among matches, e.g. deduplicating a table with few duplicates) and leaves the linker
            # half-trained: skip that session and carry on from the model as it was before it.
            failed_em.append(list(cols))
            linker = Linker(tables if right is not None else tables[0], snapshot, log_level=logging.ERROR)
    if len(failed_em) == len(em_blocking):
        raise TrainingError("every EM session failed (m underflow); train on more data or other EM blocking")
    model_dict = from_dialect(linker.misc.save_model_to_json(), backend)
    used_labels = _train_on_labels(model_dict, arrow, labels, len(em_blocking) - len(failed_em), backend)
    model_dict["probability_two_random_records_match"] = prior
    neutral = _neutralise_unestimated(model_dict)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    model = TrainedModel(
        splink_settings=model_dict,
        comparisons=comparisons,
        blocking=blocking,
        expected_match_rate=expected_match_rate,
        metadata={
            "trained_at": started.isoformat(timespec="seconds"),
            "training_seconds": round(elapsed, 3),
            "sources": list(sources if right is not None else sources[:1]),
            "sizes": [len(left)] + ([len(right)] if right is not None else []),
            "splink_version": version("splink"),
            "duckdb_version": version("duckdb"),
            "backend": backend,
            **({"pyspark_version": version("pyspark")} if backend == "spark" else {}),
            "dropped_comparisons": dropped,
            "neutral_levels": neutral,
            "clerical_labels": used_labels,
            "failed_em_sessions": failed_em,
            "settings": {
                "link_type": settings.link_type,
                "expected_match_rate": expected_match_rate,
                "prior": prior,
                "u_max_pairs": u_max_pairs,
                "seed": seed,
                "em_blocking": [list(b) for b in em_blocking],
                "blocking": [list(b) for b in blocking],
            },
        },
    )
    try:
        model.level_weights()
    except ModelError as exc:
        raise TrainingError(str(exc)) from exc
    return model
