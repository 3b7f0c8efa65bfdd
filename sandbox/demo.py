"""`make demo`: build a small country, start its agency systems and gateway, and ask about a few people.

First straight through the connectors (what a gateway does behind the scenes), then as a client
information system would: through the gateway, over X-Road REST and over X-Road SOAP, including one
exchange the gateway refuses. Everything runs on loopback and stops at the end.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from lxml import etree
from rich.console import Console
from rich.table import Table

from connectors import ConnectorError, Param, Router
from sandbox import demo_events, demo_registry, federation
from sandbox.generator import generate
from sandbox.schema import TRUTH_FILE
from sandbox.servers import SandboxServers

PURPOSE = "old-age-grant-eligibility"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
CRA_NS = "urn:zz:cra:civreg:1"


@dataclass(frozen=True)
class Subject:
    label: str
    national_id: str | None
    surname: str
    given_name: str
    birth_year: int


def mask(identifier: str | None) -> str:
    """Even synthetic identifiers are shown the way an operator screen should show them."""
    if not identifier:
        return "-"
    return identifier[:2] + "*" * max(0, len(identifier) - 4) + identifier[-2:]


def pick_subjects(country: Path) -> list[Subject]:
    """A handful of people whose stories differ: a pensioner, a worker, a grant recipient, the dead, no ID."""
    conn = sqlite3.connect(country / TRUTH_FILE)
    year = "CAST(substr(birth_date, 1, 4) AS INTEGER)"
    in_cra = "person_id IN (SELECT person_id FROM record WHERE source = 'cra')"
    old_age = "person_id IN (SELECT person_id FROM record WHERE source = 'msp' AND record_id LIKE 'OAG-%')"
    queries = [
        ("pensioner", f"pension_monthly > 0 AND death_date IS NULL AND national_id IS NOT NULL AND {year} < 1961"),
        ("formal worker", "formal_income > 0 AND death_date IS NULL AND national_id IS NOT NULL AND tin IS NOT NULL"),
        ("old-age grant", f"{old_age} AND death_date IS NULL AND national_id IS NOT NULL"),
        ("recently died", "death_date IS NOT NULL AND national_id IS NOT NULL"),
        ("no national ID", f"national_id IS NULL AND death_date IS NULL AND {year} < 1960 AND {in_cra}"),
    ]
    subjects = []
    for label, where in queries:
        columns = f"national_id, surname, given_name, {year}"
        sql = f"SELECT {columns} FROM person WHERE {where} ORDER BY person_id LIMIT 1"  # noqa: S608
        row = conn.execute(sql).fetchone()
        if row:
            subjects.append(Subject(label, row[0], row[1], row[2], int(row[3])))
    conn.close()
    return subjects


async def through_connectors(router: Router, subject: Subject) -> list[str]:
    """Ask each agency system directly, through the connectors, what it knows about one person."""
    if subject.national_id is None:
        query: dict[str, Param] = {
            "surname": subject.surname,
            "givenName": subject.given_name,
            "birthYear": subject.birth_year,
        }
        found = await router.call("searchPersons", query)
        # zeep unwraps a response whose only child is the repeated `candidate` into the list itself
        candidates = found.data if isinstance(found.data, list) else (found.data or {}).get("candidate") or []
        best = f"{len(candidates)} candidate(s), best score {candidates[0]['score']:.2f}" if candidates else "none"
        return [subject.label, "-", f"search by name: {best}", "-", "-", "-"]
    nid = subject.national_id
    cra, tax, ssf, msp = await asyncio.gather(
        router.call("getPersonByNationalId", {"nationalId": nid}),
        router.call("getIncomes", {"national_id": nid}),
        router.call("getMembers", {"national_id": nid}),
        router.call("findBeneficiaries", {"national_id": nid}),
    )
    person = cra.data.get("person") if cra.data.get("found") else None
    civil = f"{person['givenName']} {person['surname']}, {person['status']}" if person else "not registered"
    totals = tax.data.get("totals") or []
    income = f"{totals[-1]['gross_income']:,} ({totals[-1]['year']})" if totals else "none"
    members = ssf.data.get("items") or []
    pension = "-"
    if members:
        answer = await router.call("getPension", {"ssn": members[0]["ssn"]})
        p = answer.data.get("pension")
        pension = f"{members[0]['status']}, pension {p['monthly_amount']:,}/month" if p else members[0]["status"]
    programmes = ", ".join(sorted({b["programme"] for b in msp.data.get("items") or []})) or "none"
    return [subject.label, mask(nid), civil, income, pension, programmes]


def soap_request(nid: str, client: str, message_id: str | None = None) -> bytes:
    inst, cls, code, sub = client.split("/")
    return f"""<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:xroad="http://x-road.eu/xsd/xroad.xsd"
 xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:pdu="urn:kiungo:xsd:pdu:1" xmlns:cra="{CRA_NS}">
<soapenv:Header>
 <xroad:client id:objectType="SUBSYSTEM"><id:xRoadInstance>{inst}</id:xRoadInstance>
  <id:memberClass>{cls}</id:memberClass><id:memberCode>{code}</id:memberCode><id:subsystemCode>{sub}</id:subsystemCode></xroad:client>
 <xroad:service id:objectType="SERVICE"><id:xRoadInstance>ZZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
  <id:memberCode>CRA</id:memberCode><id:subsystemCode>civreg</id:subsystemCode>
  <id:serviceCode>GetPersonByNationalId</id:serviceCode></xroad:service>
 <xroad:id>{message_id or uuid.uuid4()}</xroad:id><xroad:userId>ZZ-demo-officer</xroad:userId>
 <xroad:protocolVersion>4.0</xroad:protocolVersion><pdu:purpose>{PURPOSE}</pdu:purpose>
</soapenv:Header>
<soapenv:Body><cra:GetPersonByNationalId><cra:nationalId>{nid}</cra:nationalId></cra:GetPersonByNationalId></soapenv:Body>
</soapenv:Envelope>""".encode()


def through_gateway(gateway: dict[str, Any], subject: Subject, http: httpx.Client) -> list[str]:
    """Ask as the programme MIS would: X-Road SOAP to the civil registry, X-Road REST to the others."""
    assert subject.national_id is not None
    client = federation.PROGRAMME_MIS
    token = gateway["clients"][client]["token"]
    base = gateway["base_url"]
    soap = http.post(
        base + "/",
        content=soap_request(subject.national_id, client),
        headers={"Content-Type": "text/xml", "X-Kiungo-Client-Token": token},
    )
    ns = {"s": SOAP11, "c": CRA_NS}
    root = etree.fromstring(soap.content)
    status = root.findtext("s:Body/c:GetPersonByNationalIdResponse/c:person/c:status", namespaces=ns) or "not found"
    headers = {"X-Road-Client": client, "X-Kiungo-Client-Token": token, "X-Road-PDU-Purpose": PURPOSE}
    nid = subject.national_id
    tax = http.get(base + "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes", params={"national_id": nid}, headers=headers)
    ssf = http.get(
        base + "/r1/ZZ/GOV/SSF/contributions/members/v1/members", params={"national_id": nid}, headers=headers
    )
    msp = http.get(
        base + "/r1/ZZ/GOV/MSP/programme-mis/beneficiaries/v1/beneficiaries",
        params={"national_id": nid},
        headers=headers,
    )
    totals = tax.json().get("totals") or []
    return [
        subject.label,
        f"SOAP {soap.status_code}: {status}",
        f"REST {tax.status_code}: " + (f"{totals[-1]['gross_income']:,}" if totals else "no income"),
        f"REST {ssf.status_code}: {len(ssf.json().get('items') or [])} record(s)",
        f"REST {msp.status_code}: {len(msp.json().get('items') or [])} enrolment(s)",
        tax.headers.get("X-Road-Id", "")[:8] + "…",
    ]


def run(people: int = 3000, seed: int = 7, workdir: Path | None = None) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="kiungo-demo-") as tmp:
        root = workdir or Path(tmp)
        country = root / "country"
        started = time.perf_counter()
        console.rule("[bold]Kiungo demo: a sandbox country and its federation")
        manifest = generate(people=people, seed=seed, out=country, progress=False)
        console.print(f"Generated {manifest['people']:,} people (seed {seed}) in {time.perf_counter() - started:.1f} s")
        with SandboxServers(country, manifest_path=root / "sandbox.json", data_dir=root / "gateway") as servers:
            for code, system in servers.manifest["systems"].items():
                console.print(f"  {system['member']:<12} {system['name']:<45} {system['base_url']} ({code})")
            fed = servers.manifest["federation"]
            console.print(
                f"  {'authority':<12} {'Federation authority (directory, CRL, OCSP)':<45} "
                f"{fed['authority']['base_url']}"
            )
            for member, gw in fed["gateways"].items():
                console.print(
                    f"  {member:<12} {'gateway (peers over mutual TLS: ' + gw['peer_url'] + ')':<45} {gw['base_url']}"
                )
            gateway = fed["gateways"]["ZZ/GOV/MSP"]
            where = "web console of each gateway (logins: sandbox.json)"
            console.print(f"  {'console':<12} {where:<45} {gateway['console']['url']}")
            subjects = pick_subjects(country)

            console.rule("[bold]1. Straight to the agency systems, through the connectors")
            table = Table("who", "national ID", "civil registry (SOAP)", "tax: income", "social security", "programmes")
            router = Router.from_file(root / "connectors.toml")

            async def ask_all() -> list[list[str]]:
                async with router:
                    return [await through_connectors(router, s) for s in subjects]

            try:
                rows = asyncio.run(ask_all())
            except ConnectorError as exc:
                raise SystemExit(f"demo failed: {exc}") from None
            for row in rows:
                table.add_row(*row)
            console.print(table)

            console.rule(
                "[bold]2. As the programme MIS would: through the ministry's own gateway, across the federation"
            )
            console.print(
                "The ministry's gateway signs each request and sends it over mutual TLS to the agency's gateway, "
                "which checks certificate, revocation, signature and freshness, asks its system, and signs the answer."
            )
            table = Table("who", "civil registry", "tax authority", "social security", "programme MIS", "X-Road-Id")
            with httpx.Client(timeout=10) as http:
                for subject in subjects:
                    if subject.national_id:
                        table.add_row(*through_gateway(gateway, subject, http))
                console.print(table)
                refused = http.get(
                    gateway["base_url"] + "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes",
                    params={"national_id": subjects[0].national_id or ""},
                    headers={
                        "X-Road-Client": federation.PROGRAMME_MIS,
                        "X-Kiungo-Client-Token": gateway["clients"][federation.PROGRAMME_MIS]["token"],
                    },
                )
                error = refused.json()
                console.print(
                    f"Without a purpose the ministry's gateway refuses: HTTP {refused.status_code} "
                    f"[bold]{error['type']}[/bold]: {error['message']}"
                )
                console.rule("[bold]3. Agreements and consent decide every exchange")
                research = {
                    "X-Road-Client": federation.RESEARCH,
                    "X-Kiungo-Client-Token": gateway["clients"][federation.RESEARCH]["token"],
                    "X-Road-PDU-Purpose": federation.RESEARCH_PURPOSE,
                }
                incomes = gateway["base_url"] + "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes"
                consented, withdrawn = federation.consent_subjects(country)[:2]
                for label, person_id in (("who consented", consented), ("who withdrew her consent", withdrawn)):
                    answer = http.get(incomes, params={"national_id": person_id}, headers=research)
                    if answer.status_code == 200:
                        shown = ", ".join(sorted(answer.json()))
                        console.print(f"The poverty study asks about a person {label}: HTTP 200, fields: {shown}")
                    else:
                        body = answer.json()
                        console.print(
                            f"The poverty study asks about a person {label}: HTTP {answer.status_code} "
                            f"[bold]{body['type']}[/bold]: {body['message']}"
                        )
                mis = {
                    "X-Road-Client": federation.PROGRAMME_MIS,
                    "X-Kiungo-Client-Token": gateway["clients"][federation.PROGRAMME_MIS]["token"],
                    "X-Road-PDU-Purpose": "marketing",
                }
                answer = http.get(incomes, params={"national_id": consented}, headers=mis)
                body = answer.json()
                console.print(
                    f"The programme MIS asks for a purpose no agreement names: HTTP {answer.status_code} "
                    f"[bold]{body['type']}[/bold]: {body['message']}"
                )
                console.print(
                    "Answers are cut to what each agreement grants: the programme MIS sees yearly incomes, "
                    "never the employer's name or the tax paid; the civil registry never discloses a mother's name."
                )
                records = http.get(
                    gateway["base_url"] + "/api/operator/monitoring?limit=1000",
                    headers={"Authorization": f"Bearer {gateway['operator_token']}"},
                ).json()["records"]
                ok = sum(r["succeeded"] for r in records)
                console.print(
                    f"Operational monitoring on the ministry's gateway: {len(records)} exchange record(s), {ok} "
                    f"succeeded, {len(records) - ok} refused; none holds a national ID."
                )
                console.rule("[bold]4. The virtual social registry: old-age grant applicants, decided on the fly")
                applicant = demo_registry.tell(console, http, servers, country)
                console.rule("[bold]5. Keeping the lists right: a cross-check, and a death as it is registered")
                demo_events.crosscheck(console, http, gateway, country)
                demo_events.death_notification(console, http, servers, country)
                console.rule("[bold]6. The data protection officers: verify the logs, answer a citizen")
                auth = {"Authorization": f"Bearer {gateway['operator_token']}"}
                for member, gw in fed["gateways"].items():
                    head = http.post(gw["base_url"] + "/api/log/tree-heads", headers=auth).json()
                    report = http.post(gw["base_url"] + "/api/log/verify", headers=auth).json()
                    stamped = "time-stamped" if head.get("tsa_token") else "not time-stamped"
                    verdict = "verifies" if report["ok"] else f"FAILS at {report['index']} ({report['kind']})"
                    console.print(
                        f"  {member}: {report['records']} records, tree head signed and {stamped}; the log {verdict}"
                    )
                if applicant is not None and applicant.national_id:
                    table = Table("when (UTC)", "gateway", "who asked", "service", "purpose", "lawful basis", "outcome")
                    for member, gw in fed["gateways"].items():
                        found = http.post(
                            gw["base_url"] + "/api/log/records/search",
                            json={"subject_id": applicant.national_id, "limit": 100},
                            headers=auth,
                        ).json()["records"]
                        for r in found:
                            if r["side"] != "Producer":
                                continue
                            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["request_in_ts"] / 1000))
                            service = r["service"].split("/", 3)[-1]
                            table.add_row(
                                when, member, r["client"], service, r["purpose"], r["lawful_basis"] or "-", r["outcome"]
                            )
                    console.print(
                        f"Who accessed the data of the applicant '{applicant.label}' ({mask(applicant.national_id)}), "
                        "by agency (the registry's look-ups carry the programme MIS's purpose and officer):"
                    )
                    console.print(table)
                health = http.get(gateway["base_url"] + "/health").json()
                console.print(
                    f"Federation directory in use: serial {health['directory']['serial']}, "
                    f"expires {health['directory']['expires_at']}, signature verified against the anchor."
                )
        console.rule(f"[bold green]Demo finished in {time.perf_counter() - started:.1f} s; everything stopped")
