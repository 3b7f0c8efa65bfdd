"""`kiungo db`: migrate a node's databases (or one store's), and say where each schema stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import ConfigError
from gateway.migrations.errors import MigrationError
from gateway.migrations.nodedb import node_states, on_database, upgrade_node
from gateway.migrations.runner import SchemaState, state, upgrade
from gateway.migrations.stores import STORES, store
from gateway.settings import load

app = typer.Typer(help="Database schemas: migrate them, see where they stand.", no_args_is_help=True)
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="The node's configuration (TOML): every database it uses.")
]
StoreOpt = Annotated[str | None, typer.Option("--store", help=f"One store: {', '.join(STORES)}.")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Its database: sqlite:///PATH or postgresql://...")]


def _run(config: Path | None, store_name: str | None, url: str | None, *, migrate: bool) -> list[SchemaState]:
    if (config is None) == (store_name is None or url is None):
        typer.echo("error: give --config NODE.toml, or --store NAME with --url URL", err=True)
        raise typer.Exit(2)
    try:
        if config is not None:
            settings = load(config)
            return upgrade_node(settings) if migrate else node_states(settings)
        assert store_name is not None
        assert url is not None
        return [on_database(url, store(store_name), upgrade if migrate else state)]
    except (ConfigError, MigrationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("upgrade")
def upgrade_command(config: ConfigOpt = None, store_name: StoreOpt = None, url: UrlOpt = None) -> None:
    """Migrate to the newest schema (safe to repeat; replicas may run it at once)."""
    for found in _run(config, store_name, url, migrate=True):
        typer.echo(f"ok: {found.describe()}")


@app.command("status")
def status_command(config: ConfigOpt = None, store_name: StoreOpt = None, url: UrlOpt = None) -> None:
    """Where each schema stands; exits 1 when one is not current."""
    states = _run(config, store_name, url, migrate=False)
    for found in states:
        typer.echo(f"{'ok' if found.is_current else 'behind'}: {found.describe()}")
    if not all(found.is_current for found in states):
        raise typer.Exit(1)
