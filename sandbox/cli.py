"""`kiungo sandbox`: generate the synthetic country, serve its agency systems, run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="A synthetic country with four agency systems, for demos and tests.", no_args_is_help=True)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the country into.")],
    people: Annotated[int, typer.Option("--people", "-n", min=10, help="How many people live there.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Same seed, same country.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Write a country: agency databases, and the ground truth in a separate file."""
    from sandbox.generator import generate as run

    manifest = run(people=people, seed=seed, out=out, progress=not quiet)
    if not quiet:
        typer.echo(f"wrote {manifest['people']:,} people to {out}")


@app.command()
def serve(
    dir: Annotated[Path, typer.Option("--dir", "-d", help="A directory written by `generate`.")],
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="First port; 0 picks free ones.")] = 0,
    gateway: Annotated[
        str, typer.Option(help="federation: an authority and one gateway per member; single: one gateway; none.")
    ] = "federation",
) -> None:
    """Start the four agency systems (and a gateway) and write DIR/sandbox.json with their addresses."""
    from sandbox.servers import serve_forever

    if gateway not in ("federation", "single", "none"):
        raise typer.BadParameter("must be federation, single or none", param_hint="--gateway")
    serve_forever(dir, host=host, first_port=port, gateway=gateway)  # type: ignore[arg-type]


@app.command()
def demo(
    people: Annotated[int, typer.Option("--people", "-n", min=100, help="Size of the demo country.")] = 3000,
    seed: Annotated[int, typer.Option("--seed", "-s")] = 7,
    workdir: Annotated[
        Path | None, typer.Option(help="Keep the country and logs here (default: a temporary directory).")
    ] = None,
) -> None:
    """Generate a small country, start its systems and gateway, ask about a few people, stop."""
    from sandbox.demo import run

    run(people=people, seed=seed, workdir=workdir)


event_app = typer.Typer(
    help="Register a vital event in the running sandbox's civil registry (what its event service then notifies).",
    no_args_is_help=True,
)
app.add_typer(event_app, name="event")

ManifestDir = Annotated[Path, typer.Option("--dir", "-d", help="The directory `kiungo sandbox serve --dir` runs in.")]
ManifestPath = Annotated[Path | None, typer.Option("--manifest", help="Its sandbox.json (instead of --dir).")]


def _mask(identifier: str | None) -> str:
    """As the demo shows identifiers: the first and last two characters."""
    if not identifier:
        return "-"
    return identifier[:2] + "*" * max(0, len(identifier) - 4) + identifier[-2:]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _post_event(dir: Path, manifest: Path | None, body: dict[str, str]) -> dict[str, str]:
    """Post to the civil registry's control endpoint named in the running sandbox's manifest."""
    import json

    import httpx

    from sandbox.servers import MANIFEST_FILE

    path = manifest or dir / MANIFEST_FILE
    try:
        control = json.loads(path.read_text(encoding="utf-8"))["systems"]["cra"]["sandbox_control"]
    except FileNotFoundError:
        raise _fail(f"no sandbox is running: {path} not found (start one with `kiungo sandbox serve`)") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise _fail(f"{path} is not a sandbox manifest") from None
    url = str(control).rstrip("/") + "/events"
    try:
        answer = httpx.post(url, json=body, timeout=10)
    except httpx.ConnectError:
        raise _fail(f"no sandbox answers at {control} (is `kiungo sandbox serve` still running?)") from None
    except httpx.HTTPError as exc:
        raise _fail(f"the civil registry did not answer: {type(exc).__name__}") from None
    try:
        doc = answer.json()
    except ValueError:
        doc = {}
    if answer.status_code != 201:
        raise _fail(str(doc.get("error") or f"the civil registry answered {answer.status_code}"))
    return {str(k): str(v) for k, v in doc.items()}


@event_app.command("death")
def event_death(
    national_id: Annotated[str | None, typer.Option("--national-id", help="The dead person's national ID.")] = None,
    record_id: Annotated[str | None, typer.Option("--record-id", help="Or the registry record (CRA...).")] = None,
    date: Annotated[str | None, typer.Option("--date", help="Date of death, YYYY-MM-DD (default today).")] = None,
    dir: ManifestDir = Path("."),
    manifest: ManifestPath = None,
) -> None:
    """Register a death: the registry lists it in GetDeathsSince from today."""
    if (national_id is None) == (record_id is None):
        raise typer.BadParameter("give exactly one of --national-id, --record-id", param_hint="--national-id")
    body = {"type": "death"} | ({"national_id": national_id} if national_id else {"record_id": record_id or ""})
    if date:
        body["death_date"] = date
    doc = _post_event(dir, manifest, body)
    who = f" (national ID {_mask(national_id)})" if national_id else ""
    typer.echo(
        f"death registered: record {doc['record_id']}{who}, died {date or doc['registered_on']},"
        f" registered on {doc['registered_on']}"
    )


@event_app.command("birth")
def event_birth(
    given_name: Annotated[str, typer.Option("--given-name", help="The child's given name.")],
    surname: Annotated[str, typer.Option("--surname", help="The child's surname.")],
    sex: Annotated[str, typer.Option("--sex", help="M or F.")],
    mother_national_id: Annotated[str | None, typer.Option("--mother-national-id")] = None,
    mother_record_id: Annotated[str | None, typer.Option("--mother-record-id", help="Or the mother's record.")] = None,
    second_name: Annotated[str | None, typer.Option("--second-name")] = None,
    date: Annotated[str | None, typer.Option("--date", help="Date of birth, YYYY-MM-DD (default today).")] = None,
    dir: ManifestDir = Path("."),
    manifest: ManifestPath = None,
) -> None:
    """Register a birth: a new record in the mother's household, listed in GetBirthsSince from today."""
    if (mother_national_id is None) == (mother_record_id is None):
        raise typer.BadParameter(
            "give exactly one of --mother-national-id, --mother-record-id", param_hint="--mother-national-id"
        )
    body = {"type": "birth", "given_name": given_name, "surname": surname, "sex": sex}
    body |= {"mother_national_id": mother_national_id} if mother_national_id else {}
    body |= {"mother_record_id": mother_record_id} if mother_record_id else {}
    if second_name:
        body["second_name"] = second_name
    if date:
        body["birth_date"] = date
    doc = _post_event(dir, manifest, body)
    mother = f"national ID {_mask(mother_national_id)}" if mother_national_id else f"record {mother_record_id}"
    typer.echo(
        f"birth registered: record {doc['record_id']}, born {date or doc['registered_on']}, mother {mother},"
        f" registered on {doc['registered_on']}"
    )


@app.command("oversight-truth")
def oversight_truth(
    report: Annotated[Path, typer.Argument(help="An oversight report (JSON), as `kiungo vsr oversight` writes it.")],
    dir: Annotated[Path, typer.Option("--dir", help="The sandbox country the report was computed on.")],
) -> None:
    """Set an oversight report beside the country's ground truth, class by class, and say what explains the gap."""
    import json

    from rich.console import Console
    from rich.table import Table

    from sandbox.oversight_truth import compare

    try:
        document = json.loads(report.read_text(encoding="utf-8"))
        rows = compare(document, dir)
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(f"cannot compare {report} with the country in {dir}: {exc}") from None
    table = Table("class", "estimate", "truth", "error", "relative", "of the truth, not in the civil registry")
    for r in rows:
        known = r["truth"] is not None
        cells = [r["estimate"], r["truth"], r["error"]]
        shown = ["suppressed" if v is None and known else "-" if v is None else str(v) for v in cells]
        relative = "-" if r["relative_error"] is None else f"{r['relative_error']:+.1%}"
        unseen = "-" if r["not_in_civil_registry"] is None else str(r["not_in_civil_registry"])
        table.add_row(r["class"], *shown, relative, unseen)
    console = Console()
    console.print(table)
    console.print(
        "The registry counts people through the civil registry: those it never registered are invisible to it "
        "(last column), those registered twice are counted twice, and undetermined decisions lacked a fact."
    )
