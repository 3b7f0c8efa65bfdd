"""`kiungo match`: train -> link -> evaluate on a sandbox country, deduplication, review, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matching.cli import app
from tests.postgres import BACKENDS, backend_url, migrated, postgres_fixture

runner = CliRunner()
pg_database = postgres_fixture("match")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database holding both matching stores (crosswalks and the review queue), as stores may share one."""
    url = backend_url(request, tmp_path, "matching.sqlite")
    for store in ("crosswalk", "review"):
        migrated(url, store).dispose()
    return url


def _run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.output


@pytest.fixture(scope="module")
def linked(country: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("match-cli")
    out = _run(
        "train", "--source", f"msp={country / 'msp.sqlite'}", "--target", f"cra={country / 'cra.sqlite'}",
        "--out", str(work / "model.json"),
    )  # fmt: skip
    assert "model written" in out
    assert "training (linking msp -> cra)" in out
    out = _run(
        "link", "--model", str(work / "model.json"), "--left", f"msp={country / 'msp.sqlite'}",
        "--right", f"cra={country / 'cra.sqlite'}", "--out", str(work / "crosswalk.csv"), "--threshold", "0.01",
    )  # fmt: skip
    assert (work / "crosswalk.csv").exists()
    assert (work / "crosswalk.clusters.csv").exists()
    return work


def test_train_link_evaluate(linked: Path, country: Path) -> None:
    model = (linked / "model.json").read_text()
    assert '"format": "kiungo-matching-model"' in model
    assert '"trained_at"' in model
    out = _run(
        "evaluate", "--crosswalk", str(linked / "crosswalk.csv"), "--truth", str(country / "truth.sqlite"),
        "--out", str(linked / "report.md"), "--chart", str(linked / "report.png"),
    )  # fmt: skip
    report = (linked / "report.md").read_text()
    assert "| threshold | TP | FP | FN | precision | recall | F1 |" in report
    assert (linked / "report.png").read_bytes()[:4] == b"\x89PNG"
    best = re.search(r"Best F1 ([0-9.]+)", out)
    assert best is not None
    assert float(best.group(1)) > 0.93


def test_deduplicate_one_source(country: Path, tmp_path: Path) -> None:
    cra = f"cra={country / 'cra.sqlite'}"
    out = _run("train", "--source", cra, "--out", str(tmp_path / "dedupe.json"))
    assert "deduplicating cra" in out
    _run("link", "--model", str(tmp_path / "dedupe.json"), "--left", cra, "--out", str(tmp_path / "dd.csv"))
    header = (tmp_path / "dd.csv").read_text().splitlines()[0]
    assert header.startswith("left_source,left_id,right_source,right_id,match_probability,match_weight")
    out = _run(
        "evaluate", "--crosswalk", str(tmp_path / "dd.csv"), "--truth", str(country / "truth.sqlite"),
        "--out", str(tmp_path / "dd.md"), "--thresholds", "0.5,0.9",
    )  # fmt: skip
    assert "pairwise (deduplication)" in out


def test_review_commands(linked: Path) -> None:
    queue = str(linked / "review.sqlite")
    missing = _run("review", "--queue", queue, "next", code=2)
    command = f"kiungo db upgrade --store review --url sqlite:///{queue}"
    assert missing == f"error: no review queue at {queue}: create it with `{command}`\n"
    migrated(f"sqlite:///{queue}", "review").dispose()  # what that command does
    out = _run("review", "--queue", queue, "enqueue", "--crosswalk", str(linked / "crosswalk.csv"), "--low", "0.01")
    added = int(out.split()[0].replace(",", ""))
    assert added > 0
    out = _run("review", "--queue", queue, "next")
    pair_id = re.match(r"pair (\d+):", out)
    assert pair_id is not None
    _run("review", "--queue", queue, "decide", pair_id.group(1), "match", "--reviewer", "amina", "--note", "ok")
    listing = _run("review", "--queue", queue, "list", "--status", "decided")
    assert "match by amina" in listing
    _run("review", "--queue", queue, "labels", "--out", str(linked / "labels.csv"))
    assert (linked / "labels.csv").read_text().count("\n") == 2
    out = _run("review", "--queue", queue, "decide", pair_id.group(1), "maybe", "--reviewer", "x", code=2)
    assert "error: decision must be one of" in out


def test_training_with_review_labels(linked: Path, country: Path) -> None:
    out = _run(
        "train", "--source", f"msp={country / 'msp.sqlite'}", "--target", f"cra={country / 'cra.sqlite'}",
        "--labels", str(linked / "review.sqlite"), "--out", str(linked / "model2.json"),
    )  # fmt: skip
    assert "clerical labels" in out
    assert '"clerical_labels":' in (linked / "model2.json").read_text()
    out = _run(
        "train", "--source", f"msp={country / 'msp.sqlite'}", "--labels", str(linked / "nope.sqlite"),
        "--out", str(linked / "model3.json"), code=2,
    )  # fmt: skip
    assert f"error: no review queue at {linked / 'nope.sqlite'}: create it with `kiungo db upgrade" in out
    assert not (linked / "nope.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--source", "nope=x.sqlite", "--out", "m.json"), "unknown source 'nope'; known: cra, msp"),
        (("train", "--source", "cra", "--out", "m.json"), "name=path"),
        (("train", "--source", "cra=/nonexistent/cra.sqlite", "--out", "m.json"), "no database at"),
        (("link", "--model", "/nonexistent/m.json", "--left", "cra=x", "--out", "x.csv"), "cannot read model"),
        (("evaluate", "--crosswalk", "/nonexistent.csv", "--truth", "t", "--out", "r.md"), "no crosswalk"),
        (("review", "--queue", "/nonexistent/dir/q.sqlite", "next"), "error: no review queue at /nonexistent/dir/"),
        (
            ("evaluate", "--crosswalk", "x.csv", "--run", "2", "--truth", "t", "--out", "r.md"),
            "--run needs a crosswalk",
        ),
        (("runs", "--db", "cw.sqlite"), "--db must be a database URL"),
    ],
)
def test_clear_errors(args: tuple[str, ...], message: str) -> None:
    out = _run(*args, code=2)
    assert message in out
    assert "Traceback" not in out


def test_bad_threshold(linked: Path) -> None:
    out = _run(
        "link", "--model", str(linked / "model.json"), "--left", "msp=x.sqlite", "--out", "x.csv",
        "--threshold", "1.5", code=2,
    )  # fmt: skip
    assert "error: --threshold must be between 0 and 1, got 1.5" in out
    out = _run("evaluate", "--crosswalk", "x", "--truth", "t", "--out", "r", "--thresholds", "0.5,abc", code=2)
    assert "error: --thresholds must be comma-separated numbers" in out


def test_link_to_a_database_then_evaluate_and_review_from_it(linked: Path, country: Path, db_url: str) -> None:
    args = ["--model", str(linked / "model.json"), "--left", f"msp={country / 'msp.sqlite'}"]
    args += ["--right", f"cra={country / 'cra.sqlite'}", "--threshold", "0.01"]
    runs = []
    for _ in range(2):
        out = _run("link", *args, "--out", db_url)
        found = re.search(r"written to (\S+) as run (\d+)$", out.strip())
        assert found is not None, out
        runs.append(int(found.group(2)))
    assert runs[1] > runs[0]
    listing = _run("runs", "--db", db_url)
    assert [int(line.split("\t")[0]) for line in listing.splitlines()] == runs[::-1]
    assert str(linked / "model.json") in listing

    out = _run(
        "evaluate", "--crosswalk", db_url, "--run", str(runs[0]), "--truth", str(country / "truth.sqlite"),
        "--out", str(linked / "db-report.md"), "--thresholds", "0.5",
    )  # fmt: skip
    assert f" run {runs[0]} (" in out
    best = re.search(r"Best F1 ([0-9.]+)", out)
    assert best is not None
    assert float(best.group(1)) > 0.93

    out = _run("review", "--queue", db_url, "enqueue", "--crosswalk", db_url, "--low", "0.01")
    assert int(out.split()[0].replace(",", "")) > 0
    pair = re.match(r"pair (\d+):", _run("review", "--queue", db_url, "next"))
    assert pair is not None
    _run("review", "--queue", db_url, "decide", pair.group(1), "non-match", "--reviewer", "baraka")
    assert "non-match by baraka" in _run("review", "--queue", db_url, "list", "--status", "decided")
    out = _run("evaluate", "--crosswalk", db_url, "--run", "999", "--truth", "t", "--out", "r.md", code=2)
    assert "error: no crosswalk run 999 in " in out
