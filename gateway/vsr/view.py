"""The merged answer: a person and household view shaped like DCI's Person and Group, and the facts.

Each block of the view names the exchange it came from; each fact carries its provenance, or says
why it is unknown. Nothing is filled in from elsewhere: a source that did not answer leaves its facts
unknown and its name in `missing_sources`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.vsr.errors import SourceFailed
from gateway.vsr.facts import Facts, Provenance
from gateway.vsr.identity import Identity
from gateway.vsr.sources import Enrolments, Household, Income, Pension, Person

PROGRAMMES = ("old-age-grant", "child-grant", "disability-grant")
AGENCIES = {
    "civil-registry": "civil registry",
    "tax": "tax authority",
    "social-security": "social security fund",
    "programmes": "programme MIS",
}
ADULT_AGE = 18


@dataclass
class SourceOutcome:
    """How one source fared in this query."""

    name: str  # civil-registry, tax, social-security, programmes
    service: str
    status: str = "not_asked"  # ok | failed | not_asked
    code: str | None = None
    message: str | None = None
    exchange_ids: list[str] = field(default_factory=list)

    def ok(self, *provenance: Provenance) -> None:
        self.status = "ok"
        self.exchange_ids.extend(p.exchange_id for p in provenance)

    def failed(self, error: SourceFailed) -> None:
        self.status = "failed"
        self.code = error.code
        self.message = error.message

    def why(self) -> str:
        return f"the {AGENCIES.get(self.name, self.name)} gave no usable answer ({self.code})"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.name, "service": self.service, "status": self.status}
        if self.code:
            out["code"] = self.code
            out["message"] = self.message
        if self.exchange_ids:
            out["exchange_ids"] = self.exchange_ids
        return out


@dataclass
class Gathered:
    """Everything the sources said about one person (None where a source failed or was not asked)."""

    identity: Identity
    outcomes: dict[str, SourceOutcome]
    household: Household | None = None
    income: Income | None = None
    pension: Pension | None = None
    enrolments: Enrolments | None = None
    member_income: dict[str, Income | SourceFailed] = field(default_factory=dict)  # by national ID
    member_pension: dict[str, Pension | SourceFailed] = field(default_factory=dict)

    @property
    def person(self) -> Person | None:
        return self.identity.person


def age_range(data: Mapping[str, Any], on: dt.date) -> tuple[int, int] | None:
    """Whole years of age on a date: exact from a birth date, a one-year range from a birth year."""
    birth = data.get("birth_date")
    if birth:
        try:
            born = dt.date.fromisoformat(str(birth))
        except ValueError:
            return None
        age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        return age, age
    year = data.get("birth_year")
    if isinstance(year, int):
        return on.year - year - 1, on.year - year
    return None


def latest_income(income: Income) -> int:
    return income.yearly[max(income.yearly)] if income.yearly else 0


def pension_monthly(pension: Pension) -> int:
    return sum(int(p.get("monthly_amount") or 0) for p in pension.pensions if p.get("status") == "in-payment")


def derive_facts(g: Gathered, on: dt.date) -> Facts:
    """The catalogue's facts from what the sources said."""
    facts = Facts()
    cra = g.outcomes["civil-registry"]
    person = g.person
    if cra.status == "failed":
        note = cra.why()
        for name in ("person.identified", "person.alive", "person.age_years", "person.resident", "person.sex"):
            facts.unknown(name, note)
    elif person is None:
        if g.identity.status == "ambiguous":
            facts.unknown("person.identified", "several people in the civil registry could be the applicant")
        elif g.identity.method != "matching":
            facts.set("person.identified", False, note="the civil registry has no such person")
        else:
            facts.unknown("person.identified", "no confident match in the civil registry; look up by ID or register")
    if person is not None:
        p = person.provenance
        data = person.data
        facts.set("person.identified", True, p, note=f"by {g.identity.method.replace('_', ' ')}")
        status = data.get("status")
        if status in ("alive", "deceased"):
            facts.set("person.alive", status == "alive", p)
        else:
            facts.unknown("person.alive", "the civil registry does not record a vital status", p)
        ages = age_range(data, on)
        if ages is None:
            facts.unknown("person.age_years", "the civil registry records no birth date or year", p)
        elif ages[0] == ages[1]:
            facts.set("person.age_years", ages[0], p)
        else:
            facts.set(
                "person.age_years",
                list(ages),
                p,
                note=f"only the birth year is recorded: {ages[0]} or {ages[1]} years old",
            )
        if data.get("sex"):
            facts.set("person.sex", data["sex"], p)
        if data.get("district"):
            facts.set("person.resident", True, p)
            facts.set("person.district", data["district"], p)
        else:
            facts.unknown("person.resident", "the civil registry records no district of residence", p)
    _money_facts(g, facts)
    _household_facts(g, facts, on)
    _enrolment_facts(g, facts)
    return facts


def _no_id_note(source: str) -> str:
    return f"the {source} is asked by national ID, and the civil registry records none for this person"


def _money_facts(g: Gathered, facts: Facts) -> None:
    person = g.person
    for name, outcome_name, value in (
        ("pension.contributory_monthly", "social-security", g.pension),
        ("income.declared_yearly", "tax", g.income),
    ):
        outcome = g.outcomes[outcome_name]
        if person is None:
            facts.unknown(name, "the person is not identified")
        elif outcome.status == "failed":
            facts.unknown(name, outcome.why())
        elif person.national_id is None:
            facts.unknown(name, _no_id_note(AGENCIES[outcome_name]))
        elif isinstance(value, Pension):
            amount = pension_monthly(value)
            note = None if value.pensions else "the fund knows no pension for this person"
            facts.set(name, amount, *value.provenance, note=note)
        elif isinstance(value, Income):
            note = (
                f"latest year on record: {max(value.yearly)}"
                if value.yearly
                else "the tax authority knows no income for this person"
            )
            facts.set(name, latest_income(value), value.provenance, note=note)


def _household_facts(g: Gathered, facts: Facts, on: dt.date) -> None:
    if g.person is None:
        return
    outcome = g.outcomes["civil-registry"]
    hh = g.household
    if hh is None:
        note = outcome.why() if outcome.status == "failed" else "the civil registry records no household"
        for name in ("household.size", "caregiver.identified"):
            facts.unknown(name, note)
        return
    living = [m for m in hh.members if m.data.get("status") != "deceased"]
    facts.set("household.size", len(living), hh.provenance)
    adults = []
    for m in living:
        ages = age_range(m.data, on)
        if ages is not None and ages[0] >= ADULT_AGE and m.data.get("record_id") != g.person.data.get("record_id"):
            adults.append(m)
    facts.set(
        "caregiver.identified",
        bool(adults),
        hh.provenance,
        note=None if adults else "no living adult in the household besides the person",
    )
    if not g.member_income and not g.member_pension:
        return  # the household's means were not needed for this question
    provenance: list[Provenance] = [hh.provenance]
    total_yearly = 0
    monthly_pensions = 0
    without_id = 0
    for m in living:
        nid = m.national_id
        if nid is None:
            without_id += 1
            continue
        income, pension = g.member_income.get(nid), g.member_pension.get(nid)
        for answer in (income, pension):
            if isinstance(answer, SourceFailed) or answer is None:
                source = "tax authority" if answer is income else "social security fund"
                facts.unknown("household.income_monthly", f"the {source} did not answer for a household member")
                facts.unknown("household.income_monthly_per_member", "the household's income is unknown")
                return
        assert isinstance(income, Income)
        assert isinstance(pension, Pension)
        total_yearly += latest_income(income)
        monthly_pensions += pension_monthly(pension)
        provenance.extend([income.provenance, *pension.provenance])
    monthly = total_yearly // 12 + monthly_pensions
    note = f"{len(living)} living member(s)"
    if without_id:
        note += (
            f"; {without_id} without a national ID, who cannot be registered with the tax authority or the "
            "fund, counted with no declared income"
        )
    facts.set("household.income_monthly", monthly, *provenance, note=note)
    facts.set("household.income_monthly_per_member", monthly // max(len(living), 1), *provenance, note=note)


def _enrolment_facts(g: Gathered, facts: Facts) -> None:
    outcome = g.outcomes["programmes"]
    for programme in PROGRAMMES:
        name = f"enrolment.{programme}"
        if g.person is None:
            facts.unknown(name, "the person is not identified")
        elif outcome.status == "failed" or g.enrolments is None:
            facts.unknown(name, outcome.why() if outcome.status == "failed" else "the programme MIS was not asked")
        else:
            active = any(e.get("programme") == programme and e.get("status") == "active" for e in g.enrolments.items)
            facts.set(name, active, g.enrolments.provenance)
    if g.person is None or outcome.status == "failed" or g.enrolments is None:
        facts.unknown(
            "disability.assessed",
            outcome.why() if outcome.status == "failed" else "no source of disability assessments was asked",
        )
    elif any(e.get("programme") == "disability-grant" for e in g.enrolments.items):
        facts.set(
            "disability.assessed",
            True,
            g.enrolments.provenance,
            note="a disability grant enrolment records an assessment",
        )
    else:
        facts.unknown("disability.assessed", "no disability assessment is on record")


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {} and v != []}


def person_view(person: Person) -> dict[str, Any]:
    """A civil registry record as a DCI-like Person, with its provenance."""
    d = person.data
    identifiers = [
        {"identifier_type": t, "identifier_value": d[k]}
        for t, k in (("UIN", "national_id"), ("BRN", "birth_certificate_no"), ("CRA_RECORD", "record_id"))
        if d.get(k)
    ]
    return _drop_none(
        {
            "identifier": identifiers,
            "name": _drop_none({k: d.get(k) for k in ("surname", "given_name", "second_name")}),
            "sex": d.get("sex"),
            "birth_date": d.get("birth_date"),
            "birth_year": d.get("birth_year"),
            "death_date": d.get("death_date"),
            "status": d.get("status"),
            "address": _drop_none({"district": d.get("district"), "village": d.get("village")}),
            "household_id": d.get("household_id"),
            "provenance": person.provenance.as_dict(),
        }
    )


def group_view(household: Household) -> dict[str, Any]:
    """A civil registry household as a DCI-like Group."""
    living = [m for m in household.members if m.data.get("status") != "deceased"]
    head = next((m for m in household.members if m.relationship == "head"), None)
    members = [
        {"relationship": m.relationship, "person": {k: v for k, v in person_view(m).items() if k != "provenance"}}
        for m in household.members
    ]
    return _drop_none(
        {
            "group_identifier": household.household_id,
            "group_type": "household",
            "group_size": len(living),
            "group_head_info": (
                {k: v for k, v in person_view(head).items() if k in ("identifier", "name")} if head else None
            ),
            "member_list": members,
            "provenance": household.provenance.as_dict(),
        }
    )


def render(g: Gathered, facts: Facts, *, with_facts: bool = True) -> dict[str, Any]:
    """The JSON answer to a person query."""
    missing = sorted(o.service for o in g.outcomes.values() if o.status == "failed")
    out: dict[str, Any] = {"identity": g.identity.as_dict()}
    if g.person is not None:
        out["person"] = person_view(g.person)
    if g.household is not None:
        out["group"] = group_view(g.household)
    if g.income is not None:
        out["income"] = {
            "declared_yearly": {str(y): v for y, v in sorted(g.income.yearly.items())},
            "provenance": g.income.provenance.as_dict(),
        }
    if g.pension is not None:
        out["social_security"] = {
            "member": bool(g.pension.members),
            "pensions": [
                _drop_none({k: p.get(k) for k in ("kind", "monthly_amount", "start_date", "status")})
                for p in g.pension.pensions
            ],
            "provenance": [p.as_dict() for p in g.pension.provenance],
        }
    if g.enrolments is not None:
        out["enrolments"] = {
            "items": [
                _drop_none(
                    {k: e.get(k) for k in ("beneficiary_no", "programme", "status", "enrolled_on", "monthly_amount")}
                )
                for e in g.enrolments.items
            ],
            "provenance": g.enrolments.provenance.as_dict(),
        }
    if with_facts:
        out["facts"] = [f.as_dict() for f in facts.values()]
    out["sources"] = [o.as_dict() for o in g.outcomes.values()]
    out["complete"] = not missing
    out["missing_sources"] = missing
    return out


def exchange_ids(outcomes: Iterable[SourceOutcome]) -> list[str]:
    return [i for o in outcomes for i in o.exchange_ids]
