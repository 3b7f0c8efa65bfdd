"""Batch linkage and deduplication with a trained model: a crosswalk of scored pairs and clusters.

`link(model, left, right)` links two sources (Splink `link_only`); `link(model, left)` deduplicates one.
The prior is reset for the table matched against (as the online matcher does), Splink predicts every
blocked pair, and the pairs at or above a threshold are kept with their per-comparison weights
(`mw_<comparison>`). Clusters are the connected components of the pairs at a (possibly higher)
threshold, found with a small union-find; every input record gets a cluster, singletons included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from matching.backends import Backend, check_backend
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

Progress = Callable[[str], None]


class LinkError(MatchingError):
    """Linkage cannot run (bad threshold, unreadable crosswalk)."""


def check_threshold(value: float, what: str = "threshold") -> float:
    """A probability threshold in [0, 1], or a `LinkError` saying so."""
    if not 0.0 <= value <= 1.0:
        raise LinkError(f"{what} must be between 0 and 1, got {value:g}")
    return value


@dataclass(frozen=True)
class Crosswalk:
    """Scored pairs at or above `threshold`, and clusters at `cluster_threshold`."""

    pairs: pd.DataFrame
    clusters: pd.DataFrame
    threshold: float
    cluster_threshold: float

    def write(self, path: Path) -> list[Path]:
        """Pairs to `path` (CSV, or Parquet when it ends in .parquet), clusters beside it (`<stem>.clusters.<ext>`)."""
        clusters_path = path.with_name(f"{path.stem}.clusters{path.suffix or '.csv'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        for frame, target in ((self.pairs, path), (self.clusters, clusters_path)):
            if target.suffix == ".parquet":
                frame.to_parquet(target, index=False)
            else:
                frame.to_csv(target, index=False)
        return [path, clusters_path]


def read_crosswalk(path: Path) -> pd.DataFrame:
    """A crosswalk's pairs (CSV or Parquet) with string ids, as `Crosswalk.write` left them."""
    if not path.exists():
        raise LinkError(f"no crosswalk at {path}")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={c: str for c in ("left_source", "left_id", "right_source", "right_id")})
    except (OSError, ValueError) as exc:
        raise LinkError(f"cannot read crosswalk {path}: {exc}") from exc
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise LinkError(f"{path} is not a crosswalk (missing {missing})")
    for column in ("left_source", "left_id", "right_source", "right_id"):
        frame[column] = frame[column].astype(str)
    return frame


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
