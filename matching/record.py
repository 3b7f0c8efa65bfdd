"""The canonical person record every source is mapped into before linkage.

Agencies name and shape their columns differently; linkage compares one shape only, so each source is
mapped once (see `matching.sources`) and everything downstream speaks this record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Columns of the canonical record, in order; a DataFrame of records has exactly these columns.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "record_id",
    "source",
    "given_name",
    "second_name",
    "surname",
    "sex",
    "birth_date",
    "birth_year",
    "mother_name",
    "district",
    "locality",
    "national_id",
)


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person as one source recorded them: raw values, before normalisation.

    `birth_date` is ISO `YYYY-MM-DD` or None when only the year (or nothing) is known.
    """

    record_id: str
    source: str
    given_name: str | None = None
    second_name: str | None = None
    surname: str | None = None
    sex: str | None = None
    birth_date: str | None = None
    birth_year: int | None = None
    mother_name: str | None = None
    district: str | None = None
    locality: str | None = None
    national_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
