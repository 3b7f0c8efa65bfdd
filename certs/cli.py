"""`kiungo certs`: run the federation CA, issue member certificates, revoke, and sign the directory.

Key passphrases come from --passphrase-file or the KIUNGO_KEY_PASSPHRASE environment variable, never from
the command line (it would show in `ps` and shell history). Failures print `error: ...` and exit 2.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.authority import CertificateAuthority
from certs.directory import directory_digest, verify_directory
from certs.errors import CertificateError, CertsError, DirectoryError
from certs.identity import fingerprint, make_csr, member_of, usage_of, validate_member
from certs.keys import (
    PASSPHRASE_ENV,
    generate_key,
    load_certificate,
    passphrase_from,
    save_certificate,
    save_private_key,
    write_private_file,
)

app = typer.Typer(
    help="Federation PKI: the CA, member certificates, revocation and the signed directory.",
    no_args_is_help=True,
)
directory_app = typer.Typer(
    help="The signed federation directory (X-Road: global configuration).", no_args_is_help=True
)
app.add_typer(directory_app, name="directory")

CaDir = Annotated[Path, typer.Option("--ca", help="The CA directory.")]
PassphraseFile = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help=f"File holding the key passphrase (default: ${PASSPHRASE_ENV})."),
]


@contextlib.contextmanager
def _reported(code: int = 2) -> Iterator[None]:
    """Turn the package's errors into one line and an exit code: operators need the reason, not a traceback."""
    try:
        yield
    except CertsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code) from None
    except OSError as exc:
        typer.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _describe(cert: x509.Certificate) -> str:
    return f"serial {cert.serial_number:x}  sha256 {fingerprint(cert)}  until {_iso(cert.not_valid_after_utc)}"


@app.command("init")
def init(
    ca: CaDir,
    instance: Annotated[str, typer.Option("--instance", help="Federation instance code, e.g. ZZ.")],
    name: Annotated[str, typer.Option("--name", help="Name of the federation authority.")],
    valid_days: Annotated[int, typer.Option("--valid-days", help="Lifetime of the root.")] = 3650,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Create a new CA and its directory signer (refuses to overwrite an existing one)."""
    with _reported():
        authority = CertificateAuthority.init(ca, instance, name, passphrase_from(file=passphrase_file), valid_days)
        typer.echo(f"CA created in {ca}")
        typer.echo(f"  root       {_describe(authority.cert)}")
        typer.echo(f"  directory  {_describe(authority.directory_cert)}")
        typer.echo(f"configuration anchor (give it to every gateway out of band): {ca / 'directory.cert.pem'}")


def _load_csr(path: Path) -> x509.CertificateSigningRequest:
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CertificateError(f"{path} does not hold a certificate signing request") from exc


@app.command("issue")
def issue(
    ca: CaDir,
    member: Annotated[str, typer.Option("--member", help="Member identifier INSTANCE/CLASS/CODE.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (generated keys) or certificate file (--csr).")],
    host: Annotated[
        list[str] | None, typer.Option("--host", help="DNS name or IP address of the member's gateway (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The member organisation's name.")] = None,
    usage: Annotated[str | None, typer.Option("--usage", help="auth or sign (with --csr).")] = None,
    csr: Annotated[
        Path | None, typer.Option("--csr", help="Certify the key in this CSR instead of generating.")
    ] = None,
    valid_days: Annotated[int, typer.Option("--valid-days")] = 365,
    passphrase_file: PassphraseFile = None,
    member_passphrase_file: Annotated[
        Path | None,
        typer.Option("--member-passphrase-file", help="Passphrase for the generated member keys (default: the CA's)."),
    ] = None,
) -> None:
    """Issue a member's auth (TLS) and sign (message) certificates, or one certificate from the member's CSR."""
    hosts = host or []
    with _reported():
        if csr is None and usage is not None:
            raise CertsError("--usage goes with --csr; without a CSR both certificates are issued")
        if csr is not None and usage is None:
            raise CertsError("--csr needs --usage auth or --usage sign")
        passphrase = passphrase_from(file=passphrase_file)
        authority = CertificateAuthority.open(ca, passphrase)
        if csr is not None and usage is not None:
            cert = authority.issue(member, usage, _load_csr(csr), hosts=hosts, valid_days=valid_days, name=name)
            save_certificate(cert, out)
            typer.echo(f"{usage:<4}  {_describe(cert)}  -> {out}")
            return
        member_passphrase = passphrase_from(file=member_passphrase_file) if member_passphrase_file else passphrase
        paths = authority.issue_member(member, out, member_passphrase, hosts=hosts, name=name, valid_days=valid_days)
        for usage_name in ("auth", "sign"):
            cert = load_certificate(paths[f"{usage_name}_cert"])
            typer.echo(f"{usage_name:<4}  {_describe(cert)}  -> {paths[f'{usage_name}_cert']}")
        typer.echo(f"keys (encrypted): {paths['auth_key']}, {paths['sign_key']}; CA certificate: {paths['ca_cert']}")


@app.command("csr")
def csr(
    member: Annotated[str, typer.Option("--member", help="Member identifier INSTANCE/CLASS/CODE.")],
    key_out: Annotated[Path, typer.Option("--key-out", help="Where to write the new (encrypted) private key.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the CSR (PEM).")],
    name: Annotated[str | None, typer.Option("--name", help="The member organisation's name.")] = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Make a key and a certificate signing request, so the private key never leaves the member."""
    with _reported():
        validate_member(member)
        if key_out.exists():
            raise CertsError(f"refusing to overwrite the existing key {key_out}")
        passphrase = passphrase_from(file=passphrase_file)
        key = generate_key()
        request = make_csr(key, member, name)
        save_private_key(key, key_out, passphrase)
        write_private_file(out, request.public_bytes(serialization.Encoding.PEM), mode=0o644)
        typer.echo(f"key {key_out} (encrypted), request {out} for {member}")


def _reason(value: str) -> x509.ReasonFlags:
    wanted = value.replace("_", "").replace("-", "").lower()
    for flag in x509.ReasonFlags:
        if wanted in (flag.value.lower(), flag.name.replace("_", "").lower()):
            return flag
    choices = ", ".join(f.value for f in x509.ReasonFlags)
    raise CertsError(f"unknown revocation reason {value!r}; one of {choices}")


@app.command("revoke")
def revoke(
    ca: CaDir,
    serial: Annotated[str | None, typer.Option("--serial", help="Serial number in hex.")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="The certificate file to revoke.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="e.g. keyCompromise, superseded.")] = "unspecified",
    passphrase_file: PassphraseFile = None,
) -> None:
    """Revoke a certificate; the next CRL and every OCSP answer from then on say so."""
    with _reported():
        if (serial is None) == (cert is None):
            raise CertsError("give exactly one of --serial HEX or --cert FILE")
        flag = _reason(reason)
        if cert is not None:
            number = load_certificate(cert).serial_number
        else:
            text = (serial or "").lower().removeprefix("0x").replace(":", "")
            try:
                number = int(text, 16)
            except ValueError:
                raise CertsError(f"--serial {serial!r} is not a hexadecimal number") from None
        authority = CertificateAuthority.open(ca, passphrase_from(file=passphrase_file))
        authority.revoke(number, flag)
        typer.echo(f"revoked {number:x} ({flag.value}); publish a new CRL with `kiungo certs crl`")


@app.command("crl")
def crl(
    ca: CaDir,
    out: Annotated[Path, typer.Option("--out", help="Where to write the CRL (PEM).")],
    valid_hours: Annotated[float, typer.Option("--valid-hours", help="Hours until nextUpdate.")] = 24.0,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Write a fresh CRL signed by the CA."""
    with _reported():
        authority = CertificateAuthority.open(ca, passphrase_from(file=passphrase_file))
        revocations = authority.crl(timedelta(hours=valid_hours))
        write_private_file(out, revocations.public_bytes(serialization.Encoding.PEM), mode=0o644)
        until = revocations.next_update_utc
        typer.echo(f"CRL with {len(revocations)} revoked -> {out} (next update {_iso(until) if until else '-'})")


@directory_app.command("sign")
def directory_sign(
    ca: CaDir,
    input: Annotated[Path, typer.Option("--input", help="The directory content (a JSON object).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed directory (JWS).")],
    valid_hours: Annotated[
        float | None, typer.Option("--valid-hours", help="Set issued_at to now and expires_at this far ahead.")
    ] = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Sign the federation directory with the CA's directory signer."""
    with _reported():
        try:
            content: Any = json.loads(input.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DirectoryError(f"{input} is not JSON: {exc}") from exc
        if not isinstance(content, dict):
            raise DirectoryError(f"{input} must hold a JSON object")
        authority = CertificateAuthority.open(ca, passphrase_from(file=passphrase_file))
        content.setdefault("instance", authority.instance)
        if content["instance"] != authority.instance:
            raise DirectoryError(
                f"the content is for instance {content['instance']!r}, this CA is {authority.instance}"
            )
        if valid_hours is not None:
            if valid_hours <= 0:
                raise DirectoryError("--valid-hours must be positive")
            now = datetime.now(UTC)
            content["issued_at"] = _iso(now)
            content["expires_at"] = _iso(now + timedelta(hours=valid_hours))
        blob = authority.sign_directory(content)
        write_private_file(out, blob, mode=0o644)
        typer.echo(f"directory for {content['instance']} -> {out}")
        typer.echo(f"  expires {content['expires_at']}  sha256 {directory_digest(blob)}")


@directory_app.command("verify")
def directory_verify(
    file: Annotated[Path, typer.Argument(help="The signed directory (JWS).")],
    anchor: Annotated[Path, typer.Option("--anchor", help="The configuration anchor (directory.cert.pem).")],
) -> None:
    """Check a directory against the anchor; exit 1, saying why, when it must not be used."""
    with _reported():
        anchor_cert = load_certificate(anchor)
        blob = file.read_bytes()
    with _reported(code=1):
        content = verify_directory(blob, anchor_cert)
    members = content.get("members")
    count = len(members) if isinstance(members, list | dict) else 0
    typer.echo(f"valid directory for instance {content['instance']}")
    typer.echo(f"  members  {count}")
    typer.echo(f"  issued   {content['issued_at']}")
    typer.echo(f"  expires  {content['expires_at']}")
    typer.echo(f"  sha256   {directory_digest(blob)}")


@app.command("show")
def show(file: Annotated[Path, typer.Argument(help="A certificate (PEM or DER).")]) -> None:
    """Print what Kiungo reads from a certificate: member, usage, serial, fingerprint, validity."""
    with _reported():
        cert = load_certificate(file)
        try:
            member = member_of(cert)
        except CertificateError:
            member = "-"
        try:
            usage = usage_of(cert)
        except CertificateError:
            usage = "-"
        rows = [
            ("subject", cert.subject.rfc4514_string()),
            ("issuer", cert.issuer.rfc4514_string()),
            ("member", member),
            ("usage", usage),
            ("serial", f"{cert.serial_number:x}"),
            ("sha256", fingerprint(cert)),
            ("valid from", _iso(cert.not_valid_before_utc)),
            ("valid until", _iso(cert.not_valid_after_utc)),
        ]
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            rows.append(("hosts", ", ".join(str(n.value) for n in san)))
        except x509.ExtensionNotFound:
            pass
        for label, value in rows:
            typer.echo(f"{label:<12}{value}")
