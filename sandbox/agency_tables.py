"""What each agency holds, table by table, as columns ready for loading.

Each builder returns the agency's tables (column name -> values, in the schema's order, rows sorted
by key so that row order says nothing about households) and the agency's record keys with the true
person behind each, which only the truth file receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sandbox import noise, phonetic
from sandbox.copies import Copier, Copy, codes, iso, iso_or_none
from sandbox.documents import NONE, Documents, formatted, present, unique_numbers
from sandbox.economy import (
    BUSINESS,
    CONTRIBUTION_RATE,
    CURRENT_MONTHS,
    CURRENT_YEAR,
    LAST_TAX_YEAR,
    MEMBER_ACTIVE,
    MEMBER_INACTIVE,
    MEMBER_PENSIONER,
    PENSION_KINDS,
    TAX_YEARS,
    WAGE_GROWTH,
    Economy,
)
from sandbox.enrolment import MONTHLY_AMOUNT, PREFIXES, PROGRAMMES, STATUSES, Enrolments
from sandbox.geography import Geography
from sandbox.names import NamePool
from sandbox.noise import PROFILES
from sandbox.population import DAYS_PER_YEAR, RELATIONSHIPS, TODAY, Population, draw_given, draw_surname, year_of

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]
Columns = dict[str, Any]  # column name -> numpy array or list, all of one length

#: Tax bands on yearly income: (lower bound, rate).
TAX_BANDS = ((24_000, 0.10), (120_000, 0.20), (360_000, 0.30))


@dataclass
class Agency:
    tables: dict[str, Columns] = field(default_factory=dict)
    record_ids: list[str] = field(default_factory=list)
    persons: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Country:
    """Everything the builders read: the truth and the country's shared parts."""

    seed: int
    geo: Geography
    names: NamePool
    pop: Population
    econ: Economy
    docs: Documents
    enrol: Enrolments
    household_ids: ObjArray
    copier: Copier


def _days_from_year(rng: np.random.Generator, years: IntArray) -> IntArray:
    """A day within each year, never after the reference date."""
    jan1 = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    return np.asarray(np.minimum(jan1 + rng.integers(0, 365, len(years)), TODAY), dtype=np.int64)


def _join_second(rng: np.random.Generator, c: Copy, share: float) -> ObjArray:
    """Agencies with one name field often hold 'given second' in it."""
    given = c.given.copy()
    for i in np.flatnonzero(present(c.second) & (rng.random(len(given)) < share)).tolist():
        given[i] = f"{given[i]} {c.second[i]}"
    return given


def _full_names(names: ObjArray, given: IntArray, surname: IntArray) -> list[str]:
    return [f"{g} {s}" for g, s in zip(names[given].tolist(), names[surname].tolist(), strict=True)]


def _sorted(numbers: IntArray, prefix: str, width: int) -> tuple[IntArray, list[str]]:
    order = np.argsort(numbers, kind="stable")
    return order, formatted(prefix, numbers[order], width)


def cra(country: Country) -> Agency:
    """The civil registry: everyone with a birth certificate or a national ID, a few twice."""
    pop, docs, geo = country.pop, country.docs, country.geo
    profile = PROFILES["cra"]
    rng, prng = country.copier.streams("cra")
    registered = np.flatnonzero(docs.has_national_id() | present(docs.birth_cert))
    person, dup = country.copier.with_duplicates(rng, registered, profile.duplicate)
    order, record_id = _sorted(unique_numbers(rng, len(person), 0, 10**9), "CRA", 9)
    person, dup = person[order], dup[order]
    k = len(person)
    c = country.copier.copy(profile, person, dup, rng, prng)

    # A second registration: usually without the ID, sometimes with a second ID issued by mistake.
    nid = c.national_id
    r = rng.random(k)
    nid[dup & (r < 0.55)] = None
    reissued = np.flatnonzero(dup & (r >= 0.55) & (r < 0.85) & present(nid))
    nid[reissued] = docs.spare_national_ids[: len(reissued)]
    cert = np.asarray(docs.birth_cert[person]).copy()
    cert[dup & (rng.random(k) < 0.5)] = None
    has_cert = present(cert)

    # Mother's name: from the birth record, or asked at ID registration; linked when she is registered.
    names = country.copier.names
    mother = pop.mother[person]
    known = mother >= 0
    recorded = rng.random(k) < np.where(has_cert, 0.92, 0.5)
    mother_name = np.full(k, None, dtype=object)
    linked = np.flatnonzero(known & recorded)
    mother_name[linked] = _full_names(names, pop.given[mother[linked]], pop.surname[mother[linked]])
    # Mothers outside the population: a name of the family's tradition, often the family surname.
    other = np.flatnonzero(~known & recorded)
    trad = pop.tradition[person[other]]
    m_given = draw_given(rng, country.names, trad, np.ones(len(other), dtype=np.bool_))
    patronymic = np.array([t.spec.patronymic for t in country.names.traditions])[trad]
    m_surname = np.where(
        ~patronymic & (rng.random(len(other)) < 0.6), pop.surname[person[other]], draw_surname(rng, country.names, trad)
    )
    mother_name[other] = _full_names(names, m_given, m_surname)
    record_of = np.full(pop.size, -1, dtype=np.int64)
    record_of[person[~dup]] = np.flatnonzero(~dup)
    ids = np.empty(k + 1, dtype=object)
    ids[:k] = record_id
    ids[k] = None
    mother_record = np.where(known & recorded & (rng.random(k) < 0.9), record_of[mother.clip(0)], -1)
    mother_record_id = ids[np.where(known, mother_record, -1)]

    # Household registration is partial.
    hh = pop.household[person]
    in_hh = rng.random(k) < 0.7
    household_id = np.where(in_hh, country.household_ids[hh], NONE)
    relationship = np.where(in_hh, np.asarray(RELATIONSHIPS, dtype=object)[pop.role[person]], NONE)

    # Deaths: registered on the first record only, days to months late, more often in towns.
    death = pop.death_day[person]
    urban = geo.district_urban[pop.hh_district[hh]]
    delay = np.ceil(rng.lognormal(np.log(20.0), 1.0, k)).astype(np.int64)
    registered_death = (death >= 0) & ~dup & (rng.random(k) < np.where(urban, 0.9, 0.7)) & (death + delay <= TODAY)
    death_date = iso_or_none(np.where(registered_death, death, -1))
    death_registered_on = iso_or_none(np.where(registered_death, death + delay, -1))

    # Registration date: at birth for certificate holders, when the ID was issued otherwise.
    birth = pop.birth_day[person]
    at_birth = birth + np.ceil(rng.lognormal(np.log(30.0), 1.0, k)).astype(np.int64)
    at_id = np.maximum(
        birth + ((16.0 + rng.uniform(0.0, 12.0, k)) * DAYS_PER_YEAR).astype(np.int64),
        int(np.datetime64("2000-01-01", "D").astype(np.int64)) + rng.integers(0, 6 * 365, k),
    )
    reg = np.where(present(docs.birth_cert[person]), at_birth, at_id)
    reg = np.where(dup, reg + rng.integers(30, 10 * 365, k), reg)
    registered_on = iso(np.minimum(reg, TODAY))

    surname_list, given_list = c.surname.tolist(), c.given.tolist()
    key = {s: phonetic.key(s) for s in dict.fromkeys(surname_list + given_list)}
    person_table: Columns = {
        "record_id": record_id,
        "national_id": nid,
        "birth_cert_no": cert,
        "surname": c.surname,
        "given_name": c.given,
        "second_name": c.second,
        "sex": c.sex,
        "birth_date": c.birth_date(),
        "birth_year": c.birth_year,
        "mother_name": mother_name,
        "mother_record_id": mother_record_id,
        "birth_district": codes(geo.district_codes, pop.birth_district[person]),
        "district_code": c.district,
        "village_code": c.village,
        "household_id": household_id,
        "relationship": relationship,
        "death_date": death_date,
        "death_registered_on": death_registered_on,
        "registered_on": registered_on,
        "surname_key": [key[s] for s in surname_list],
        "given_key": [key[s] for s in given_list],
    }
    return Agency({"person": person_table}, record_id, person)


def _tax(gross: IntArray) -> IntArray:
    tax = np.zeros(len(gross), dtype=np.float64)
    bounds = [b for b, _ in TAX_BANDS] + [np.inf]
    for (low, rate), high in zip(TAX_BANDS, bounds[1:], strict=True):
        tax += rate * (np.clip(gross, low, high) - low)
    return np.asarray(np.round(tax), dtype=np.int64)


def _spans(first: IntArray, last: IntArray) -> tuple[IntArray, IntArray]:
    """(row owner, year) for every year first..last of every owner."""
    count = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(len(first)), count)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    return owner.astype(np.int64), (first[owner] + offset).astype(np.int64)


def tax(country: Country) -> Agency:
    """The tax authority: the formally employed and self-employed, with their yearly incomes."""
    pop, econ, docs = country.pop, country.econ, country.docs
    rng, prng = country.copier.streams("tax")
    person = np.flatnonzero(econ.formal)
    person = person[np.argsort(np.asarray(docs.tin[person]).astype(str), kind="stable")]
    tin = np.asarray(docs.tin[person])
    c = country.copier.copy(PROFILES["tax"], person, np.zeros(len(person), np.bool_), rng, prng)
    start = econ.job_start_year[person]
    registered = np.maximum(_days_from_year(rng, start), pop.birth_day[person] + int(18 * DAYS_PER_YEAR))
    taxpayer: Columns = {
        "tin": tin,
        "national_id": c.national_id,
        "surname": c.surname,
        "given_name": _join_second(rng, c, 0.3),
        "sex": c.sex,
        "birth_date": c.birth_date(),
        "district_code": c.district,
        "registered_on": iso(np.minimum(registered, TODAY)),
    }
    first = np.maximum(start, LAST_TAX_YEAR - TAX_YEARS + 1)
    last = np.full(len(person), LAST_TAX_YEAR)
    died = pop.death_day[person] >= 0
    last = np.where(died, np.minimum(last, year_of(np.maximum(pop.death_day[person], 0)) - 1), last)
    owner, year = _spans(first, last)
    p = person[owner]
    gross = econ.formal_income[p] * WAGE_GROWTH ** (year - LAST_TAX_YEAR) * rng.lognormal(0.0, 0.05, len(p))
    gross_income = (np.round(gross / 100.0) * 100).astype(np.int64)
    business = econ.formal_kind[p] == BUSINESS
    employers = np.asarray((*country.econ.employers, "self"), dtype=object)
    income: Columns = {
        "tin": tin[owner],
        "year": year,
        "kind": np.where(business, "business", "employment").astype(object),
        "payer": employers[econ.employer[p]],
        "gross_income": gross_income,
        "tax_paid": _tax(gross_income),
    }
    return Agency({"taxpayer": taxpayer, "income": income}, tin.tolist(), person)


def ssf(country: Country) -> Agency:
    """The social security fund: members, ten years of contributions, pensions in payment."""
    pop, econ, docs = country.pop, country.econ, country.docs
    rng, prng = country.copier.streams("ssf")
    person = np.flatnonzero(econ.member >= 0)
    person = person[np.argsort(np.asarray(docs.ssn[person]).astype(str), kind="stable")]
    ssn = np.asarray(docs.ssn[person])
    k = len(person)
    c = country.copier.copy(PROFILES["ssf"], person, np.zeros(k, np.bool_), rng, prng)
    dead = pop.death_day[person] >= 0
    knows_death = dead & (rng.random(k) < 0.7)
    status_names = np.array(["active", "inactive", "pensioner"], dtype=object)
    status = status_names[econ.member[person]]
    status[knows_death] = "deceased"
    first, last = econ.contrib_first[person], econ.contrib_last[person]
    joined = np.where(first >= 0, _days_from_year(rng, np.maximum(first, 1971)), econ.pension_start_day[person])
    member: Columns = {
        "ssn": ssn,
        "national_id": c.national_id,
        "surname": c.surname,
        "given_name": _join_second(rng, c, 0.3),
        "sex": c.sex,
        "birth_date": c.birth_date("01-01"),
        "district_code": c.district,
        "status": status,
        "registered_on": iso(np.minimum(joined, TODAY)),
    }

    owner, year = _spans(np.where(first >= 0, first, 0), np.where(first >= 0, last, -1))
    p = person[owner]
    active = econ.member[p] == MEMBER_ACTIVE
    before_job = active & (year < econ.job_start_year[p]) & (econ.prev_employer[p] >= 0)
    employer = np.where(before_job, econ.prev_employer[p], econ.contrib_employer[p])
    employers = np.asarray((*econ.employers, "self-employed"), dtype=object)
    months = np.full(len(p), 12, dtype=np.int64)
    months = np.where(year == first[owner], rng.integers(1, 13, len(p)), months)
    stopped = (econ.member[p] == MEMBER_INACTIVE) | (econ.member[p] == MEMBER_PENSIONER) | dead[owner]
    months = np.where(stopped & (year == last[owner]), rng.integers(1, 13, len(p)), months)
    months = np.where(year == CURRENT_YEAR, np.minimum(months, CURRENT_MONTHS), months)
    amount = econ.contrib_base[p] * WAGE_GROWTH ** (year - LAST_TAX_YEAR) * CONTRIBUTION_RATE * months / 12
    contribution: Columns = {
        "ssn": ssn[owner],
        "year": year,
        "employer": employers[employer],
        "months": months,
        "amount": np.round(amount).astype(np.int64),
    }

    pensioner = np.flatnonzero(econ.pension_kind[person] >= 0)
    pp = person[pensioner]
    pension_status = np.where(rng.random(len(pp)) < 0.02, "suspended", "in-payment").astype(object)
    pension_status[knows_death[pensioner]] = "ceased"
    pension: Columns = {
        "ssn": ssn[pensioner],
        "kind": np.asarray(PENSION_KINDS, dtype=object)[econ.pension_kind[pp]],
        "monthly_amount": econ.pension_monthly[pp],
        "start_date": iso(econ.pension_start_day[pp]),
        "status": pension_status,
    }
    return Agency({"member": member, "contribution": contribution, "pension": pension}, ssn.tolist(), person)


def msp(country: Country) -> Agency:
    """The ministry's programme MIS: one row per enrolment, a few people enrolled twice."""
    pop, docs, enrol = country.pop, country.docs, country.enrol
    profile = PROFILES["msp"]
    rng, prng = country.copier.streams("msp")
    pos, dup = country.copier.with_duplicates(rng, np.arange(len(enrol.person)), profile.duplicate)
    numbers = unique_numbers(rng, len(pos), 0, 10**8)
    order = np.lexsort((numbers, enrol.programme[pos]))
    pos, dup, numbers = pos[order], dup[order], numbers[order]
    k = len(pos)
    programme = enrol.programme[pos]
    prefixes = np.asarray(PREFIXES, dtype=object)[programme].tolist()
    beneficiary_no = [f"{p}{v:08d}" for p, v in zip(prefixes, numbers.tolist(), strict=True)]
    person = enrol.person[pos]
    c = country.copier.copy(profile, person, dup, rng, prng)

    # The child grant's caregiver, as the programme wrote them down.
    names = country.copier.names
    carer = enrol.caregiver[pos]
    has_carer = np.flatnonzero(carer >= 0)
    cg = carer[has_carer]
    cg_given = names[pop.given[cg]].tolist()
    cg_surname = names[pop.surname[cg]].tolist()
    noisy = rng.random((2, len(cg))) < noise.name_error_rate(profile)
    for i in np.flatnonzero(noisy[0]).tolist():
        cg_given[i] = noise.perturb(cg_given[i], profile, prng)
    for i in np.flatnonzero(noisy[1]).tolist():
        cg_surname[i] = noise.perturb(cg_surname[i], profile, prng)
    caregiver_name = np.full(k, None, dtype=object)
    caregiver_name[has_carer] = [f"{g} {s}" for g, s in zip(cg_given, cg_surname, strict=True)]
    caregiver_nid = np.full(k, None, dtype=object)
    cg_nid = np.asarray(docs.national_id[cg]).copy()
    cg_nid[rng.random(len(cg)) < 0.15] = None
    for i in np.flatnonzero(present(cg_nid) & (rng.random(len(cg)) < profile.nid_typo)).tolist():
        cg_nid[i] = noise.national_id(cg_nid[i], prng)
    caregiver_nid[has_carer] = cg_nid

    enrolled = enrol.enrolled_day[pos]
    enrolled = np.where(dup, enrolled + np.floor(rng.random(k) * (TODAY - enrolled + 1)).astype(np.int64), enrolled)
    status = enrol.status[pos]
    status = np.where(dup & (rng.random(k) < 0.5), 0, status)
    beneficiary: Columns = {
        "beneficiary_no": beneficiary_no,
        "programme": np.asarray(PROGRAMMES, dtype=object)[programme],
        "national_id": c.national_id,
        "surname": c.surname,
        "given_name": c.given,
        "second_name": c.second,
        "sex": c.sex,
        "birth_date": c.birth_date(),
        "birth_year": c.birth_year,
        "district_code": c.district,
        "village_code": c.village,
        "caregiver_name": caregiver_name,
        "caregiver_national_id": caregiver_nid,
        "enrolled_on": iso(enrolled),
        "status": np.asarray(STATUSES, dtype=object)[status],
        "monthly_amount": np.asarray(MONTHLY_AMOUNT, dtype=np.int64)[programme],
    }
    return Agency({"beneficiary": beneficiary}, beneficiary_no, person)
