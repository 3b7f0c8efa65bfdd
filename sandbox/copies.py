"""An agency's copy of the people it knows: the true values, put through the agency's noise profile.

The same person appears in several agencies, and sometimes twice in one, each copy drifting from the
truth independently. Everything that can be is vectorised; only the few records whose names get an
error go through Python string code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sandbox import noise
from sandbox.documents import Documents, present
from sandbox.geography import Geography
from sandbox.noise import NoiseProfile
from sandbox.population import DAYS_PER_YEAR, TODAY, Population, year_of

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]


def iso(days: IntArray) -> ObjArray:
    """Day numbers as ISO date strings, in one numpy call."""
    return np.asarray(np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object))


def iso_or_none(days: IntArray) -> ObjArray:
    """Day numbers as ISO dates, None where the day number is negative (no date)."""
    out = iso(np.maximum(days, 0))
    out[days < 0] = None
    return out


def codes(table: tuple[str, ...], idx: IntArray) -> ObjArray:
    arr = np.empty(len(table), dtype=object)
    arr[:] = table
    return np.asarray(arr[idx])


@dataclass
class Copy:
    person: IntArray
    duplicate: BoolArray
    surname: ObjArray
    given: ObjArray
    second: ObjArray  # None where the agency holds no second name
    sex: ObjArray
    birth_day: IntArray  # as the agency holds it (after date errors), full date or not
    year_only: BoolArray  # the agency knows only the birth year
    birth_year: IntArray
    district: ObjArray
    village: ObjArray
    national_id: ObjArray

    def birth_date(self, year_only_as: str | None = None) -> ObjArray:
        """The birth date column: None where only the year is known, or a conventional day of that year."""
        out = iso(self.birth_day)
        if year_only_as is None:
            out[self.year_only] = None
        else:
            out[self.year_only] = [f"{y}-{year_only_as}" for y in self.birth_year[self.year_only].tolist()]
        return out


class Copier:
    """Makes noisy copies for one country; one random stream per agency keeps agencies independent."""

    def __init__(self, seed: int, geo: Geography, pop: Population, docs: Documents, names: ObjArray) -> None:
        self.seed = seed
        self.geo = geo
        self.pop = pop
        self.docs = docs
        # Index -1 (no second name) lands on the trailing None.
        self.names = np.append(names, np.array([None], dtype=object))

    def streams(self, agency: str) -> tuple[np.random.Generator, random.Random]:
        salt = int.from_bytes(agency.encode(), "big")
        return (
            np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, salt]))),
            random.Random(f"{self.seed}:{agency}"),
        )

    def with_duplicates(self, rng: np.random.Generator, person: IntArray, rate: float) -> tuple[IntArray, BoolArray]:
        """The agency's people plus a second record for a share of them."""
        dup = person[rng.random(len(person)) < rate]
        both = np.concatenate([person, dup])
        return both, np.concatenate([np.zeros(len(person), np.bool_), np.ones(len(dup), np.bool_)])

    def copy(
        self,
        profile: NoiseProfile,
        person: IntArray,
        duplicate: BoolArray,
        rng: np.random.Generator,
        prng: random.Random,
    ) -> Copy:
        pop, geo = self.pop, self.geo
        k = len(person)
        surname = np.asarray(self.names[pop.surname[person]])
        given = np.asarray(self.names[pop.given[person]])
        second = np.asarray(self.names[pop.second[person]])
        rate = noise.name_error_rate(profile)
        for column in (surname, given, second):
            for i in np.flatnonzero(rng.random(k) < rate).tolist():
                value = column[i]
                if value is not None:
                    column[i] = noise.perturb(value, profile, prng)
        swap = rng.random(k) < profile.swap
        surname[swap], given[swap] = given[swap], surname[swap].copy()
        for i in np.flatnonzero(rng.random(k) < profile.upper).tolist():
            surname[i] = surname[i].upper()
            given[i] = given[i].upper()
            if second[i] is not None:
                second[i] = second[i].upper()

        birth_day = pop.birth_day[person].copy()
        wrong = np.flatnonzero(rng.random(k) < profile.dob_error)
        birth_day[wrong] = _misdate(rng, birth_day[wrong])
        birth_year = year_of(birth_day)
        age = (TODAY - birth_day) / DAYS_PER_YEAR
        band = np.where(age < 40, 0, np.where(age < 65, 1, 2))
        year_only = rng.random(k) < np.asarray(profile.year_only)[band]
        # Those who know only their year often round it (age heaping).
        heaped = year_only & (age >= 50) & (rng.random(k) < 0.3)
        birth_year = np.where(heaped, np.round(birth_year / 5.0).astype(np.int64) * 5, birth_year)

        village = pop.hh_village[pop.household[person]].copy()
        stale = rng.random(k) < profile.stale_address
        village[stale] = rng.choice(len(geo.village_weight), int(stale.sum()), p=geo.village_weight)
        district = geo.village_district[village]

        nid = np.asarray(self.docs.national_id[person]).copy()
        has = present(nid)
        nid[has & (rng.random(k) < profile.missing_nid)] = None
        for i in np.flatnonzero(present(nid) & (rng.random(k) < profile.nid_typo)).tolist():
            nid[i] = noise.national_id(nid[i], prng)

        sex = np.where(pop.female[person], "F", "M").astype(object)
        return Copy(
            person=person,
            duplicate=duplicate,
            surname=surname,
            given=given,
            second=second,
            sex=sex,
            birth_day=birth_day,
            year_only=year_only,
            birth_year=birth_year.astype(np.int64),
            district=codes(geo.district_codes, district),
            village=codes(geo.village_codes, village),
            national_id=nid,
        )


def _misdate(rng: np.random.Generator, days: IntArray) -> IntArray:
    """Day and month exchanged where that makes a date, a few days off otherwise."""
    d = days.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    year_start = d.astype("datetime64[Y]")
    month = (month_start - year_start.astype("datetime64[M]")).astype(np.int64) + 1
    day = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    swappable = (day <= 12) & (day != month)
    swapped = (year_start.astype("datetime64[M]") + (day - 1).astype("timedelta64[M]")).astype("datetime64[D]") + (
        month - 1
    ).astype("timedelta64[D]")
    shifted = d + rng.integers(-10, 11, len(days)).astype("timedelta64[D]")
    out = np.where(swappable, swapped, shifted).astype(np.int64)
    return np.asarray(np.minimum(out, TODAY), dtype=np.int64)
