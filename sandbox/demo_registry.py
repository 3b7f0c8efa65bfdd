"""The demo's virtual-registry chapter: a dozen old-age grant applicants, decided across the federation.

Some applicants bring their national ID; others only say who they are, as the programme MIS recorded
them. The registry resolves each, asks every agency through the exchange layer, decides and explains;
then the social security fund goes down and the answers that needed it become partial and undetermined.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sandbox import federation
from sandbox.schema import TRUTH_FILE

PROGRAMME = "old-age-grant"
PURPOSE = "old-age-grant-eligibility"


@dataclass(frozen=True)
class Applicant:
    label: str
    query: dict[str, Any]
    national_id: str | None  # the truth's, for the DPO's report (never shown in full)


def pick_applicants(country: Path) -> list[Applicant]:
    """Applicants whose stories differ; without an ID, the demographics the programme MIS recorded."""
    truth = sqlite3.connect(country / TRUTH_FILE)
    year = "CAST(substr(birth_date, 1, 4) AS INTEGER)"
    with_id = [
        ("aged 70+, no pension", f"death_date IS NULL AND {year} < 1955 AND pension_monthly = 0"),
        ("pension above the test", f"death_date IS NULL AND {year} < 1960 AND pension_monthly > 4000"),
        ("small pension", f"death_date IS NULL AND {year} < 1960 AND pension_monthly BETWEEN 1 AND 4000"),
        ("died last year", f"death_date IS NOT NULL AND {year} < 1955"),
        ("aged 50", f"death_date IS NULL AND {year} = 1976"),
    ]
    out: list[Applicant] = []
    for label, where in with_id:
        sql = f"SELECT national_id FROM person WHERE national_id IS NOT NULL AND {where} ORDER BY person_id LIMIT 1"  # noqa: S608
        row = truth.execute(sql).fetchone()
        if row:
            out.append(Applicant(label, {"national_id": row[0]}, row[0]))
    # Without an ID: old-age grant beneficiaries as the MIS recorded them (spelling and all).
    msp = sqlite3.connect(country / "msp.sqlite")
    rows = msp.execute(
        "SELECT beneficiary_no, given_name, second_name, surname, sex, birth_date, birth_year, district_code "
        "FROM beneficiary WHERE programme = 'old-age-grant' ORDER BY beneficiary_no LIMIT 6"
    ).fetchall()
    msp.close()
    for number, given, second, surname, sex, birth_date, birth_year, district in rows:
        person = truth.execute(
            "SELECT p.national_id FROM record r JOIN person p USING (person_id) WHERE r.source = 'msp' "
            "AND r.record_id = ?",
            (number,),
        ).fetchone()
        query = {
            "given_name": given,
            "second_name": second,
            "surname": surname,
            "sex": sex,
            "birth_date": birth_date,
            "birth_year": birth_year if not birth_date else None,
            "district": district,
        }
        out.append(Applicant("no ID, as the MIS recorded", {k: v for k, v in query.items() if v}, person and person[0]))
    truth.close()
    out.append(
        Applicant("no ID, unknown name", {"given_name": "Zawadi", "surname": "Qwertyuiop", "birth_year": 1950}, None)
    )
    return out


def _identity(answer: dict[str, Any]) -> str:
    identity = answer["identity"]
    if identity["status"] == "resolved":
        how = "by ID" if identity["method"] != "matching" else f"matched, p={identity['match_probability']:.3f}"
        return f"resolved {how}"
    if identity["status"] == "ambiguous":
        return f"ambiguous: {len(identity.get('candidates', []))} candidates"
    return str(identity["status"]).replace("_", " ")


def _reason(decision: dict[str, Any]) -> str:
    if decision["outcome"] == "eligible":
        return "all requirements met"
    failing = [r["requirement"] for r in decision["rules"] if r["status"] == "not_met"]
    if failing:
        return "not met: " + "; ".join(failing)
    return "unknown: " + ", ".join(decision["missing"])


STYLE = {"eligible": "bold green", "not_eligible": "bold red", "undetermined": "bold yellow"}


def ask(http: httpx.Client, gateway: dict[str, Any], applicant: Applicant) -> dict[str, Any]:
    headers = {
        "X-Road-Client": federation.PROGRAMME_MIS,
        "X-Kiungo-Client-Token": gateway["clients"][federation.PROGRAMME_MIS]["token"],
        "X-Road-PDU-Purpose": PURPOSE,
        "X-Road-UserId": "ZZ-officer-demo",
    }
    answer = http.post(
        f"{gateway['base_url']}/r1/{federation.VSR}/eligibility",
        json={"programme": PROGRAMME, "person": applicant.query},
        headers=headers,
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def decide_all(
    console: Console, http: httpx.Client, gateway: dict[str, Any], applicants: list[Applicant]
) -> list[dict[str, Any]]:
    table = Table("applicant", "identity", "decision", "why", "sources")
    answers = []
    for applicant in applicants:
        answer = ask(http, gateway, applicant)
        answers.append(answer)
        decision = answer["decision"]
        sources = (
            "all answered"
            if answer["complete"]
            else "missing: " + ", ".join(s["source"] for s in answer["sources"] if s["status"] == "failed")
        )
        outcome = decision["outcome"]
        table.add_row(applicant.label, _identity(answer), f"[{STYLE[outcome]}]{outcome}[/]", _reason(decision), sources)
    console.print(table)
    return answers


def tell(console: Console, http: httpx.Client, servers: Any, country: Path) -> Applicant | None:
    """The chapter; returns an applicant whose accesses the DPO then reports."""
    gateway = servers.manifest["federation"]["gateways"]["ZZ/GOV/MSP"]
    applicants = pick_applicants(country)
    console.print(
        f"The programme MIS asks the virtual registry ({federation.VSR}) about {len(applicants)} old-age grant "
        "applicants. For each, the registry resolves the person (by ID, or by matching the civil registry's "
        "candidates), asks the tax authority, the social security fund and the programme MIS at once through "
        "the exchange layer, and decides by the rules in sandbox/programmes/old-age-grant.toml."
    )
    answers = decide_all(console, http, gateway, applicants)
    example = next((a for a in answers if a["decision"]["outcome"] == "not_eligible" and a.get("person")), answers[0])
    console.print("[bold]What the officer can read to the applicant[/bold] (one case):")
    console.print("  " + example["decision"]["explanation"])
    facts = example["decision"]["facts_used"]
    console.print(f"  Facts used: {len(facts)}, each with its source and exchange id, e.g. ")
    for fact in facts[-2:]:
        p = fact["provenance"][0] if fact["provenance"] else {}
        console.print(
            f"    {fact['name']} = {fact['value']!r} from {p.get('source', '-')} ({p.get('exchange_id', '-')[:8]}…)"
        )

    console.print("[bold]The social security fund's system goes down.[/bold] The same applicants again:")
    ssf = servers.manifest["systems"]["ssf"]["base_url"]
    http.post(ssf + "/_sandbox/fault", json={"mode": "error"}).raise_for_status()
    try:
        decide_all(console, http, gateway, applicants[:5])
    finally:
        http.post(ssf + "/_sandbox/fault", json={"mode": "none"}).raise_for_status()
    console.print(
        "Where the pension test needed the fund, the decision is undetermined and says so; a decision that fails "
        "on another requirement stays 'not eligible'. Nothing is guessed."
    )
    return next((a for a, r in zip(applicants, answers, strict=True) if a.national_id and r.get("person")), None)
