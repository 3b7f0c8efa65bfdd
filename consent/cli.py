"""`kiungo consent`: grant, withdraw and list consent records, and verify consent receipts offline.

The store's secret comes from --secret-file or the KIUNGO_CONSENT_SECRET environment variable, a key
passphrase from --passphrase-file or KIUNGO_KEY_PASSPHRASE, never from the command line (it would show
in `ps` and shell history). Failures print `error: ...` and exit 2; a receipt that does not verify exits 1.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Final

import typer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy.exc import SQLAlchemyError

from consent.errors import ConsentError, ReceiptError
from consent.receipts import ReceiptSigner, load_public_key, verify_receipt
from consent.store import ConsentStore

SECRET_ENV: Final = "KIUNGO_CONSENT_SECRET"  # noqa: S105 - the variable's name, not a secret
PASSPHRASE_ENV: Final = "KIUNGO_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
DEFAULT_DAYS: Final = 365

app = typer.Typer(
    help="Consent records: grant, withdraw, list, and verify consent receipts offline.",
    no_args_is_help=True,
)

Db = Annotated[
    str,
    typer.Option(
        "--db",
        help="The consent store: an SQLite file or a database URL (sqlite:///PATH, postgresql://...); "
        "`kiungo db upgrade --store consent --url URL` creates it.",
    ),
]
SecretFile = Annotated[
    Path | None,
    typer.Option("--secret-file", help=f"File holding the store's hashing secret (default: ${SECRET_ENV})."),
]
Subject = Annotated[str, typer.Option("--subject", help="The data subject's identifier (hashed, never stored).")]


class _Usage(Exception):
    """A problem with the command's input (not a consent error): reported the same way."""


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """One line and exit 2 instead of a traceback: operators need the reason."""
    try:
        yield
    except (ConsentError, _Usage) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:  # the class only: a driver's message may quote parameters
        typer.echo(f"error: the consent database failed ({type(exc).__name__})", err=True)
        raise typer.Exit(2) from None


def _file_bytes(path: Path, what: str) -> bytes:
    """A secret from a file, one trailing newline dropped (editors add one)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read the {what} file {path}: {exc.strerror or exc}") from exc
    value = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    if not value:
        raise _Usage(f"the {what} file {path} is empty")
    return value


def _secret(secret_file: Path | None) -> bytes:
    if secret_file is not None:
        return _file_bytes(secret_file, "secret")
    from_env = os.environ.get(SECRET_ENV, "")
    if from_env:
        return from_env.encode("utf-8")
    raise _Usage(f"no store secret: set the environment variable {SECRET_ENV} or pass --secret-file FILE")


def _open(db: str, secret_file: Path | None) -> ConsentStore:
    """A URL as given, anything else an SQLite file (a missing one is not created: the error says how)."""
    return ConsentStore(db if "://" in db else Path(db), _secret(secret_file))


def _load_key(path: Path, passphrase_file: Path | None) -> ec.EllipticCurvePrivateKey:
    """An unencrypted or passphrase-encrypted PKCS#8 PEM P-256 key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read the key file {path}: {exc.strerror or exc}") from exc
    encrypted = b"ENCRYPTED" in data
    passphrase: bytes | None = None
    if encrypted:
        if passphrase_file is not None:
            passphrase = _file_bytes(passphrase_file, "passphrase")
        elif os.environ.get(PASSPHRASE_ENV):
            passphrase = os.environ[PASSPHRASE_ENV].encode("utf-8")
        else:
            raise _Usage(f"the key {path} is encrypted: set {PASSPHRASE_ENV} or pass --passphrase-file FILE")
    try:
        key = load_pem_private_key(data, passphrase)
    except (ValueError, TypeError) as exc:
        hint = "wrong passphrase or not a PEM key" if encrypted else "not a PEM private key"
        raise _Usage(f"cannot open the key {path}: {hint}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _Usage(f"the key {path} is not an EC P-256 key (ES256)")
    return key


def _when(text: str, field: str) -> datetime:
    """A date (midnight UTC) or an ISO datetime (UTC when no zone is given)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _Usage(f"{field}: {text!r} is not a date (YYYY-MM-DD) or ISO datetime") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _day(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"


@app.command("grant")
def grant(
    db: Db,
    subject: Subject,
    controller: Annotated[str, typer.Option("--controller", help="The member whose data it is, e.g. ZZ/GOV/TAX.")],
    recipient: Annotated[
        list[str], typer.Option("--recipient", help="A client subsystem or member that may receive it (repeat).")
    ],
    purpose: Annotated[list[str], typer.Option("--purpose", help="A purpose code (repeat).")],
    category: Annotated[list[str], typer.Option("--category", help="A data category, e.g. income (repeat).")],
    until: Annotated[
        str | None, typer.Option("--until", help=f"End of validity (default: {DEFAULT_DAYS} days from now).")
    ] = None,
    valid_from: Annotated[str | None, typer.Option("--from", help="Start of validity (default: now).")] = None,
    notice: Annotated[str, typer.Option("--notice", help="Privacy notice URL or reference.")] = "",
    language: Annotated[str, typer.Option("--language", help="Language of the notice.")] = "en",
    actor: Annotated[str, typer.Option("--actor", help="Who records the consent (staff id, channel).")] = "",
    key: Annotated[Path | None, typer.Option("--key", help="Signing key (PEM) for a consent receipt.")] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="Receipt issuer (default: the controller).")] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option("--passphrase-file", help=f"File holding the key passphrase (default: ${PASSPHRASE_ENV})."),
    ] = None,
    secret_file: SecretFile = None,
) -> None:
    """Record a consent; print its record id and, with --key, a signed consent receipt."""
    with _reported():
        ends = _when(until, "--until") if until else datetime.now(UTC) + timedelta(days=DEFAULT_DAYS)
        starts = _when(valid_from, "--from") if valid_from else None
        signer = ReceiptSigner(_load_key(key, passphrase_file), issuer or controller) if key else None
        store = _open(db, secret_file)
        try:
            record = store.grant(
                subject_id=subject,
                controller=controller,
                recipients=recipient,
                purposes=purpose,
                data_categories=category,
                valid_until=ends,
                valid_from=starts,
                privacy_notice=notice,
                language=language,
                actor=actor,
            )
        finally:
            store.close()
        typer.echo(record.record_id)
        if signer is not None:
            typer.echo(signer.receipt(record))


@app.command("withdraw")
def withdraw(
    db: Db,
    record_id: Annotated[str, typer.Argument(help="The consent record to withdraw.")],
    actor: Annotated[str, typer.Option("--actor", help="Who records the withdrawal.")] = "",
    secret_file: SecretFile = None,
) -> None:
    """Withdraw a consent (the history keeps the grant; withdrawing twice keeps the first withdrawal)."""
    with _reported():
        store = _open(db, secret_file)
        try:
            record = store.withdraw(record_id, actor=actor)
        finally:
            store.close()
        when = record.withdrawn_at
        typer.echo(f"withdrawn {record.record_id} at {_day(when) if when else '?'}")


@app.command("list")
def list_(
    db: Db,
    subject: Subject,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    secret_file: SecretFile = None,
) -> None:
    """The subject's consent records, newest first."""
    with _reported():
        store = _open(db, secret_file)
        try:
            records = store.list_by_subject(subject)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps([r.as_json() for r in records], indent=2))
            return
        if not records:
            typer.echo("no consent records for this subject")
            return
        header = ("record id", "state", "recipients", "purposes", "categories", "until")
        rows = [
            (
                r.record_id,
                r.state(),
                ",".join(r.recipients),
                ",".join(r.purposes),
                ",".join(r.data_categories),
                _day(r.valid_until),
            )
            for r in records
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@app.command("verify-receipt")
def verify_receipt_command(
    token: Annotated[str, typer.Argument(help="The receipt (a JWT).")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The issuer's public key (PEM).")],
) -> None:
    """Verify a consent receipt offline; print its claims, or the reason it fails (exit 1)."""
    with _reported():
        try:
            pem = public_key.read_bytes()
        except OSError as exc:
            raise _Usage(f"cannot read the public key {public_key}: {exc.strerror or exc}") from exc
        key = load_public_key(pem)
        try:
            claims = verify_receipt(token.strip(), key)
        except ReceiptError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(claims, indent=2))
