"""Batch lookups of the agency systems: up to 100 people per exchange, the same answers as one by one."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
import zeep.helpers
from lxml import etree

from sandbox import cra, msp, ssf, tax
from sandbox.agencydb import AgencyDb
from sandbox.schema import AGENCY_FILES
from sandbox.servers import SandboxServers
from tests.sandbox import fixtures_country as known

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {"soap": SOAP_ENV, "cra": cra.TNS}
PROBLEM = "application/problem+json"
UNKNOWN = ["9999999990", "9999999991"]
TOO_MANY = "At most 100 {} values may be given in one request."
MALFORMED_3 = "Malformed identifier: {} at position 3 does not have the documented format."


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("country")
    known.build_country(out)
    return out


@pytest.fixture(scope="module")
def servers(country: Path) -> Iterator[SandboxServers]:
    with SandboxServers(country, gateway="none") as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def civreg(servers: SandboxServers) -> Any:
    transport = zeep.Transport(timeout=20, operation_timeout=20)
    return zeep.Client(servers.manifest["systems"]["cra"]["wsdl"], transport=transport).service


def sample(country: Path, agency: str, sql: str, params: list[Any] | None = None) -> list[Any]:
    conn = sqlite3.connect(country / AGENCY_FILES[agency])
    try:
        return [r[0] for r in conn.execute(sql, params or [])]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def ids(country: Path) -> list[str]:
    """About 30 national IDs from the country (some with duplicate civil records, some known to tax, social security
    and the MIS), the known people, IDs nobody has, and repeats."""
    picked: list[str] = []
    for agency, sql in [
        ("cra", "SELECT national_id FROM person WHERE national_id IS NOT NULL GROUP BY 1 HAVING COUNT(*) > 1 LIMIT 6"),
        ("cra", "SELECT national_id FROM person WHERE national_id IS NOT NULL AND death_date IS NOT NULL LIMIT 5"),
        ("cra", "SELECT national_id FROM person WHERE national_id IS NOT NULL ORDER BY record_id DESC LIMIT 8"),
        ("tax", "SELECT national_id FROM taxpayer WHERE national_id IS NOT NULL ORDER BY tin LIMIT 8"),
        ("ssf", "SELECT national_id FROM member WHERE national_id IS NOT NULL ORDER BY ssn LIMIT 8"),
        ("msp", "SELECT national_id FROM beneficiary WHERE national_id IS NOT NULL ORDER BY 1 DESC LIMIT 8"),
    ]:
        picked += sample(country, agency, sql)
    assert len(set(picked)) >= 30
    for agency, table in [("cra", "person"), ("tax", "taxpayer"), ("ssf", "member"), ("msp", "beneficiary")]:
        assert not sample(country, agency, f"SELECT 1 FROM {table} WHERE national_id IN ('9999999990', '9999999991')")
    people = [known.AMINA["national_id"], known.PETER["national_id"], known.JOSEPH["national_id"]]
    chosen = [UNKNOWN[0], *people, *picked, UNKNOWN[1], people[0], picked[0] if picked else people[1]]
    assert len(chosen) <= 100
    return chosen


def distinct(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def problem_of(response: httpx.Response, status: int, slug: str, detail: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    doc: dict[str, Any] = response.json()
    assert (doc["type"], doc["status"], doc["detail"]) == (f"urn:zz:problem:{slug}", status, detail)
    return doc


def malformed_at_3(good: list[str], bad: str) -> list[str]:
    return [good[0], good[1], bad, good[2]]


# --- civil registry -------------------------------------------------------------------------------


def soap_batch(values: list[str]) -> bytes:
    inner = "".join(f"<cra:nationalId>{v}</cra:nationalId>" for v in values)
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:cra="{cra.TNS}"><soap:Body>'
        f"<cra:GetPersonsByNationalIds>{inner}</cra:GetPersonsByNationalIds></soap:Body></soap:Envelope>"
    ).encode()


def post_soap(http: httpx.Client, servers: SandboxServers, body: bytes) -> httpx.Response:
    endpoint = servers.manifest["systems"]["cra"]["endpoint"]
    return http.post(endpoint, content=body, headers={"Content-Type": "text/xml; charset=utf-8"})


def fault_of(response: httpx.Response) -> tuple[str, str, str]:
    assert response.status_code == 500
    fault = etree.fromstring(response.content).find("soap:Body/soap:Fault", NS)
    assert fault is not None
    return (
        fault.findtext("faultcode") or "",
        fault.findtext("faultstring") or "",
        fault.findtext("detail/cra:errorCode", namespaces=NS) or "",
    )


def test_cra_batch_answers_as_the_single_lookup(civreg: Any, ids: list[str]) -> None:
    answer = civreg.GetPersonsByNationalIds(nationalId=ids)
    batch = [zeep.helpers.serialize_object(p, dict) for p in answer]
    expected = []
    for nid in distinct(ids):
        single = civreg.GetPersonByNationalId(nationalId=nid)
        assert single.found is (nid not in UNKNOWN)
        if single.found:
            expected.append(zeep.helpers.serialize_object(single.person, dict))
    assert batch == expected  # same records (the duplicate rule), request order, repeats once, unknown left out
    assert [p["recordId"] for p in batch[:3]] == [known.AMINA["record_id"], known.PETER["record_id"], "CRA900000002"]
    assert batch[2]["status"] == "deceased"


def test_cra_batch_picks_the_record_of_the_duplicate_rule(civreg: Any, country: Path) -> None:
    duplicated = sample(
        country,
        "cra",
        "SELECT national_id FROM person WHERE national_id IS NOT NULL GROUP BY 1 HAVING COUNT(*) > 1 LIMIT 100",
    )
    if not duplicated:
        pytest.skip("no duplicate civil records in this country")
    answer = civreg.GetPersonsByNationalIds(nationalId=duplicated)
    assert [p.nationalId for p in answer] == duplicated
    for person in answer:
        assert person.recordId == civreg.GetPersonByNationalId(nationalId=person.nationalId).person.recordId


def test_cra_batch_of_nobody_is_an_empty_answer(civreg: Any) -> None:
    assert not civreg.GetPersonsByNationalIds(nationalId=UNKNOWN)


def test_cra_batch_limits(servers: SandboxServers, http: httpx.Client) -> None:
    many = [f"{9000000000 + i}" for i in range(101)]
    assert fault_of(post_soap(http, servers, soap_batch(many))) == (
        "soap:Client",
        "nationalId may be given at most 100 times",
        "invalid-argument",
    )
    response = post_soap(http, servers, soap_batch(many[:100]))
    assert response.status_code == 200
    malformed = post_soap(http, servers, soap_batch(malformed_at_3(many, "12-34-X")))
    assert fault_of(malformed) == (
        "soap:Client",
        "nationalId at position 3 is not in the documented format",
        "invalid-argument",
    )
    assert b"12-34-X" not in malformed.content
    empty_third = post_soap(http, servers, soap_batch(malformed_at_3(many, "")))
    assert fault_of(empty_third)[1] == "nationalId at position 3 is not in the documented format"
    assert fault_of(post_soap(http, servers, soap_batch([]))) == (
        "soap:Client",
        "missing argument nationalId",
        "missing-argument",
    )


def test_cra_batch_is_one_query(country: Path, ids: list[str]) -> None:
    db = CountingDb(country / AGENCY_FILES["cra"])
    try:
        status, answer = cra.handle(db, soap_batch(ids))
    finally:
        db.close()
    assert status == 200
    assert len(db.queries) == 1
    root = etree.fromstring(answer)
    assert root.findall("soap:Body/cra:GetPersonsByNationalIdsResponse/cra:person", NS)


def test_wsdl_declares_the_batch(servers: SandboxServers, http: httpx.Client) -> None:
    root = etree.fromstring(http.get(servers.manifest["systems"]["cra"]["wsdl"]).content)
    xs = "{http://www.w3.org/2001/XMLSchema}"
    request = root.find(f".//{xs}element[@name='GetPersonsByNationalIds']")
    assert request is not None
    element = request.find(f".//{xs}element[@name='nationalId']")
    assert element is not None
    assert (element.get("type"), element.get("maxOccurs")) == ("tns:NationalId", "100")
    assert "GetPersonsByNationalIds" in servers.manifest["systems"]["cra"]["operations"]


# --- tax ------------------------------------------------------------------------------------------


def test_tax_batch_answers_as_incomes(servers: SandboxServers, http: httpx.Client, ids: list[str]) -> None:
    base = servers.base_url("tax")
    for years in ({}, {"from_year": 2022}, {"from_year": 2021, "to_year": 2022}):
        response = http.get(base + "/v1/incomes/batch", params={"national_id": ids, **years})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        singles = [http.get(base + "/v1/incomes", params={"national_id": nid, **years}).json() for nid in distinct(ids)]
        assert items == singles
    peter = next(i for i in items if i["national_id"] == known.PETER["national_id"])
    assert peter["tins"] == ["TIN90000001", "TIN90000002"]
    nobody = next(i for i in items if i["national_id"] == UNKNOWN[0])
    assert (nobody["tins"], nobody["incomes"], nobody["totals"]) == ([], [], [])


def test_tax_batch_errors(servers: SandboxServers, http: httpx.Client) -> None:
    path = servers.base_url("tax") + "/v1/incomes/batch"
    many = [f"{9000000000 + i}" for i in range(101)]
    problem_of(http.get(path, params={"national_id": many}), 400, "invalid-request", TOO_MANY.format("national_id"))
    assert http.get(path, params={"national_id": many[:100]}).status_code == 200
    doc = problem_of(
        http.get(path, params={"national_id": malformed_at_3(many, "12ab")}),
        400,
        "invalid-identifier",
        MALFORMED_3.format("national_id"),
    )
    assert doc["errors"] == [
        {"location": "query.national_id", "position": 3, "message": "String should match pattern '^[0-9]{10}$'"}
    ]
    assert "12ab" not in json.dumps(doc)
    assert http.get(path).status_code == 422  # no national_id at all: as /v1/incomes without one


# --- social security ------------------------------------------------------------------------------


def test_ssf_members_of_several(servers: SandboxServers, http: httpx.Client, ids: list[str]) -> None:
    base = servers.base_url("ssf")
    response = http.get(base + "/v1/members", params={"national_id": ids})
    assert response.status_code == 200, response.text
    batch = response.json()["items"]
    assert [m["ssn"] for m in batch] == sorted(m["ssn"] for m in batch)
    singles = [
        m for nid in distinct(ids) for m in http.get(base + "/v1/members", params={"national_id": nid}).json()["items"]
    ]
    assert sorted(batch, key=lambda m: m["ssn"]) == sorted(singles, key=lambda m: m["ssn"])
    assert {"SSN900000001", "SSN900000002"} <= {m["ssn"] for m in batch}


def test_ssf_pensions(servers: SandboxServers, http: httpx.Client, country: Path) -> None:
    base = servers.base_url("ssf")
    with_pension = sample(country, "ssf", "SELECT ssn FROM pension ORDER BY ssn DESC LIMIT 15")
    without = sample(country, "ssf", "SELECT ssn FROM member WHERE ssn NOT IN (SELECT ssn FROM pension) LIMIT 15")
    ssns = ["SSN999999999", "SSN900000002", "SSN900000001", *with_pension, *without, "SSN900000002"]
    response = http.get(base + "/v1/pensions", params={"ssn": ssns})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    singles = [http.get(base + f"/v1/members/{s}/pension") for s in distinct(ssns)]
    assert items == [r.json() for r in singles if r.status_code == 200]
    assert [r.status_code for r in singles].count(404) == 1  # SSN999999999: left out of the batch
    assert items[0] == {
        "ssn": "SSN900000002",
        "has_pension": True,
        "pension": {"kind": "old-age", "monthly_amount": 3500, "start_date": "2015-04-01", "status": "in-payment"},
    }
    assert items[1] == {"ssn": "SSN900000001", "has_pension": False, "pension": None}


def test_ssf_batch_errors(servers: SandboxServers, http: httpx.Client) -> None:
    base = servers.base_url("ssf")
    many_ids = [f"{9000000000 + i}" for i in range(101)]
    many_ssns = [f"SSN{900000000 + i}" for i in range(101)]
    members, pensions = base + "/v1/members", base + "/v1/pensions"
    problem_of(
        http.get(members, params={"national_id": many_ids}), 400, "invalid-request", TOO_MANY.format("national_id")
    )
    problem_of(http.get(pensions, params={"ssn": many_ssns}), 400, "invalid-request", TOO_MANY.format("ssn"))
    assert http.get(pensions, params={"ssn": many_ssns[:100]}).status_code == 200
    problem_of(
        http.get(members, params={"national_id": malformed_at_3(many_ids, "900000000")}),
        400,
        "invalid-identifier",
        MALFORMED_3.format("national_id"),
    )
    doc = problem_of(
        http.get(pensions, params={"ssn": malformed_at_3(many_ssns, "ssn900000001")}),
        400,
        "invalid-identifier",
        MALFORMED_3.format("ssn"),
    )
    assert "ssn900000001" not in json.dumps(doc)
    # one national ID, as the search always took: the answer it always gave
    problem_of(
        http.get(members, params={"national_id": "900000000"}),
        400,
        "invalid-identifier",
        "Malformed identifier: national_id does not have the documented format.",
    )
    assert http.get(pensions).status_code == 422


# --- programme MIS --------------------------------------------------------------------------------


def test_msp_search_of_several(servers: SandboxServers, http: httpx.Client, ids: list[str]) -> None:
    search = servers.base_url("msp") + "/v1/beneficiaries"
    response = http.get(search, params={"national_id": ids})
    assert response.status_code == 200, response.text
    batch = response.json()["items"]
    singles = [b for nid in distinct(ids) for b in http.get(search, params={"national_id": nid}).json()["items"]]
    assert batch == sorted(singles, key=lambda b: b["beneficiary_no"])
    assert {"OAG-90000001", "DG-90000003"} <= {b["beneficiary_no"] for b in batch}
    narrowed = http.get(search, params={"national_id": ids, "programme": "old-age-grant"}).json()["items"]
    assert narrowed == [b for b in batch if b["programme"] == "old-age-grant"]


def test_msp_limit_does_not_cut_a_batch_short(servers: SandboxServers, http: httpx.Client, country: Path) -> None:
    search = servers.base_url("msp") + "/v1/beneficiaries"
    enrolled = sample(
        country,
        "msp",
        "SELECT DISTINCT national_id FROM beneficiary WHERE national_id IS NOT NULL ORDER BY 1 LIMIT 100",
    )
    expected = sample(
        country,
        "msp",
        f"SELECT beneficiary_no FROM beneficiary WHERE national_id IN ({', '.join('?' * len(enrolled))})"
        " ORDER BY beneficiary_no",
        enrolled,
    )
    if len(expected) <= msp.SEARCH_DEFAULT:
        pytest.skip("too few enrolments in this country to outgrow the default limit")
    for params in ({}, {"limit": 5}, {"limit": msp.SEARCH_MAX}):
        items = http.get(search, params={"national_id": enrolled, **params}).json()["items"]
        assert [b["beneficiary_no"] for b in items] == expected
    # a search by one national ID or by name keeps its limit
    assert len(http.get(search, params={"surname": "Mwangi", "limit": 1}).json()["items"]) == 1
    assert len(http.get(search, params={"national_id": "9000000001", "limit": 1}).json()["items"]) == 1


def test_msp_batch_errors(servers: SandboxServers, http: httpx.Client) -> None:
    search = servers.base_url("msp") + "/v1/beneficiaries"
    many = [f"{9000000000 + i}" for i in range(101)]
    problem_of(http.get(search, params={"national_id": many}), 400, "invalid-request", TOO_MANY.format("national_id"))
    problem_of(
        http.get(search, params={"national_id": malformed_at_3(many, "abc")}),
        400,
        "invalid-identifier",
        MALFORMED_3.format("national_id"),
    )
    problem_of(
        http.get(search, params={"national_id": "abc"}),
        400,
        "invalid-identifier",
        "Malformed identifier: national_id does not have the documented format.",
    )
    problem_of(http.get(search), 400, "missing-criteria", "Give national_id, or surname and/or birth_date.")


# --- one or two queries per batch -----------------------------------------------------------------


class CountingDb(AgencyDb):
    """An agency database that records the queries it is asked."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queries: list[str] = []

    def all(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        self.queries.append(sql)
        return super().all(sql, params)

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        self.queries.append(sql)
        return super().one(sql, params)


@pytest.mark.parametrize(
    ("agency", "path", "name", "most"),
    [
        ("tax", "/v1/incomes/batch", "national_id", 2),
        ("ssf", "/v1/members", "national_id", 1),
        ("ssf", "/v1/pensions", "ssn", 1),
        ("msp", "/v1/beneficiaries", "national_id", 2),  # the enrolments, then their flags
    ],
)
def test_rest_batches_take_one_or_two_queries(
    country: Path, ids: list[str], agency: str, path: str, name: str, most: int
) -> None:
    values = [f"SSN{900000000 + i}" for i in range(100)] if name == "ssn" else (ids * 3)[:100]
    db = CountingDb(country / AGENCY_FILES[agency])
    app = {"tax": tax.create_app, "ssf": ssf.create_app, "msp": msp.create_app}[agency](db)
    db.queries.clear()  # the MIS creates its event tables at start

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agency") as client:
            return await client.get(path, params={name: values})

    try:
        response = asyncio.run(ask())
    finally:
        db.close()
    assert response.status_code == 200, response.text
    assert response.json()["items"]
    assert 1 <= len(db.queries) <= most
    assert all(" IN (" in q for q in db.queries)


# --- OpenAPI --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agency", "path", "name", "pattern", "required"),
    [
        ("tax", "/v1/incomes/batch", "national_id", tax.NATIONAL_ID_PATTERN, True),
        ("ssf", "/v1/members", "national_id", ssf.NATIONAL_ID_PATTERN, True),
        ("ssf", "/v1/pensions", "ssn", ssf.SSN_PATTERN, True),
        ("msp", "/v1/beneficiaries", "national_id", msp.NATIONAL_ID_PATTERN, False),
    ],
)
def test_openapi_lists_the_batches(
    servers: SandboxServers, http: httpx.Client, agency: str, path: str, name: str, pattern: str, required: bool
) -> None:
    entry = servers.manifest["systems"][agency]
    assert path in entry["paths"]
    doc = http.get(entry["openapi"]).json()
    operation = doc["paths"][path]["get"]
    (param,) = [p for p in operation["parameters"] if p["name"] == name]
    assert (param["in"], param["required"]) == ("query", required)
    schema = param["schema"]
    assert schema["type"] == "array"
    assert schema["items"] == {"type": "string", "pattern": pattern}
    assert schema["maxItems"] == 100
    assert "400" in operation["responses"]
    assert PROBLEM in operation["responses"]["400"]["content"]
