"""Write a synthetic country: four agency databases, and the ground truth in a file of its own.

The stages run in a fixed order from one seeded random stream (the agencies' noise from streams of
their own), so the same people count and seed give the same country, row for row. The country's
"today" is a constant, never the clock. See docs/sandbox.md for what the country looks like.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sandbox import agency_tables, documents, economy, enrolment, geography, names, population, schema
from sandbox.agency_tables import Agency, Columns, Country
from sandbox.copies import Copier, codes, iso, iso_or_none
from sandbox.documents import NONE
from sandbox.noise import PROFILES
from sandbox.population import RELATIONSHIPS

GENERATOR_VERSION = 1
_CHUNK = 50_000


class _Progress:
    """One line per stage on stderr, with its duration; counts only, never a person's data."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        if self.enabled:
            now = time.perf_counter()
            print(f"[{now - self.started:6.1f}s] {what} ({now - began:.1f}s)", file=sys.stderr, flush=True)


def _insert(conn: sqlite3.Connection, table: str, columns: Columns) -> int:
    """Bulk-load one table in chunks, so only one chunk of rows exists as Python tuples at a time."""
    names_ = list(columns)
    values = list(columns.values())
    n = len(values[0])
    placeholders = ", ".join("?" * len(names_))
    # Table and column names come from this module and the schema, never from input.
    sql = f"INSERT INTO {table} ({', '.join(names_)}) VALUES ({placeholders})"  # noqa: S608
    for start in range(0, n, _CHUNK):
        parts = [v[start : start + _CHUNK] for v in values]
        lists = [p.tolist() if isinstance(p, np.ndarray) else p for p in parts]
        conn.executemany(sql, zip(*lists, strict=True))
    return n


def _write(path: Path, ddl: str, tables: dict[str, Columns]) -> dict[str, int]:
    """One file, one transaction; indexes are built after the load, which is faster than during it."""
    statements = [s.strip() for s in ddl.split(";") if s.strip()]
    creates = [s for s in statements if not s.upper().startswith("CREATE INDEX")]
    indexes = [s for s in statements if s.upper().startswith("CREATE INDEX")]
    conn = schema.create(path, ";\n".join(creates) + ";")
    try:
        counts = {table: _insert(conn, table, cols) for table, cols in tables.items()}
        for statement in indexes:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()
    return counts


def _geography_tables(geo: geography.Geography) -> dict[str, Columns]:
    rows = geography.rows(geo)
    cols = {
        "region": ("code", "name"),
        "district": ("code", "name", "region_code", "urban"),
        "village": ("code", "name", "district_code"),
    }
    return {t: {c: [r[i] for r in rows[t]] for i, c in enumerate(cols[t])} for t in cols}


def _truth_tables(country: Country, agencies: dict[str, Agency]) -> dict[str, Columns]:
    pop, econ, docs, geo = country.pop, country.econ, country.docs, country.geo
    hh = pop.household
    pool = country.copier.names
    person: Columns = {
        "person_id": np.arange(1, pop.size + 1),
        "surname": pool[pop.surname],
        "given_name": pool[pop.given],
        "second_name": pool[pop.second],
        "sex": np.where(pop.female, "F", "M").astype(object),
        "birth_date": iso(pop.birth_day),
        "death_date": iso_or_none(pop.death_day),
        "tradition": np.asarray(names.TRADITION_CODES, dtype=object)[pop.tradition],
        "mother_id": np.where(pop.mother >= 0, pop.mother + 1, NONE),
        "household_id": country.household_ids[hh],
        "relationship": np.asarray(RELATIONSHIPS, dtype=object)[pop.role],
        "district_code": codes(geo.district_codes, pop.hh_district[hh]),
        "village_code": codes(geo.village_codes, pop.hh_village[hh]),
        "birth_district": codes(geo.district_codes, pop.birth_district),
        "national_id": docs.national_id,
        "birth_cert_no": docs.birth_cert,
        "tin": docs.tin,
        "ssn": docs.ssn,
        "formal_income": econ.formal_income,
        "pension_monthly": econ.pension_monthly,
        "disabled": pop.disabled.astype(np.int64),
        "poor": econ.poor(pop).astype(np.int64),
    }
    household: Columns = {
        "household_id": country.household_ids,
        "head_person_id": pop.hh_head + 1,
        "district_code": codes(geo.district_codes, pop.hh_district),
        "village_code": codes(geo.village_codes, pop.hh_village),
        "size": econ.hh_size,
        "income": econ.hh_income,
    }
    sources = [np.full(len(a.record_ids), s, dtype=object) for s, a in agencies.items()]
    record: Columns = {
        "source": np.concatenate(sources),
        "record_id": [r for a in agencies.values() for r in a.record_ids],
        "person_id": np.concatenate([a.persons + 1 for a in agencies.values()]),
    }
    return {**_geography_tables(geo), "person": person, "household": household, "record": record}


def generate(people: int, seed: int, out: Path, progress: bool = True) -> dict[str, Any]:
    """Write the country into `out` and return its manifest (also written as country.json)."""
    if people < 1:
        raise ValueError("a country needs people")
    out.mkdir(parents=True, exist_ok=True)
    report = _Progress(progress)
    rng = np.random.Generator(np.random.PCG64(seed))

    with report.stage("map and name lists"):
        geo = geography.build(rng)
        pool = names.pool()
    with report.stage(f"{people:,} people in households"):
        pop = population.build(rng, geo, pool, people)
    with report.stage("incomes, contributions and pensions"):
        econ = economy.build(rng, geo, pop)
    with report.stage("identity documents"):
        docs = documents.build(rng, geo, pop, econ)
    with report.stage("programme enrolments"):
        enrol = enrolment.build(rng, geo, pop, econ)
        household_ids = np.asarray(
            documents.formatted("HH", documents.unique_numbers(rng, len(pop.hh_head), 0, 10**8), 8), dtype=object
        )
    country = Country(
        seed=seed,
        geo=geo,
        names=pool,
        pop=pop,
        econ=econ,
        docs=docs,
        enrol=enrol,
        household_ids=household_ids,
        copier=Copier(seed, geo, pop, docs, pool.as_array()),
    )

    counts: dict[str, dict[str, int]] = {}
    agencies: dict[str, Agency] = {}
    builders = {"cra": agency_tables.cra, "tax": agency_tables.tax, "ssf": agency_tables.ssf, "msp": agency_tables.msp}
    for code, build in builders.items():
        with report.stage(f"{code} records"):
            agency = build(country)
        with report.stage(f"{code} written"):
            tables = {**_geography_tables(geo), **agency.tables} if code == "cra" else agency.tables
            counts[code] = _write(out / schema.AGENCY_FILES[code], schema.DDL[code], tables)
        agencies[code] = Agency(record_ids=agency.record_ids, persons=agency.persons)  # drop the columns
    with report.stage("ground truth written"):
        counts["truth"] = _write(out / schema.TRUTH_FILE, schema.DDL["truth"], _truth_tables(country, agencies))

    manifest: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "people": people,
        "households": len(pop.hh_head),
        "reference_date": str(population.REFERENCE_DATE),
        "files": {**schema.AGENCY_FILES, "truth": schema.TRUTH_FILE},
        "counts": counts,
        "poverty_line_yearly_per_member": economy.POVERTY_LINE,
        "programmes": enrolment.rules(),
        "noise": {code: vars(profile) for code, profile in sorted(PROFILES.items())},
    }
    (out / schema.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
