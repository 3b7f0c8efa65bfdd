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
    if settings.vsr is not None:
        from gateway.vsr.service import check_settings

        problems = check_settings(settings.vsr)
        if problems:
            typer.echo(f"error: {config} has {len(problems)} problem(s):", err=True)
            for problem in problems:
                typer.echo(f"  - {problem}", err=True)
            raise typer.Exit(2)
    services = len(settings.services)
    typer.echo(
        f"ok: {settings.name} ({settings.instance}): {len(settings.subsystems)} subsystem(s), "
        f"{services} service(s), {len(settings.clients)} client(s), {len(settings.systems)} system(s)"
    )


@app.command()
def serve(config: ConfigOpt) -> None:
    """Serve the node until Ctrl-C or SIGTERM."""
    from gateway.app import listeners
    from gateway.server import ServerThread, base_url

    settings = _settings(config)
    try:
        node_listeners = listeners(settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    with ServerThread(node_listeners, name="gateway") as server:
        client = node_listeners["gateway"]
        scheme = "https" if client.ssl else "http"
        typer.echo(f"{settings.name}: clients on {base_url(client.sock, scheme)} (REST /r1/…, SOAP POST /, docs /docs)")
        if "peers" in node_listeners:
            typer.echo(f"  peer gateways on {base_url(node_listeners['peers'].sock, 'https')} (mutual TLS)")
        if settings.console is not None:
            where = node_listeners.get("admin", client)
            typer.echo(f"  console on {base_url(where.sock, 'https' if where.ssl else 'http')}/console/")
        while not stop.wait(0.5):
            if not server.alive:
                raise typer.Exit(1)


@app.command()
def authority(
    ca: Annotated[Path, typer.Option("--ca", help="The federation CA's directory (kiungo certs init).")],
    directory: Annotated[Path, typer.Option("--directory", help="The signed directory file to publish.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8000,
    passphrase_file: Annotated[Path | None, typer.Option(help="Else KIUNGO_KEY_PASSPHRASE.")] = None,
) -> None:
    """Serve the federation authority: the signed directory (/directory), the CRL (/crl) and OCSP (/ocsp)."""
    import certs
    from gateway.authority import create_authority_app
    from gateway.server import ServerThread, base_url, bind

    try:
        authority_ca = certs.CertificateAuthority.open(ca, certs.passphrase_from(file=passphrase_file))
    except certs.CertsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    sock = bind(host, port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with ServerThread({"authority": (create_authority_app(authority_ca, directory), sock)}, name="authority") as srv:
        typer.echo(f"federation authority on {base_url(sock)}: /directory /crl /ocsp /ca")
        while not stop.wait(0.5):
            if not srv.alive:
                raise typer.Exit(1)


@app.command()
def token() -> None:
    """Make a new access token for a client subsystem (or the operator) and the hash the node keeps."""
    value = secrets.token_urlsafe(32)
    typer.echo(f"token:        {value}")
    typer.echo(f"token_sha256: {hashlib.sha256(value.encode()).hexdigest()}")
    typer.echo("Give the token to the client's system; put token_sha256 in the node's configuration.")


@app.command("console-user")
def console_user(
    name: Annotated[str, typer.Argument(help="The user name: lower-case letters, digits, '.', '_' or '-'.")],
    role: Annotated[str, typer.Option(help="dpo, auditor (read-only) or operator.")],
    generate: Annotated[bool, typer.Option(help="Make a random password and print it once.")] = False,
) -> None:
    """Make a console user: prints the TOML to paste into the node's configuration (the password is not kept)."""
    import re

    from gateway.console import ConsoleError, Role, hash_password

    if not re.fullmatch(r"[a-z][a-z0-9._-]{0,63}", name):
        raise typer.BadParameter(
            "lower-case letters, digits, '.', '_' or '-', starting with a letter", param_hint="NAME"
        )
    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter("one of dpo, auditor, operator", param_hint="--role") from None
    password = (
        secrets.token_urlsafe(18) if generate else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    try:
        hashed = hash_password(password)
    except ConsoleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if generate:
        typer.echo(f"password: {password}  (give it to {name} by a safe channel; it is shown only now)", err=True)
    typer.echo(f'[console.users."{name}"]\nrole = "{chosen}"\npassword_hash = "{hashed}"')
