"""Who the ministry's three grants really reach, errors included.

Targeting is imperfect on purpose, because finding the errors is what the virtual social registry is
for: eligible people left out (exclusion), people paid who should not be (a contributory pension
above the means test, a grant still 'active' after the beneficiary died), and enrolments of people
who are not poor or not disabled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sandbox.economy import Economy
from sandbox.geography import Geography
from sandbox.population import DAYS_PER_YEAR, SPOUSE, TODAY, Population

IntArray = npt.NDArray[np.int64]

CHILD_GRANT, OLD_AGE_GRANT, DISABILITY_GRANT = 0, 1, 2
PROGRAMMES = ("child-grant", "old-age-grant", "disability-grant")
PREFIXES = ("CSG-", "OAG-", "DG-")
MONTHLY_AMOUNT = (1_000, 2_500, 2_000)
STATUSES = ("active", "suspended", "exited")
#: Programme rules, as the manifest states them for the demo and the eligibility engine's tests.
CHILD_GRANT_MAX_AGE = 18
OLD_AGE_GRANT_AGE = 65
OLD_AGE_PENSION_TEST = 4_000  # monthly contributory pension above which the old-age grant is not due
DISABILITY_GRANT_AGES = (5, 65)
_STARTED = tuple(int(np.datetime64(d, "D").astype(np.int64)) for d in ("2012-07-01", "2009-07-01", "2014-01-01"))


@dataclass
class Enrolments:
    person: IntArray
    programme: IntArray
    enrolled_day: IntArray
    status: IntArray
    caregiver: IntArray  # person index, -1 when the grant is paid to the beneficiary


def rules() -> dict[str, object]:
    return {
        "child-grant": {"max_age": CHILD_GRANT_MAX_AGE, "household": "poor", "monthly_amount": MONTHLY_AMOUNT[0]},
        "old-age-grant": {
            "min_age": OLD_AGE_GRANT_AGE,
            "pension_test_monthly": OLD_AGE_PENSION_TEST,
            "monthly_amount": MONTHLY_AMOUNT[1],
        },
        "disability-grant": {
            "min_age": DISABILITY_GRANT_AGES[0],
            "max_age": DISABILITY_GRANT_AGES[1] - 1,
            "monthly_amount": MONTHLY_AMOUNT[2],
        },
    }


def build(rng: np.random.Generator, geo: Geography, pop: Population, econ: Economy) -> Enrolments:
    n = pop.size
    age = pop.age()
    alive = pop.alive
    urban = pop.urban(geo)
    poor = econ.poor(pop)
    u = rng.random((3, n))
    # Age when the person died (or today): who was eligible while alive.
    last_day = np.where(alive, TODAY, pop.death_day)
    age_then = (last_day - pop.birth_day) / DAYS_PER_YEAR

    child = age_then < CHILD_GRANT_MAX_AGE
    csg = child & np.where(poor, u[0] < np.where(urban, 0.75, 0.65), u[0] < 0.04)

    elderly = age_then >= OLD_AGE_GRANT_AGE
    means_ok = econ.pension_monthly <= OLD_AGE_PENSION_TEST
    oag = elderly & np.where(means_ok, u[1] < np.where(urban, 0.82, 0.74), u[1] < 0.3)
    oag |= (age_then >= OLD_AGE_GRANT_AGE - 3) & ~elderly & (u[1] < 0.02)  # age overstated at enrolment

    lo, hi = DISABILITY_GRANT_AGES
    in_ages = (age_then >= lo) & (age_then < hi)
    dg = in_ages & np.where(pop.disabled, u[2] < 0.55, u[2] < 0.001)

    person = np.concatenate([np.flatnonzero(m) for m in (csg, oag, dg)]).astype(np.int64)
    programme = np.concatenate([np.full(int(m.sum()), p) for p, m in enumerate((csg, oag, dg))]).astype(np.int64)
    k = len(person)

    # Enrolled some time between the programme's start (or the person's eligibility) and death or today.
    eligible_from = pop.birth_day[person] + np.floor(
        np.select([programme == 1, programme == 2], [OLD_AGE_GRANT_AGE - 3, lo], 0) * DAYS_PER_YEAR
    ).astype(np.int64)
    start = np.maximum(np.asarray(_STARTED, dtype=np.int64)[programme], eligible_from)
    end = np.maximum(last_day[person], start)
    enrolled_day = (start + np.floor(rng.random(k) * (end - start + 1))).astype(np.int64)

    # The dead are usually exited, but the registry learns of deaths late; children age out.
    r = rng.random(k)
    status = np.where(r < 0.05, 1, np.where(r < 0.08, 2, 0))
    dead = ~alive[person]
    status = np.where(dead, np.where(rng.random(k) < 0.35, 0, 2), status)
    aged_out = (programme == CHILD_GRANT) & (age[person] >= CHILD_GRANT_MAX_AGE)
    status = np.where(aged_out & (rng.random(k) < 0.8), 2, status)

    # The child grant is paid to the child's mother when she lives with the child, else the head
    # (or the spouse of a head who died).
    hh = pop.household[person]
    head = pop.hh_head[hh]
    mother = pop.mother[person]
    caregiver = np.where((mother >= 0) & alive[mother.clip(0)], mother, head)
    spouse_of = np.full(len(pop.hh_head), -1, dtype=np.int64)
    spouses = np.flatnonzero(pop.role == SPOUSE)
    spouse_of[pop.household[spouses]] = spouses
    fallback = spouse_of[hh]
    caregiver = np.where(~alive[caregiver] & (fallback >= 0), fallback, caregiver)
    caregiver = np.where((programme == CHILD_GRANT) & (caregiver != person), caregiver, -1)
    return Enrolments(person, programme, enrolled_day, status.astype(np.int64), caregiver.astype(np.int64))
