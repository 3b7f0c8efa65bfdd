"""`kiungo gateway`: check a node's configuration, serve it, and make access tokens."""

from __future__ import annotations

import hashlib
import secrets
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from gateway.errors import ConfigError
from gateway.settings import NodeSettings, load

app = typer.Typer(help="The gateway node: serve it, check its configuration.", no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The node's configuration (TOML).")]


def _settings(config: Path) -> NodeSettings:
    try:
        return load(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def check(config: ConfigOpt) -> None:
    """Validate a node's configuration and say what it hosts."""
    settings = _settings(config)
    services = len(settings.services)
    typer.echo(
        f"ok: {settings.name} ({settings.instance}): {len(settings.subsystems)} subsystem(s), "
        f"{services} service(s), {len(settings.clients)} client(s), {len(settings.systems)} system(s)"
    )


@app.command()
def serve(config: ConfigOpt) -> None:
    """Serve the node until Ctrl-C or SIGTERM."""
    from gateway.app import create_app
    from gateway.server import ServerThread, base_url, bind

    settings = _settings(config)
    try:
        application = create_app(settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    sock = bind(settings.server.host, settings.server.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    with ServerThread({"gateway": (application, sock)}, name="gateway") as server:
        typer.echo(f"{settings.name} serving on {base_url(sock)} (REST /r1/…, SOAP POST /, docs /docs)")
        while not stop.wait(0.5):
            if not server.alive:
                raise typer.Exit(1)


@app.command()
def token() -> None:
    """Make a new access token for a client subsystem (or the operator) and the hash the node keeps."""
    value = secrets.token_urlsafe(32)
    typer.echo(f"token:        {value}")
    typer.echo(f"token_sha256: {hashlib.sha256(value.encode()).hexdigest()}")
    typer.echo("Give the token to the client's system; put token_sha256 in the node's configuration.")
