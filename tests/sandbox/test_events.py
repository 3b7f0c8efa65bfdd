"""Vital events: the civil registry registers deaths and births while it runs and lists them; the programme
MIS receives DCI notifications of them and flags the beneficiaries concerned; `kiungo sandbox event`.

These tests change the databases, so they run on a country of their own.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
import zeep
from jsonschema import Draft4Validator
from lxml import etree
from referencing import Registry
from referencing.jsonschema import DRAFT4
from typer.testing import CliRunner

from sandbox import cra
from sandbox.cli import app as cli_app
from sandbox.schema import AGENCY_FILES
from sandbox.servers import MANIFEST_FILE, SandboxServers
from tests.sandbox import fixtures_country as known
from tests.sandbox.test_servers import NS, fault_of, post_soap, problem_of, soap, zeep_fault

TODAY = date.today().isoformat()
AMINA_ID = known.AMINA["national_id"]


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("events-country")
    known.build_country(out, people=500)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("events-run")


@pytest.fixture(scope="module")
def servers(country: Path, run_dir: Path) -> Iterator[SandboxServers]:
    with SandboxServers(country, gateway="none", manifest_path=run_dir / MANIFEST_FILE) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def civreg(servers: SandboxServers) -> Any:
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    return zeep.Client(servers.manifest["systems"]["cra"]["wsdl"], transport=transport).service


def post_event(servers: SandboxServers, http: httpx.Client, body: Any) -> httpx.Response:
    control = servers.manifest["systems"]["cra"]["sandbox_control"]
    if isinstance(body, bytes):
        return http.post(control + "/events", content=body)
    return http.post(control + "/events", json=body)


def cra_rows(country: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(country / AGENCY_FILES["cra"])
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def alive_with_unique_id(country: Path, sex: str, born_after: int, skip: int = 0) -> sqlite3.Row:
    """A generated living person whose national ID is on one record only."""
    rows = cra_rows(
        country,
        "SELECT * FROM person WHERE sex = ? AND birth_year >= ? AND death_date IS NULL AND household_id IS NOT NULL"
        " AND record_id NOT LIKE 'CRA9000%' AND national_id IN"
        " (SELECT national_id FROM person GROUP BY national_id HAVING count(*) = 1)"
        " ORDER BY record_id LIMIT 1 OFFSET ?",
        (sex, born_after, skip),
    )
    assert rows
    return rows[0]


# --- the civil registry registers deaths ----------------------------------------------------------


def test_death_by_national_id_is_listed_since_today(servers: SandboxServers, http: httpx.Client, civreg: Any) -> None:
    response = post_event(servers, http, {"type": "death", "national_id": AMINA_ID})
    assert response.status_code == 201, response.text
    assert response.json() == {"type": "death", "record_id": "CRA900000001", "registered_on": TODAY}
    person = civreg.GetPersonByNationalId(nationalId=AMINA_ID).person
    assert (person.recordId, person.status, str(person.deathDate)) == ("CRA900000001", "deceased", TODAY)
    answer = civreg.GetDeathsSince(since=TODAY)
    deaths = {d.recordId: d for d in answer.death}
    amina = deaths["CRA900000001"]
    assert (amina.nationalId, amina.surname, amina.givenName) == (AMINA_ID, "Mwangi", "Amina")
    assert (str(amina.deathDate), str(amina.registeredOn)) == (TODAY, TODAY)
    assert answer.hasMore is False
    # her duplicate registration (no national ID) is not dead on the record
    assert civreg.GetPersonByRecordId(recordId="CRA900000005").person.status == "alive"


def test_death_by_record_id_with_its_date(servers: SandboxServers, http: httpx.Client, civreg: Any) -> None:
    died = (date.today() - timedelta(days=12)).isoformat()
    response = post_event(servers, http, {"type": "death", "record_id": "CRA900000004", "death_date": died})
    assert response.status_code == 201, response.text
    assert response.json() == {"type": "death", "record_id": "CRA900000004", "registered_on": TODAY}
    deaths = civreg.GetDeathsSince(since=TODAY).death
    ids = [d.recordId for d in deaths if str(d.registeredOn) == TODAY]  # the known records' deaths are in 2099
    assert ids == ["CRA900000001", "CRA900000004"]  # one registration date, then by record id
    peter = next(d for d in deaths if d.recordId == "CRA900000004")
    assert (peter.nationalId, str(peter.deathDate), str(peter.registeredOn)) == ("9000000004", died, TODAY)
    assert peter.birthDate is None  # Peter's birth is known by its year only


def test_a_back_dated_registration(servers: SandboxServers, http: httpx.Client, civreg: Any, country: Path) -> None:
    person = alive_with_unique_id(country, "M", 1930)
    registered = (date.today() - timedelta(days=3)).isoformat()
    died = (date.today() - timedelta(days=40)).isoformat()
    body = {"type": "death", "national_id": person["national_id"], "death_date": died, "registered_on": registered}
    response = post_event(servers, http, body)
    assert response.json() == {"type": "death", "record_id": person["record_id"], "registered_on": registered}
    deaths = civreg.GetDeathsSince(since=registered).death
    assert deaths[0].recordId == person["record_id"]  # the earliest registration first
    assert str(deaths[0].registeredOn) == registered


def test_a_death_registered_twice_is_a_conflict(servers: SandboxServers, http: httpx.Client) -> None:
    for body in (
        {"type": "death", "national_id": AMINA_ID},
        {"type": "death", "record_id": "CRA900000001"},
        {"type": "death", "record_id": known.MARY["record_id"]},  # died in the generated data already
    ):
        response = post_event(servers, http, body)
        assert response.status_code == 409
        assert response.json() == {"error": "the death of this person is already registered"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"type": "death", "national_id": "9999999990"}, "no person with this national_id"),
        ({"type": "death", "record_id": "CRA999999999"}, "no person with this record_id"),
        (
            {"type": "birth", "mother_record_id": "CRA999999999", "given_name": "A", "surname": "B", "sex": "F"},
            "no person with this mother_record_id",
        ),
        (
            {"type": "birth", "mother_national_id": "9999999990", "given_name": "A", "surname": "B", "sex": "M"},
            "no person with this mother_national_id",
        ),
    ],
)
def test_unknown_people_are_not_found(servers: SandboxServers, http: httpx.Client, body: Any, error: str) -> None:
    response = post_event(servers, http, body)
    assert response.status_code == 404
    assert response.json() == {"error": error}


MARY_DEATH: dict[str, Any] = {"type": "death", "record_id": known.MARY["record_id"]}
NEEMA_BIRTH: dict[str, Any] = {
    "type": "birth",
    "mother_national_id": AMINA_ID,
    "given_name": "N",
    "surname": "M",
    "sex": "F",
}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "body is not JSON"),
        (["death"], "body must be a JSON object"),
        ({"type": "marriage"}, "type must be death or birth"),
        ({"national_id": "9000000006"}, "type must be death or birth"),
        ({"type": "death"}, "a death needs exactly one of national_id, record_id"),
        (
            {"type": "death", "national_id": "9000000006", "record_id": "CRA900000006"},
            "a death needs exactly one of national_id, record_id",
        ),
        ({"type": "death", "national_id": 9000000006}, "national_id must be a string of 10 digits"),
        ({"type": "death", "national_id": "90000000"}, "national_id must be a string of 10 digits"),
        ({"type": "death", "record_id": "CRA1"}, "record_id must be CRA and 9 digits"),
        ({"type": "death", "record_id": "CRA1", "cause": "x"}, "unknown fields for a death: cause"),
        (MARY_DEATH | {"death_date": "1/5/2026"}, "death_date must be a date (YYYY-MM-DD)"),
        (MARY_DEATH | {"death_date": "2026-02-30"}, "death_date must be a date (YYYY-MM-DD)"),
        (MARY_DEATH | {"registered_on": 20260101}, "registered_on must be a date (YYYY-MM-DD)"),
        (
            MARY_DEATH | {"death_date": "2026-03-02", "registered_on": "2026-03-01"},
            "death_date must not be after registered_on",
        ),
        (MARY_DEATH | {"registered_on": "2999-01-01"}, "registered_on must not be after today"),
        (
            {"type": "birth", "given_name": "Neema", "surname": "Mwangi", "sex": "F"},
            "a birth needs exactly one of mother_national_id, mother_record_id",
        ),
        (
            {"type": "birth", "mother_national_id": AMINA_ID, "given_name": " ", "surname": "Mwangi", "sex": "F"},
            "given_name must be a non-empty string of at most 100 characters",
        ),
        (
            {"type": "birth", "mother_national_id": AMINA_ID, "given_name": "Neema", "sex": "F"},
            "surname must be a non-empty string of at most 100 characters",
        ),
        (
            {"type": "birth", "mother_national_id": AMINA_ID, "given_name": "Neema", "surname": "M" * 101, "sex": "F"},
            "surname must be a non-empty string of at most 100 characters",
        ),
        (
            {"type": "birth", "mother_national_id": AMINA_ID, "given_name": "Neema", "surname": "Mwangi", "sex": "X"},
            "sex must be M or F",
        ),
        (
            NEEMA_BIRTH | {"birth_date": "2026"},
            "birth_date must be a date (YYYY-MM-DD)",
        ),
        (
            NEEMA_BIRTH | {"nationalId": "1"},
            "unknown fields for a birth: nationalId",
        ),
    ],
)
def test_invalid_events_are_refused(servers: SandboxServers, http: httpx.Client, body: Any, error: str) -> None:
    response = post_event(servers, http, body)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_events_are_a_control_endpoint(servers: SandboxServers, http: httpx.Client) -> None:
    """Never faulted, never counted: a test registers events while it makes the registry fail."""
    control = servers.manifest["systems"]["cra"]["sandbox_control"]
    assert http.post(control + "/fault", json={"mode": "error"}).status_code == 200
    try:
        response = post_event(servers, http, {"type": "death", "national_id": "9999999990"})
        assert response.status_code == 404
        assert http.get(control + "/hits").json() == {"hits": 0}
        assert http.get(control + "/events").status_code == 405
        assert post_event(servers, http, b"{" + b" " * 5000 + b"}").json() == {"error": "body too large"}
    finally:
        http.post(control + "/fault", json={"mode": "none"})


# --- the civil registry registers births ----------------------------------------------------------


def test_birth_joins_the_mothers_household(
    servers: SandboxServers, http: httpx.Client, civreg: Any, country: Path
) -> None:
    mother_id = alive_with_unique_id(country, "F", 1985)["national_id"]
    mother = civreg.GetPersonByNationalId(nationalId=mother_id).person
    (highest,) = cra_rows(country, "SELECT MAX(record_id) FROM person")[0]
    body = {
        "type": "birth",
        "mother_national_id": mother_id,
        "given_name": "Zawadi",
        "second_name": "Neema",
        "surname": mother.surname,
        "sex": "F",
    }
    response = post_event(servers, http, body)
    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["type"] == "birth"
    assert doc["registered_on"] == TODAY
    assert re.fullmatch(r"CRA[0-9]{9}", doc["record_id"])
    assert doc["record_id"] > highest
    child = civreg.GetPersonByRecordId(recordId=doc["record_id"]).person
    assert (child.givenName, child.secondName, child.surname, child.sex) == ("Zawadi", "Neema", mother.surname, "F")
    assert (str(child.birthDate), child.birthYear) == (TODAY, date.today().year)
    assert (child.status, child.nationalId) == ("alive", None)
    assert (child.householdId, child.districtCode, child.villageCode) == (
        mother.householdId,
        mother.districtCode,
        mother.villageCode,
    )
    assert child.birthDistrict == mother.districtCode
    assert child.motherName == f"{mother.givenName} {mother.surname}"
    assert re.fullmatch(rf"BC/{mother.districtCode}/{date.today().year}/[0-9]{{6}}", child.birthCertificateNo)
    by_certificate = civreg.GetPersonByBirthCertificate(birthCertificateNo=child.birthCertificateNo).person
    assert by_certificate.recordId == doc["record_id"]
    household = {m.person.recordId: m.relationship for m in civreg.GetHousehold(recordId=doc["record_id"]).member}
    mothers = household[mother.recordId]
    assert household[doc["record_id"]] == ("child" if mothers in ("head", "spouse") else "other")

    # twins, registered by the mother's record: the next record id and the next certificate serial
    twin = post_event(
        servers,
        http,
        body | {"given_name": "Baraka", "sex": "M", "mother_national_id": None, "mother_record_id": mother.recordId},
    ).json()
    assert twin["record_id"] > doc["record_id"]
    twin_cert = civreg.GetPersonByRecordId(recordId=twin["record_id"]).person.birthCertificateNo
    assert int(twin_cert.rsplit("/", 1)[1]) == int(child.birthCertificateNo.rsplit("/", 1)[1]) + 1

    answer = civreg.GetBirthsSince(since=TODAY)
    births = [b for b in answer.birth if b.recordId in (doc["record_id"], twin["record_id"])]
    assert [b.recordId for b in births] == [doc["record_id"], twin["record_id"]]
    first = births[0]
    assert (first.motherRecordId, first.motherNationalId) == (mother.recordId, mother_id)
    assert (first.surname, first.givenName, first.sex, str(first.birthDate)) == (mother.surname, "Zawadi", "F", TODAY)
    assert (first.birthCertificateNo, first.districtCode, str(first.registeredOn)) == (
        child.birthCertificateNo,
        mother.districtCode,
        TODAY,
    )
    assert first.nationalId is None


@pytest.mark.parametrize(("mothers", "childs"), [("head", "child"), ("spouse", "child"), ("child", "other")])
def test_a_newborns_relationship_to_the_head(
    servers: SandboxServers, http: httpx.Client, civreg: Any, country: Path, mothers: str, childs: str
) -> None:
    mother = cra_rows(
        country,
        "SELECT record_id FROM person WHERE sex = 'F' AND death_date IS NULL AND relationship = ? LIMIT 1",
        (mothers,),
    )[0]
    body = {"type": "birth", "mother_record_id": mother["record_id"], "given_name": "A", "surname": "B", "sex": "M"}
    child = post_event(servers, http, body).json()["record_id"]
    members = civreg.GetHousehold(recordId=child).member
    assert {m.person.recordId: m.relationship for m in members}[child] == childs


def test_a_mother_without_household(servers: SandboxServers, http: httpx.Client, civreg: Any) -> None:
    body = {"type": "birth", "mother_record_id": "CRA900000005", "given_name": "A", "surname": "B", "sex": "F"}
    child = civreg.GetPersonByRecordId(recordId=post_event(servers, http, body).json()["record_id"]).person
    assert (child.householdId, child.districtCode, child.motherName) == (None, "D02", "Amina Mwangi")
    assert child.birthCertificateNo.startswith(f"BC/D02/{date.today().year}/")


def test_birth_conflicts(servers: SandboxServers, http: httpx.Client, country: Path) -> None:
    father = {"type": "birth", "mother_record_id": "CRA900000004", "given_name": "A", "surname": "Otieno", "sex": "M"}
    response = post_event(servers, http, father)
    assert (response.status_code, response.json()) == (409, {"error": "the mother's record is not a woman's"})
    dead = cra_rows(country, "SELECT record_id FROM person WHERE sex = 'F' AND death_date < ? LIMIT 1", (TODAY,))
    late = {"type": "birth", "mother_record_id": dead[0]["record_id"], "given_name": "A", "surname": "B", "sex": "M"}
    response = post_event(servers, http, late)
    assert response.status_code == 409
    assert response.json() == {"error": "the mother's death is registered before birth_date"}


def expected_births(country: Path, since: str) -> list[str]:
    """The rule, restated: per certificate its first registration, from `since`, by date then record id."""
    first: dict[str, tuple[str, str]] = {}
    sql = "SELECT record_id, birth_cert_no, registered_on FROM person WHERE birth_cert_no IS NOT NULL"
    for row in cra_rows(country, sql):
        key = (row["registered_on"], row["record_id"])
        first[row["birth_cert_no"]] = min(first.get(row["birth_cert_no"], key), key)
    return [record for registered, record in sorted(first.values()) if registered >= since]


def test_births_since_pages(civreg: Any, country: Path) -> None:
    expected = expected_births(country, "2005-01-01")
    assert len(expected) > 20
    seen: list[str] = []
    offset = 0
    while True:
        page = civreg.GetBirthsSince(since="2005-01-01", offset=offset, limit=9)
        seen += [b.recordId for b in page.birth]
        offset += 9
        if not page.hasMore:
            break
        assert len(page.birth) == 9
    assert seen == expected
    registered = [str(b.registeredOn) for b in civreg.GetBirthsSince(since="2005-01-01", limit=1000).birth]
    assert registered == sorted(registered)
    everyone = expected_births(country, "1900-01-01")
    default = civreg.GetBirthsSince(since="1900-01-01")
    assert [b.recordId for b in default.birth] == everyone[: cra.BIRTHS_DEFAULT]
    assert default.hasMore is (len(everyone) > cra.BIRTHS_DEFAULT)
    beyond = civreg.GetBirthsSince(since="1900-01-01", offset=len(everyone), limit=5)
    assert (beyond.birth, beyond.hasMore) == ([], False)


def test_a_second_registration_of_a_certificate_is_not_a_birth(civreg: Any, country: Path) -> None:
    conn = sqlite3.connect(country / AGENCY_FILES["cra"], timeout=10)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(person)")]
        baraka = conn.execute("SELECT * FROM person WHERE record_id = 'CRA900000003'").fetchone()
        row = dict(zip(columns, baraka, strict=True))
        row |= {"record_id": "CRA900000099", "household_id": None, "registered_on": TODAY}
        conn.execute(f"INSERT INTO person ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        conn.commit()
    finally:
        conn.close()
    assert civreg.GetPersonByRecordId(recordId="CRA900000099").found is True
    assert "CRA900000099" not in [b.recordId for b in civreg.GetBirthsSince(since=TODAY, limit=1000).birth]
    assert "CRA900000099" not in expected_births(country, TODAY)


def test_births_since_on_the_wire(servers: SandboxServers, http: httpx.Client) -> None:
    inner = "<cra:since>2000-01-01</cra:since><cra:limit>1</cra:limit>"
    root = etree.fromstring(post_soap(http, servers, soap("GetBirthsSince", inner)).content)
    out = root.find("soap:Body/cra:GetBirthsSinceResponse", NS)
    assert out is not None
    assert [etree.QName(c).localname for c in out] == ["birth", "hasMore"]
    names = [etree.QName(c).localname for c in out[0]]
    order = [
        "recordId",
        "nationalId",
        "birthCertificateNo",
        "surname",
        "givenName",
        "sex",
        "birthDate",
        "motherRecordId",
        "motherNationalId",
        "districtCode",
        "registeredOn",
    ]
    assert names == [n for n in order if n in names]
    required = {"recordId", "birthCertificateNo", "surname", "givenName", "sex", "districtCode", "registeredOn"}
    assert required <= set(names)
    assert out.findtext("cra:hasMore", namespaces=NS) == "true"


@pytest.mark.parametrize(
    ("inner", "error"),
    [
        ("", "missing-argument"),
        ("<cra:offset>1</cra:offset>", "missing-argument"),
        ("<cra:since>2099-13-01</cra:since>", "invalid-argument"),
        ("<cra:since>yesterday</cra:since>", "invalid-argument"),
        ("<cra:since>2020-01-01</cra:since><cra:offset>-1</cra:offset>", "invalid-argument"),
        ("<cra:since>2020-01-01</cra:since><cra:offset>x</cra:offset>", "invalid-argument"),
        ("<cra:since>2020-01-01</cra:since><cra:limit>0</cra:limit>", "invalid-argument"),
        ("<cra:since>2020-01-01</cra:since><cra:limit>1001</cra:limit>", "invalid-argument"),
        ("<cra:since>2020-01-01</cra:since><cra:limit>ten</cra:limit>", "invalid-argument"),
    ],
)
def test_births_since_arguments_are_client_faults(
    servers: SandboxServers, http: httpx.Client, inner: str, error: str
) -> None:
    assert fault_of(post_soap(http, servers, soap("GetBirthsSince", inner))) == ("soap:Client", error)


def test_births_since_limits_through_zeep(civreg: Any) -> None:
    assert zeep_fault(civreg.GetBirthsSince, since="2020-01-01", limit=1001) == ("soap:Client", "invalid-argument")
    assert zeep_fault(civreg.GetBirthsSince, since="2020-01-01", offset=-1) == ("soap:Client", "invalid-argument")


def test_reads_go_on_while_births_are_registered(servers: SandboxServers, country: Path) -> None:
    mother = alive_with_unique_id(country, "F", 1980, skip=1)
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                answer = post_soap(client, servers, soap("GetBirthsSince", f"<cra:since>{TODAY}</cra:since>"))
                if answer.status_code != 200:
                    errors.append(answer.text)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with httpx.Client(timeout=10) as client:
            for i in range(15):
                body = {
                    "type": "birth",
                    "mother_record_id": mother["record_id"],
                    "given_name": f"Child{i}",
                    "surname": mother["surname"],
                    "sex": "F",
                }
                assert post_event(servers, client, body).status_code == 201
    finally:
        stop.set()
        reader.join(timeout=10)
    assert errors == []


# --- the programme MIS receives notifications -----------------------------------------------------

AMINA_DEATH: dict[str, Any] = {
    "recordId": "CRA900000001",
    "nationalId": AMINA_ID,
    "surname": "Mwangi",
    "givenName": "Amina",
    "sex": "F",
    "birthDate": "1950-03-14",
    "deathDate": TODAY,
}


def event(kind: str, person: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
    return {
        "reference_id": reference or f"{kind}:{person['recordId']}",
        "timestamp": "2026-11-28T10:00:00Z",
        "data": {
            "version": "1.0.0",
            "reg_type": "civil-registry",
            "reg_event_type": kind,
            "reg_record_type": "person",
            "reg_records": [person],
        },
    }


def envelope(*events: dict[str, Any], transaction_id: str = "txn-1") -> dict[str, Any]:
    return {
        "header": {
            "version": "1.0.0",
            "message_id": "msg-1",
            "message_ts": "2026-11-28T10:00:01Z",
            "action": "notify",
            "status": "succ",
            "sender_id": "ZZ/GOV/CRA/civreg",
        },
        "message": {"transaction_id": transaction_id, "notify_event": list(events)},
    }


def notify(servers: SandboxServers, http: httpx.Client, body: Any) -> httpx.Response:
    url = servers.base_url("msp") + "/v1/notifications"
    if isinstance(body, bytes):
        return http.post(url, content=body, headers={"Content-Type": "application/json"})
    return http.post(url, json=body)


def flags(servers: SandboxServers, http: httpx.Client, no: str) -> list[dict[str, str]]:
    doc = http.get(servers.base_url("msp") + f"/v1/beneficiaries/{no}").json()
    found: list[dict[str, str]] = doc["flags"]
    return found


def test_a_death_flags_the_beneficiary_and_the_children_she_cared_for(
    servers: SandboxServers, http: httpx.Client
) -> None:
    assert flags(servers, http, "OAG-90000001") == []
    response = notify(servers, http, envelope(event("death", AMINA_DEATH)))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "new": 1, "duplicates": 0, "flagged": 2}
    noted = {"event_id": "death:CRA900000001", "noted_on": TODAY}
    assert flags(servers, http, "OAG-90000001") == [{"flag": "deceased-notified"} | noted]
    assert flags(servers, http, "CSG-90000002") == [{"flag": "caregiver-deceased-notified"} | noted]
    assert flags(servers, http, "DG-90000003") == []
    found = http.get(servers.base_url("msp") + "/v1/beneficiaries", params={"national_id": AMINA_ID}).json()
    assert [(b["beneficiary_no"], b["flags"]) for b in found["items"]] == [
        ("OAG-90000001", [{"flag": "deceased-notified"} | noted])
    ]
    # the flag is for a caseworker: the enrolment itself is unchanged
    assert http.get(servers.base_url("msp") + "/v1/beneficiaries/OAG-90000001/enrolment").json()["status"] == "active"

    again = notify(servers, http, envelope(event("death", AMINA_DEATH), transaction_id="txn-2"))
    assert again.json() == {"received": 1, "new": 0, "duplicates": 1, "flagged": 0}
    assert flags(servers, http, "OAG-90000001") == [{"flag": "deceased-notified"} | noted]
    listed = http.get(servers.base_url("msp") + "/v1/notifications").json()["items"]
    assert [n for n in listed if n["event_id"] == "death:CRA900000001"] == [
        {
            "event_id": "death:CRA900000001",
            "event_type": "death",
            "received_at": listed[0]["received_at"],
            "transaction_id": "txn-1",
        }
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed[0]["received_at"])


def test_a_death_without_national_id_is_matched_by_name_and_birth_date(
    servers: SandboxServers, http: httpx.Client
) -> None:
    baraka = {
        "recordId": "CRA900000003",
        "surname": "MWANGI",
        "givenName": "baraka",
        "birthDate": "2015-01-20",
        "deathDate": TODAY,
    }
    other_day = baraka | {"recordId": "CRA900000098", "birthDate": "2015-01-21"}
    year_only = {"recordId": "CRA900000097", "surname": "Otieno", "givenName": "Peter"}
    body = envelope(event("death", other_day), event("death", year_only), event("death", baraka))
    assert notify(servers, http, body).json() == {"received": 3, "new": 3, "duplicates": 0, "flagged": 1}
    assert {f["flag"]: f["event_id"] for f in flags(servers, http, "CSG-90000002")} == {
        "caregiver-deceased-notified": "death:CRA900000001",
        "deceased-notified": "death:CRA900000003",
    }
    assert flags(servers, http, "DG-90000003") == []


def test_a_birth_is_recorded_and_flags_nobody(servers: SandboxServers, http: httpx.Client) -> None:
    child = {
        "recordId": "CRA990000001",
        "surname": "Mwangi",
        "givenName": "Neema",
        "sex": "F",
        "birthDate": TODAY,
        "motherRecordId": "CRA900000001",
        "motherNationalId": AMINA_ID,
    }
    body = envelope(event("death", AMINA_DEATH), event("birth", child), event("birth", child), transaction_id="txn-9")
    assert notify(servers, http, body).json() == {"received": 3, "new": 1, "duplicates": 2, "flagged": 0}
    listed = http.get(servers.base_url("msp") + "/v1/notifications", params={"limit": 1}).json()["items"]
    assert [(n["event_id"], n["event_type"], n["transaction_id"]) for n in listed] == [
        ("birth:CRA990000001", "birth", "txn-9")
    ]
    everything = http.get(servers.base_url("msp") + "/v1/notifications", params={"limit": 200}).json()["items"]
    assert len(everything) == len({n["event_id"] for n in everything}) >= 5
    assert [n["received_at"] for n in everything] == sorted((n["received_at"] for n in everything), reverse=True)
    problem_of(http.get(servers.base_url("msp") + "/v1/notifications", params={"limit": 0}), 422, "invalid-request")


def test_a_failed_delivery_is_delivered_again(servers: SandboxServers, http: httpx.Client) -> None:
    """The notifications path is the MIS's API like any other: faults apply, and the retry counts once."""
    control = servers.base_url("msp") + "/_sandbox/fault"
    body = envelope(event("death", AMINA_DEATH | {"recordId": "CRA990000002", "nationalId": "9000000004"}))
    assert http.post(control, json={"mode": "error", "count": 1}).status_code == 200
    problem_of(notify(servers, http, body), 500, "injected-fault")
    assert notify(servers, http, body).json() == {"received": 1, "new": 1, "duplicates": 0, "flagged": 1}
    assert notify(servers, http, body).json() == {"received": 1, "new": 0, "duplicates": 1, "flagged": 0}
    assert [f["flag"] for f in flags(servers, http, "DG-90000003")] == ["deceased-notified"]


def test_the_registry_core_shape_is_accepted_too(servers: SandboxServers, http: httpx.Client) -> None:
    """DCI's registry core API types `reg_records` as one record (the social API as a list): both are taken."""
    spec = yaml.safe_load((Path(__file__).parents[1] / "specs" / "dci" / "registry_core_api_v1.0.0.yaml").read_text())
    uri = "urn:dci:registry-core"
    schema = {"$ref": uri + "#/paths/~1registry~1notify/post/requestBody/content/application~1json/schema"}
    validator = Draft4Validator(schema, registry=Registry().with_resource(uri, DRAFT4.create_resource(spec)))
    peter = {"recordId": "CRA900000004", "nationalId": "9000000004", "surname": "Otieno", "givenName": "Peter"}
    core = event("death", peter)
    core["data"]["reg_records"] = peter
    body = envelope(core, transaction_id="txn-core")
    assert list(validator.iter_errors(body)) == []
    assert notify(servers, http, body).json() == {"received": 1, "new": 1, "duplicates": 0, "flagged": 1}
    assert "death:CRA900000004" in [f["event_id"] for f in flags(servers, http, "DG-90000003")]


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid envelope with one member replaced (or removed, for ...)."""
    doc = envelope(event("death", dict(AMINA_DEATH), reference="death:CRA990000003"))
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


EVENT0 = "message.notify_event.0"
RECORD0 = EVENT0 + ".data.reg_records.0"
E0 = "message.notify_event[0]"
R0 = E0 + ".data.reg_records[0]"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{", "The body is not JSON."),
        ([], "The body must be an object."),
        (_with("header", ...), "header must be an object."),
        (_with("header.action", "search"), "header.action must be notify."),
        (_with("message", ...), "message must be an object."),
        (_with("message", "encrypted"), "message must be an object."),
        (_with("message.transaction_id", ...), "message.transaction_id must be a string of 1 to 99 characters."),
        (_with("message.transaction_id", "t" * 100), "message.transaction_id must be a string of 1 to 99 characters."),
        (_with("message.notify_event", []), "message.notify_event must be a list of 1 to 1000 events."),
        (_with("message.notify_event", {}), "message.notify_event must be a list of 1 to 1000 events."),
        (_with(EVENT0, "death"), f"{E0} must be an object."),
        (_with(EVENT0 + ".reference_id", ...), f"{E0}.reference_id must be a string of 1 to 255 characters."),
        (_with(EVENT0 + ".reference_id", 7), f"{E0}.reference_id must be a string of 1 to 255 characters."),
        (_with(EVENT0 + ".timestamp", "yesterday"), f"{E0}.timestamp must be an ISO 8601 date-time."),
        (_with(EVENT0 + ".data", ...), f"{E0}.data must be an object."),
        (_with(EVENT0 + ".data.reg_type", "social-registry"), f"{E0}.data.reg_type must be civil-registry."),
        (_with(EVENT0 + ".data.reg_event_type", "marriage"), f"{E0}.data.reg_event_type must be death or birth."),
        (_with(EVENT0 + ".data.reg_record_type", "household"), f"{E0}.data.reg_record_type must be person."),
        (
            _with(EVENT0 + ".data.reg_records", []),
            f"{E0}.data.reg_records must be a record or a list of 1 to 100 records.",
        ),
        (
            _with(EVENT0 + ".data.reg_records", "CRA1"),
            f"{E0}.data.reg_records must be a record or a list of 1 to 100 records.",
        ),
        (
            _with(EVENT0 + ".data.reg_records", {"nationalId": 1}),
            f"{E0}.data.reg_records.nationalId must be a string of 10 digits.",
        ),
        (_with(RECORD0, "CRA900000001"), f"{R0} must be an object."),
        (_with(RECORD0 + ".nationalId", "123"), f"{R0}.nationalId must be a string of 10 digits."),
        (_with(RECORD0 + ".surname", ["Mwangi"]), f"{R0}.surname must be a string of at most 100 characters."),
        (_with(RECORD0 + ".birthDate", "14/03/1950"), f"{R0}.birthDate must be a date (YYYY-MM-DD)."),
        (_with(RECORD0 + ".deathDate", "2026-02-30"), f"{R0}.deathDate must be a date (YYYY-MM-DD)."),
    ],
)
def test_malformed_envelopes_are_invalid_requests(
    servers: SandboxServers, http: httpx.Client, body: Any, detail: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    doc = problem_of(notify(servers, http, raw), 400, "invalid-request")
    assert doc["detail"] == detail


def test_one_bad_event_refuses_the_whole_envelope(servers: SandboxServers, http: httpx.Client) -> None:
    good = event("death", AMINA_DEATH | {"recordId": "CRA990000004"})
    bad = event("death", AMINA_DEATH, reference="death:CRA990000005") | {"timestamp": 5}
    doc = problem_of(notify(servers, http, envelope(good, bad)), 400, "invalid-request")
    assert doc["detail"] == "message.notify_event[1].timestamp must be an ISO 8601 date-time."
    listed = http.get(servers.base_url("msp") + "/v1/notifications", params={"limit": 200}).json()["items"]
    assert "death:CRA990000004" not in [n["event_id"] for n in listed]


def test_notifications_are_in_the_openapi_document(servers: SandboxServers, http: httpx.Client) -> None:
    doc = http.get(servers.manifest["systems"]["msp"]["openapi"]).json()
    operations = doc["paths"]["/v1/notifications"]
    assert set(operations) == {"get", "post"}
    body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["header"]["properties"]["action"]["enum"] == ["notify"]
    assert "/v1/notifications" in servers.manifest["systems"]["msp"]["paths"]


# --- kiungo sandbox event -------------------------------------------------------------------------


def test_cli_registers_a_death(servers: SandboxServers, run_dir: Path, country: Path, civreg: Any) -> None:
    person = alive_with_unique_id(country, "F", 1930, skip=2)
    nid = person["national_id"]
    runner = CliRunner()
    result = runner.invoke(cli_app, ["event", "death", "--national-id", nid, "--dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert f"death registered: record {person['record_id']} (national ID {nid[:2]}******{nid[-2:]})" in result.output
    assert f"registered on {TODAY}" in result.output
    assert nid not in result.output
    assert civreg.GetPersonByNationalId(nationalId=nid).person.status == "deceased"
    again = runner.invoke(
        cli_app,
        [
            "event",
            "death",
            "--record-id",
            person["record_id"],
            "--manifest",
            str(run_dir / MANIFEST_FILE),
            "--date",
            TODAY,
        ],
    )
    assert again.exit_code == 1
    assert "the death of this person is already registered" in again.output


def test_cli_registers_a_birth(servers: SandboxServers, run_dir: Path, country: Path, civreg: Any) -> None:
    mother = alive_with_unique_id(country, "F", 1985, skip=3)
    nid = mother["national_id"]
    args = [
        "event",
        "birth",
        "--mother-national-id",
        nid,
        "--given-name",
        "Imani",
        "--surname",
        mother["surname"],
        "--sex",
        "F",
        "--date",
        TODAY,
        "--manifest",
        str(run_dir / MANIFEST_FILE),
    ]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    match = re.search(r"birth registered: record (CRA[0-9]{9}), born (\S+), mother national ID (\S+),", result.output)
    assert match is not None, result.output
    assert (match[2], match[3]) == (TODAY, f"{nid[:2]}******{nid[-2:]}")
    assert nid not in result.output
    child = civreg.GetPersonByRecordId(recordId=match[1]).person
    assert (child.givenName, child.householdId) == ("Imani", mother["household_id"])


def test_cli_without_a_running_sandbox(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["event", "death", "--national-id", AMINA_ID, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no sandbox is running" in result.output
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    control = f"http://127.0.0.1:{port}/_sandbox"
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"systems": {"cra": {"sandbox_control": control}}}))
    result = runner.invoke(cli_app, ["event", "death", "--national-id", AMINA_ID, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"no sandbox answers at {control}" in result.output
    both = runner.invoke(cli_app, ["event", "death", "--national-id", AMINA_ID, "--record-id", "CRA900000001"])
    assert both.exit_code == 2
    assert "exactly one of" in both.output
