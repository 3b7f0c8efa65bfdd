"""`kiungo connectors`: see installed connector kinds and configured services, and call one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from connectors import plugins
from connectors.connector import Param
from connectors.errors import ConnectorError
from connectors.router import Router

app = typer.Typer(help="Connectors to the agency systems behind a gateway.", no_args_is_help=True)
Config = Annotated[Path, typer.Option("--config", "-c", help="Connector configuration (TOML).")]


@app.command("kinds")
def kinds() -> None:
    """List the installed connector kinds (built-in and plug-ins)."""
    table = Table("kind", "provided by")
    for name, value in sorted(plugins.available().items()):
        table.add_row(name, value)
    Console().print(table)


@app.command("services")
def services(config: Config) -> None:
    """List the services a configuration routes, and where each goes."""
    router = _router(config)
    table = Table("service", "system", "method", "operation")
    for route in sorted(router.routes.values(), key=lambda r: r.service):
        table.add_row(route.service, route.system, route.method, route.operation)
    Console().print(table)
    asyncio.run(router.aclose())


@app.command("call")
def call(
    service: Annotated[str, typer.Argument(help="Service code, e.g. getPersonByNationalId.")],
    config: Config,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable.")] = None,
) -> None:
    """Call one service through its connector and print the answer as JSON."""
    params: dict[str, Param] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected name=value, got {item!r}", param_hint="--param")
        params[name] = value
    router = _router(config)

    async def run() -> None:
        async with router:
            response = await router.call(service, params)
        typer.echo(json.dumps({"status": response.status, "data": response.data}, indent=2, ensure_ascii=False))

    try:
        asyncio.run(run())
    except ConnectorError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


def _router(config: Path) -> Router:
    try:
        return Router.from_file(config)
    except ConnectorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
