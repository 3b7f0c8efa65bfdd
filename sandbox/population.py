"""The true population: households, who lives in them, their names, births and deaths.

Households are assembled from a head outwards (spouse, the head's parent, children, other
relatives), so that ages, mothers and surnames are consistent by construction: a mother is at least
16 years older than her child, children carry their father's surname or patronymic. The young age
pyramid is not imposed but follows from fertility, as it does in the countries it imitates.
Everything is a numpy array indexed by person (0-based; person_id is index + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sandbox.geography import Geography
from sandbox.names import NamePool

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: "Today" in the sandbox country: ages, registrations and deaths are relative to it, never the clock.
REFERENCE_DATE = np.datetime64("2026-06-30", "D")
TODAY = int(REFERENCE_DATE.astype(np.int64))
DAYS_PER_YEAR = 365.25
#: Deaths are simulated over this many years before the reference date.
DEATH_WINDOW_YEARS = 3.0
MAX_AGE = 100.99

HEAD, SPOUSE, PARENT, CHILD, OTHER = 0, 1, 2, 3, 4
RELATIONSHIPS = ("head", "spouse", "parent", "child", "other")


def year_of(days: IntArray) -> IntArray:
    """Calendar year of day numbers (days since 1970-01-01)."""
    return np.asarray(days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970)


@dataclass
class Population:
    household: IntArray  # household index
    role: IntArray  # HEAD, SPOUSE, PARENT, CHILD, OTHER
    female: BoolArray
    birth_day: IntArray  # days since 1970-01-01
    death_day: IntArray  # -1 when alive
    mother: IntArray  # person index, -1 when not in the population
    tradition: IntArray
    given: IntArray  # index into the name pool
    surname: IntArray
    second: IntArray  # -1 when none
    disabled: BoolArray
    birth_district: IntArray
    # per household
    hh_village: IntArray
    hh_district: IntArray
    hh_head: IntArray  # person index of the head

    @property
    def size(self) -> int:
        return len(self.household)

    @property
    def alive(self) -> BoolArray:
        return np.asarray(self.death_day < 0)

    def age(self) -> FloatArray:
        """Age in years at the reference date (as if alive: the dead keep their birth date)."""
        return np.asarray((TODAY - self.birth_day) / DAYS_PER_YEAR, dtype=np.float64)

    def birth_year(self) -> IntArray:
        return year_of(self.birth_day)

    def urban(self, geo: Geography) -> BoolArray:
        return np.asarray(geo.district_urban[self.hh_district[self.household]])


def _categorical_rows(rng: np.random.Generator, probs: FloatArray) -> IntArray:
    """One draw per row of a probability matrix."""
    cum = probs.cumsum(axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.asarray((u > cum).sum(axis=1), dtype=np.int64)


def _household_members(
    rng: np.random.Generator, n_hh: int, urban: BoolArray
) -> tuple[IntArray, IntArray, BoolArray, FloatArray, IntArray]:
    """Members of every household: (household, role, female, age, mother's slot within household).

    The mother's slot is the role of the household's mother (HEAD or SPOUSE) for children, PARENT for
    a head whose mother lives with them, and -1 otherwise.
    """
    head_female = rng.random(n_hh) < 0.28
    head_age = np.where(rng.random(n_hh) < 0.9, 17.0 + rng.gamma(2.3, 9.5, n_hh), rng.uniform(58.0, 95.0, n_hh)).clip(
        18.0, MAX_AGE
    )
    spouse_rate = np.where(head_female, 0.06, np.where(head_age < 65, 0.86, 0.6))
    has_spouse = rng.random(n_hh) < spouse_rate
    spouse_age = np.where(head_female, head_age + rng.gamma(2.0, 2.5, n_hh), head_age - rng.gamma(2.0, 3.0, n_hh)).clip(
        16.0, MAX_AGE
    )

    # Children of the household's mother: births over her fertile years, older ones having left.
    mother_role = np.where(head_female, HEAD, np.where(has_spouse, SPOUSE, -1))
    mother_age = np.where(head_female, head_age, spouse_age)
    has_mother = mother_role >= 0
    fertile = ((mother_age - 16.0) / (45.0 - 16.0)).clip(0.0, 1.0)
    tfr = np.where(urban, 3.6, 5.4)
    births = np.where(has_mother, rng.poisson(tfr * fertile), 0)
    c_hh = np.repeat(np.arange(n_hh), births)
    c_mother_age = mother_age[c_hh]
    c_age = c_mother_age - rng.uniform(16.0, np.minimum(c_mother_age, 45.0))
    stays = np.where(c_age < 18, 0.96, np.where(c_age < 25, 0.45, 0.08))
    keep = rng.random(len(c_hh)) < stays
    c_hh, c_age = c_hh[keep], c_age[keep]
    c_mother = mother_role[c_hh]

    # Lone fathers' children: no mother in the household.
    lone = (~head_female) & (~has_spouse) & (head_age < 60)
    lone_n = np.where(lone, rng.poisson(1.1, n_hh), 0)
    l_hh = np.repeat(np.arange(n_hh), lone_n)
    l_age = rng.uniform(0.0, 1.0, len(l_hh)) * np.minimum(head_age[l_hh] - 18.0, 20.0)

    # An elderly parent of the head, usually the mother.
    p_rate = np.where(head_age < 50, np.where(urban, 0.05, 0.09), 0.0)
    has_parent = rng.random(n_hh) < p_rate
    p_hh = np.flatnonzero(has_parent)
    p_age = (head_age[p_hh] + rng.uniform(18.0, 42.0, len(p_hh))).clip(None, MAX_AGE)
    p_female = rng.random(len(p_hh)) < 0.75

    # Other relatives: grandchildren and fostered children mostly, some young adults.
    o_n = rng.poisson(np.where(urban, 0.15, 0.28))
    o_hh = np.repeat(np.arange(n_hh), o_n)
    o_age = np.where(
        rng.random(len(o_hh)) < 0.65, rng.uniform(0.0, 18.0, len(o_hh)), rng.uniform(15.0, 40.0, len(o_hh))
    )

    s_hh = np.flatnonzero(has_spouse)
    # The head's mother, when she lives with the head.
    head_mother = np.full(n_hh, -1)
    head_mother[p_hh[p_female]] = PARENT
    blocks = [
        (np.arange(n_hh), HEAD, head_female, head_age, head_mother),
        (s_hh, SPOUSE, ~head_female[s_hh], spouse_age[s_hh], np.full(len(s_hh), -1)),
        (p_hh, PARENT, p_female, p_age, np.full(len(p_hh), -1)),
        (c_hh, CHILD, rng.random(len(c_hh)) < 0.49, c_age, c_mother),
        (l_hh, CHILD, rng.random(len(l_hh)) < 0.49, l_age, np.full(len(l_hh), -1)),
        (o_hh, OTHER, rng.random(len(o_hh)) < 0.5, o_age, np.full(len(o_hh), -1)),
    ]
    hh = np.concatenate([b[0] for b in blocks]).astype(np.int64)
    role = np.concatenate([np.full(len(b[0]), b[1]) for b in blocks]).astype(np.int64)
    female = np.concatenate([np.asarray(b[2], dtype=np.bool_) for b in blocks])
    age = np.concatenate([np.asarray(b[3], dtype=np.float64) for b in blocks])
    mslot = np.concatenate([np.asarray(b[4]) for b in blocks]).astype(np.int64)
    return hh, role, female, age, mslot


def build(rng: np.random.Generator, geo: Geography, names: NamePool, people: int) -> Population:
    """Exactly `people` people in whole households (the last one may be cut short)."""
    n_hh = int(people / 3.2) + 16
    hh_village = rng.choice(len(geo.village_weight), n_hh, p=geo.village_weight).astype(np.int64)
    hh_district = geo.village_district[hh_village]
    hh_urban = geo.district_urban[hh_district]
    hh, role, female, age, mslot = _household_members(rng, n_hh, hh_urban)

    # Order people by household, then head, spouse, parent, children oldest first; cut at `people`.
    order = np.lexsort((-age, role, hh))[:people]
    if len(order) < people:  # cannot happen with the margin above; guard against parameter edits
        raise RuntimeError("household model produced too few people")
    hh, role, female, age, mslot = hh[order], role[order], female[order], age[order], mslot[order]
    used = np.unique(hh)  # households with at least one member, renumbered densely
    hh = np.searchsorted(used, hh)
    hh_village, hh_district, hh_urban = hh_village[used], hh_district[used], hh_urban[used]
    n_hh = len(used)

    # Position of each household's head, spouse and parent in the person order.
    slot = np.full((n_hh, 3), -1, dtype=np.int64)
    for r in (HEAD, SPOUSE, PARENT):
        idx = np.flatnonzero(role == r)
        slot[hh[idx], r] = idx
    mother = np.where(mslot >= 0, slot[hh, mslot.clip(0)], -1)
    # A truncated household may have lost the member a slot points to.
    mother = np.where(mother >= 0, mother, -1)
    hh_head = slot[:, HEAD]

    birth_day = (TODAY - np.floor(age * DAYS_PER_YEAR)).astype(np.int64)

    # Deaths over the last few years, Gompertz-Makeham mortality with higher risk in infancy.
    annual_q = 0.002 + 0.00005 * np.exp(0.085 * age) + 0.03 * np.exp(-2.0 * age)
    died = rng.random(people) < 1.0 - (1.0 - annual_q.clip(0.0, 0.6)) ** DEATH_WINDOW_YEARS
    window_start = TODAY - int(DEATH_WINDOW_YEARS * DAYS_PER_YEAR)
    lo = np.maximum(birth_day, window_start)
    death_day = np.where(died, lo + np.floor(rng.random(people) * (TODAY - lo + 1)), -1).astype(np.int64)
    # A mother cannot die before her child is born.
    has_m = np.flatnonzero(mother >= 0)
    youngest = np.full(people, -1, dtype=np.int64)
    np.maximum.at(youngest, mother[has_m], birth_day[has_m])
    death_day = np.where((death_day >= 0) & (death_day < youngest), youngest, death_day)

    disabled = rng.random(people) < (0.012 + 0.0004 * age)

    # Birthplace: most were born in the district they live in; towns draw migrants from everywhere.
    district = hh_district[hh]
    moved = rng.random(people) < np.where(hh_urban[hh], 0.45, 0.15)
    birth_district = np.where(moved, rng.integers(0, len(geo.district_codes), people), district)

    tradition, given, surname, second = _names(rng, geo, names, hh, role, female, hh_district, hh_head)
    return Population(
        household=hh,
        role=role,
        female=female,
        birth_day=birth_day,
        death_day=death_day,
        mother=mother,
        tradition=tradition,
        given=given,
        surname=surname,
        second=second,
        disabled=disabled,
        birth_district=birth_district.astype(np.int64),
        hh_village=hh_village,
        hh_district=hh_district,
        hh_head=hh_head,
    )


def draw_given(rng: np.random.Generator, names: NamePool, tradition: IntArray, female: BoolArray) -> IntArray:
    """A given name per person, from the person's tradition and sex."""
    out = np.empty(len(tradition), dtype=np.int64)
    for t, trad in enumerate(names.traditions):
        for fem, (pool, p) in ((False, (trad.male, trad.male_p)), (True, (trad.female, trad.female_p))):
            idx = np.flatnonzero((tradition == t) & (female == fem))
            out[idx] = rng.choice(pool, len(idx), p=p)
    return out


def draw_surname(rng: np.random.Generator, names: NamePool, tradition: IntArray) -> IntArray:
    """A family name per person; in patronymic traditions, a man's given name (someone's father)."""
    out = np.empty(len(tradition), dtype=np.int64)
    for t, trad in enumerate(names.traditions):
        idx = np.flatnonzero(tradition == t)
        if trad.spec.patronymic:
            out[idx] = rng.choice(trad.male, len(idx), p=trad.male_p)
        else:
            out[idx] = rng.choice(trad.surnames, len(idx), p=trad.surnames_p)
    return out


def _names(
    rng: np.random.Generator,
    geo: Geography,
    names: NamePool,
    hh: IntArray,
    role: IntArray,
    female: BoolArray,
    hh_district: IntArray,
    hh_head: IntArray,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Names by tradition: a household shares one, spouses sometimes come from another."""
    n = len(hh)
    hh_trad = _categorical_rows(rng, geo.district_traditions[hh_district])
    national = geo.district_traditions.mean(axis=0)
    tradition = hh_trad[hh]
    mixed = (role == SPOUSE) & (rng.random(n) < 0.1)
    tradition = np.where(mixed, rng.choice(len(national), n, p=national), tradition)
    patronymic = np.array([t.spec.patronymic for t in names.traditions])[tradition]
    wife_takes = np.array([t.spec.wife_takes_surname for t in names.traditions])
    second_rate = np.array([t.spec.second_name_rate for t in names.traditions])[tradition]

    given = draw_given(rng, names, tradition, female)
    own = draw_surname(rng, names, tradition)
    own2 = draw_surname(rng, names, tradition)

    head = hh_head[hh]
    head_male = ~female[head]
    head_patr = patronymic[head]
    u = rng.random(n)
    # Head first: everyone else's names are derived from the head's.
    surname = own.copy()
    second = np.where(patronymic, own2, -1)
    head_surname, head_second, head_given = surname[head], second[head], given[head]

    is_spouse, is_child, is_parent, is_other = (role == r for r in (SPOUSE, CHILD, PARENT, OTHER))
    # Wives take the husband's surname where custom has it.
    takes = is_spouse & female & (u < wife_takes[hh_trad[hh]])
    surname = np.where(takes, head_surname, surname)
    # Children: the father's surname, or his given name and surname in patronymic traditions.
    fathered = is_child & head_male
    surname = np.where(fathered & ~head_patr, head_surname, surname)
    surname = np.where(fathered & head_patr, head_given, surname)
    second = np.where(fathered & head_patr, head_surname, second)
    # A lone mother's children: her surname half the time, the absent father's otherwise.
    surname = np.where(is_child & ~head_male & ~head_patr & (u < 0.5), head_surname, surname)
    # The head's father: in patronymic traditions his given name is the head's surname.
    father = is_parent & ~female
    surname = np.where(father & ~head_patr, head_surname, surname)
    given = np.where(father & head_patr, head_surname, given)
    surname = np.where(father & head_patr & (head_second >= 0), head_second, surname)
    mother_of_head = is_parent & female & ~head_patr & (u < wife_takes[hh_trad[hh]])
    surname = np.where(mother_of_head, head_surname, surname)
    surname = np.where(is_other & ~head_patr & (u < 0.5), head_surname, surname)

    # Middle names in traditions that use them.
    middle = draw_given(rng, names, tradition, female)
    has_middle = ~patronymic & (rng.random(n) < second_rate) & (middle != given)
    second = np.where(has_middle, middle, second)
    return tradition, given.astype(np.int64), surname.astype(np.int64), second.astype(np.int64)
