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
