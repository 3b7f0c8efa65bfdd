"""`kiungo policies`: check a set of agreements before it goes live, and explain a decision to a DPO.

`check` exits 1 when it finds problems (a file that does not load is one); usage errors print
`error: ...` and exit 2. `explain` exits 0 when the request would be allowed, 1 when denied.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from policies.agreements import load_agreements, parse_moment
from policies.check import check_agreements
from policies.errors import AgreementError, PolicyError
from policies.pdp import DecisionRequest, PolicyDecisionPoint

app = typer.Typer(
    help="Data-sharing agreements: check them, and explain what the policy decision point decides.",
    no_args_is_help=True,
)

Paths = Annotated[list[Path], typer.Argument(help="Agreement files, or directories of *.toml files.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _existing(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _fail(f"no such file or directory: {', '.join(missing)}")
    return paths


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_moment(text, end=False)
    except PolicyError as exc:
        raise _fail(f"--at {exc}") from None


def _services(file: Path | None) -> dict[str, list[str] | None] | None:
    """Read {service id: [field paths] or null} and check its shape, so a typo is an error, not a pass."""
    if file is None:
        return None
    try:
        raw: Any = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"{file}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(f"{file}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _fail(f"{file}: must be a JSON object {{service id: [field paths] or null}}")
    for service, fields in raw.items():
        if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
            raise _fail(f"{file}: {service}: must be a list of field paths or null")
    return raw


@app.command("check")
def check(
    paths: Paths,
    members: Annotated[
        str | None, typer.Option("--members", help="Known members, comma-separated: ZZ/GOV/CRA,ZZ/GOV/MSP.")
    ] = None,
    services: Annotated[
        Path | None, typer.Option("--services", help="JSON file: {service id: [response field paths] or null}.")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Judge validity at this date or time (default: now).")] = None,
) -> None:
    """Load agreements and report every problem: bad files, unknown members or services, stale or overlapping grants."""
    known_members = [m.strip() for m in members.split(",") if m.strip()] if members is not None else None
    known_services = _services(services)
    now = _moment(at)
    try:
        agreements = load_agreements(_existing(paths))
    except AgreementError as exc:
        for problem in exc.problems:
            typer.echo(problem)
        raise typer.Exit(1) from None
    problems = check_agreements(agreements, members=known_members, services=known_services, now=now)
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"ok: {len(agreements)} agreements")


@app.command("explain")
def explain(
    paths: Paths,
    client: Annotated[str, typer.Option("--client", help="Client subsystem: ZZ/GOV/MSP/programme-mis.")],
    service: Annotated[str, typer.Option("--service", help="Service: ZZ/GOV/CRA/civreg/GetPersonByNationalId.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose code: old-age-grant-eligibility.")],
    method: Annotated[str | None, typer.Option("--method", help="REST method, e.g. GET.")] = None,
    path: Annotated[str | None, typer.Option("--path", help="REST path under the service, e.g. /v1/x.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Decide at this date or time (default: now).")] = None,
    forbid: Annotated[
        list[Path] | None, typer.Option("--forbid", help="A file of Cedar forbid rules to add (repeatable).")
    ] = None,
) -> None:
    """Decide one request and say which agreements were considered and why each did or did not apply."""
    now = _moment(at) or datetime.now(UTC)
    try:
        rules = [p.read_text(encoding="utf-8") for p in forbid or []]
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read a --forbid file: {exc}") from None
    try:
        pdp = PolicyDecisionPoint(load_agreements(_existing(paths)), forbid=rules)
        request = DecisionRequest(client, service, purpose, method, path, now)
        decision = pdp.decide(request)
        text = pdp.explain(request)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    typer.echo(text)
    raise typer.Exit(0 if decision.allowed else 1)
