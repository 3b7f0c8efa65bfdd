"""The synthetic country: deterministic, plausible, noisy within bounds, with the truth kept apart."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date
from pathlib import Path

import pytest

from sandbox import phonetic, schema
from sandbox.enrolment import OLD_AGE_GRANT_AGE, OLD_AGE_PENSION_TEST
from sandbox.generator import generate
from sandbox.population import REFERENCE_DATE

PEOPLE = 4_000
TODAY = date.fromisoformat(str(REFERENCE_DATE))


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("country")
    generate(people=PEOPLE, seed=11, out=out, progress=False)
    return out


@contextmanager
def truth(country: Path) -> Iterator[sqlite3.Connection]:
    """The truth file with every agency attached under its code, for cross-file joins."""
    with closing(sqlite3.connect(country / schema.TRUTH_FILE)) as conn:
        for code, file in schema.AGENCY_FILES.items():
            conn.execute(f"ATTACH DATABASE ? AS {code}", (str(country / file),))
        yield conn


def scalar(conn: sqlite3.Connection, sql: str) -> float:
    value = conn.execute(sql).fetchone()[0]
    return 0.0 if value is None else float(value)


def dump(directory: Path) -> dict[str, list[str]]:
    out = {}
    for file in [*schema.AGENCY_FILES.values(), schema.TRUTH_FILE]:
        with closing(sqlite3.connect(directory / file)) as conn:
            out[file] = list(conn.iterdump())
    return out


def test_same_seed_same_country_and_another_seed_another(tmp_path: Path) -> None:
    a = generate(people=1_500, seed=5, out=tmp_path / "a", progress=False)
    b = generate(people=1_500, seed=5, out=tmp_path / "b", progress=False)
    c = generate(people=1_500, seed=6, out=tmp_path / "c", progress=False)
    assert a == b
    first, second, other = dump(tmp_path / "a"), dump(tmp_path / "b"), dump(tmp_path / "c")
    assert first == second
    assert (tmp_path / "a" / schema.MANIFEST_FILE).read_bytes() == (tmp_path / "b" / schema.MANIFEST_FILE).read_bytes()
    for file in first:
        assert first[file] != other[file], file
    assert c["people"] == 1_500


def test_manifest_matches_the_files(country: Path) -> None:
    manifest = json.loads((country / schema.MANIFEST_FILE).read_text())
    assert manifest["people"] == PEOPLE
    assert manifest["seed"] == 11
    assert manifest["reference_date"] == str(REFERENCE_DATE)
    for code, file in manifest["files"].items():
        with closing(sqlite3.connect(country / file)) as conn:
            for table, count in manifest["counts"][code].items():
                assert scalar(conn, f"SELECT count(*) FROM {table}") == count


def test_every_table_is_populated_and_every_index_exists(country: Path) -> None:
    for code, ddl in schema.DDL.items():
        file = schema.AGENCY_FILES.get(code, schema.TRUTH_FILE)
        tables = re.findall(r"CREATE TABLE (\w+)", ddl)
        indexes = set(re.findall(r"CREATE INDEX (\w+)", ddl))
        with closing(sqlite3.connect(country / file)) as conn:
            for table in tables:
                assert scalar(conn, f"SELECT count(*) FROM {table}") > 0, (file, table)
            found = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
            assert indexes <= found, file
    with closing(sqlite3.connect(country / schema.TRUTH_FILE)) as conn:
        assert scalar(conn, "SELECT count(*) FROM person") == PEOPLE


def test_only_the_truth_knows_who_is_who(country: Path) -> None:
    for file in schema.AGENCY_FILES.values():
        with closing(sqlite3.connect(country / file)) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                assert "person_id" not in columns, (file, table)
    with closing(sqlite3.connect(country / schema.TRUTH_FILE)) as conn:
        assert "person_id" in {r[1] for r in conn.execute("PRAGMA table_info(record)")}


def test_truth_covers_every_agency_record_exactly_once(country: Path) -> None:
    keys = {"cra": ("person", "record_id"), "tax": ("taxpayer", "tin"), "ssf": ("member", "ssn"),
            "msp": ("beneficiary", "beneficiary_no")}  # fmt: skip
    with truth(country) as conn:
        for code, (table, key) in keys.items():
            agency = {r[0] for r in conn.execute(f"SELECT {key} FROM {code}.{table}")}
            rows = conn.execute("SELECT record_id FROM record WHERE source = ?", (code,)).fetchall()
            assert len(rows) == len(agency), code
            assert {r[0] for r in rows} == agency, code
        assert scalar(conn, "SELECT count(*) FROM record WHERE person_id NOT IN (SELECT person_id FROM person)") == 0


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_identifier_formats(country: Path) -> None:
    with truth(country) as conn:
        checks = {
            "SELECT record_id FROM cra.person": r"CRA\d{9}",
            "SELECT national_id FROM person WHERE national_id IS NOT NULL": r"\d{10}",
            "SELECT birth_cert_no FROM person WHERE birth_cert_no IS NOT NULL": r"BC/D\d\d/\d{4}/\d{6}",
            "SELECT tin FROM tax.taxpayer": r"TIN\d{8}",
            "SELECT ssn FROM ssf.member": r"SSN\d{9}",
            "SELECT household_id FROM household": r"HH\d{8}",
            "SELECT beneficiary_no FROM msp.beneficiary WHERE programme = 'child-grant'": r"CSG-\d{8}",
            "SELECT beneficiary_no FROM msp.beneficiary WHERE programme = 'old-age-grant'": r"OAG-\d{8}",
            "SELECT beneficiary_no FROM msp.beneficiary WHERE programme = 'disability-grant'": r"DG-\d{8}",
        }
        for sql, pattern in checks.items():
            values = [r[0] for r in conn.execute(sql)]
            assert values, sql
            assert all(re.fullmatch(pattern, v) for v in values), sql
        nids = [r[0] for r in conn.execute("SELECT national_id FROM person WHERE national_id IS NOT NULL")]
        assert len(nids) == len(set(nids))
        assert all(luhn_ok(n) for n in nids)
        certs = [r[0] for r in conn.execute("SELECT birth_cert_no FROM person WHERE birth_cert_no IS NOT NULL")]
        assert len(certs) == len(set(certs))
        keys = conn.execute("SELECT surname, surname_key, given_name, given_key FROM cra.person LIMIT 500")
        for surname, surname_key, given, given_key in keys:
            assert surname_key == phonetic.key(surname)
            assert given_key == phonetic.key(given)


def test_national_id_coverage_is_partial_and_lowest_for_children(country: Path) -> None:
    with truth(country) as conn:

        def coverage(where: str) -> float:
            age = f"(julianday('{TODAY}') - julianday(birth_date)) / 365.25"
            return scalar(conn, f"SELECT avg(national_id IS NOT NULL) FROM person WHERE {where.format(age=age)}")

        children = coverage("{age} < 16")
        adults = coverage("{age} >= 18")
        urban_adults = coverage("{age} >= 18 AND district_code IN (SELECT code FROM district WHERE urban)")
        assert 0.05 < children < 0.3
        assert children < adults < 0.95
        assert adults < urban_adults
        # Birth certificates: common for young children, rare for the old.
        young = scalar(conn, f"SELECT avg(birth_cert_no IS NOT NULL) FROM person WHERE birth_date > '{TODAY.year - 5}'")
        old = scalar(conn, f"SELECT avg(birth_cert_no IS NOT NULL) FROM person WHERE birth_date < '{TODAY.year - 65}'")
        assert young > 0.6
        assert old < 0.3


def test_tin_and_ssn_only_where_there_is_a_formal_record(country: Path) -> None:
    with truth(country) as conn:
        assert scalar(conn, "SELECT count(*) FROM person WHERE (tin IS NOT NULL) != (formal_income > 0)") == 0
        unemployed_taxpayers = """SELECT count(*) FROM tax.taxpayer t JOIN record r ON r.source = 'tax'
                                  AND r.record_id = t.tin JOIN person p USING (person_id) WHERE p.formal_income = 0"""
        assert scalar(conn, unemployed_taxpayers) == 0
        share = scalar(
            conn,
            f"""SELECT avg(formal_income > 0) FROM person WHERE death_date IS NULL
                AND birth_date BETWEEN '{TODAY.year - 64}' AND '{TODAY.year - 18}'""",
        )
        assert 0.05 < share < 0.25
        # Members without a pension or a formal income are past contributors with a history.
        assert scalar(conn, "SELECT count(*) FROM person WHERE ssn IS NOT NULL") > 0
        no_history = """SELECT count(*) FROM ssf.member m WHERE status IN ('active', 'inactive')
                        AND NOT EXISTS (SELECT 1 FROM ssf.contribution c WHERE c.ssn = m.ssn)"""
        assert scalar(conn, no_history) == 0


def test_duplicates_in_the_civil_registry_and_the_programmes(country: Path) -> None:
    with truth(country) as conn:
        for source, low, high in (("cra", 0.01, 0.06), ("msp", 0.002, 0.05)):
            per_person = f"SELECT person_id, count(*) AS n FROM record WHERE source = '{source}' GROUP BY person_id"
            rate = scalar(conn, f"SELECT avg(n > 1) FROM ({per_person})")
            assert low < rate < high, source


def test_noise_is_present_but_bounded_and_worst_at_the_ministry(country: Path) -> None:
    def same_names(source: str, table: str, key: str) -> float:
        return scalar(
            conn,
            f"""SELECT avg(lower(a.surname) = lower(p.surname) AND lower(a.given_name) = lower(p.given_name))
                FROM {source}.{table} a JOIN record r ON r.source = '{source}' AND r.record_id = a.{key}
                JOIN person p USING (person_id)""",
        )

    with truth(country) as conn:
        cra = same_names("cra", "person", "record_id")
        msp = same_names("msp", "beneficiary", "beneficiary_no")
        assert 0.93 < cra < 1.0
        assert 0.65 < msp < 0.95
        assert msp < cra
        year_only = scalar(conn, "SELECT avg(birth_date IS NULL) FROM msp.beneficiary")
        assert 0.01 < year_only < 0.5
        assert scalar(conn, "SELECT count(*) FROM msp.beneficiary WHERE birth_year IS NULL") == 0


def test_ages_mothers_and_the_age_pyramid(country: Path) -> None:
    with truth(country) as conn:
        assert scalar(conn, f"SELECT count(*) FROM person WHERE birth_date > '{TODAY}'") == 0
        assert scalar(conn, f"SELECT count(*) FROM person WHERE birth_date < '{TODAY.year - 101}'") == 0
        gap = """SELECT min(julianday(c.birth_date) - julianday(m.birth_date)) / 365.25
                 FROM person c JOIN person m ON m.person_id = c.mother_id"""
        assert scalar(conn, gap) >= 15.9
        assert scalar(conn, "SELECT count(*) FROM person c JOIN person m ON m.person_id = c.mother_id "
                            "WHERE m.sex != 'F'") == 0  # fmt: skip
        assert scalar(conn, "SELECT count(*) FROM person WHERE mother_id IS NOT NULL") > PEOPLE / 4
        alive = "death_date IS NULL"
        under_15 = scalar(conn, f"SELECT count(*) FROM person WHERE {alive} AND birth_date > '{TODAY.year - 15}'")
        over_65 = scalar(conn, f"SELECT count(*) FROM person WHERE {alive} AND birth_date < '{TODAY.year - 65}'")
        living = scalar(conn, f"SELECT count(*) FROM person WHERE {alive}")
        assert over_65 < under_15 / 4
        assert 0.3 < under_15 / living < 0.5
        # The civil registry knows the mother's record for some registered children.
        assert scalar(conn, "SELECT count(*) FROM cra.person WHERE mother_record_id IS NOT NULL") > 0


def test_deaths_are_registered_late_and_not_always(country: Path) -> None:
    with truth(country) as conn:
        died = scalar(conn, "SELECT count(*) FROM person WHERE death_date IS NOT NULL")
        assert died > 0
        assert scalar(conn, f"SELECT count(*) FROM person WHERE death_date < '{TODAY.year - 4}'") == 0
        registered = """SELECT count(DISTINCT r.person_id) FROM cra.person c JOIN record r
                        ON r.source = 'cra' AND r.record_id = c.record_id WHERE c.death_date IS NOT NULL"""
        assert 0 < scalar(conn, registered) < died
        assert scalar(conn, "SELECT count(*) FROM cra.person WHERE death_registered_on < death_date") == 0


def test_programmes_have_exclusion_and_inclusion_errors(country: Path) -> None:
    with truth(country) as conn:
        oag = """SELECT p.* FROM msp.beneficiary b JOIN record r ON r.source = 'msp'
                 AND r.record_id = b.beneficiary_no JOIN person p USING (person_id)
                 WHERE b.programme = 'old-age-grant' AND b.status = 'active'"""
        elderly = f"birth_date < '{TODAY.year - OLD_AGE_GRANT_AGE}' AND death_date IS NULL"
        excluded = f"""SELECT count(*) FROM person WHERE {elderly} AND pension_monthly <= {OLD_AGE_PENSION_TEST}
                       AND person_id NOT IN (SELECT person_id FROM ({oag}))"""
        assert scalar(conn, excluded) > 0
        dead_or_pensioned = (
            f"SELECT count(*) FROM ({oag}) WHERE death_date IS NOT NULL OR pension_monthly > {OLD_AGE_PENSION_TEST}"
        )
        assert scalar(conn, dead_or_pensioned) > 0
        disabled = scalar(conn, "SELECT avg(disabled) FROM person")
        assert 0.01 < disabled < 0.04
        caregivers = """SELECT avg(caregiver_name IS NOT NULL), avg(caregiver_national_id IS NOT NULL)
                        FROM msp.beneficiary WHERE programme = 'child-grant'"""
        named, with_id = conn.execute(caregivers).fetchone()
        assert named > 0.95
        assert 0.3 < with_id < 0.95
