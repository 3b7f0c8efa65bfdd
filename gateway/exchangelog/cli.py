"""`kiungo audit`: verify, search, export, subject reports and statistics for DPOs and auditors."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

from gateway.exchangelog.bundle import verify_bundle
from gateway.exchangelog.errors import LogError
from gateway.exchangelog.log import ExchangeLog
from gateway.exchangelog.record import LogRecord
from gateway.exchangelog.subjects import subject_hash

app = typer.Typer(help="Verify and query the tamper-evident exchange log.", no_args_is_help=True)
console = Console()

LogUrl = Annotated[str, typer.Option("--log", help="sqlite:///path/log.sqlite or postgresql://...")]
Since = Annotated[str | None, typer.Option(help="from (inclusive): YYYY-MM-DD, ISO time or ms epoch")]
Until = Annotated[str | None, typer.Option(help="to (exclusive): YYYY-MM-DD, ISO time or ms epoch")]


def parse_time(value: str | None) -> int | None:
    """Dates are UTC midnights; plain digits are ms since the epoch."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD, an ISO time or ms since the epoch") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _open(url: str, **kw: Any) -> ExchangeLog:
    try:
        return ExchangeLog.open(url, node="", **kw)
    except LogError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _secret(path: Path) -> bytes:
    """The node's subject-hash secret: the file's bytes, surrounding whitespace removed."""
    return path.read_bytes().strip()


@app.command()
def verify(
    log: Annotated[str | None, typer.Option("--log", help="log database URL")] = None,
    bundle: Annotated[Path | None, typer.Option(help="an exported bundle (directory or .zip)")] = None,
    cert: Annotated[
        Path | None, typer.Option(help="pin the signer certificate (PEM)", exists=True, dir_okay=False)
    ] = None,
) -> None:
    """Recompute every leaf and root; print ok or the first problem (index and kind), exit 1."""
    if (log is None) == (bundle is None):
        raise typer.BadParameter("give exactly one of --log and --bundle")
    pinned = cert.read_text() if cert else None
    if bundle is not None:
        report = verify_bundle(bundle, signer_cert_pem=pinned)
    else:
        assert log is not None
        opened = _open(log, signer_cert_pem=pinned)
        try:
            report = opened.verify()
        finally:
            opened.close()
    console.print(report.summary(), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _records_table(rows: list[tuple[int, LogRecord]]) -> Table:
    table = Table("index", "time", "side", "client", "service", "purpose", "decision", "outcome")
    for i, r in rows:
        table.add_row(
            str(i),
            fmt_ms(r.request_in_ts),
            r.side,
            r.client or "-",
            r.service or "-",
            r.purpose or "-",
            r.decision or "-",
            r.outcome,
        )
    return table


@app.command()
def search(
    log: LogUrl,
    subject: Annotated[str | None, typer.Option(help="a data subject's id (hashed here, never stored)")] = None,
    secret_file: Annotated[
        Path | None, typer.Option(help="the node's subject-hash secret", exists=True, dir_okay=False)
    ] = None,
    client: str | None = None,
    service: str | None = None,
    purpose: str | None = None,
    decision: str | None = None,
    issue: Annotated[str | None, typer.Option(help="X-Road-Issue, e.g. a registry query's exchange id")] = None,
    since: Since = None,
    until: Until = None,
    limit: int = 100,
) -> None:
    """Find exchanges by subject, client, service, purpose, decision, issue and time."""
    hashed = None
    if subject is not None:
        if secret_file is None:
            raise typer.BadParameter("--subject needs --secret-file")
        hashed = subject_hash(_secret(secret_file), subject)
    opened = _open(log)
    try:
        rows = opened.search(
            subject_hash=hashed,
            client=client,
            service=service,
            purpose=purpose,
            decision=decision,
            issue=issue,
            since_ms=parse_time(since),
            until_ms=parse_time(until),
            limit=limit,
        )
    finally:
        opened.close()
    console.print(_records_table(rows))
    console.print(f"{len(rows)} record(s)")


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    password = os.environ.get("KIUNGO_KEY_PASSPHRASE")
    key = serialization.load_pem_private_key(path.read_bytes(), password.encode() if password else None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise typer.BadParameter("the signing key must be an EC (P-256) key")
    return key


@app.command()
def export(
    log: LogUrl,
    out: Annotated[Path, typer.Option(help="bundle to write: a directory, or a file ending in .zip")],
    since: Since = None,
    until: Until = None,
    key: Annotated[
        Path | None,
        typer.Option(help="signing key, to sign a head covering the newest records", exists=True, dir_okay=False),
    ] = None,
    cert: Annotated[Path | None, typer.Option(help="signer certificate (PEM)", exists=True, dir_okay=False)] = None,
) -> None:
    """Write a self-contained evidence bundle that verifies offline."""
    opened = _open(log, signer=_load_key(key) if key else None, signer_cert_pem=cert.read_text() if cert else None)
    try:
        path = opened.export(out, since_ms=parse_time(since), until_ms=parse_time(until))
    except LogError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        opened.close()
    console.print(f"written: {path}")


@app.command()
def archive(
    log: LogUrl,
    before: Annotated[str, typer.Option(help="archive what was logged before: YYYY-MM-DD, ISO time or ms epoch")],
    out: Annotated[Path, typer.Option(help="the archive bundle to write")],
) -> None:
    """Retention: move old records into an archive bundle; their leaf hashes stay, so the log still verifies."""
    cutoff = parse_time(before)
    assert cutoff is not None
    opened = _open(log)
    try:
        moved = opened.archive(cutoff, out)
    except LogError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        opened.close()
    console.print(f"archived {moved} record(s) to {out}; the log still verifies with their leaf hashes")


def subject_report_data(rows: list[tuple[int, LogRecord]]) -> dict[str, Any]:
    """Who accessed one person's data, grouped by the accessing client (agency and system)."""
    by_client: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index, r in rows:
        by_client[r.client or "unknown"].append(
            {
                "index": index,
                "exchange_id": r.exchange_id,
                "time": fmt_ms(r.request_in_ts),
                "side": r.side,
                "service": r.service,
                "purpose": r.purpose,
                "lawful_basis": r.lawful_basis,
                "agreement": None if r.agreement_id is None else f"{r.agreement_id} v{r.agreement_version}",
                "decision": r.decision,
                "outcome": r.outcome,
                "user": r.user_id,
            }
        )
    clients = []
    for client, accesses in sorted(by_client.items()):
        parts = client.split("/")
        clients.append(
            {
                "client": client,
                "agency": "/".join(parts[:3]) if len(parts) >= 3 else client,
                "system": parts[3] if len(parts) >= 4 else None,
                "accesses": accesses,
            }
        )
    times = [r.request_in_ts for _, r in rows]
    return {
        "exchanges": len({r.exchange_id for _, r in rows}),
        "records": len(rows),
        "first": fmt_ms(min(times)) if times else None,
        "last": fmt_ms(max(times)) if times else None,
        "clients": clients,
    }


def subject_report_text(data: dict[str, Any]) -> str:
    if not data["records"]:
        return "No exchange in this log concerns this person."
    lines = [
        f"This person's data was asked for in {data['exchanges']} exchange(s), from {data['first']} to {data['last']}.",
        "",
    ]
    for c in data["clients"]:
        system = f", system {c['system']}" if c["system"] else ""
        lines.append(f"{c['agency']}{system} ({len(c['accesses'])} time(s)):")
        for a in c["accesses"]:
            refused = a["outcome"] != "ok"
            verb = "was refused" if refused else "received data from"
            lines.append(f"  - {a['time']}: {verb} {a['service']}")
            lines.append(
                f"    purpose {a['purpose']}; lawful basis {a['lawful_basis'] or '-'}; "
                f"agreement {a['agreement'] or '-'}; decision {a['decision'] or '-'}; outcome {a['outcome']}"
            )
        lines.append("")
    return "\n".join(lines).rstrip()


@app.command("subject-report")
def subject_report(
    subject: Annotated[str, typer.Argument(help="the data subject's id")],
    log: LogUrl,
    secret_file: Annotated[Path, typer.Option(help="the node's subject-hash secret", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Who accessed this person's data: when, which agency and system, service, purpose, basis, outcome."""
    hashed = subject_hash(_secret(secret_file), subject)
    opened = _open(log)
    rows: list[tuple[int, LogRecord]] = []
    try:
        while True:
            page = opened.search(subject_hash=hashed, limit=1000, offset=len(rows))
            rows += page
            if len(page) < 1000:
                break
    finally:
        opened.close()
    data = subject_report_data(rows)
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(subject_report_text(data))


@app.command()
def stats(log: LogUrl, since: Since = None, until: Until = None) -> None:
    """Exchanges per day, client and purpose; a spike is a day above 3x the median of the 7 days before."""
    opened = _open(log)
    try:
        rows = opened.stats(since_ms=parse_time(since), until_ms=parse_time(until))
    finally:
        opened.close()
    table = Table("day", "client", "purpose", "count", "median 7d", "spike")
    for r in rows:
        table.add_row(
            r["day"],
            r["client"] or "-",
            r["purpose"] or "-",
            str(r["count"]),
            f"{r['median_prev_7d']:g}",
            "[red]SPIKE[/red]" if r["spike"] else "",
        )
    console.print(table)


@app.command()
def sign(
    log: LogUrl,
    key: Annotated[
        Path,
        typer.Option(help="EC P-256 signing key (PEM; password in KIUNGO_KEY_PASSPHRASE)", exists=True, dir_okay=False),
    ],
    cert: Annotated[Path, typer.Option(help="its certificate (PEM)", exists=True, dir_okay=False)],
    tsa: Annotated[str | None, typer.Option(help="RFC 3161 time-stamp authority URL")] = None,
) -> None:
    """Sign the current tree head now (and time-stamp it when a TSA is given)."""
    opened = _open(log, signer=_load_key(key), signer_cert_pem=cert.read_text(), tsa_url=tsa)
    try:
        sth = opened.sign_tree_head()
    finally:
        opened.close()
    stamped = "time-stamped" if sth.tsa_token else (f"NOT time-stamped ({sth.tsa_error})" if tsa else "no TSA")
    console.print(f"signed tree head: size {sth.size}, root {sth.root}, {stamped}", highlight=False)
