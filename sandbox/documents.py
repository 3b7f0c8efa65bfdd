"""Identity documents and agency numbers: who holds which, and the numbers themselves.

Coverage is uneven as in the countries imitated: national IDs reach most urban adults but fewer of
the rural poor and the elderly, and few children; birth certificates are common for the young and
rare for the old. Tax and social security numbers exist only where there is a formal record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sandbox.economy import MEMBER_NONE, Economy
from sandbox.geography import Geography
from sandbox.population import Population

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]


#: A None that numpy's typed API accepts, for elementwise tests and fills of nullable columns.
NONE = np.array(None, dtype=object)


def present(values: ObjArray) -> BoolArray:
    """Which entries of a nullable column hold a value."""
    return np.asarray(np.not_equal(values, NONE))


@dataclass
class Documents:
    national_id: ObjArray  # str or None, per person
    birth_cert: ObjArray
    tin: ObjArray
    ssn: ObjArray
    #: Unused national ID numbers, for people the registry issued a second ID by mistake.
    spare_national_ids: list[str]

    def has_national_id(self) -> BoolArray:
        return present(self.national_id)


def unique_numbers(rng: np.random.Generator, n: int, low: int, high: int) -> IntArray:
    """n distinct integers in [low, high), in random order, without a set or a rejection loop."""
    step = (high - low) // max(n, 1)
    if step < 1:
        raise ValueError(f"cannot draw {n} distinct numbers from [{low}, {high})")
    values = low - 1 + np.cumsum(rng.integers(1, step + 1, n))
    return np.asarray(rng.permutation(values), dtype=np.int64)


def luhn(payload: IntArray, digits: int) -> IntArray:
    """Append a Luhn check digit, as ID cards do, so that a mistyped number is usually detectable."""
    total = np.zeros(len(payload), dtype=np.int64)
    rest = payload.copy()
    for i in range(digits):
        d = rest % 10
        rest //= 10
        if i % 2 == 0:  # doubled: these end up in odd positions from the right after the check digit
            d = 2 * d
            d = np.where(d > 9, d - 9, d)
        total += d
    return np.asarray(payload * 10 + (10 - total % 10) % 10, dtype=np.int64)


def formatted(prefix: str, numbers: IntArray, width: int) -> list[str]:
    return [f"{prefix}{v:0{width}d}" for v in numbers.tolist()]


def _scatter(mask: BoolArray, values: list[str]) -> ObjArray:
    out = np.full(len(mask), None, dtype=object)
    out[mask] = values
    return out


def build(rng: np.random.Generator, geo: Geography, pop: Population, econ: Economy) -> Documents:
    n = pop.size
    age = pop.age()
    urban = pop.urban(geo)
    poor = econ.poor(pop)
    birth_year = pop.birth_year()

    nid_rate = np.where(urban, 0.86, 0.74) - np.where(poor, 0.12, 0.0) - np.where(age >= 65, 0.15, 0.0)
    nid_rate = np.where(age < 18, 0.55 * nid_rate, nid_rate)
    nid_rate = np.where(age < 16, 0.14, nid_rate)
    nid_rate = np.where(econ.member != MEMBER_NONE, 0.98, nid_rate)
    has_nid = rng.random(n) < nid_rate
    spare = n // 20 + 10
    numbers = luhn(unique_numbers(rng, int(has_nid.sum()) + spare, 100_000_000, 1_000_000_000), 9)
    nids = formatted("", numbers, 10)
    national_id = _scatter(has_nid, nids[: len(nids) - spare])

    bc_rate = np.select(
        [birth_year >= 2015, birth_year >= 2000, birth_year >= 1980, birth_year >= 1960],
        [0.82, 0.62, 0.36, 0.2],
        0.08,
    ) + np.where(urban, 0.1, -0.05)
    has_bc = rng.random(n) < bc_rate
    holders = np.flatnonzero(has_bc)
    # Serial numbers count up per district and year of birth, in an order unrelated to the household.
    group = pop.birth_district[holders] * 1000 + (birth_year[holders] - 1900)
    order = np.lexsort((rng.random(len(holders)), group))
    sorted_group = group[order]
    starts = np.searchsorted(sorted_group, sorted_group, side="left")
    serial = np.empty(len(holders), dtype=np.int64)
    serial[order] = np.arange(len(holders)) - starts + 1
    codes = geo.district_codes
    certs = [
        f"BC/{codes[d]}/{y}/{s:06d}"
        for d, y, s in zip(
            pop.birth_district[holders].tolist(), birth_year[holders].tolist(), serial.tolist(), strict=True
        )
    ]
    birth_cert = _scatter(has_bc, certs)

    has_tin = econ.formal
    tin = _scatter(has_tin, formatted("TIN", unique_numbers(rng, int(has_tin.sum()), 0, 10**8), 8))
    has_ssn = econ.member != MEMBER_NONE
    ssn = _scatter(has_ssn, formatted("SSN", unique_numbers(rng, int(has_ssn.sum()), 0, 10**9), 9))
    return Documents(national_id, birth_cert, tin, ssn, nids[len(nids) - spare :])
