"""A test country: generated when the generator is there, plus known records with exact values.

The known records use identifiers in ranges of their own; any generated row that happens to share
one is removed first, so the tests can assert exact answers.
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

from sandbox import phonetic
from sandbox.schema import AGENCY_FILES, DDL, create

PEOPLE = 2000
SEED = 7

# --- civil registry --------------------------------------------------------------------------------

AMINA: dict[str, Any] = {
    "record_id": "CRA900000001",
    "national_id": "9000000001",
    "birth_cert_no": "BC/D01/1950/900001",
    "surname": "Mwangi",
    "given_name": "Amina",
    "second_name": "Wanjiru",
    "sex": "F",
    "birth_date": "1950-03-14",
    "birth_year": 1950,
    "mother_name": "Grace Njeri",
    "mother_record_id": None,
    "birth_district": "D01",
    "district_code": "D01",
    "village_code": "V0101",
    "household_id": "HH90000001",
    "relationship": "head",
    "death_date": None,
    "death_registered_on": None,
    "registered_on": "1950-04-01",
}
JOSEPH: dict[str, Any] = AMINA | {
    "record_id": "CRA900000002",
    "national_id": "9000000002",
    "birth_cert_no": None,
    "given_name": "Joseph",
    "second_name": None,
    "sex": "M",
    "birth_date": "1948-07-01",
    "birth_year": 1948,
    "mother_name": None,
    "relationship": "spouse",
    "death_date": "2099-05-02",
    "death_registered_on": "2099-05-20",
    "registered_on": "1948-08-01",
}
BARAKA: dict[str, Any] = AMINA | {
    "record_id": "CRA900000003",
    "national_id": None,
    "birth_cert_no": "BC/D01/2015/900003",
    "given_name": "Baraka",
    "second_name": None,
    "sex": "M",
    "birth_date": "2015-01-20",
    "birth_year": 2015,
    "mother_name": "Amina Mwangi",
    "mother_record_id": "CRA900000001",
    "relationship": "child",
    "registered_on": "2015-02-01",
}
PETER: dict[str, Any] = AMINA | {
    "record_id": "CRA900000004",
    "national_id": "9000000004",
    "birth_cert_no": None,
    "surname": "Otieno",
    "given_name": "Peter",
    "second_name": None,
    "sex": "M",
    "birth_date": None,
    "birth_year": 1960,
    "mother_name": None,
    "birth_district": "D02",
    "district_code": "D02",
    "village_code": None,
    "household_id": "HH90000002",
    "relationship": "head",
    "registered_on": "1961-01-01",
}
#: A duplicate registration of Amina, without national ID, in another district.
AMINA_DUPLICATE: dict[str, Any] = AMINA | {
    "record_id": "CRA900000005",
    "national_id": None,
    "birth_cert_no": None,
    "district_code": "D02",
    "household_id": None,
    "relationship": None,
    "registered_on": "1990-06-01",
}
MARY: dict[str, Any] = AMINA | {
    "record_id": "CRA900000006",
    "national_id": "9000000006",
    "birth_cert_no": None,
    "surname": "Achieng",
    "given_name": "Mary",
    "second_name": None,
    "birth_date": "1940-01-01",
    "birth_year": 1940,
    "household_id": "HH90000003",
    "death_date": "2099-01-10",
    "death_registered_on": "2099-02-01",
    "registered_on": "1940-02-01",
}
CRA_PEOPLE: list[dict[str, Any]] = [AMINA, JOSEPH, BARAKA, PETER, AMINA_DUPLICATE, MARY]

# --- tax, social security, programme MIS ---------------------------------------------------------

TAXPAYERS: list[dict[str, Any]] = [
    {
        "tin": "TIN90000001",
        "national_id": "9000000004",
        "surname": "Otieno",
        "given_name": "Peter",
        "sex": "M",
        "birth_date": None,
        "district_code": "D02",
        "registered_on": "1985-01-01",
    },
    {
        "tin": "TIN90000002",
        "national_id": "9000000004",
        "surname": "Otieno",
        "given_name": "Peter",
        "sex": "M",
        "birth_date": None,
        "district_code": "D02",
        "registered_on": "2010-01-01",
    },
]
INCOMES: list[dict[str, Any]] = [
    {
        "tin": "TIN90000001",
        "year": 2022,
        "kind": "employment",
        "payer": "Acme Ltd",
        "gross_income": 120000,
        "tax_paid": 12000,
    },
    {
        "tin": "TIN90000001",
        "year": 2023,
        "kind": "employment",
        "payer": "Acme Ltd",
        "gross_income": 130000,
        "tax_paid": 13000,
    },
    {"tin": "TIN90000001", "year": 2023, "kind": "business", "payer": "self", "gross_income": 20000, "tax_paid": 1000},
    {"tin": "TIN90000002", "year": 2021, "kind": "business", "payer": "self", "gross_income": 5000, "tax_paid": 0},
]
MEMBERS: list[dict[str, Any]] = [
    {
        "ssn": "SSN900000001",
        "national_id": "9000000004",
        "surname": "Otieno",
        "given_name": "Peter",
        "sex": "M",
        "birth_date": None,
        "district_code": "D02",
        "status": "active",
        "registered_on": "1985-01-01",
    },
    {
        "ssn": "SSN900000002",
        "national_id": "9000000001",
        "surname": "Mwangi",
        "given_name": "Amina",
        "sex": "F",
        "birth_date": "1950-03-14",
        "district_code": "D01",
        "status": "pensioner",
        "registered_on": "1975-01-01",
    },
]
CONTRIBUTIONS: list[dict[str, Any]] = [
    {"ssn": "SSN900000001", "year": 2022, "employer": "Acme Ltd", "months": 12, "amount": 24000},
    {"ssn": "SSN900000001", "year": 2023, "employer": "Acme Ltd", "months": 10, "amount": 21000},
]
PENSIONS: list[dict[str, Any]] = [
    {
        "ssn": "SSN900000002",
        "kind": "old-age",
        "monthly_amount": 3500,
        "start_date": "2015-04-01",
        "status": "in-payment",
    }
]
_BENEFICIARY: dict[str, Any] = {
    "second_name": None,
    "district_code": "D01",
    "village_code": "V0101",
    "caregiver_name": None,
    "caregiver_national_id": None,
}
BENEFICIARIES: list[dict[str, Any]] = [
    _BENEFICIARY
    | {
        "beneficiary_no": "OAG-90000001",
        "programme": "old-age-grant",
        "national_id": "9000000001",
        "surname": "Mwangi",
        "given_name": "Amina",
        "second_name": "Wanjiru",
        "sex": "F",
        "birth_date": "1950-03-14",
        "birth_year": 1950,
        "enrolled_on": "2015-05-01",
        "status": "active",
        "monthly_amount": 1500,
    },
    _BENEFICIARY
    | {
        "beneficiary_no": "CSG-90000002",
        "programme": "child-grant",
        "national_id": None,
        "surname": "Mwangi",
        "given_name": "Baraka",
        "sex": "M",
        "birth_date": "2015-01-20",
        "birth_year": 2015,
        "caregiver_name": "Amina Mwangi",
        "caregiver_national_id": "9000000001",
        "enrolled_on": "2015-06-01",
        "status": "active",
        "monthly_amount": 500,
    },
    _BENEFICIARY
    | {
        "beneficiary_no": "DG-90000003",
        "programme": "disability-grant",
        "national_id": "9000000004",
        "surname": "Otieno",
        "given_name": "Peter",
        "sex": "M",
        "birth_date": None,
        "birth_year": 1960,
        "district_code": "D02",
        "village_code": None,
        "enrolled_on": "2020-01-01",
        "status": "suspended",
        "monthly_amount": 800,
    },
]


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        cols = ", ".join(row)
        conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _clear(conn: sqlite3.Connection, table: str, column: str, values: list[Any]) -> None:
    values = [v for v in values if v is not None]
    conn.execute(f"DELETE FROM {table} WHERE {column} IN ({', '.join('?' * len(values))})", values)


def _open(out: Path, agency: str, generated: bool) -> sqlite3.Connection:
    path = out / AGENCY_FILES[agency]
    return sqlite3.connect(path) if generated else create(path, DDL[agency])


def _generator() -> Any:
    """The generator's `generate`, or None while it is not written yet."""
    try:
        return importlib.import_module("sandbox.generator").generate
    except (ImportError, AttributeError):
        return None


def build_country(out: Path, people: int = PEOPLE, seed: int = SEED) -> bool:
    """Write a country into `out`; True when it was generated (else only the known records)."""
    out.mkdir(parents=True, exist_ok=True)
    generated = False
    generate = _generator()
    if generate is not None:
        generate(people=people, seed=seed, out=out, progress=False)
        generated = True

    conn = _open(out, "cra", generated)
    ids = [p["national_id"] for p in CRA_PEOPLE]
    _clear(conn, "person", "record_id", [p["record_id"] for p in CRA_PEOPLE])
    _clear(conn, "person", "national_id", ids)
    _clear(conn, "person", "birth_cert_no", [p["birth_cert_no"] for p in CRA_PEOPLE])
    _clear(conn, "person", "household_id", [p["household_id"] for p in CRA_PEOPLE])
    rows = [
        p | {"surname_key": phonetic.key(p["surname"]), "given_key": phonetic.key(p["given_name"])} for p in CRA_PEOPLE
    ]
    _insert(conn, "person", rows)
    conn.commit()
    conn.close()

    conn = _open(out, "tax", generated)
    _clear(conn, "taxpayer", "tin", [t["tin"] for t in TAXPAYERS])
    _clear(conn, "taxpayer", "national_id", ids)
    _clear(conn, "income", "tin", [t["tin"] for t in TAXPAYERS])
    _insert(conn, "taxpayer", TAXPAYERS)
    _insert(conn, "income", INCOMES)
    conn.commit()
    conn.close()

    conn = _open(out, "ssf", generated)
    ssns = [m["ssn"] for m in MEMBERS]
    _clear(conn, "member", "ssn", ssns)
    _clear(conn, "member", "national_id", ids)
    _clear(conn, "contribution", "ssn", ssns)
    _clear(conn, "pension", "ssn", ssns)
    _insert(conn, "member", MEMBERS)
    _insert(conn, "contribution", CONTRIBUTIONS)
    _insert(conn, "pension", PENSIONS)
    conn.commit()
    conn.close()

    conn = _open(out, "msp", generated)
    _clear(conn, "beneficiary", "beneficiary_no", [b["beneficiary_no"] for b in BENEFICIARIES])
    _clear(conn, "beneficiary", "national_id", ids)
    _insert(conn, "beneficiary", BENEFICIARIES)
    conn.commit()
    conn.close()
    return generated
