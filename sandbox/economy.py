"""Who earns what: formal jobs, informal earnings, social insurance histories, pensions, poverty.

A minority works formally (more in towns); they pay tax and contribute to the social security fund,
which later pays them a pension. Everyone else earns informally, which no agency sees. A household
is poor when its income per member is below the poverty line. Money is in whole units per year,
except pensions and grants, which are monthly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sandbox.geography import Geography
from sandbox.population import DAYS_PER_YEAR, TODAY, Population, year_of

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

POVERTY_LINE = 18_000  # yearly income per household member
#: Last complete tax year at the reference date, and how many years of returns the authority keeps.
LAST_TAX_YEAR = 2025
TAX_YEARS = 5
#: Years of contribution history the fund keeps online per member.
CONTRIBUTION_YEARS = 10
CURRENT_YEAR = 2026
CURRENT_MONTHS = 6  # months of the current year contributed by the reference date
CONTRIBUTION_RATE = 0.10  # employer and employee together
WAGE_GROWTH = 1.06  # yearly, to back-date incomes

EMPLOYMENT, BUSINESS = 0, 1
NO_PENSION, OLD_AGE, INVALIDITY, SURVIVOR = -1, 0, 1, 2
PENSION_KINDS = ("old-age", "invalidity", "survivor")
MEMBER_NONE, MEMBER_ACTIVE, MEMBER_INACTIVE, MEMBER_PENSIONER = -1, 0, 1, 2

_PUBLIC = (
    "Ministry of Health",
    "Ministry of Education",
    "Ministry of Agriculture",
    "Teachers Service Commission",
    "National Police Service",
    "Ministry of Finance",
    "National Water Company",
    "Revenue Authority",
    "Ministry of Social Protection",
    "National Referral Hospital",
)
_TRADES = (
    "Millers",
    "Transport",
    "Tea Estates",
    "Hardware",
    "Bottlers",
    "Textiles",
    "Cement",
    "Bank",
    "Hospital",
    "Supermarkets",
    "Logistics",
    "Agro-Processors",
    "Microfinance",
    "Academy",
    "Builders",
    "Dairy Cooperative",
    "Motors",
    "Printers",
    "Security Services",
    "Pharmacy",
    "Hotel",
    "Fisheries",
)
_SUFFIXES = ("Ltd", "Limited", "PLC", "& Sons Ltd", "Company Ltd", "Enterprises")


@dataclass
class Economy:
    employers: tuple[str, ...]
    formal: BoolArray
    formal_kind: IntArray  # EMPLOYMENT or BUSINESS where formal
    formal_income: IntArray  # yearly, 0 when none
    employer: IntArray  # index into employers, -1 for the self-employed and the informal
    job_start_year: IntArray
    member: IntArray  # MEMBER_* status in the social security fund (before death is known)
    contrib_first: IntArray  # first and last year of the contribution history kept
    contrib_last: IntArray
    contrib_base: IntArray  # yearly income contributions were paid on, in the last year
    contrib_employer: IntArray  # employer of the history's last years, -1 for the self-employed
    prev_employer: IntArray  # employer before the current job, -1 when the history has one employer
    pension_kind: IntArray
    pension_monthly: IntArray
    pension_start_day: IntArray
    hh_income: IntArray  # yearly, per household, living members
    hh_size: IntArray  # living members
    hh_poor: BoolArray

    def poor(self, pop: Population) -> BoolArray:
        return np.asarray(self.hh_poor[pop.household])


def _employers(rng: np.random.Generator, geo: Geography, n_private: int) -> tuple[str, ...]:
    names = list(_PUBLIC) + [f"{d} District Council" for d in geo.district_names]
    seen = set(names)
    while len(names) < len(_PUBLIC) + len(geo.district_names) + n_private:
        place = geo.village_names[int(rng.integers(len(geo.village_names)))].split()[-1]
        name = f"{place} {_TRADES[rng.integers(len(_TRADES))]} {_SUFFIXES[rng.integers(len(_SUFFIXES))]}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return tuple(names)


def _lognormal(rng: np.random.Generator, median: npt.ArrayLike, sigma: float, n: int) -> IntArray:
    """Amounts rounded to the hundred, never below one hundred."""
    raw = np.asarray(median, dtype=np.float64) * rng.lognormal(0.0, sigma, n)
    return np.asarray(np.maximum(np.round(raw / 100.0) * 100.0, 100.0), dtype=np.int64)


def build(rng: np.random.Generator, geo: Geography, pop: Population) -> Economy:
    n = pop.size
    age = pop.age()
    alive = pop.alive
    urban = pop.urban(geo)
    female = pop.female
    disabled = pop.disabled

    n_public = len(_PUBLIC) + len(geo.district_names)
    employers = _employers(rng, geo, max(60, n // 2500))

    # Formal work: mostly towns, men, prime ages; the disabled are rarely hired.
    rate = np.where(urban, 0.27, 0.07) * np.where(female, 0.75, 1.25)
    rate = rate * np.where(age < 25, 0.35, np.where(age >= 60, 0.5, 1.0)) * np.where(disabled, 0.3, 1.0)
    formal = alive & (age >= 18) & (age < 65) & (rng.random(n) < rate)
    formal_kind = np.where(rng.random(n) < 0.15, BUSINESS, EMPLOYMENT)
    formal_kind = np.where(formal, formal_kind, -1)
    formal_income = np.where(formal, _lognormal(rng, np.where(urban, 240_000, 160_000), 0.7, n), 0)
    public = rng.random(n) < 0.3
    private = n_public + np.minimum(rng.zipf(1.6, n) - 1, len(employers) - n_public - 1)
    employer = np.where(public, rng.integers(0, n_public, n), private)
    employer = np.where(formal_kind == EMPLOYMENT, employer, -1)
    tenure = np.minimum(np.floor(rng.exponential(6.0, n)), np.floor(age - 18).clip(0))
    job_start_year = np.where(formal, CURRENT_YEAR - tenure, -1).astype(np.int64)

    # Social security: every formal employee, a third of the self-employed; earlier contributors who
    # are now retired (old-age pension), invalid (invalidity pension) or back in informal work.
    member = np.full(n, MEMBER_NONE, dtype=np.int64)
    member[formal & ((formal_kind == EMPLOYMENT) | (rng.random(n) < 0.33))] = MEMBER_ACTIVE
    pension_kind = np.full(n, NO_PENSION, dtype=np.int64)
    retired = (age >= 60) & ~formal & (rng.random(n) < np.where(urban, 0.2, 0.06))
    invalid = ~retired & ~formal & disabled & (age >= 25) & (age < 60) & (rng.random(n) < 0.15)
    widowed = (pop.role != 1) & female & (age >= 50)  # no husband in the household
    widowed &= ~retired & ~invalid & (rng.random(n) < np.where(urban, 0.07, 0.03))
    pension_kind[retired] = OLD_AGE
    pension_kind[invalid] = INVALIDITY
    pension_kind[widowed] = SURVIVOR
    member[retired | invalid | widowed] = MEMBER_PENSIONER
    inactive = (member == MEMBER_NONE) & (age >= 25) & (age < 60) & (rng.random(n) < 0.025)
    member[inactive] = MEMBER_INACTIVE

    pension_monthly = np.zeros(n, dtype=np.int64)
    for kind, median in ((OLD_AGE, 7_000), (INVALIDITY, 4_500), (SURVIVOR, 3_500)):
        idx = np.flatnonzero(pension_kind == kind)
        pension_monthly[idx] = _lognormal(rng, median, 0.6, len(idx))
    # Pensions start at 60 to 62 for old age, in the last decade otherwise.
    start_age = np.where(pension_kind == OLD_AGE, rng.uniform(60.0, 62.0, n), age - rng.uniform(0.2, 10.0, n))
    start_age = np.minimum(start_age, age - 0.05)
    pension_start_day = np.where(pension_kind >= 0, pop.birth_day + np.floor(start_age * DAYS_PER_YEAR), -1).astype(
        np.int64
    )
    pension_start_day = np.where(pension_kind >= 0, np.minimum(pension_start_day, TODAY), -1)

    # Contribution histories: the last CONTRIBUTION_YEARS years of each member's working life.
    active = member == MEMBER_ACTIVE
    pension_year = year_of(np.maximum(pension_start_day, 0))
    last = np.where(
        active,
        CURRENT_YEAR,
        np.where(member == MEMBER_INACTIVE, CURRENT_YEAR - rng.integers(1, 9, n), pension_year - 1),
    )
    birth_year = pop.birth_year()
    last = np.where(member == MEMBER_INACTIVE, np.maximum(last, birth_year + 18), last)
    died_year = np.where(alive, CURRENT_YEAR, year_of(np.maximum(pop.death_day, 0)))
    last = np.minimum(last, died_year)
    first = np.where(
        active, CURRENT_YEAR + 1 - CONTRIBUTION_YEARS, last + 1 - rng.integers(1, CONTRIBUTION_YEARS + 1, n)
    )
    first = np.maximum(first, birth_year + 18)
    # Half the employees who started their job within the window worked somewhere else before it.
    switched = active & (formal_kind == EMPLOYMENT) & (job_start_year > first) & (rng.random(n) < 0.5)
    first = np.where(active & ~switched, np.maximum(first, job_start_year), first)
    has_history = (member >= 0) & (pension_kind != SURVIVOR) & (first <= last)
    # A past contributor is one with a history; the rest never joined.
    member[(member == MEMBER_INACTIVE) & ~has_history] = MEMBER_NONE
    past_private = n_public + np.minimum(rng.zipf(1.6, n) - 1, len(employers) - n_public - 1)
    past_employer = np.where(rng.random(n) < 0.3, rng.integers(0, n_public, n), past_private)
    contrib_employer = np.where(active, employer, past_employer)
    prev_employer = np.where(switched, past_employer, -1)
    contrib_base = np.where(formal, formal_income, _lognormal(rng, np.where(urban, 200_000, 140_000), 0.6, n))

    # Informal earnings: most adults earn something nobody records.
    earns = alive & (age >= 15) & (age < 75) & ~formal & (rng.random(n) < np.where(age < 18, 0.2, 0.8))
    informal = np.where(earns, _lognormal(rng, np.where(urban, 60_000, 36_000), 0.9, n), 0)
    income = np.where(alive, formal_income + informal + 12 * pension_monthly, 0)
    n_hh = len(pop.hh_head)
    hh_income = np.bincount(pop.household, weights=income, minlength=n_hh).astype(np.int64)
    hh_size = np.bincount(pop.household, weights=alive, minlength=n_hh).astype(np.int64)
    hh_poor = hh_income < POVERTY_LINE * np.maximum(hh_size, 1)

    return Economy(
        employers=employers,
        formal=formal,
        formal_kind=formal_kind.astype(np.int64),
        formal_income=formal_income.astype(np.int64),
        employer=employer.astype(np.int64),
        job_start_year=job_start_year,
        member=member,
        contrib_first=np.where(has_history, first, -1).astype(np.int64),
        contrib_last=np.where(has_history, last, -1).astype(np.int64),
        contrib_base=np.where(has_history, contrib_base, 0).astype(np.int64),
        contrib_employer=contrib_employer.astype(np.int64),
        prev_employer=prev_employer.astype(np.int64),
        pension_kind=pension_kind,
        pension_monthly=pension_monthly,
        pension_start_day=pension_start_day.astype(np.int64),
        hh_income=hh_income,
        hh_size=hh_size,
        hh_poor=hh_poor,
    )
