"""Crosswalks in a database, one run per write, on SQLite and PostgreSQL; the schema from the migration."""

from __future__ import annotations

import ast
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import make_url, text

from gateway.database import engine_url, make_engine
from gateway.migrations import STORES
from matching import Crosswalk, LinkError, crosswalk_runs, load_crosswalk, read_crosswalk
from tests.postgres import BACKENDS, backend_url, migrated, postgres_fixture

pg_database = postgres_fixture("crosswalk")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated crosswalk database: an SQLite file or PostgreSQL."""
    found = backend_url(request, tmp_path, "crosswalks.sqlite")
    migrated(found, "crosswalk").dispose()
    return found


def crosswalk(n: int = 50, seed: int = 1, threshold: float = 0.2) -> Crosswalk:
    """A linkage crosswalk of n pairs shaped as `link` makes it (best first, mw_ weights), and its clusters."""
    rng = np.random.default_rng(seed)
    pairs = pd.DataFrame(
        {
            "left_source": "msp",
            "left_id": [f"M{i:05d}" for i in range(n)],
            "right_source": "cra",
            "right_id": [f"C{i:05d}" for i in rng.permutation(n)],
            "match_probability": np.sort(rng.uniform(threshold, 1.0, n))[::-1],
            "match_weight": rng.normal(2.0, 3.0, n),
            "mw_surname": rng.normal(size=n),
            "mw_birth": rng.normal(size=n) / 3.0,
        }
    )
    records = [("msp", i) for i in pairs["left_id"]] + [("cra", i) for i in pairs["right_id"]] + [("cra", "C99999")]
    cluster_of = {r: k + 1 for k, r in enumerate(zip(pairs["left_id"], pairs["right_id"], strict=True))}
    rows = []
    for source, record_id in records:
        key = next((k for k in cluster_of if record_id in k), None)
        rows.append((cluster_of[key] if key else n + 1, source, record_id, 2 if key else 1))
    clusters = pd.DataFrame(rows, columns=["cluster_id", "source", "record_id", "cluster_size"])
    clusters = clusters.sort_values(["cluster_id", "source", "record_id"]).reset_index(drop=True)
    return Crosswalk(pairs=pairs, clusters=clusters, threshold=threshold, cluster_threshold=0.5)


def test_a_run_round_trips_exactly(url: str) -> None:
    written = crosswalk()
    run = written.write(url, model="model.json")
    back = load_crosswalk(url, run)
    pd.testing.assert_frame_equal(back.pairs, written.pairs)
    pd.testing.assert_frame_equal(back.clusters, written.clusters)
    assert (back.threshold, back.cluster_threshold) == (0.2, 0.5)
    pd.testing.assert_frame_equal(read_crosswalk(url), written.pairs)
    [listed] = crosswalk_runs(url)
    assert (listed.run_id, listed.model, listed.pair_count, listed.record_count) == (run, "model.json", 50, 101)
    assert listed.created_at.endswith("+00:00")


def test_each_write_is_a_new_run_and_the_latest_is_read_by_default(url: str) -> None:
    first, second = crosswalk(seed=1), crosswalk(n=20, seed=2, threshold=0.4)
    engine = make_engine(url)  # an Engine is used as given, and left open
    try:
        a = first.write(engine)
        b = second.write(url)
        assert b > a
        assert len(read_crosswalk(engine)) == 20
        assert len(read_crosswalk(url, a)) == 50
        assert load_crosswalk(url).threshold == 0.4
        assert [r.run_id for r in crosswalk_runs(engine)] == [b, a]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM crosswalk_pairs")).scalar_one() == 70
    finally:
        engine.dispose()
    with pytest.raises(LinkError, match=f"no crosswalk run {b + 100} in "):
        read_crosswalk(url, b + 100)


def test_writers_at_once_get_their_own_runs(url: str) -> None:
    written = [crosswalk(n=30, seed=s) for s in range(6)]
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda cw: cw.write(url), written))
    assert len(set(runs)) == 6
    for run, cw in zip(runs, written, strict=True):
        pd.testing.assert_frame_equal(read_crosswalk(url, run), cw.pairs)


def test_odd_weights_empty_crosswalks_and_no_comparisons(url: str) -> None:
    odd = crosswalk(n=4)
    odd.pairs.loc[1, "mw_surname"] = math.nan
    odd.pairs.loc[2, "mw_birth"] = math.inf
    odd.pairs.loc[3, "mw_birth"] = -math.inf
    pd.testing.assert_frame_equal(read_crosswalk(url, odd.write(url)), odd.pairs)

    empty = Crosswalk(crosswalk().pairs.head(0), crosswalk().clusters, 0.99, 0.99)
    back = load_crosswalk(url, empty.write(url))
    assert len(back.pairs) == 0
    assert list(back.pairs.columns) == list(empty.pairs.columns)
    pd.testing.assert_frame_equal(back.clusters, empty.clusters)

    bare = crosswalk(n=5)
    bare = Crosswalk(bare.pairs.drop(columns=["mw_surname", "mw_birth"]), bare.clusters, 0.2, 0.5)
    pd.testing.assert_frame_equal(read_crosswalk(url, bare.write(url)), bare.pairs)


def test_an_empty_database_has_no_crosswalk(url: str) -> None:
    with pytest.raises(LinkError, match=r"^no crosswalk in "):
        read_crosswalk(url)
    assert crosswalk_runs(url) == []


def test_a_missing_file_says_which_command_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "cw.sqlite"
    url = f"sqlite:///{path}"
    hint = f"create it with `kiungo db upgrade --store crosswalk --url {url}`"
    with pytest.raises(LinkError) as caught:
        crosswalk().write(url)
    assert str(caught.value) == f"no crosswalk database at {path}: {hint}"
    with pytest.raises(LinkError, match="no crosswalk database at"):
        read_crosswalk(url)
    assert not path.exists()


def test_an_unmigrated_database_names_the_command(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in ("crosswalk_pairs", "crosswalk_clusters", "crosswalk_runs", STORES["crosswalk"].version_table):
            conn.execute(text(f"DROP TABLE {table}"))
    shown = make_url(engine_url(url)).render_as_string(hide_password=True)  # as the store opens it
    engine.dispose()
    with pytest.raises(LinkError) as caught:
        crosswalk().write(url)
    assert str(caught.value) == (
        f"{shown} has no crosswalk tables: run `kiungo db upgrade --store crosswalk --url {shown}`"
    )


def test_files_and_urls_are_not_mixed_up(tmp_path: Path) -> None:
    with pytest.raises(LinkError, match="not a database URL"):
        crosswalk().write(str(tmp_path / "cw.csv"))  # a str is a URL, never a file
    written = crosswalk().write(tmp_path / "cw.csv")
    with pytest.raises(LinkError, match="a run id needs a database URL"):
        read_crosswalk(written[0], 3)  # type: ignore[call-overload]
    assert len(read_crosswalk(str(written[0]))) == 50  # a file name as a string reads the file
    with pytest.raises(LinkError, match="not a usable database URL"):
        read_crosswalk("nosuchdialect://x/y")


def test_matching_imports_no_other_kiungo_package() -> None:
    forbidden = {"gateway", "connectors", "policies", "certs", "sandbox", "consent"}
    package = Path(__file__).resolve().parents[2] / "matching"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{source.name} imports {name}"
