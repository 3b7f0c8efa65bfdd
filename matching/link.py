"""Batch linkage and deduplication with a trained model: a crosswalk of scored pairs and clusters.

`link(model, left, right)` links two sources (Splink `link_only`); `link(model, left)` deduplicates one.
The prior is reset for the table matched against (as the online matcher does), Splink predicts every
blocked pair, and the pairs at or above a threshold are kept with their per-comparison weights
(`mw_<comparison>`). Clusters are the connected components of the pairs at a (possibly higher)
threshold, found with a small union-find; every input record gets a cluster, singletons included.

A crosswalk is written to files (CSV or Parquet) or to a database (SQLite or PostgreSQL, migrated by
`kiungo db upgrade --store crosswalk`), where each write is one run with its own id, in one transaction.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, overload

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from matching.backends import Backend, check_backend
from matching.database import is_url, open_engine, require_schema, where
from matching.errors import MatchingError
from matching.model import TrainedModel

#: The crosswalk's leading columns; `mw_<comparison>` columns follow.
PAIR_COLUMNS: tuple[str, ...] = (
    "left_source",
    "left_id",
    "right_source",
    "right_id",
    "match_probability",
    "match_weight",
)
CLUSTER_COLUMNS: tuple[str, ...] = ("cluster_id", "source", "record_id", "cluster_size")
_ID_COLUMNS = ("left_source", "left_id", "right_source", "right_id")

Progress = Callable[[str], None]

#: The migration this code was written for (gateway/migrations/versions/crosswalk).
SCHEMA_REVISION: Final = "crosswalk_0001"
#: Rows per executemany: bounded memory for the driver, few round trips.
CHUNK: Final = 10_000

metadata = MetaData()

runs_table = Table(
    "crosswalk_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", String(32), nullable=False),
    Column("model", Text, nullable=False),  # what the caller says made it, e.g. the model file
    Column("threshold", Double, nullable=False),
    Column("cluster_threshold", Double, nullable=False),
    Column("pair_count", Integer, nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("comparisons", Text, nullable=False),  # JSON list: the `mw_<comparison>` columns, in order
)

# No foreign keys to crosswalk_runs: a run and its rows are written in one transaction, and a per-row
# check would cost more than a third of the write (measured on PostgreSQL).
pairs_table = Table(
    "crosswalk_pairs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("pair_no", Integer, primary_key=True, autoincrement=False),  # the crosswalk's order (best first)
    Column("left_source", Text, nullable=False),
    Column("left_id", Text, nullable=False),
    Column("right_source", Text, nullable=False),
    Column("right_id", Text, nullable=False),
    Column("match_probability", Double, nullable=False),
    Column("match_weight", Double, nullable=False),
    Column("weights", Text, nullable=True),  # JSON array aligned with the run's `comparisons`
    sqlite_with_rowid=False,
)

clusters_table = Table(
    "crosswalk_clusters",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("source", Text, primary_key=True),
    Column("record_id", Text, primary_key=True),  # the key answers "which cluster is this record in?"
    Column("cluster_id", Integer, nullable=False),
    Column("cluster_size", Integer, nullable=False),
    Index("ix_crosswalk_clusters_cluster", "run_id", "cluster_id"),
    sqlite_with_rowid=False,
)


class LinkError(MatchingError):
    """Linkage cannot run (bad threshold, unreadable crosswalk, a crosswalk database without its schema)."""


def check_threshold(value: float, what: str = "threshold") -> float:
    """A probability threshold in [0, 1], or a `LinkError` saying so."""
    if not 0.0 <= value <= 1.0:
        raise LinkError(f"{what} must be between 0 and 1, got {value:g}")
    return value


@dataclass(frozen=True)
class CrosswalkRun:
    """One crosswalk written to a database: its id and what made it."""

    run_id: int
    created_at: str
    model: str
    threshold: float
    cluster_threshold: float
    pair_count: int
    record_count: int


@dataclass(frozen=True)
class Crosswalk:
    """Scored pairs at or above `threshold`, and clusters at `cluster_threshold`."""

    pairs: pd.DataFrame
    clusters: pd.DataFrame
    threshold: float
    cluster_threshold: float

    @overload
    def write(self, target: Path, *, model: str = "") -> list[Path]: ...

    @overload
    def write(self, target: str | Engine, *, model: str = "") -> int: ...

    def write(self, target: Path | str | Engine, *, model: str = "") -> list[Path] | int:
        """To files (a Path: CSV, or Parquet when it ends in .parquet; clusters beside it as
        `<stem>.clusters.<ext>`), returning them; or to a database (a URL or Engine), returning the run id."""
        if isinstance(target, Path):
            return self._write_files(target)
        if isinstance(target, str) and not is_url(target):
            raise LinkError(
                f"{target!r} is not a database URL (sqlite:///PATH, postgresql://...); give a file as a Path"
            )
        return self.write_database(target, model=model)

    def _write_files(self, path: Path) -> list[Path]:
        clusters_path = path.with_name(f"{path.stem}.clusters{path.suffix or '.csv'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        for frame, target in ((self.pairs, path), (self.clusters, clusters_path)):
            if target.suffix == ".parquet":
                frame.to_parquet(target, index=False)
            else:
                frame.to_csv(target, index=False)
        return [path, clusters_path]

    def write_database(self, db: str | Engine, *, model: str = "") -> int:
        """One new run holding the pairs and clusters, written in one transaction; returns its id.

        Rows go in chunks of `CHUNK` straight to the driver, with the per-comparison weights of a pair as
        one JSON array (docs/matching.md has the measured cost).
        """
        comparisons = [c for c in self.pairs.columns if c.startswith("mw_")]
        with _database(db) as engine:
            try:
                with engine.begin() as conn:
                    run_id = int(
                        conn.execute(
                            runs_table.insert()
                            .returning(runs_table.c.id)
                            .values(
                                created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                                model=model,
                                threshold=float(self.threshold),
                                cluster_threshold=float(self.cluster_threshold),
                                pair_count=len(self.pairs),
                                record_count=len(self.clusters),
                                comparisons=json.dumps(comparisons),
                            )
                        ).scalar_one()
                    )
                    pairs = self.pairs
                    _insert(
                        conn,
                        pairs_table,
                        [
                            [run_id] * len(pairs),
                            list(range(len(pairs))),
                            *(pairs[c].astype(str).tolist() for c in _ID_COLUMNS),
                            pairs["match_probability"].astype(float).tolist(),
                            pairs["match_weight"].astype(float).tolist(),
                            _weights_json(pairs[comparisons].to_numpy(dtype=np.float64))
                            if comparisons
                            else [None] * len(pairs),
                        ],
                    )
                    clusters = self.clusters
                    _insert(
                        conn,
                        clusters_table,
                        [
                            [run_id] * len(clusters),
                            clusters["source"].astype(str).tolist(),
                            clusters["record_id"].astype(str).tolist(),
                            clusters["cluster_id"].astype(int).tolist(),
                            clusters["cluster_size"].astype(int).tolist(),
                        ],
                    )
            except SQLAlchemyError as exc:
                raise LinkError(f"cannot write the crosswalk to {where(engine)} ({type(exc).__name__})") from None
        return run_id


@overload
def read_crosswalk(source: Path, run: None = None) -> pd.DataFrame: ...


@overload
def read_crosswalk(source: str | Engine, run: int | None = None) -> pd.DataFrame: ...


def read_crosswalk(source: Path | str | Engine, run: int | None = None) -> pd.DataFrame:
    """A crosswalk's pairs with string ids: from a file (CSV or Parquet, as `Crosswalk.write` left them),
    or from a database URL or Engine (run `run`, by default the latest)."""
    if isinstance(source, Engine) or (isinstance(source, str) and is_url(source)):
        return load_crosswalk(source, run).pairs
    path = Path(source)
    if run is not None:
        raise LinkError(f"{path} is a crosswalk file, which holds one crosswalk: a run id needs a database URL")
    if not path.exists():
        raise LinkError(f"no crosswalk at {path}")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={c: str for c in _ID_COLUMNS})
    except (OSError, ValueError) as exc:
        raise LinkError(f"cannot read crosswalk {path}: {exc}") from exc
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise LinkError(f"{path} is not a crosswalk (missing {missing})")
    for column in _ID_COLUMNS:
        frame[column] = frame[column].astype(str)
    return frame


def crosswalk_runs(db: str | Engine) -> list[CrosswalkRun]:
    """The runs in a crosswalk database, newest first."""
    with _database(db) as engine:
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(runs_table).order_by(runs_table.c.id.desc())).mappings().all()
        except SQLAlchemyError as exc:
            raise LinkError(f"cannot read crosswalks from {where(engine)} ({type(exc).__name__})") from None
    return [_run(row) for row in rows]


def load_crosswalk(db: str | Engine, run: int | None = None) -> Crosswalk:
    """Run `run` (default: the latest) of a crosswalk database, pairs and clusters, as it was written."""
    with _database(db) as engine:
        try:
            with engine.connect() as conn:
                found = _find_run(conn, run, where(engine))
                comparisons: list[str] = json.loads(found["comparisons"])
                pairs = _read_pairs(conn, found["id"], comparisons)
                c = clusters_table.c
                rows = conn.execute(
                    select(c.cluster_id, c.source, c.record_id, c.cluster_size)
                    .where(c.run_id == found["id"])
                    .order_by(c.cluster_id, c.source, c.record_id)
                ).all()
        except SQLAlchemyError as exc:
            raise LinkError(f"cannot read crosswalks from {where(engine)} ({type(exc).__name__})") from None
    clusters = pd.DataFrame.from_records(rows, columns=list(CLUSTER_COLUMNS))
    for column in ("cluster_id", "cluster_size"):
        clusters[column] = clusters[column].astype(int)
    return Crosswalk(
        pairs=pairs,
        clusters=clusters,
        threshold=float(found["threshold"]),
        cluster_threshold=float(found["cluster_threshold"]),
    )


@contextmanager
def _database(db: str | Engine) -> Iterator[Engine]:
    """The crosswalk database, its schema checked; an engine made here is disposed of afterwards."""
    engine, owned = open_engine(db, LinkError)
    try:
        try:
            require_schema(
                engine,
                store="crosswalk",
                what="crosswalk database",
                metadata=metadata,
                revision=SCHEMA_REVISION,
                error=LinkError,
            )
        except SQLAlchemyError as exc:
            raise LinkError(f"cannot open the crosswalk database {where(engine)} ({type(exc).__name__})") from None
        yield engine
    finally:
        if owned:
            engine.dispose()


_ARRAY_TYPES: Final = {Integer: "integer", Text: "text", Double: "float8"}


def _insert(conn: Connection, table: Table, columns: Sequence[list[Any]]) -> None:
    """Column lists into `table`, chunk by chunk, through the driver (no per-row SQLAlchemy work).

    PostgreSQL takes each chunk as one array per column (`INSERT ... SELECT FROM unnest(...)`: one
    statement, a third faster than a pipelined executemany); SQLite, in process, takes an executemany.
    """
    names = ", ".join(c.name for c in table.columns)
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"%s::{_ARRAY_TYPES[type(c.type)]}[]" for c in table.columns)
        sql = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608 - our own names
        for start in range(0, len(columns[0]), CHUNK):
            conn.exec_driver_sql(sql, tuple(column[start : start + CHUNK] for column in columns))
        return
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(['?'] * len(table.columns))})"  # noqa: S608
    rows = list(zip(*columns, strict=True))
    for start in range(0, len(rows), CHUNK):
        conn.exec_driver_sql(sql, rows[start : start + CHUNK])


def _number(x: float) -> str:
    """A JSON number; NaN as null and infinities as ±1e999 (JSON has neither; 1e999 reads back as inf)."""
    if math.isnan(x):
        return "null"
    if math.isinf(x):
        return "1e999" if x > 0 else "-1e999"
    return repr(x)


def _weights_json(weights: np.ndarray) -> list[str]:
    """Each row as a JSON array of exact floats (repr round-trips): a fifth of json.dumps's cost."""
    if np.isfinite(weights).all():
        return ["[" + ",".join(map(repr, row)) + "]" for row in weights.tolist()]
    return ["[" + ",".join(map(_number, row)) + "]" for row in weights.tolist()]


def _parse_weights(texts: Iterable[str | None], width: int) -> np.ndarray:
    items = list(texts)
    if all(t is not None and "null" not in t for t in items):
        flat = ",".join(t[1:-1] for t in items if t is not None)
        return np.fromstring(flat, sep=",").reshape(len(items), width) if items else np.empty((0, width))
    return np.array(
        [[math.nan if v is None else float(v) for v in json.loads(t)] if t else [math.nan] * width for t in items],
        dtype=np.float64,
    ).reshape(len(items), width)


def _find_run(conn: Connection, run: int | None, url: str) -> Any:
    stmt = select(runs_table)
    stmt = stmt.where(runs_table.c.id == run) if run is not None else stmt.order_by(runs_table.c.id.desc()).limit(1)
    found = conn.execute(stmt).mappings().first()
    if found is None:
        raise LinkError(f"no crosswalk run {run} in {url}" if run is not None else f"no crosswalk in {url}")
    return found


def _read_pairs(conn: Connection, run_id: int, comparisons: list[str]) -> pd.DataFrame:
    p = pairs_table.c
    rows = conn.execute(
        select(p.left_source, p.left_id, p.right_source, p.right_id, p.match_probability, p.match_weight, p.weights)
        .where(p.run_id == run_id)
        .order_by(p.pair_no)
    ).all()
    frame = pd.DataFrame.from_records(rows, columns=[*PAIR_COLUMNS, "weights"])
    weights = _parse_weights(frame.pop("weights"), len(comparisons))
    for i, name in enumerate(comparisons):
        frame[name] = weights[:, i]
    for column in ("match_probability", "match_weight"):
        frame[column] = frame[column].astype(float)
    for column in _ID_COLUMNS:
        frame[column] = frame[column].astype(str)
    return frame


def _run(row: Any) -> CrosswalkRun:
    return CrosswalkRun(
        run_id=int(row["id"]),
        created_at=str(row["created_at"]),
        model=str(row["model"]),
        threshold=float(row["threshold"]),
        cluster_threshold=float(row["cluster_threshold"]),
        pair_count=int(row["pair_count"]),
        record_count=int(row["record_count"]),
    )


@contextmanager
def _stage(progress: Progress | None, what: str) -> Iterator[None]:
    started = time.perf_counter()
    if progress is not None:
        progress(f"{what} ...")
    yield
    if progress is not None:
        progress(f"{what}: done in {time.perf_counter() - started:.1f} s")


def link(
    model: TrainedModel,
    left: pd.DataFrame,
    right: pd.DataFrame | None = None,
    *,
    threshold: float = 0.5,
    cluster_threshold: float | None = None,
    sources: tuple[str, str] = ("left", "right"),
    progress: Progress | None = None,
    backend: Backend = "duckdb",
) -> Crosswalk:
    """Predict with `model` on normalised frames: link `left` to `right`, or deduplicate `left`.

    `backend` is where Splink predicts: `"duckdb"` in this process, or `"spark"` (`matching.backends`).
    """
    check_threshold(threshold)
    check_backend(backend)
    cluster_at = check_threshold(threshold if cluster_threshold is None else cluster_threshold, "cluster threshold")
    if len(left) == 0 or (right is not None and len(right) == 0):
        raise LinkError("cannot link an empty table")
    dedupe = right is None
    if dedupe and model.splink_settings.get("link_type") != "dedupe_only":
        model = _as_dedupe(model)
    if not dedupe and model.splink_settings.get("link_type") != "link_only":
        model = _as_link(model)
    left_name, right_name = (sources[0], sources[0]) if dedupe else sources
    if left_name == right_name and not dedupe:
        raise LinkError(f"both sources are named {left_name!r}; give them different names")
    target_rows = max(len(left) - 1, 1) if right is None else len(right)
    model = model.for_target_size(target_rows)
    frames = (left,) if right is None else (left, right)
    with _stage(progress, f"predicting {' x '.join(f'{len(f):,}' for f in frames)} records"):
        linker = model.linker(*frames, names=(left_name, right_name), backend=backend)
        predictions = linker.inference.predict(threshold_match_probability=threshold)
        raw = predictions.as_pandas_dataframe()  # type: ignore[no-untyped-call]
    with _stage(progress, f"crosswalk of {len(raw):,} pairs at p >= {threshold:g}"):
        pairs = _pairs(raw, left_name, right_name)
        clusters = _clusters(pairs, cluster_at, [(left_name, left), (right_name, right if right is not None else left)])
    return Crosswalk(pairs=pairs, clusters=clusters, threshold=threshold, cluster_threshold=cluster_at)


def _as_dedupe(model: TrainedModel) -> TrainedModel:
    from dataclasses import replace

    settings = dict(model.splink_settings, link_type="dedupe_only")
    return replace(model, splink_settings=settings)


def _as_link(model: TrainedModel) -> TrainedModel:
    from dataclasses import replace

    settings = dict(model.splink_settings, link_type="link_only")
    return replace(model, splink_settings=settings)


def _pairs(raw: pd.DataFrame, left_name: str, right_name: str) -> pd.DataFrame:
    weights = sorted(c for c in raw.columns if c.startswith("mw_"))
    out = pd.DataFrame(
        {
            "left_source": raw["source_dataset_l"].astype(str) if "source_dataset_l" in raw else left_name,
            "left_id": raw["record_id_l"].astype(str),
            "right_source": raw["source_dataset_r"].astype(str) if "source_dataset_r" in raw else right_name,
            "right_id": raw["record_id_r"].astype(str),
            "match_probability": raw["match_probability"].astype(float),
            "match_weight": raw["match_weight"].astype(float),
        }
    )
    for column in weights:
        out[column] = raw[column].astype(float)
    if len(out) and left_name != right_name:
        # Splink may order a link_only pair either way round: put the left source on the left.
        swap = out["left_source"] != left_name
        for a, b in (("left_source", "right_source"), ("left_id", "right_id")):
            out.loc[swap, [a, b]] = out.loc[swap, [b, a]].to_numpy()
    order = ["match_probability", "left_id", "right_id"]
    return out.sort_values(order, ascending=[False, True, True], kind="stable").reset_index(drop=True)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, x: tuple[str, str]) -> tuple[str, str]:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _clusters(pairs: pd.DataFrame, threshold: float, frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Connected components of the pairs at `threshold`, over every input record."""
    uf = _UnionFind()
    for name, frame in frames:
        for record_id in frame["record_id"].astype(str):
            uf.find((name, record_id))
    kept = pairs[pairs["match_probability"] >= threshold]
    for ls, li, rs, ri in kept[["left_source", "left_id", "right_source", "right_id"]].itertuples(index=False):
        uf.union((str(ls), str(li)), (str(rs), str(ri)))
    members = sorted(uf.parent)
    roots = [uf.find(m) for m in members]
    frame = pd.DataFrame(
        {
            "root": [f"{s}:{i}" for s, i in roots],
            "source": [s for s, _ in members],
            "record_id": [i for _, i in members],
        }
    )
    frame["cluster_size"] = frame.groupby("root")["record_id"].transform("size").astype(int)
    numbering = {root: n for n, root in enumerate(sorted(frame["root"].unique()), start=1)}
    frame["cluster_id"] = frame["root"].map(numbering).astype(int)
    return frame[list(CLUSTER_COLUMNS)].sort_values(["cluster_id", "source", "record_id"]).reset_index(drop=True)
