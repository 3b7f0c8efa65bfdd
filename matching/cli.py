"""`kiungo match`: train a model, link or deduplicate sources into a crosswalk, evaluate it, review pairs.

Sources are given as `name=path`, the name being a known mapping (`cra`, `msp`) and the path a sandbox
agency SQLite file. Crosswalks are files (CSV, Parquet) or a database URL (one run per `link`); the
review queue is an SQLite file or a database URL; both databases are created by `kiungo db upgrade`.
Stage lines go to stderr; failures print `error: ...` and exit 2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import typer
from rich.console import Console
from rich.status import Status
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from matching.backends import BACKENDS, check_backend
from matching.database import is_url
from matching.errors import MatchingError
from matching.evaluate import DEFAULT_THRESHOLDS, markdown_table, plot
from matching.groundtruth import evaluate_crosswalk
from matching.link import check_threshold, crosswalk_runs, link, read_crosswalk
from matching.model import TrainedModel, train
from matching.review import DECISIONS, ReviewQueue
from matching.sources import KNOWN_SOURCES, load, parse_source

app = typer.Typer(
    help="Identity resolution: train a matching model, link sources, evaluate, review uncertain pairs.",
    no_args_is_help=True,
)
review_app = typer.Typer(help="The clerical review queue of uncertain pairs.", no_args_is_help=True)
app.add_typer(review_app, name="review")

_err = Console(stderr=True, highlight=False)
_started = time.perf_counter()

SourceOpt = Annotated[str, typer.Option("--source", help="name=path of the source, e.g. msp=country/msp.sqlite.")]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help=f"Where Splink runs: {' or '.join(BACKENDS)} (spark: local[2], or KIUNGO_SPARK_MASTER).",
    ),
]


CrosswalkOpt = Annotated[
    str,
    typer.Option("--crosswalk", help="A crosswalk from `kiungo match link`: a .csv/.parquet file or a database URL."),
]
RunOpt = Annotated[
    int | None, typer.Option("--run", help="The run to read from a crosswalk database (default: the latest).")
]

_status: list[Status] = []  # the live spinner of the running command, if any


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Errors as one line and exit 2: operators need the reason, not a traceback; a spinner while it works.

    Splink's steps are single SQL runs with no progress of their own, so a long run shows a live
    spinner with the current stage and its elapsed time, and a line for each finished stage.
    """
    try:
        with _err.status("starting", spinner="dots") as status:
            _status.append(status)
            try:
                yield
            finally:
                _status.pop()
    except MatchingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:  # the class only: a driver's message may quote parameters
        typer.echo(f"error: the database failed ({type(exc).__name__})", err=True)
        raise typer.Exit(2) from None


def _say(message: str) -> None:
    _err.print(f"[dim]{time.perf_counter() - _started:7.1f}s[/dim] {message}")
    if _status:
        _status[-1].update(message)


def _load(spec: str) -> tuple[str, pd.DataFrame]:
    name, path = parse_source(spec)
    _say(f"reading {name} from {path}")
    frame = load(path, KNOWN_SOURCES[name])
    _say(f"{name}: {len(frame):,} records")
    return name, frame


def _threshold(value: float, what: str = "threshold") -> float:
    return check_threshold(value, what)


def _target(text: str) -> str | Path:
    """A database URL as given, anything else a file."""
    return text if is_url(text) else Path(text)


def _shown(url: str) -> str:
    """A URL as it may be printed: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _crosswalk(text: str, run: int | None) -> pd.DataFrame:
    target = _target(text)
    if isinstance(target, Path):
        if run is not None:
            raise MatchingError("--run needs a crosswalk database URL; a crosswalk file holds one run")
        return read_crosswalk(target)
    return read_crosswalk(target, run)


@app.command("train")
def train_command(
    source: SourceOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to write the model (versioned JSON).")],
    target: Annotated[
        str | None, typer.Option("--target", help="name=path of the table matched against; omit to deduplicate.")
    ] = None,
    expected_match_rate: Annotated[
        float, typer.Option("--expected-match-rate", help="Share of source records expected to have a match.")
    ] = 0.9,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels", help="A review queue (SQLite file or database URL) whose decisions add an m estimate."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the u sampling.")] = 42,
    backend: BackendOpt = "duckdb",
) -> None:
    """Train a model linking --source to --target (or deduplicating --source) and save it."""
    with _reported():
        chosen = check_backend(backend)
        _threshold(expected_match_rate, "--expected-match-rate")
        left_name, left = _load(source)
        right_name, right = _load(target) if target is not None else (left_name, None)
        if right is not None and right_name == left_name:
            raise MatchingError(f"--source and --target are both {left_name!r}; omit --target to deduplicate")
        label_frame = None
        if labels is not None:
            with ReviewQueue(_target(labels)) as queue:
                label_frame = queue.labels()
                _say(f"{len(label_frame):,} clerical labels from {queue.url}")
        what = f"linking {left_name} -> {right_name}" if right is not None else f"deduplicating {left_name}"
        _say(f"training ({what}) on {chosen}: u by random sampling, m by EM")
        model = train(
            left,
            right,
            expected_match_rate=expected_match_rate,
            seed=seed,
            sources=(left_name, right_name),
            labels=label_frame,
            backend=chosen,
        )
        model.save(out)
        meta = model.metadata
        dropped = ", ".join(meta["dropped_comparisons"]) or "none"
        _say(f"trained in {meta['training_seconds']:.1f} s; dropped comparisons: {dropped}")
        typer.echo(f"model written to {out}")


@app.command("link")
def link_command(
    model_path: Annotated[Path, typer.Option("--model", help="A model from `kiungo match train`.")],
    left: Annotated[str, typer.Option("--left", help="name=path of the left source.")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Crosswalk file (.csv or .parquet; clusters go beside it), or a database URL: a new run there.",
        ),
    ],
    right: Annotated[str | None, typer.Option("--right", help="name=path of the right source; omit to dedupe.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Keep pairs with match probability >= this.")] = 0.5,
    cluster_threshold: Annotated[
        float | None, typer.Option("--cluster-threshold", help="Cluster at this probability (default: --threshold).")
    ] = None,
    backend: BackendOpt = "duckdb",
) -> None:
    """Score every blocked pair and write the crosswalk (pairs and clusters)."""
    with _reported():
        chosen = check_backend(backend)
        _threshold(threshold, "--threshold")
        if cluster_threshold is not None:
            _threshold(cluster_threshold, "--cluster-threshold")
        model = TrainedModel.load(model_path)
        left_name, left_frame = _load(left)
        right_name, right_frame = _load(right) if right is not None else (left_name, None)
        crosswalk = link(
            model,
            left_frame,
            right_frame,
            threshold=threshold,
            cluster_threshold=cluster_threshold,
            sources=(left_name, right_name),
            progress=_say,
            backend=chosen,
        )
        target = _target(out)
        if isinstance(target, Path):
            where = "written to " + ", ".join(str(p) for p in crosswalk.write(target))
        else:
            run_id = crosswalk.write(target, model=str(model_path))
            where = f"written to {_shown(target)} as run {run_id}"
        clusters = crosswalk.clusters
        linked = int((clusters.drop_duplicates("cluster_id")["cluster_size"] > 1).sum())
        typer.echo(
            f"{len(crosswalk.pairs):,} pairs at p >= {threshold:g}, {linked:,} clusters of 2 or more records; {where}"
        )


@app.command("runs")
def runs_command(
    db: Annotated[str, typer.Option("--db", help="A crosswalk database URL (sqlite:///PATH, postgresql://...).")],
) -> None:
    """The crosswalk runs in a database, newest first: id, when, pairs, records, thresholds, model."""
    with _reported():
        if not is_url(db):
            raise MatchingError(f"--db must be a database URL (sqlite:///PATH, postgresql://...), got {db!r}")
        runs = crosswalk_runs(db)
        if not runs:
            typer.echo(f"no crosswalk runs in {_shown(db)}")
        for r in runs:
            typer.echo(
                f"{r.run_id}\t{r.created_at}\t{r.pair_count:,} pairs\t{r.record_count:,} records\t"
                f"p >= {r.threshold:g}, clusters at {r.cluster_threshold:g}\t{r.model}"
            )


@app.command("evaluate")
def evaluate_command(
    crosswalk: CrosswalkOpt,
    truth: Annotated[Path, typer.Option("--truth", help="The sandbox truth.sqlite (record -> person).")],
    out: Annotated[Path, typer.Option("--out", help="Markdown report to write.")],
    chart: Annotated[Path | None, typer.Option("--chart", help="PNG chart of precision/recall/F1.")] = None,
    thresholds: Annotated[
        str | None, typer.Option("--thresholds", help="Comma-separated thresholds (default: 0.01 ... 0.999).")
    ] = None,
    run: RunOpt = None,
) -> None:
    """Precision, recall and F1 across thresholds against ground truth, as markdown (and a PNG)."""
    with _reported():
        levels = DEFAULT_THRESHOLDS if thresholds is None else _parse_thresholds(thresholds)
        pairs = _crosswalk(crosswalk, run)
        scores, counted = evaluate_crosswalk(pairs, truth, levels)
        left, right = pairs["left_source"].iloc[0], pairs["right_source"].iloc[0]
        title = f"{left} -> {right}" if left != right else f"{left} deduplication"
        best = max(scores, key=lambda s: s.f1)
        report = "\n".join(
            [
                f"# Crosswalk evaluation: {title}",
                "",
                f"Crosswalk `{_shown(crosswalk) if is_url(crosswalk) else crosswalk}`"
                f"{'' if run is None else f' run {run}'} ({len(pairs):,} pairs), truth `{truth}`; counted {counted}. "
                f"Thresholds below the crosswalk's own threshold score as that threshold.",
                "",
                markdown_table(scores),
                "",
                f"Best F1 {best.f1:.4f} at p >= {best.threshold:g} "
                f"(precision {best.precision:.4f}, recall {best.recall:.4f}).",
                "",
            ]
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        if chart is not None:
            plot(scores, chart, title=title)
        typer.echo(report)


def _parse_thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise MatchingError(f"--thresholds must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise MatchingError("--thresholds is empty")
    for v in values:
        _threshold(v, "each threshold")
    return values


@review_app.callback()
def review_callback(
    ctx: typer.Context,
    queue: Annotated[
        str,
        typer.Option(
            "--queue",
            help="The review queue: an SQLite file or a database URL "
            "(`kiungo db upgrade --store review --url URL` creates it).",
        ),
    ],
) -> None:
    """Enqueue uncertain pairs from a crosswalk, take the next one, record decisions, list, export labels."""
    ctx.obj = queue


def _queue(ctx: typer.Context) -> ReviewQueue:
    """The queue named by --queue; a file that does not exist yet is an error saying which command creates it."""
    queue = ctx.obj
    assert isinstance(queue, str)
    return ReviewQueue(_target(queue))


@review_app.command("enqueue")
def review_enqueue(
    ctx: typer.Context,
    crosswalk: CrosswalkOpt,
    low: Annotated[float, typer.Option("--low", help="Lowest probability enqueued (inclusive).")] = 0.5,
    high: Annotated[float, typer.Option("--high", help="Probability from which pairs count as sure.")] = 0.95,
    run: RunOpt = None,
) -> None:
    """Add the crosswalk's pairs with low <= p < high."""
    with _reported():
        _threshold(low, "--low")
        _threshold(high, "--high")
        pairs = _crosswalk(crosswalk, run)
        with _queue(ctx) as queue:
            added = queue.enqueue(pairs, low, high)
            pending = len(queue.pairs("pending"))
        typer.echo(f"{added:,} pairs enqueued ({pending:,} awaiting review)")


@review_app.command("next")
def review_next(ctx: typer.Context) -> None:
    """Show the next pair to review."""
    with _reported(), _queue(ctx) as queue:
        pair = queue.next()
        if pair is None:
            typer.echo("nothing to review")
            return
        typer.echo(
            f"pair {pair.pair_id}: {pair.left_source} {pair.left_id} <-> {pair.right_source} {pair.right_id}  "
            f"p={pair.match_probability:.4f}"
            + ("" if pair.match_weight is None else f"  weight={pair.match_weight:.2f}")
        )


@review_app.command("decide")
def review_decide(
    ctx: typer.Context,
    pair_id: Annotated[int, typer.Argument(help="The pair id shown by `next` or `list`.")],
    decision: Annotated[str, typer.Argument(help=f"One of {', '.join(DECISIONS)}.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who decides.")],
    note: Annotated[str, typer.Option("--note", help="Why.")] = "",
) -> None:
    """Record a decision on a pair (appended to its history)."""
    with _reported(), _queue(ctx) as queue:
        entry = queue.decide(pair_id, decision, reviewer, note)
        typer.echo(f"pair {entry.pair_id}: {entry.decision} by {entry.reviewer} at {entry.decided_at}")


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option("--status", help="all, pending or decided.")] = "all",
) -> None:
    """List queued pairs with their latest decision."""
    with _reported():
        if status not in ("all", "pending", "decided"):
            raise MatchingError(f"--status must be all, pending or decided, got {status!r}")
        chosen: Literal["all", "pending", "decided"] = status  # type: ignore[assignment]
        with _queue(ctx) as queue:
            for p in queue.pairs(chosen):
                decided = f"{p.decision} by {p.reviewer} at {p.decided_at}" if p.decision else "pending"
                typer.echo(
                    f"{p.pair_id}\t{p.left_source}:{p.left_id}\t{p.right_source}:{p.right_id}\t"
                    f"{p.match_probability:.4f}\t{decided}"
                )


@review_app.command("labels")
def review_labels(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="CSV of training labels (Splink pairwise-label columns).")],
) -> None:
    """Export decided pairs as training labels (clerical_match_score 1.0 match, 0.0 non-match)."""
    with _reported(), _queue(ctx) as queue:
        labels = queue.labels()
        labels.to_csv(out, index=False)
        typer.echo(f"{len(labels):,} labels written to {out}")
