"""The virtual social registry: one eligibility decision against its sources' own latency, and bulk throughput.

Issue goal: one decision's p50 no more than 20 ms above the slowest source's own latency; bulk decisions
per second for 10,000 people. Everything runs as the sandbox runs it (`SandboxServers`): the four agency
systems, the authority and four gateways on one event loop in a background thread of this process, the
load (one sequential client, then bulk jobs) from the main thread, on this machine's shared cores.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.stats import median, percentile
from gateway.settings import VsrSettings
from sandbox import federation
from sandbox.generator import generate
from sandbox.servers import SandboxServers

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".tmp" / "bench-vsr"  # git-ignored; the country (and its matching model) is kept between runs
COUNTRY_PEOPLE = 20_000
SEED = 11
SAMPLE = 200
WARMUP = 20
MIN_AGE = 60
REFERENCE_YEAR = 2026  # sandbox.population.REFERENCE_DATE
PURPOSE = "old-age-grant-eligibility"
LIST_PURPOSE = "beneficiary-list-maintenance"
CROSSCHECK_ENV = "KIUNGO_BENCH_CROSSCHECK"
CROSSCHECK_DEFAULT = 100_000  # the figure: within 15 minutes on this machine
PROGRAMME = "old-age-grant"
USER = "ZZ-bench-officer"
BULK_ENV = "KIUNGO_BENCH_VSR_PEOPLE"
BULK_DEFAULT = 10_000
BULK_SMALL = 1_000
BUDGET_ENV = "KIUNGO_BENCH_VSR_BULK_SECONDS"
BULK_BUDGET = 150.0  # seconds the big job may run before it is cancelled (0: no limit); keeps the module ~5 min
SMALL_BUDGET = 90.0
DEFAULT_CONCURRENCY: int = VsrSettings.model_fields["bulk_concurrency"].default
BATCH = 100  # people per exchange in bulk work (the registry's default); compared with 0: one per exchange
REVOCATION_CACHE = 60  # seconds, as in bench_gateway: production-like
PROGRESS_EVERY = 10.0
POLL = 0.25
RESULTS_PAGE = 1_000  # results per page read back (the registry's documented safe page)
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
CRA_NS = "urn:zz:cra:civreg:1"
SOURCES = ("CRA GetPersonByNationalId", "CRA GetHousehold", "TAX incomes", "SSF members + pension", "MSP beneficiaries")
#: The sources the registry asks at once, after the person is found (the critical path's second leg).
CONCURRENT = SOURCES[1:]
VSR_PATH = "VSR eligibility decision"

Call = Callable[[httpx.Client, str], list[int]]  # (client, national id) -> HTTP statuses of the calls made


# -- the country and the people ------------------------------------------------------------------------


def country() -> Path:
    """The benchmark's country, generated once into the cache (atomically: a broken run leaves no half)."""
    out = CACHE / f"country-{COUNTRY_PEOPLE}-s{SEED}"
    if (out / "country.json").exists():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    generate(people=COUNTRY_PEOPLE, seed=SEED, out=partial, progress=False)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def older_people(country_dir: Path, count: int) -> list[str]:
    """`count` distinct national IDs of living people aged 60 or more, drawn with a fixed seed."""
    with contextlib.closing(sqlite3.connect(country_dir / "cra.sqlite")) as db:
        rows = db.execute(
            "SELECT DISTINCT national_id FROM person WHERE national_id IS NOT NULL AND death_date IS NULL "
            "AND COALESCE(birth_year, CAST(substr(birth_date, 1, 4) AS INTEGER)) <= ? ORDER BY national_id",
            (REFERENCE_YEAR - MIN_AGE,),
        ).fetchall()
    return random.Random(SEED).sample([r[0] for r in rows], count)


def everyone(country_dir: Path, count: int) -> list[str]:
    """`count` of the civil registry's national IDs (everyone's, in order), repeated when it has fewer."""
    with contextlib.closing(sqlite3.connect(country_dir / "cra.sqlite")) as db:
        ids = [
            r[0] for r in db.execute("SELECT DISTINCT national_id FROM person WHERE national_id IS NOT NULL ORDER BY 1")
        ]
    return [ids[i % len(ids)] for i in range(count)]


@contextlib.contextmanager
def tuned(**vsr: Any) -> Iterator[None]:
    """The next federation `SandboxServers` starts, made production-like: peers' revocation status cached for a
    minute (the sandbox asks the authority on every exchange, so that a revocation shows at once), and `vsr`
    added to the registry's settings (SandboxServers takes neither; both are ordinary settings of a node)."""
    original = federation.plan_federation

    def plan(*args: Any, **kwargs: Any) -> federation.FederationPlan:
        kwargs["vsr"] = dict(kwargs.get("vsr") or {}) | vsr
        made = original(*args, **kwargs)
        for config in made.configs.values():
            config["federation"]["revocation_cache_seconds"] = REVOCATION_CACHE
        return made

    federation.plan_federation = plan
    try:
        yield
    finally:
        federation.plan_federation = original


# -- the calls ---------------------------------------------------------------------------------------------


def plain_soap(operation: str, nid: str) -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:cra="{CRA_NS}"><soapenv:Body><cra:{operation}>'
        f"<cra:nationalId>{nid}</cra:nationalId></cra:{operation}></soapenv:Body></soapenv:Envelope>"
    ).encode()


def xroad_soap(operation: str, nid: str) -> bytes:
    """The programme MIS's X-Road SOAP request for a civil registry operation (a fresh message id each time)."""

    def ident(tag: str, kind: str, parts: list[str]) -> str:
        names = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode", "serviceCode")
        inner = "".join(f"<id:{n}>{p}</id:{n}>" for n, p in zip(names, parts, strict=False))
        return f'<xroad:{tag} id:objectType="{kind}">{inner}</xroad:{tag}>'

    client = federation.PROGRAMME_MIS.split("/")
    service = f"{federation.SUBSYSTEMS[0][0]}/{operation}".split("/")
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:xroad="http://x-road.eu/xsd/xroad.xsd" '
        f'xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:pdu="urn:kiungo:xsd:pdu:1" xmlns:cra="{CRA_NS}">'
        f"<soapenv:Header>{ident('client', 'SUBSYSTEM', client)}{ident('service', 'SERVICE', service)}"
        f"<xroad:id>{uuid.uuid4()}</xroad:id><xroad:userId>{USER}</xroad:userId>"
        f"<xroad:protocolVersion>4.0</xroad:protocolVersion><pdu:purpose>{PURPOSE}</pdu:purpose></soapenv:Header>"
        f"<soapenv:Body><cra:{operation}><cra:nationalId>{nid}</cra:nationalId></cra:{operation}></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def direct_calls(systems: Mapping[str, Any]) -> dict[str, Call]:
    """Each source straight to its agency system, as its own latency."""
    tax, ssf, msp = (systems[c]["base_url"] for c in ("tax", "ssf", "msp"))
    endpoint = systems["cra"]["endpoint"]
    xml = {"Content-Type": "text/xml"}

    def soap(operation: str) -> Call:
        return lambda http, nid: [http.post(endpoint, content=plain_soap(operation, nid), headers=xml).status_code]

    def pension(http: httpx.Client, nid: str) -> list[int]:
        members = http.get(f"{ssf}/v1/members", params={"national_id": nid})
        items = members.json().get("items") or [] if members.status_code == 200 else []
        return [members.status_code] + [
            http.get(f"{ssf}/v1/members/{m['ssn']}/pension").status_code for m in items if m.get("ssn")
        ]

    return {
        SOURCES[0]: soap("GetPersonByNationalId"),
        SOURCES[1]: soap("GetHousehold"),
        SOURCES[2]: lambda http, nid: [http.get(f"{tax}/v1/incomes", params={"national_id": nid}).status_code],
        SOURCES[3]: pension,
        SOURCES[4]: lambda http, nid: [http.get(f"{msp}/v1/beneficiaries", params={"national_id": nid}).status_code],
    }


def federation_calls(base: str, token: str) -> dict[str, Call]:
    """The same calls through the federation: the programme MIS asks its ministry's gateway, which asks the
    agency's gateway (mutual TLS, signed, logged on both sides); the MIS's own enrolments stay on one gateway."""
    rest = {
        "X-Road-Client": federation.PROGRAMME_MIS,
        "X-Kiungo-Client-Token": token,
        "X-Road-PDU-Purpose": PURPOSE,
        "X-Road-UserId": USER,
    }
    xml = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": token}
    tax = f"{base}/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes"
    ssf = f"{base}/r1/ZZ/GOV/SSF/contributions/members/v1/members"
    msp = f"{base}/r1/ZZ/GOV/MSP/programme-mis/beneficiaries/v1/beneficiaries"

    def soap(operation: str) -> Call:
        return lambda http, nid: [http.post(base + "/", content=xroad_soap(operation, nid), headers=xml).status_code]

    def pension(http: httpx.Client, nid: str) -> list[int]:
        members = http.get(ssf, params={"national_id": nid}, headers=rest)
        items = members.json().get("items") or [] if members.status_code == 200 else []
        return [members.status_code] + [
            http.get(f"{ssf}/{m['ssn']}/pension", headers=rest).status_code for m in items if m.get("ssn")
        ]

    return {
        SOURCES[0]: soap("GetPersonByNationalId"),
        SOURCES[1]: soap("GetHousehold"),
        SOURCES[2]: lambda http, nid: [http.get(tax, params={"national_id": nid}, headers=rest).status_code],
        SOURCES[3]: pension,
        SOURCES[4]: lambda http, nid: [http.get(msp, params={"national_id": nid}, headers=rest).status_code],
    }


def _outcome(result: Mapping[str, Any]) -> str:
    return str(result.get("outcome", "error")) + ("" if result.get("complete", True) else " (partial)")


@dataclass
class Vsr:
    """The registry's services as the programme MIS reaches them, through the ministry's gateway."""

    base: str
    token: str
    outcomes: list[str] = field(default_factory=list)  # of every decision asked, warm-up included

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-Road-Client": federation.PROGRAMME_MIS,
            "X-Kiungo-Client-Token": self.token,
            "X-Road-PDU-Purpose": PURPOSE,
            "X-Road-UserId": USER,
        }

    def url(self, service: str, path: str = "") -> str:
        return f"{self.base}/r1/{federation.VSR}/{service}{path}"

    def decide(self, http: httpx.Client, nid: str) -> list[int]:
        body = {"programme": PROGRAMME, "person": {"national_id": nid}}
        answer = http.post(self.url("eligibility"), json=body, headers=self.headers)
        if answer.status_code == 200:
            out = answer.json()
            self.outcomes.append(_outcome(out["decision"] | {"complete": out["complete"]}))
        return [answer.status_code]


# -- one decision ------------------------------------------------------------------------------------------


@dataclass
class Samples:
    ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def p(self, q: float) -> float:
        return median(self.ms) if q == 50 else percentile(self.ms, q)


def latencies(paths: Mapping[str, Call], people: list[str], http: httpx.Client) -> dict[str, Samples]:
    """Every path once per person, in turn (so drift hits every path alike); the first WARMUP people are not kept."""
    out = {name: Samples() for name in paths}
    for i, nid in enumerate(people):
        for name, call in paths.items():
            started = time.perf_counter()
            statuses = call(http, nid)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= WARMUP:
                out[name].ms.append(elapsed)
                out[name].statuses.update(statuses)
    return out


# -- bulk --------------------------------------------------------------------------------------------------


@dataclass
class BulkRun:
    people: int
    concurrency: int
    submit_s: float
    state: str
    done: int
    failed: int
    seconds: float  # job created -> last result, by the registry's own clock
    outcomes: Counter[str]

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _stamp(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_outcomes(vsr: Vsr, http: httpx.Client, job: str, done: int, store: Path, console: Console) -> Counter[str]:
    """A job's outcomes from its results as a client reads them (NDJSON pages through the gateway, from the
    cursor of the last page, until the end line); when that fails, from the registry's job store (`store`,
    its SQLite file), saying why."""
    outcomes: Counter[str] = Counter()
    after, ended = 0, False
    try:
        while not ended:
            page = http.get(
                vsr.url("bulk", f"/{job}/results"),
                params={"after": after, "limit": RESULTS_PAGE},
                headers=vsr.headers,
                timeout=120,
            )
            if page.status_code != 200:
                raise RuntimeError(f"HTTP {page.status_code} {page.headers.get('x-road-error', '')}".strip())
            before = after
            for line in page.text.splitlines():
                row = json.loads(line)
                if row.get("type") == "end":
                    ended = True
                elif "result" in row:
                    outcomes[_outcome(row["result"])] += 1
                    after = max(after, int(row["seq"]))
            if not ended and after == before:
                raise RuntimeError(f"no end line after {after} results")
        if sum(outcomes.values()) == done:
            return outcomes
        raise RuntimeError(f"{sum(outcomes.values())} results read, {done} decided")
    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
        console.print(f"  results of job {job[:8]} not read through the gateway ({exc}); read from the job store")
    outcomes.clear()
    with contextlib.closing(sqlite3.connect(store)) as db:
        rows = db.execute("SELECT result FROM vsr_job_items WHERE job_id = ? AND result IS NOT NULL", (job,))
        for (result,) in rows:
            outcomes[_outcome(json.loads(result))] += 1
    return outcomes


def bulk(
    vsr: Vsr, http: httpx.Client, people: list[str], concurrency: int, budget: float, store: Path, console: Console
) -> BulkRun:
    """Submit one job and poll it (a progress line every ~10 s) until done, or cancel it once `budget` seconds
    have passed (0: no limit); then read its results back for the outcomes."""
    body = {"programme": PROGRAMME, "people": [{"national_id": nid} for nid in people]}
    started = time.perf_counter()
    submitted = http.post(vsr.url("bulk"), json=body, headers=vsr.headers, timeout=120)
    submit_s = time.perf_counter() - started
    if submitted.status_code != 202:
        raise RuntimeError(f"bulk submit: HTTP {submitted.status_code}: {submitted.text[:300]}")
    job = submitted.json()["job_id"]
    label = f"bulk {len(people):,} @ {concurrency} per exchange"
    last_report = started
    while True:
        time.sleep(POLL)
        status = http.get(vsr.url("bulk", f"/{job}"), headers=vsr.headers).json()
        now = time.perf_counter()
        if status["state"] not in ("queued", "running"):
            break
        if budget and now - started >= budget:
            console.print(f"  {label}: {status['done']:,} done after {now - started:.0f} s; stopped (budget)")
            http.post(vsr.url("bulk", f"/{job}/cancel"), headers=vsr.headers).raise_for_status()
            time.sleep(2)  # the decisions in flight finish and are stored
            status = http.get(vsr.url("bulk", f"/{job}"), headers=vsr.headers).json()
            break
        if now - last_report >= PROGRESS_EVERY:
            last_report = now
            console.print(
                f"  {label}: {status['done']:,}/{status['total']:,} done ({status['failed']} failed) "
                f"after {now - started:.0f} s, {status['done'] / (now - started):.1f}/s"
            )
    outcomes = read_outcomes(vsr, http, job, status["done"], store, console)
    seconds = _stamp(status["updated_at"]) - _stamp(status["created_at"])
    return BulkRun(
        len(people), concurrency, submit_s, status["state"], status["done"], status["failed"], seconds, outcomes
    )


def crosscheck(vsr: Vsr, http: httpx.Client, people: list[str], console: Console) -> tuple[float, dict[str, Any]]:
    """A beneficiary list of `people` national IDs cross-checked; seconds from submission to the report."""
    headers = vsr.headers | {"X-Road-PDU-Purpose": LIST_PURPOSE}
    beneficiaries = [{"beneficiary_no": f"OAG-{i:08d}", "national_id": nid} for i, nid in enumerate(people)]
    started = time.perf_counter()
    submitted = http.post(
        vsr.url("crosscheck"),
        json={"programme": PROGRAMME, "beneficiaries": beneficiaries},
        headers=headers,
        timeout=300,
    )
    if submitted.status_code != 202:
        raise RuntimeError(f"crosscheck submit: HTTP {submitted.status_code}: {submitted.text[:300]}")
    job = submitted.json()["job_id"]
    last = started
    while True:
        time.sleep(1.0)
        status = http.get(vsr.url("bulk", f"/{job}"), headers=headers).json()
        now = time.perf_counter()
        if status["state"] not in ("queued", "running"):
            break
        if now - last >= PROGRESS_EVERY * 3:
            last = now
            console.print(
                f"  cross-check {len(people):,}: {status['done']:,} done after {now - started:.0f} s, "
                f"{status['done'] / (now - started):.0f}/s"
            )
    report = http.get(vsr.url("crosscheck", f"/{job}/report"), params={"limit": 0}, headers=headers, timeout=600)
    report.raise_for_status()
    return time.perf_counter() - started, report.json()["summary"]


# -- the benchmark -----------------------------------------------------------------------------------------


def main() -> None:
    """One eligibility decision against its sources' own latency, and bulk decisions per second.

    Latency: 200 living people aged 60+ (after 20 for warm-up), one request at a time, every path once per
    person in turn. The baselines are the sources the registry asks per decision, each straight to its agency
    system and then through the federation as the programme MIS (two gateways, mutual TLS, signed, logged).
    The registry asks the civil registry for the person, then the household, incomes, fund memberships (and
    each membership's pension) and enrolments at once, so a decision can be no faster than its slowest
    source; the issue's goal is a p50 at most 20 ms above that source's. Bulk: a job of KIUNGO_BENCH_VSR_PEOPLE
    people (default 10,000; cancelled after KIUNGO_BENCH_VSR_BULK_SECONDS, default 150, 0 for no limit, and
    then rated on what was decided) and 1,000-person jobs with the agencies asked for 100 people per exchange
    (the default) and for one (the baseline). Cross-check: a list of KIUNGO_BENCH_CROSSCHECK beneficiaries
    (default 100,000, 0 to skip; the country's national IDs repeated to reach it) from submission to report.
    """
    console = Console(width=160)
    bulk_people = int(os.environ.get(BULK_ENV, BULK_DEFAULT))
    budget = float(os.environ.get(BUDGET_ENV, BULK_BUDGET))
    started = time.perf_counter()
    country_dir = country()
    console.print(f"country: {COUNTRY_PEOPLE:,} people, seed {SEED}, ready in {time.perf_counter() - started:.1f} s")
    sample = older_people(country_dir, WARMUP + SAMPLE)
    crowd = everyone(country_dir, max(bulk_people, BULK_SMALL))
    listed = int(os.environ.get(CROSSCHECK_ENV, CROSSCHECK_DEFAULT))
    checked: tuple[float, dict[str, Any]] = (0.0, {})
    runs: list[BulkRun] = []
    with tempfile.TemporaryDirectory(prefix="kiungo-bench-vsr-") as tmp:
        for batch in (BATCH, 0):
            data_dir = Path(tmp) / f"b{batch}"
            # the registry's job store, where plan_federation puts the ministry gateway's data
            store = data_dir / "federation" / "members" / "msp" / "data" / "vsr-jobs.sqlite"
            with (
                tuned(batch_size=batch),
                SandboxServers(country_dir, data_dir=data_dir) as servers,
                httpx.Client(timeout=30) as http,
            ):
                assert servers.federation is not None
                base = servers.manifest["federation"]["gateways"]["ZZ/GOV/MSP"]["base_url"]
                token = servers.federation.tokens[federation.PROGRAMME_MIS]
                vsr = Vsr(base, token)
                if batch:
                    paths = {f"{n} direct": c for n, c in direct_calls(servers.manifest["systems"]).items()}
                    paths |= {f"{n} via federation": c for n, c in federation_calls(base, token).items()}
                    paths[VSR_PATH] = vsr.decide
                    report_latency(console, latencies(paths, sample, http), Counter(vsr.outcomes[WARMUP:]))
                sizes = [BULK_SMALL] + ([bulk_people] if batch else [])
                for size in dict.fromkeys(sizes):
                    limit = budget if size == bulk_people else SMALL_BUDGET
                    runs.append(bulk(vsr, http, crowd[:size], batch, limit, store, console))
                if batch and listed:
                    cycle = (crowd * (listed // len(crowd) + 1))[:listed]
                    checked = crosscheck(vsr, http, cycle, console)
    report_bulk(console, runs, bulk_people)
    if listed:
        seconds, summary = checked
        table = Table(
            title=f"Cross-check of a beneficiary list ({CROSSCHECK_ENV}; the issue's goal: 100,000 within 15 minutes)"
        )
        for column in ("beneficiaries", "seconds", "per second", "minutes per 100,000", "flagged", "for review"):
            table.add_column(column, justify="right")
        table.add_row(
            f"{listed:,}",
            f"{seconds:.0f}",
            f"{listed / seconds:.0f}",
            f"{100_000 / (listed / seconds) / 60:.1f}",
            f"{summary['flagged']:,}",
            f"{summary['for_review']:,}",
        )
        console.print(table)
        console.print("Flags: " + ", ".join(f"{k} {v:,}" for k, v in summary["flags"].items()))


def report_latency(console: Console, measured: Mapping[str, Samples], outcomes: Counter[str]) -> None:
    table = Table(
        title=(
            f"VSR: one eligibility decision vs its sources, over {SAMPLE} people aged {MIN_AGE}+ (sequential, after "
            f"{WARMUP} for warm-up, every path once per person in turn); agency systems, authority, four gateways "
            f"and the registry on one event loop, this client in another thread; {os.cpu_count()} shared cores"
        )
    )
    for column in ("path", "p50 ms", "p90 ms", "p99 ms", "+ p50 vs direct", "HTTP statuses"):
        table.add_column(column, justify="left" if column in ("path", "HTTP statuses") else "right")
    for name, s in measured.items():
        base = measured.get(name.replace(" via federation", " direct"))
        extra = f"{s.p(50) - base.p(50):+.2f}" if base is not None and base is not s else "-"
        statuses = " ".join(f"{code}×{n}" for code, n in sorted(s.statuses.items()))
        table.add_row(name, f"{s.p(50):.2f}", f"{s.p(90):.2f}", f"{s.p(99):.2f}", extra, statuses)
    console.print(table)
    decision = measured[VSR_PATH].p(50)
    for where in ("via federation", "direct"):
        slowest = max(SOURCES, key=lambda n: measured[f"{n} {where}"].p(50))
        p50 = measured[f"{slowest} {where}"].p(50)
        goal = "  (goal: ≤ +20 ms)" if where == "via federation" else ""
        console.print(
            f"VSR decision p50 − slowest source {where} p50 ({slowest}, {p50:.2f} ms) = {decision - p50:+.2f} ms{goal}"
        )
    via = {n: measured[f"{n} via federation"].p(50) for n in SOURCES}
    floor = via[SOURCES[0]] + max(via[n] for n in CONCURRENT)
    console.print(
        f"Critical path via federation (the person, then the slowest of the other four): {floor:.2f} ms, "
        f"VSR p50 − that = {decision - floor:+.2f} ms; all five one after another: {sum(via.values()):.2f} ms"
    )
    console.print("Decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


def report_bulk(console: Console, runs: list[BulkRun], wanted: int) -> None:
    table = Table(
        title=(
            "VSR bulk: one job per row, submitted through the ministry's gateway and polled until done (or cancelled "
            "at its time budget); seconds from the job's creation to its last result, by the registry's clock"
        )
    )
    columns = ("job", "people per exchange", "submit s", "decided", "seconds", "decisions/s", "× 1st row", "failed",
               "outcomes")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "outcomes" else "right")
    base = runs[0].rate
    for r in runs:
        decided = f"{r.done:,}" + ("" if r.state == "done" else f" ({r.state})")
        table.add_row(
            f"{r.people:,}",
            f"{r.concurrency}" + (" (default)" if r.concurrency == BATCH else " (no batches)"),
            f"{r.submit_s:.2f}",
            decided,
            f"{r.seconds:.1f}",
            f"{r.rate:,.1f}",
            f"{r.rate / base:.2f}" if base else "-",
            str(r.failed),
            ", ".join(f"{k} {v:,}" for k, v in sorted(r.outcomes.items())),
        )
    console.print(table)
    big = next(r for r in runs if r.people == wanted and r.concurrency == BATCH)
    if big.rate:
        console.print(f"{wanted:,} people at {big.rate:,.1f} decisions/s: {wanted / big.rate:,.0f} s in all")


if __name__ == "__main__":
    main()
