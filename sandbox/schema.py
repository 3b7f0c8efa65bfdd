"""The databases of the sandbox country's agencies, and of its ground truth.

Each agency keeps its own SQLite file, as a real agency keeps its own database; the generator writes
them and the agency servers read them. The ground truth lives in a file that no server opens.
Dates are ISO strings (`YYYY-MM-DD`); a date known only by its year has `birth_date` NULL and
`birth_year` set. Money is in whole units of the sandbox currency.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: File name of each agency's database inside a country directory, by agency code.
AGENCY_FILES: dict[str, str] = {
    "cra": "cra.sqlite",
    "tax": "tax.sqlite",
    "ssf": "ssf.sqlite",
    "msp": "msp.sqlite",
}
TRUTH_FILE = "truth.sqlite"
MANIFEST_FILE = "country.json"

GEOGRAPHY_DDL = """
CREATE TABLE region (code TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE district (code TEXT PRIMARY KEY, name TEXT NOT NULL, region_code TEXT NOT NULL,
                       urban INTEGER NOT NULL);
CREATE TABLE village (code TEXT PRIMARY KEY, name TEXT NOT NULL, district_code TEXT NOT NULL);
"""

#: Civil Registration Authority: one row per registration record (a person may have two: duplicates).
CRA_DDL = (
    GEOGRAPHY_DDL
    + """
CREATE TABLE person (
    record_id TEXT PRIMARY KEY,          -- 'CRA' + 9 digits
    national_id TEXT,                    -- 10 digits, NULL when the person has none
    birth_cert_no TEXT,                  -- 'BC/' + district + '/' + year + '/' + serial, or NULL
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    second_name TEXT,
    sex TEXT NOT NULL,                   -- 'M' or 'F'
    birth_date TEXT,                     -- NULL when only the year is known
    birth_year INTEGER,
    mother_name TEXT,                    -- mother's full name as recorded, 'given surname'
    mother_record_id TEXT,               -- the mother's record, where registered
    birth_district TEXT,                 -- place of birth (district code)
    district_code TEXT NOT NULL,         -- residence as last recorded (may be stale)
    village_code TEXT,
    household_id TEXT,                   -- 'HH' + 8 digits
    relationship TEXT,                   -- to the household head: head, spouse, child, parent, other
    death_date TEXT,                     -- NULL while no death is registered
    death_registered_on TEXT,
    registered_on TEXT NOT NULL,
    surname_key TEXT NOT NULL,           -- sandbox.phonetic.key(surname), the CRA's search index
    given_key TEXT NOT NULL              -- sandbox.phonetic.key(given_name)
);
CREATE INDEX person_national_id ON person(national_id);
CREATE INDEX person_birth_cert ON person(birth_cert_no);
CREATE INDEX person_household ON person(household_id);
CREATE INDEX person_death_reg ON person(death_registered_on);
CREATE INDEX person_birth_reg ON person(registered_on, record_id) WHERE birth_cert_no IS NOT NULL;
CREATE INDEX person_surname_key ON person(surname_key, birth_year);
CREATE INDEX person_given_key ON person(given_key, birth_year);
"""
)

#: Tax authority: taxpayers (formally employed or in business) and their yearly incomes.
TAX_DDL = """
CREATE TABLE taxpayer (
    tin TEXT PRIMARY KEY,                -- 'TIN' + 8 digits
    national_id TEXT,
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    sex TEXT,
    birth_date TEXT,
    district_code TEXT,
    registered_on TEXT NOT NULL
);
CREATE INDEX taxpayer_national_id ON taxpayer(national_id);
CREATE TABLE income (
    tin TEXT NOT NULL,
    year INTEGER NOT NULL,
    kind TEXT NOT NULL,                  -- 'employment' or 'business'
    payer TEXT NOT NULL,                 -- employer's name, or 'self'
    gross_income INTEGER NOT NULL,       -- yearly
    tax_paid INTEGER NOT NULL,
    PRIMARY KEY (tin, year, payer)
);
"""

#: Social security fund: contributors, their yearly contributions, and pensions in payment.
SSF_DDL = """
CREATE TABLE member (
    ssn TEXT PRIMARY KEY,                -- 'SSN' + 9 digits
    national_id TEXT,
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    sex TEXT,
    birth_date TEXT,
    district_code TEXT,
    status TEXT NOT NULL,                -- 'active', 'inactive', 'pensioner', 'deceased'
    registered_on TEXT NOT NULL
);
CREATE INDEX member_national_id ON member(national_id);
CREATE TABLE contribution (
    ssn TEXT NOT NULL,
    year INTEGER NOT NULL,
    employer TEXT NOT NULL,
    months INTEGER NOT NULL,             -- months contributed that year, 1..12
    amount INTEGER NOT NULL,             -- employer + employee, yearly
    PRIMARY KEY (ssn, year, employer)
);
CREATE TABLE pension (
    ssn TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                  -- 'old-age', 'invalidity', 'survivor'
    monthly_amount INTEGER NOT NULL,
    start_date TEXT NOT NULL,
    status TEXT NOT NULL                 -- 'in-payment', 'suspended', 'ceased'
);
"""

#: Ministry of social protection's programme MIS: one row per enrolment in a grant.
MSP_DDL = """
CREATE TABLE beneficiary (
    beneficiary_no TEXT PRIMARY KEY,     -- 'CSG-', 'OAG-' or 'DG-' + 8 digits
    programme TEXT NOT NULL,             -- 'child-grant', 'old-age-grant', 'disability-grant'
    national_id TEXT,
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    second_name TEXT,
    sex TEXT,
    birth_date TEXT,                     -- NULL when only the year is known
    birth_year INTEGER,
    district_code TEXT,
    village_code TEXT,
    caregiver_name TEXT,                 -- child grant: who receives the money
    caregiver_national_id TEXT,
    enrolled_on TEXT NOT NULL,
    status TEXT NOT NULL,                -- 'active', 'suspended', 'exited'
    monthly_amount INTEGER NOT NULL
);
CREATE INDEX beneficiary_national_id ON beneficiary(national_id);
CREATE INDEX beneficiary_name ON beneficiary(surname, given_name);
CREATE INDEX beneficiary_birth ON beneficiary(birth_date);
CREATE INDEX beneficiary_caregiver ON beneficiary(caregiver_national_id);
"""

#: What the running MIS records as vital-event notifications arrive. Not generated: the MIS creates these
#: tables when it starts (hence IF NOT EXISTS), so a country generated before them still serves.
MSP_EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS notification (
    event_id TEXT PRIMARY KEY,           -- the notifier's reference_id, e.g. 'death:CRA000123456'
    event_type TEXT NOT NULL,            -- 'death' or 'birth'
    received_at TEXT NOT NULL,           -- UTC, ISO 8601
    transaction_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS beneficiary_flag (
    beneficiary_no TEXT NOT NULL,
    flag TEXT NOT NULL,                  -- 'deceased-notified', 'caregiver-deceased-notified'
    event_id TEXT NOT NULL,
    noted_on TEXT NOT NULL,
    PRIMARY KEY (beneficiary_no, flag, event_id)
);
"""

#: The ground truth: who everyone really is, and which agency records are the same person.
TRUTH_DDL = (
    GEOGRAPHY_DDL
    + """
CREATE TABLE person (
    person_id INTEGER PRIMARY KEY,
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    second_name TEXT,
    sex TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    death_date TEXT,
    tradition TEXT NOT NULL,             -- naming tradition the names were drawn from
    mother_id INTEGER,
    household_id TEXT NOT NULL,
    relationship TEXT NOT NULL,
    district_code TEXT NOT NULL,         -- where the person really lives now
    village_code TEXT NOT NULL,
    birth_district TEXT NOT NULL,
    national_id TEXT,
    birth_cert_no TEXT,
    tin TEXT,
    ssn TEXT,
    formal_income INTEGER NOT NULL,      -- yearly, 0 when none
    pension_monthly INTEGER NOT NULL,    -- 0 when none
    disabled INTEGER NOT NULL,
    poor INTEGER NOT NULL                -- household below the poverty line
);
CREATE TABLE household (
    household_id TEXT PRIMARY KEY,
    head_person_id INTEGER NOT NULL,
    district_code TEXT NOT NULL,
    village_code TEXT NOT NULL,
    size INTEGER NOT NULL,
    income INTEGER NOT NULL              -- yearly, all members
);
CREATE TABLE record (                    -- agency record -> true person
    source TEXT NOT NULL,                -- 'cra', 'tax', 'ssf', 'msp'
    record_id TEXT NOT NULL,             -- the agency's key: record_id, tin, ssn, beneficiary_no
    person_id INTEGER NOT NULL,
    PRIMARY KEY (source, record_id)
);
CREATE INDEX record_person ON record(person_id);
"""
)

DDL: dict[str, str] = {"cra": CRA_DDL, "tax": TAX_DDL, "ssf": SSF_DDL, "msp": MSP_DDL, "truth": TRUTH_DDL}


def create(path: Path, ddl: str) -> sqlite3.Connection:
    """Create a fresh database file with the given schema, tuned for one bulk load."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
    conn.executescript(ddl)
    return conn


def open_writable(path: Path) -> sqlite3.Connection:
    """Open an agency database for the few writes a running system makes (events, notifications).

    Autocommit (`isolation_level=None`): the caller opens its own short transaction. The timeout lets a
    write wait for readers to finish their statement, and readers for the write to commit.
    """
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}; run `kiungo sandbox generate` first")
    conn = sqlite3.connect(
        f"file:{path}?mode=rw", uri=True, check_same_thread=False, timeout=10.0, isolation_level=None
    )
    conn.row_factory = sqlite3.Row
    return conn


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open an agency database for serving: read-only, usable from the server's worker threads."""
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}; run `kiungo sandbox generate` first")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn
