"""`kiungo vsr`: ask the virtual social registry through the gateway, as a programme officer's tool would.

Every call is an ordinary X-Road REST exchange (`/r1/{registry}/{service}...`) made with the client
subsystem's token, read from --token-file or KIUNGO_CLIENT_TOKEN and never taken from the command line.
Exit codes: 2 when the gateway refuses (its X-Road-Error is printed) or the registry answers with an error,
or for bad input; 3 when the gateway cannot be reached; 130 when a bulk run is interrupted (it resumes).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Final
from urllib.parse import quote

import httpx
import pydantic
import typer
from rich.align import Align
from rich.box import HEAVY
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gateway.vsr.app import PersonQuery

TOKEN_ENV: Final = "KIUNGO_CLIENT_TOKEN"  # noqa: S105 - the variable's name, not a secret
DEFAULT_CLIENT: Final = "ZZ/GOV/MSP/programme-mis"
DEFAULT_REGISTRY: Final = "ZZ/GOV/MSP/vsr"
POLL_SECONDS: Final = 0.5
REPORT_PAGE: Final = 1000  # beneficiaries per report page
RESULTS_PAGE: Final = 1000  # results per read: bounded answers, however far behind the reader is
OUTCOMES: Final = ("eligible", "not_eligible", "undetermined", "errors")
PERSON_FIELDS: Final = tuple(PersonQuery.model_fields)

app = typer.Typer(
    help="The virtual social registry: a person across the agencies, eligibility with reasons, bulk decisions.",
    no_args_is_help=True,
)


# -- errors ------------------------------------------------------------------------------------------------


class Refused(Exception):
    """The gateway refused the exchange (X-Road-Error): access, token, agreement, purpose."""

    def __init__(self, code: str, message: str, exchange: str | None) -> None:
        super().__init__(message)
        self.code, self.message, self.exchange = code, message, exchange

    def line(self) -> str:
        return f"refused: {self.code}: {self.message}" + (f" (exchange {self.exchange})" if self.exchange else "")


class RegistryError(Exception):
    """The registry answered with an error of its own (problem+json title, or a validation summary)."""

    def __init__(self, title: str, status: int) -> None:
        super().__init__(title)
        self.title, self.status = title, status


class Unreachable(Exception):
    """No answer from the gateway at all: the network, not the exchange, failed."""


class Usage(Exception):
    """The command's input is wrong (options, files); reported like the rest, exit 2."""


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """One line on stderr and a distinct exit code: scripts branch on the code, people read the line."""
    try:
        yield
    except Refused as exc:
        typer.echo(exc.line(), err=True)
        raise typer.Exit(2) from None
    except RegistryError as exc:
        typer.echo(f"error: {exc.title}", err=True)
        raise typer.Exit(2) from None
    except Usage as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Unreachable as exc:
        typer.echo(f"unreachable: {exc}", err=True)
        raise typer.Exit(3) from None


# -- the gateway -----------------------------------------------------------------------------------------


@dataclass
class Gateway:
    """The registry's services as reached through one gateway, as one client subsystem."""

    url: str
    client_id: str
    token: str = field(repr=False)  # never in a repr, a traceback or a message
    user_id: str | None
    registry: str
    http: httpx.Client

    def call(
        self,
        method: str,
        service: str,
        path: str = "",
        *,
        purpose: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"X-Road-Client": self.client_id, "X-Kiungo-Client-Token": self.token, "X-Road-PDU-Purpose": purpose}
        if self.user_id:
            headers["X-Road-UserId"] = self.user_id
        target = f"{self.url}/r1/{self.registry}/{service}{path}"
        try:
            answer = self.http.request(method, target, headers=headers, json=body, params=params)
        except httpx.TimeoutException:
            raise Unreachable(f"no answer from the gateway at {self.url} within {self.http.timeout.read} s") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the gateway at {self.url}: {type(exc).__name__}: {exc}") from None
        _raise_for_error(answer)
        return answer

    def json(self, method: str, service: str, path: str = "", **kw: Any) -> Any:
        answer = self.call(method, service, path, **kw)
        try:
            return answer.json()
        except ValueError:
            raise RegistryError(f"the answer to {service}{path} is not JSON", answer.status_code) from None


def _raise_for_error(answer: httpx.Response) -> None:
    """Gateway refusals carry X-Road-Error; anything else >= 400 is the registry's (or FastAPI's) own."""
    body: Any = None
    with contextlib.suppress(ValueError):
        body = answer.json()
    code = answer.headers.get("x-road-error")
    if code:
        doc = body if isinstance(body, dict) else {}
        raise Refused(str(doc.get("type") or code), str(doc.get("message") or "-"), doc.get("detail"))
    if answer.status_code < 400:
        return
    if isinstance(body, dict) and isinstance(body.get("errors"), list):  # the registry's 422: where, what
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
            for e in body["errors"]
            if isinstance(e, dict)
        ]
        raise RegistryError("invalid request: " + "; ".join(problems), answer.status_code)
    if isinstance(body, dict) and isinstance(body.get("title"), str):
        raise RegistryError(body["title"], answer.status_code)
    if isinstance(body, dict) and isinstance(body.get("detail"), list):  # request validation (422)
        problems = [
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'body'}: {d.get('msg')}"
            for d in body["detail"]
            if isinstance(d, dict)
        ]
        raise RegistryError("invalid request: " + "; ".join(problems), answer.status_code)
    raise RegistryError(f"HTTP {answer.status_code} {answer.reason_phrase}", answer.status_code)


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Usage(f"cannot read the token file {token_file}: {exc.strerror or exc}") from None
        where = f"the token file {token_file}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        where = TOKEN_ENV
        if not token:
            raise Usage(f"no client token: pass --token-file FILE or set {TOKEN_ENV}")
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise Usage(f"{where} does not hold a token (one line of printable ASCII)")
    return token


@dataclass(frozen=True)
class Connection:
    """The common options: which gateway, as which client, for which registry."""

    url: str | None
    client: str
    token_file: Path | None
    user_id: str | None
    registry: str
    timeout: float

    @contextlib.contextmanager
    def open(self) -> Iterator[Gateway]:
        if not self.url:
            raise Usage("no gateway: pass --gateway URL or set KIUNGO_GATEWAY")
        if not self.url.startswith(("http://", "https://")):
            raise Usage(f"--gateway must be an http:// or https:// URL, not {self.url!r}")
        if self.timeout <= 0:
            raise Usage("--timeout must be positive")
        token = _token(self.token_file)
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:
            yield Gateway(
                self.url.rstrip("/"), self.client, token, self.user_id or None, self.registry.strip("/"), http
            )


def _programme(gw: Gateway, name: str, purpose: str | None) -> dict[str, Any]:
    """The version of a programme in force, read from the registry, for its purpose and title.

    Reading the list is an exchange too, so it needs a purpose: the one given, else the programme's
    conventional one. The decisions then use the purpose the registry declares, not the convention.
    """
    listing = gw.json("GET", "programmes", purpose=purpose or f"{name}-eligibility")
    programmes = {p["programme"]: p for p in listing.get("programmes", [])}
    entry = programmes.get(name)
    if entry is None:
        raise Usage(f"unknown programme {name!r}; known: {', '.join(sorted(programmes)) or 'none'}")
    version = next((v for v in entry["versions"] if v["version"] == entry.get("in_force")), None)
    if version is None:
        raise Usage(f"no version of {name!r} is in force on {listing.get('as_of')}")
    return {"programme": name, **version}


# -- options -----------------------------------------------------------------------------------------------

GatewayOpt = Annotated[
    str | None, typer.Option("--gateway", envvar="KIUNGO_GATEWAY", help="The gateway's base URL.", show_default=False)
]
ClientOpt = Annotated[str, typer.Option("--client", envvar="KIUNGO_CLIENT", help="Client subsystem id.")]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option("--token-file", help=f"File holding the client's access token (default: ${TOKEN_ENV})."),
]
UserIdOpt = Annotated[
    str | None, typer.Option("--user-id", envvar="KIUNGO_USER_ID", help="The end user, sent as X-Road-UserId.")
]
RegistryOpt = Annotated[
    str, typer.Option("--service-prefix", envvar="KIUNGO_VSR_SERVICE", help="The registry's subsystem id.")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", envvar="KIUNGO_TIMEOUT", help="Seconds per request.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the registry's JSON answer as it is.")]
PurposeOpt = Annotated[
    str | None,
    typer.Option("--purpose", envvar="KIUNGO_PURPOSE", help="Purpose of the exchange (X-Road-PDU-Purpose)."),
]

NationalIdOpt = Annotated[str | None, typer.Option("--national-id", help="The person's national ID.")]
RecordIdOpt = Annotated[str | None, typer.Option("--record-id", help="Civil registry record number (CRA...).")]
GivenNameOpt = Annotated[str | None, typer.Option("--given-name")]
SecondNameOpt = Annotated[str | None, typer.Option("--second-name")]
SurnameOpt = Annotated[str | None, typer.Option("--surname")]
SexOpt = Annotated[str | None, typer.Option("--sex", help="M or F.")]
BirthDateOpt = Annotated[str | None, typer.Option("--birth-date", help="YYYY-MM-DD.")]
BirthYearOpt = Annotated[int | None, typer.Option("--birth-year")]
MotherNameOpt = Annotated[str | None, typer.Option("--mother-name")]
DistrictOpt = Annotated[
    str | None, typer.Option("--district", help="District of residence (with --out: everyone living there).")
]
ShowIdsOpt = Annotated[bool, typer.Option("--show-ids", help="Show national IDs in full.")]


def _person_query(fields: Mapping[str, Any], where: str = "the person options") -> dict[str, Any]:
    """A PersonQuery checked here, so a typo is named before any exchange is made (and logged)."""
    given = {k: v for k, v in fields.items() if v is not None and v != ""}
    if not given:
        raise Usage(f"{where}: give --national-id, --record-id, or names with a birth date, year or district")
    try:
        return PersonQuery.model_validate(given).plain()
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'person'}: {e['msg']}" for e in exc.errors())
        raise Usage(f"{where}: {problems}") from None


# -- rendering ---------------------------------------------------------------------------------------------


def _consoles() -> tuple[Console, Console]:
    """Made per command, so the width and the streams are those of this run."""
    return Console(highlight=False), Console(stderr=True, highlight=False)


def mask(identifier: str | None) -> str:
    """National IDs as an operator screen should show them (the sandbox demo's convention)."""
    if not identifier:
        return "-"
    return identifier[:2] + "*" * max(0, len(identifier) - 4) + identifier[-2:]


def _full_name(name: Mapping[str, Any] | None) -> str:
    name = name or {}
    return " ".join(str(name[k]) for k in ("given_name", "second_name", "surname") if name.get(k)) or "-"


def _birth(person: Mapping[str, Any]) -> str:
    if person.get("birth_date"):
        return str(person["birth_date"])
    return f"{person['birth_year']} (year only)" if person.get("birth_year") else "-"


def _identifier(person: Mapping[str, Any], kind: str) -> str | None:
    return next((i["identifier_value"] for i in person.get("identifier", []) if i["identifier_type"] == kind), None)


def _national_id(person: Mapping[str, Any], show_ids: bool) -> str:
    nid = _identifier(person, "UIN")
    return (nid or "-") if show_ids else mask(nid)


def _provenance(p: Any) -> str:
    """`source · exchange id` for one provenance record or a list of them."""
    items = p if isinstance(p, list) else [p] if p else []
    return "; ".join(f"{i['source']} · exchange {i['exchange_id']}" for i in items) or "-"


def _amount(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _fact_value(fact: Mapping[str, Any] | None) -> str:
    if fact is None:
        return "-"
    value = fact.get("value")
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " or ".join(_amount(v) for v in value)
    return _amount(value)


def _block(title: str, body: RenderableType, provenance: Any) -> Panel:
    """A block of the answer with the exchange(s) it came from, which an auditor can look up in the log."""
    source = Text(f"from {_provenance(provenance)}", style="dim")
    return Panel(Group(body, source), title=title, title_align="left")


def identity_view(identity: Mapping[str, Any]) -> list[RenderableType]:
    status = identity.get("status", "-")
    line = Text.assemble(("identity: ", "bold"), (status, "bold green" if status == "resolved" else "bold yellow"))
    line.append(f" by {str(identity.get('method', '-')).replace('_', ' ')}")
    if identity.get("match_probability") is not None:
        line.append(f", match probability {identity['match_probability']:.4f}")
    out: list[RenderableType] = [line]
    if identity.get("note"):
        out.append(Text(f"  {identity['note']}", style="dim"))
    candidates = identity.get("candidates") or []
    if candidates:
        table = Table(
            "record", "probability", "name", "sex", "birth", "district", title="candidates", title_justify="left"
        )
        for c in candidates:
            table.add_row(
                str(c.get("record_id") or "-"),
                f"{c.get('match_probability', 0):.4f}",
                _full_name(c.get("name")),
                str(c.get("sex") or "-"),
                _birth(c),
                str(c.get("district") or "-"),
            )
        out.append(table)
    return out


def _person_block(person: Mapping[str, Any], show_ids: bool) -> Panel:
    grid = Table.grid(padding=(0, 2))
    status = str(person.get("status") or "-")
    if person.get("death_date"):
        status += f" (died {person['death_date']})"
    address = person.get("address") or {}
    rows = (
        ("name", _full_name(person.get("name"))),
        ("national ID", _national_id(person, show_ids)),
        ("civil registry record", _identifier(person, "CRA_RECORD") or "-"),
        ("sex", str(person.get("sex") or "-")),
        ("birth", _birth(person)),
        ("status", status),
        ("district", " / ".join(str(address[k]) for k in ("district", "village") if address.get(k)) or "-"),
    )
    for key, value in rows:
        grid.add_row(Text(key, style="bold"), value)
    return _block("person", grid, person.get("provenance"))


def _household_block(group: Mapping[str, Any], show_ids: bool) -> Panel:
    table = Table("relationship", "name", "national ID", "sex", "birth", "status", box=None)
    for m in group.get("member_list", []):
        p = m.get("person", {})
        table.add_row(
            str(m.get("relationship") or "-"),
            _full_name(p.get("name")),
            _national_id(p, show_ids),
            str(p.get("sex") or "-"),
            _birth(p),
            str(p.get("status") or "-"),
        )
    title = f"household {group.get('group_identifier', '-')}: {group.get('group_size', '?')} living member(s)"
    return _block(title, table, group.get("provenance"))


def _means_blocks(answer: Mapping[str, Any]) -> list[RenderableType]:
    out: list[RenderableType] = []
    income = answer.get("income")
    if income is not None:
        yearly = income.get("declared_yearly") or {}
        text = ", ".join(f"{y}: {_amount(v)}" for y, v in yearly.items()) or "no income declared"
        out.append(_block("income (tax authority)", Text(text), income.get("provenance")))
    ss = answer.get("social_security")
    if ss is not None:
        lines = [f"member: {'yes' if ss.get('member') else 'no'}"]
        lines += [
            f"{p.get('kind', 'pension')} pension {_amount(p.get('monthly_amount', '-'))} a month, "
            f"{p.get('status', '-')} since {p.get('start_date', '-')}"
            for p in ss.get("pensions", [])
        ] or ["no pension"]
        out.append(_block("pension (social security fund)", Text("\n".join(lines)), ss.get("provenance")))
    enrolments = answer.get("enrolments")
    if enrolments is not None:
        items = enrolments.get("items", [])
        body: RenderableType = Text("no enrolment")
        if items:
            table = Table("programme", "beneficiary", "status", "since", "monthly", box=None)
            for e in items:
                table.add_row(
                    str(e.get("programme", "-")),
                    str(e.get("beneficiary_no", "-")),
                    str(e.get("status", "-")),
                    str(e.get("enrolled_on", "-")),
                    _amount(e.get("monthly_amount", "-")),
                )
            body = table
        out.append(_block("enrolments (programme MIS)", body, enrolments.get("provenance")))
    return out


def sources_view(answer: Mapping[str, Any]) -> list[RenderableType]:
    table = Table("source", "service", "status", "code", "exchanges", title="sources", title_justify="left")
    for s in answer.get("sources", []):
        status = s.get("status", "-")
        style = {"ok": "green", "failed": "red"}.get(status, "dim")
        code = s.get("code") or ""
        if s.get("message"):
            code = f"{code}: {s['message']}" if code else str(s["message"])
        table.add_row(
            s.get("source", "-"),
            s.get("service", "-"),
            Text(status, style=style),
            code or "-",
            str(len(s.get("exchange_ids", []))),
        )
    out: list[RenderableType] = [table]
    if not answer.get("complete", True):
        missing = ", ".join(answer.get("missing_sources", [])) or "?"
        out.append(Text(f"PARTIAL ANSWER: missing {missing}", style="bold red"))
    return out


def person_view(answer: Mapping[str, Any], *, show_ids: bool) -> list[RenderableType]:
    out = identity_view(answer.get("identity", {}))
    if answer.get("person"):
        out.append(_person_block(answer["person"], show_ids))
    elif answer.get("identity", {}).get("status") != "ambiguous":
        out.append(Text("no person identified", style="yellow"))
    if answer.get("group"):
        out.append(_household_block(answer["group"], show_ids))
    out += _means_blocks(answer)
    return out + sources_view(answer)


def decision_view(answer: Mapping[str, Any], *, show_ids: bool) -> list[RenderableType]:
    decision = answer["decision"]
    outcome = decision.get("outcome")
    label, colour = {
        "eligible": ("ELIGIBLE", "green"),
        "not_eligible": ("NOT ELIGIBLE", "red"),
    }.get(outcome, ("UNDETERMINED", "yellow"))
    person = answer.get("person")
    who = f"{_full_name(person.get('name'))}, national ID {_national_id(person, show_ids)}" if person else "-"
    out: list[RenderableType] = [
        *identity_view(answer.get("identity", {})),
        Text(f"person: {who}"),
        Panel(
            Align.center(Text(label, style=f"bold {colour}")),
            box=HEAVY,
            border_style=colour,
            padding=(1, 4),
            title=decision.get("title"),
        ),
        Text(decision.get("explanation", "")),
    ]
    table = Table("requirement", "status", "fact value", "source", "exchange", title="rules", title_justify="left")
    for rule in decision.get("rules", []):
        fact = rule.get("fact")
        provenance = (fact or {}).get("provenance") or []
        status = rule.get("status", "-")
        style = {"met": "green", "not_met": "red"}.get(status, "yellow")
        table.add_row(
            rule.get("requirement", "-"),
            Text(status, style=style),
            _fact_value(fact),
            "\n".join(p["source"] for p in provenance) or "-",
            "\n".join(p["exchange_id"] for p in provenance) or "-",
        )
    out.append(table)
    out.append(
        Text(
            f"rules: {decision.get('programme')} version {decision.get('version')} "
            f"({decision.get('legal_reference', '-')}), decided on {decision.get('decided_on', '-')}"
        )
    )
    if decision.get("missing"):
        out.append(Text(f"unknown facts: {', '.join(decision['missing'])}", style="yellow"))
    return out + sources_view(answer)


def programmes_view(listing: Mapping[str, Any]) -> Table:
    table = Table(
        "programme", "in force", "title", "purpose", "requirements", title=f"programmes as of {listing.get('as_of')}"
    )
    for p in listing.get("programmes", []):
        version = next((v for v in p.get("versions", []) if v["version"] == p.get("in_force")), None)
        table.add_row(
            p["programme"],
            p.get("in_force") or "none",
            version["title"] if version else "-",
            version["purpose"] if version else "-",
            "\n".join(f"• {r}" for r in version["requirements"]) if version else "-",
        )
    return table


def job_view(status: Mapping[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    params = status.get("params") or {}
    for key, value in (
        ("job", status.get("job_id")),
        ("programme", params.get("programme")),
        ("input", f"district {params['district']}" if params.get("district") else "a list of people"),
        ("state", status.get("state")),
        ("done", f"{status.get('done')} of {status.get('total')} ({status.get('failed')} failed)"),
        ("created", status.get("created_at")),
        ("updated", status.get("updated_at")),
    ):
        grid.add_row(Text(key, style="bold"), str(value if value is not None else "-"))
    return grid


# -- bulk --------------------------------------------------------------------------------------------------


def read_people(path: Path, *, numbered: bool = False) -> list[dict[str, Any]]:
    """People from CSV (PersonQuery columns), JSON (a list) or NDJSON, each checked like the options are.

    With `numbered`, each may carry the programme's `beneficiary_no` (a beneficiary list).
    """
    allowed = (*PERSON_FIELDS, "beneficiary_no") if numbered else PERSON_FIELDS
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise Usage(f"cannot read {path}: {exc.strerror or exc}") from None
    rows: list[tuple[str, Any]]
    try:
        if suffix == ".csv":
            reader = csv.DictReader(text.splitlines())
            unknown = sorted(set(reader.fieldnames or []) - set(allowed))
            if unknown:
                raise Usage(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
            rows = [(f"{path}:{reader.line_num}", _csv_row(row)) for row in reader]
        elif suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict) and isinstance(data.get("people"), list):
                data = data["people"]
            if not isinstance(data, list):
                raise Usage(f"{path}: expected a JSON list of people (or an object with a `people` list)")
            rows = [(f"{path}: item {i}", item) for i, item in enumerate(data)]
        elif suffix in (".ndjson", ".jsonl"):
            rows = [(f"{path}:{n}", json.loads(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        else:
            raise Usage(f"{path}: the file must end in .csv, .json or .ndjson")
    except (json.JSONDecodeError, csv.Error) as exc:
        raise Usage(f"{path}: {exc}") from None
    if not rows:
        raise Usage(f"{path} lists nobody")
    people = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise Usage(f"{where}: expected an object with person fields")
        number = row.pop("beneficiary_no", None) if numbered else None
        query = _person_query(row, where)
        people.append(query | ({"beneficiary_no": str(number)} if number else {}))
    return people


def _csv_row(row: Mapping[str | None, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or not str(value).strip():
            continue  # extra cells without a header, and empty cells: not part of the query
        out[key] = value.strip()
    if "birth_year" in out:
        with contextlib.suppress(ValueError):  # left as text otherwise: the check names the row
            out["birth_year"] = int(out["birth_year"])
    return out


def input_fingerprint(people: Sequence[Mapping[str, Any]] | None, district: str | None) -> dict[str, Any]:
    """What a job was submitted for, so that resuming with another input is refused instead of mixed up."""
    if people is None:
        return {"district": district}
    canonical = json.dumps(list(people), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {"people": len(people), "sha256": hashlib.sha256(canonical.encode()).hexdigest()}


def _outcome(result: Mapping[str, Any]) -> str:
    if "error" in result or result.get("outcome") not in OUTCOMES:
        return "errors"
    return str(result["outcome"])


@dataclass
class Saved:
    """What a results file already holds: its job line, the cursor, and the outcomes so far."""

    job: dict[str, Any]
    last_seq: int = 0
    tally: Counter[str] = field(default_factory=Counter)
    end: dict[str, Any] | None = None
    whole_bytes: int = 0  # the file's length up to its last complete line


def read_saved(out: Path) -> Saved | None:
    """The file as a previous run left it; None when there is nothing to resume. Only whole lines count."""
    try:
        data = out.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Usage(f"cannot read {out}: {exc.strerror or exc}") from None
    whole = data[: data.rfind(b"\n") + 1]
    if not whole.strip():
        return None
    lines = whole.decode("utf-8", "replace").splitlines()
    hint = "use --restart to submit anew (it overwrites the file), or another --out"
    try:
        job = json.loads(lines[0])
    except json.JSONDecodeError:
        job = None
    if not isinstance(job, dict) or job.get("type") != "job" or not isinstance(job.get("job_id"), str):
        raise Usage(f"{out} exists and is not a vsr results file; {hint}")
    saved = Saved(job, whole_bytes=len(whole))
    for n, line in enumerate(lines[1:], 2):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise Usage(f"{out}:{n} is not JSON; {hint}") from None
        if record.get("type") == "end":
            saved.end = record
        elif record.get("seq") == saved.last_seq + 1 and isinstance(record.get("result"), dict):
            saved.last_seq += 1
            saved.tally[_outcome(record["result"])] += 1
        else:
            raise Usage(f"{out}:{n} breaks the sequence of results (expected seq {saved.last_seq + 1}); {hint}")
    return saved


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s", style="progress.data.speed")


@dataclass
class BulkRun:
    """One bulk command: submit or resume, then follow the results into the file until the end line."""

    gw: Gateway
    programme: dict[str, Any]
    people: list[dict[str, Any]] | None
    district: str | None
    out: Path
    err: Console
    poll: float = POLL_SECONDS

    def start(self, restart: bool) -> Saved:
        saved = None if restart else read_saved(self.out)
        wanted = input_fingerprint(self.people, self.district)
        if saved is not None:
            job = saved.job
            if job.get("programme") != self.programme["programme"] or job.get("input") != wanted:
                raise Usage(
                    f"{self.out} holds job {job['job_id']} for {job.get('programme')} with another input; "
                    "use --restart to submit anew (it overwrites the file), or another --out"
                )
            with self.out.open("r+b") as f:
                f.truncate(saved.whole_bytes)  # a line cut short by a crash is fetched again
            return saved
        body: dict[str, Any] = {"programme": self.programme["programme"]}
        body |= {"people": self.people} if self.people is not None else {"district": self.district}
        status = self.gw.json("POST", "bulk", purpose=self.programme["purpose"], body=body)
        job = {
            "type": "job",
            "job_id": status["job_id"],
            "programme": self.programme["programme"],
            "purpose": self.programme["purpose"],
            "submitted_at": status.get("created_at") or dt.datetime.now(dt.UTC).isoformat(),
            "total": status.get("total"),
            "input": wanted,
        }
        try:
            self.out.write_text(json.dumps(job) + "\n", encoding="utf-8")
        except OSError as exc:
            raise Usage(
                f"cannot write {self.out}: {exc.strerror or exc}; job {job['job_id']} was submitted "
                f"(`kiungo vsr cancel {job['job_id']}` stops it)"
            ) from None
        return Saved(job)

    def follow(self, saved: Saved) -> dict[str, Any]:
        """Append result lines as they arrive; returns the job's final status."""
        job_id, purpose = saved.job["job_id"], saved.job.get("purpose") or self.programme["purpose"]
        status = self.gw.json("GET", "bulk", f"/{quote(job_id, safe='')}", purpose=purpose)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            _Rate(),
            TimeElapsedColumn(),
            console=self.err,
        )
        with progress, self.out.open("a", encoding="utf-8") as f:
            task = progress.add_task(
                f"job {job_id[:8]}", total=status.get("total"), completed=saved.last_seq, failed=saved.tally["errors"]
            )
            while saved.end is None:
                self._read(job_id, purpose, saved, f)
                progress.update(task, completed=saved.last_seq, failed=saved.tally["errors"])
                if saved.end is None:
                    time.sleep(self.poll)
        return dict(saved.end["status"]) if saved.end is not None else status

    def _read(self, job_id: str, purpose: str, saved: Saved, f: IO[str]) -> None:
        answer = self.gw.call(
            "GET",
            "bulk",
            f"/{quote(job_id, safe='')}/results",
            purpose=purpose,
            params={"after": saved.last_seq, "limit": RESULTS_PAGE},
        )
        for line in answer.text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise RegistryError(f"a result line of job {job_id} is not JSON", answer.status_code) from None
            if record.get("type") == "end":
                f.write(line + "\n")
                saved.end = record
            elif record.get("seq", 0) > saved.last_seq:
                if record["seq"] != saved.last_seq + 1:  # never a hole in the file: resuming relies on it
                    raise RegistryError(f"results of job {job_id} skip from seq {saved.last_seq}", answer.status_code)
                f.write(line + "\n")  # one write per whole line: an interruption never leaves half of one
                saved.last_seq = record["seq"]
                saved.tally[_outcome(record.get("result") or {})] += 1
        f.flush()


def outcomes_view(tally: Counter[str], job_id: str, state: str, out: Path) -> list[RenderableType]:
    table = Table("outcome", "people", title="outcomes", title_justify="left")
    for name in OUTCOMES:
        table.add_row(name.replace("_", " "), str(tally[name]))
    table.add_row(Text("total", style="bold"), Text(str(sum(tally.values())), style="bold"))
    return [table, Text(f"job {job_id}: {state}; results in {out}")]


# -- commands ----------------------------------------------------------------------------------------------


@app.command()
def person(
    purpose: PurposeOpt = None,
    national_id: NationalIdOpt = None,
    record_id: RecordIdOpt = None,
    given_name: GivenNameOpt = None,
    second_name: SecondNameOpt = None,
    surname: SurnameOpt = None,
    sex: SexOpt = None,
    birth_date: BirthDateOpt = None,
    birth_year: BirthYearOpt = None,
    mother_name: MotherNameOpt = None,
    district: DistrictOpt = None,
    show_ids: ShowIdsOpt = False,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    service_prefix: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Who is this person, and what do the agencies know about her? Each block names its exchange."""
    out, _ = _consoles()
    with _reported():
        query = _person_query(
            {
                "national_id": national_id,
                "record_id": record_id,
                "given_name": given_name,
                "second_name": second_name,
                "surname": surname,
                "sex": sex,
                "birth_date": birth_date,
                "birth_year": birth_year,
                "mother_name": mother_name,
                "district": district,
            }
        )
        if not purpose:
            raise Usage("every exchange declares its purpose: pass --purpose (or set KIUNGO_PURPOSE)")
        with Connection(gateway, client, token_file, user_id, service_prefix, timeout).open() as gw:
            if set(query) == {"national_id"}:
                answer = gw.json("GET", "persons", f"/{quote(query['national_id'], safe='')}", purpose=purpose)
            else:
                answer = gw.json("POST", "persons", "/query", purpose=purpose, body=query)
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    out.print(Group(*person_view(answer, show_ids=show_ids)))


@app.command()
def eligibility(
    programme: Annotated[str, typer.Option("--programme", help="The programme, e.g. old-age-grant.")],
    national_id: NationalIdOpt = None,
    record_id: RecordIdOpt = None,
    given_name: GivenNameOpt = None,
    second_name: SecondNameOpt = None,
    surname: SurnameOpt = None,
    sex: SexOpt = None,
    birth_date: BirthDateOpt = None,
    birth_year: BirthYearOpt = None,
    mother_name: MotherNameOpt = None,
    district: DistrictOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Bulk: people in a .csv, .json or .ndjson file (needs --out).")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Bulk: NDJSON results file, appended as results arrive; resumable.")
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Bulk: submit anew even if --out holds a job.")] = False,
    purpose: Annotated[
        str | None,
        typer.Option(
            "--purpose",
            envvar="KIUNGO_PURPOSE",
            help="Purpose for reading the programme list (default: PROGRAMME-eligibility); "
            "decisions always use the purpose the programme declares.",
        ),
    ] = None,
    show_ids: ShowIdsOpt = False,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    service_prefix: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 30.0,
    poll: Annotated[float, typer.Option("--poll", hidden=True, help="Bulk: seconds between reads.")] = POLL_SECONDS,
) -> None:
    """Is this person eligible, and why? With --out: decide for a file of people, or a --district, in bulk."""
    out, err = _consoles()
    fields = {
        "national_id": national_id,
        "record_id": record_id,
        "given_name": given_name,
        "second_name": second_name,
        "surname": surname,
        "sex": sex,
        "birth_date": birth_date,
        "birth_year": birth_year,
        "mother_name": mother_name,
        "district": district,
    }
    with _reported():
        if out_file is None and file is None:
            query = _person_query(fields)
            with Connection(gateway, client, token_file, user_id, service_prefix, timeout).open() as gw:
                version = _programme(gw, programme, purpose)
                body = {"programme": programme, "person": query}
                answer = gw.json("POST", "eligibility", purpose=version["purpose"], body=body)
            if as_json:
                typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
            else:
                out.print(Group(*decision_view(answer, show_ids=show_ids)))
            return
        if out_file is None:
            raise Usage("--file decides in bulk and needs --out FILE for the results")
        others = sorted(f"--{k.replace('_', '-')}" for k, v in fields.items() if v is not None and k != "district")
        if others or (file is None) == (district is None):
            raise Usage("bulk decisions take either --file FILE or --district CODE, and no other person options")
        people = read_people(file) if file is not None else None
        with Connection(gateway, client, token_file, user_id, service_prefix, timeout).open() as gw:
            run = BulkRun(gw, _programme(gw, programme, purpose), people, district, out_file, err, poll=poll)
            saved = run.start(restart)
            job_id = saved.job["job_id"]
            if saved.end is not None:
                err.print(f"{out_file} already holds the whole of job {job_id}; --restart submits it anew")
                status = dict(saved.end.get("status") or {})
            else:
                try:
                    status = run.follow(saved)
                except KeyboardInterrupt:
                    err.print(
                        f"interrupted: {saved.last_seq} result(s) saved in {out_file}; the job goes on at the "
                        f"registry. Run the same command again to continue job {job_id}, or "
                        f"`kiungo vsr cancel {job_id}` to stop it."
                    )
                    raise typer.Exit(130) from None
                except RegistryError as exc:
                    if exc.status == 404:
                        err.print(f"the registry no longer knows job {job_id}; --restart submits it anew")
                    raise
                except (Refused, Unreachable):
                    err.print(f"{saved.last_seq} result(s) saved in {out_file}; run the same command again to continue")
                    raise
    if as_json:
        summary = {"job_id": job_id, "out": str(out_file), "outcomes": {k: saved.tally[k] for k in OUTCOMES}}
        typer.echo(json.dumps(summary | {"status": status}, indent=2))
        return
    out.print(Group(*outcomes_view(saved.tally, job_id, str(status.get("state", "-")), out_file)))


@app.command()
def programmes(
    purpose: PurposeOpt = None,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    service_prefix: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Programmes, the rule version in force, the purpose their decisions are asked for, and what they require."""
    out, _ = _consoles()
    with _reported():
        if not purpose:
            raise Usage("every exchange declares its purpose: pass --purpose (or set KIUNGO_PURPOSE)")
        with Connection(gateway, client, token_file, user_id, service_prefix, timeout).open() as gw:
            listing = gw.json("GET", "programmes", purpose=purpose)
    if as_json:
        typer.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    out.print(programmes_view(listing))


def _job_command(action: str, job_id: str, purpose: str | None, as_json: bool, connection: Connection) -> None:
    out, _ = _consoles()
    with _reported():
        if not purpose:
            raise Usage("every exchange declares its purpose: pass --purpose (or set KIUNGO_PURPOSE)")
        with connection.open() as gw:
            path = f"/{quote(job_id, safe='')}" + ("/cancel" if action == "cancel" else "")
            status = gw.json("POST" if action == "cancel" else "GET", "bulk", path, purpose=purpose)
    if as_json:
        typer.echo(json.dumps(status, indent=2, ensure_ascii=False))
        return
    out.print(job_view(status))


@app.command()
def job(
    job_id: Annotated[str, typer.Argument(help="The bulk job's id.")],
    purpose: PurposeOpt = None,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    service_prefix: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Where a bulk job stands."""
    _job_command(
        "status", job_id, purpose, as_json, Connection(gateway, client, token_file, user_id, service_prefix, timeout)
    )


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="The bulk job's id.")],
    purpose: PurposeOpt = None,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    service_prefix: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Stop a bulk job; the decisions made so far are kept and can still be read."""
    _job_command(
        "cancel", job_id, purpose, as_json, Connection(gateway, client, token_file, user_id, service_prefix, timeout)
    )


def _await_job(gw: Gateway, job_id: str, purpose: str, *, label: str, command: str, err: Console) -> None:
    """Show a job's progress until it ends; Ctrl-C leaves it running and says how to follow it again."""
    path = f"/{quote(job_id, safe='')}"
    status = gw.json("GET", "bulk", path, purpose=purpose)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeElapsedColumn(),
        console=err,
    )  # fmt: skip
    try:
        with progress:
            task = progress.add_task(f"{label} {job_id[:8]}", total=status["total"], completed=status["done"])
            while status["state"] in ("queued", "running"):
                time.sleep(POLL_SECONDS)
                status = gw.json("GET", "bulk", path, purpose=purpose)
                progress.update(task, completed=status["done"])
    except KeyboardInterrupt:
        err.print(f"interrupted; the {label} goes on: `kiungo vsr {command} ... --job {job_id}` follows it")
        raise typer.Exit(130) from None


LIST_PURPOSE: Final = "beneficiary-list-maintenance"


def crosscheck_view(summary: Mapping[str, Any], job_id: str, written: Sequence[Path]) -> list[RenderableType]:
    table = Table("", "beneficiaries", title="cross-check", title_justify="left")
    for key in ("beneficiaries", "flagged", "for_review", "clean", "incomplete", "errors"):
        table.add_row(key.replace("_", " "), str(summary.get(key, 0)))
    flags = Table("flag", "beneficiaries", title="flags (each with its evidence in the report)", title_justify="left")
    for name, count in summary.get("flags", {}).items():
        flags.add_row(name.replace("_", " "), str(count))
    review = Table("for review", "beneficiaries", title_justify="left")
    for name, count in summary.get("review", {}).items():
        review.add_row(name.replace("_", " "), str(count))
    return [table, flags, review, Text(f"job {job_id}; report in {', '.join(str(p) for p in written)}")]


@app.command()
def crosscheck(
    beneficiaries: Annotated[Path, typer.Argument(help="The list: CSV, JSON or NDJSON, with beneficiary_no.")],
    programme: Annotated[str, typer.Option("--programme", help="The programme whose list it is.")],
    out: Annotated[Path, typer.Option("--out", help="Report path without extension: writes OUT.json and OUT.csv.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose of the exchanges.")] = LIST_PURPOSE,
    job_id: Annotated[
        str | None, typer.Option("--job", help="Follow (or re-fetch the report of) a cross-check already submitted.")
    ] = None,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    registry: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Cross-check a beneficiary list: deaths, double enrolments, means above the thresholds, duplicates."""
    console, err = _consoles()
    connection = Connection(gateway, client, token_file, user_id, registry, timeout)
    with _reported(), connection.open() as gw:
        if job_id is None:
            people = read_people(beneficiaries, numbered=True)
            body = {"programme": programme, "beneficiaries": people}
            status = gw.json("POST", "crosscheck", purpose=purpose, body=body)
            job_id = str(status["job_id"])
            err.print(f"submitted cross-check {job_id} ({len(people)} beneficiaries); `--job {job_id}` resumes")
        path = f"/{quote(job_id, safe='')}"
        _await_job(gw, job_id, purpose, label="cross-check", command="crosscheck", err=err)
        document = gw.json("GET", "crosscheck", f"{path}/report", purpose=purpose, params={"limit": 0})
        rows: list[Any] = []
        csv_parts: list[str] = []
        total = document["page"]["total"]
        for offset in range(0, max(total, 1), REPORT_PAGE):  # a page at a time: whole lists are large
            params = {"offset": offset, "limit": REPORT_PAGE}
            rows.extend(gw.json("GET", "crosscheck", f"{path}/report", purpose=purpose, params=params)["beneficiaries"])
            answer = gw.call("GET", "crosscheck", f"{path}/report", purpose=purpose, params=params | {"format": "csv"})
            csv_parts.append(answer.text)
        document["beneficiaries"] = rows
        document.pop("page", None)
        report_csv = "".join(csv_parts)
        written = [out.with_suffix(".json"), out.with_suffix(".csv")]
        try:
            written[0].write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
            written[1].write_text(report_csv, encoding="utf-8")
        except OSError as exc:
            raise Usage(f"cannot write the report: {exc.strerror or exc}") from None
        for renderable in crosscheck_view(document["summary"], job_id, written):
            console.print(renderable)


OVERSIGHT_PURPOSE: Final = "oversight-statistics"


def oversight_view(document: Mapping[str, Any]) -> list[RenderableType]:
    out: list[RenderableType] = []
    for table_doc in document["tables"].values():
        rows = table_doc["rows"]
        if not rows:
            continue
        columns = [c for c in rows[0] if c not in ("row", "suppressed")]
        table = Table("", *columns, title=table_doc["title"], title_justify="left")
        for row in rows:
            table.add_row(row["row"], *("·" if row.get(c) is None else f"{row[c]:,}" for c in columns))
        out.append(table)
    out.append(
        Text(
            f"as of {document['as_of']}, rules {document['rules_version']}; sources: {', '.join(document['sources'])}; "
            f"· = suppressed (counts under {document['threshold']}, and what would reveal them)"
        )
    )
    return out


@app.command()
def oversight(
    programme: Annotated[str, typer.Option("--programme", help="The programme whose coverage is measured.")],
    area: Annotated[str, typer.Option("--area", help="Districts, comma-separated (e.g. D01,D02).")],
    out: Annotated[Path, typer.Option("--out", help="Report path without extension: OUT.json, OUT.csv, OUT.png.")],
    threshold: Annotated[int, typer.Option("--threshold", help="Counts under it are suppressed.")] = 10,
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose of the exchanges.")] = OVERSIGHT_PURPOSE,
    job_id: Annotated[str | None, typer.Option("--job", help="Follow (or re-fetch) a run already submitted.")] = None,
    gateway: GatewayOpt = None,
    client: ClientOpt = DEFAULT_CLIENT,
    token_file: TokenFileOpt = None,
    user_id: UserIdOpt = None,
    registry: RegistryOpt = DEFAULT_REGISTRY,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Oversight statistics: coverage, exclusion and inclusion per district, as aggregates only."""
    console, err = _consoles()
    connection = Connection(gateway, client, token_file, user_id, registry, timeout)
    districts = [d.strip() for d in area.split(",") if d.strip()]
    with _reported(), connection.open() as gw:
        if job_id is None:
            if not districts:
                raise Usage("--area names no district")
            status = gw.json(
                "POST", "oversight", purpose=purpose, body={"programme": programme, "districts": districts}
            )
            job_id = str(status["job_id"])
            err.print(f"submitted oversight run {job_id} ({status['total']:,} residents); `--job {job_id}` resumes")
        path = f"/{quote(job_id, safe='')}"
        _await_job(gw, job_id, purpose, label="oversight", command="oversight", err=err)
        params = {"threshold": threshold}
        document = gw.json("GET", "oversight", f"{path}/report", purpose=purpose, params=params)
        report_csv = gw.call("GET", "oversight", f"{path}/report", purpose=purpose, params=params | {"format": "csv"})
        report_png = gw.call("GET", "oversight", f"{path}/report", purpose=purpose, params=params | {"format": "png"})
        written = [out.with_suffix(".json"), out.with_suffix(".csv"), out.with_suffix(".png")]
        try:
            written[0].write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
            written[1].write_text(report_csv.text, encoding="utf-8")
            written[2].write_bytes(report_png.content)
        except OSError as exc:
            raise Usage(f"cannot write the report: {exc.strerror or exc}") from None
        for renderable in oversight_view(document):
            console.print(renderable)
        console.print(Text(f"report in {', '.join(str(p) for p in written)}"))
