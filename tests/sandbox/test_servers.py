"""The four agency systems as real servers on loopback, driven by plain httpx and zeep clients."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
import zeep.exceptions
from lxml import etree

from sandbox import cra
from sandbox.schema import AGENCY_FILES
from sandbox.servers import MANIFEST_FILE, SYSTEM_ORDER, SandboxServers
from tests.sandbox import fixtures_country as known

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PROBLEM = "application/problem+json"
NS = {"soap": SOAP_ENV, "cra": cra.TNS}


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("country")
    known.build_country(out)
    return out


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def servers(country: Path, manifest_dir: Path) -> Iterator[SandboxServers]:
    with SandboxServers(country, manifest_path=manifest_dir / MANIFEST_FILE, gateway="none") as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def civreg(servers: SandboxServers) -> Any:
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    wsdl = servers.manifest["systems"]["cra"]["wsdl"]
    return zeep.Client(wsdl, transport=transport).service


@pytest.fixture(autouse=True)
def _no_fault(servers: SandboxServers, http: httpx.Client) -> Iterator[None]:
    yield
    for code in SYSTEM_ORDER:
        http.post(servers.base_url(code) + "/_sandbox/fault", json={"mode": "none"})


def url(servers: SandboxServers, system: str, path: str) -> str:
    return servers.base_url(system) + path


def soap(op: str, inner: str = "", header: str = "") -> bytes:
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:cra="{cra.TNS}">{head}'
        f"<soap:Body><cra:{op}>{inner}</cra:{op}></soap:Body></soap:Envelope>"
    ).encode()


def post_soap(http: httpx.Client, servers: SandboxServers, body: bytes) -> httpx.Response:
    endpoint = servers.manifest["systems"]["cra"]["endpoint"]
    return http.post(endpoint, content=body, headers={"Content-Type": "text/xml; charset=utf-8"})


def fault_of(response: httpx.Response) -> tuple[str, str]:
    """faultcode and detail/errorCode of a SOAP Fault answer."""
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    fault = root.find("soap:Body/soap:Fault", NS)
    assert fault is not None
    return fault.findtext("faultcode") or "", fault.findtext("detail/cra:errorCode", namespaces=NS) or ""


def problem_of(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    doc: dict[str, Any] = response.json()
    assert doc["type"] == f"urn:zz:problem:{slug}"
    assert doc["status"] == status
    assert doc["title"]
    assert doc["detail"]
    return doc


# --- civil registry (SOAP) ------------------------------------------------------------------------


def test_wsdl_is_served_with_the_actual_address(servers: SandboxServers, http: httpx.Client) -> None:
    entry = servers.manifest["systems"]["cra"]
    response = http.get(entry["wsdl"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None
    assert address.get("location") == entry["endpoint"]
    ops = {op.get("name") for op in root.iterfind(".//{http://schemas.xmlsoap.org/wsdl/}portType/*")}
    assert ops == set(cra.OPERATIONS) == set(entry["operations"])


def test_get_person_by_national_id(civreg: Any) -> None:
    answer = civreg.GetPersonByNationalId(nationalId=known.AMINA["national_id"])
    assert answer.found is True
    person = answer.person
    assert person.recordId == "CRA900000001"
    assert (person.surname, person.givenName, person.secondName) == ("Mwangi", "Amina", "Wanjiru")
    assert person.sex == "F"
    assert str(person.birthDate) == "1950-03-14"
    assert person.birthYear == 1950
    assert person.motherName == "Grace Njeri"
    assert (person.districtCode, person.villageCode, person.householdId) == ("D01", "V0101", "HH90000001")
    assert person.birthCertificateNo == "BC/D01/1950/900001"
    assert person.deathDate is None
    assert person.status == "alive"


def test_deceased_person_and_year_only_birth(civreg: Any) -> None:
    joseph = civreg.GetPersonByNationalId(nationalId=known.JOSEPH["national_id"]).person
    assert joseph.status == "deceased"
    assert str(joseph.deathDate) == "2099-05-02"
    peter = civreg.GetPersonByNationalId(nationalId=known.PETER["national_id"]).person
    assert peter.birthDate is None
    assert peter.birthYear == 1960


def test_not_found_is_an_answer_not_a_fault(civreg: Any) -> None:
    answer = civreg.GetPersonByNationalId(nationalId="9999999990")
    assert answer.found is False
    assert answer.person is None
    answer = civreg.GetPersonByBirthCertificate(birthCertificateNo="BC/D09/1999/999999")
    assert answer.found is False


def test_get_person_by_birth_certificate(civreg: Any) -> None:
    answer = civreg.GetPersonByBirthCertificate(birthCertificateNo=known.BARAKA["birth_cert_no"])
    assert answer.found is True
    assert answer.person.recordId == "CRA900000003"
    assert answer.person.nationalId is None
    assert answer.person.motherName == "Amina Mwangi"


def test_search_persons_ranks_spelling_variants(civreg: Any) -> None:
    candidates = civreg.SearchPersons(surname="Mwangy", givenName="Amina", sex="F", birthYear=1951)
    ids = [c.person.recordId for c in candidates]
    assert set(ids[:2]) == {"CRA900000001", "CRA900000005"}  # Amina and her duplicate registration
    scores = [c.score for c in candidates]
    assert all(0 <= s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(candidates) <= 10


def test_search_persons_exact_date_and_district(civreg: Any) -> None:
    candidates = civreg.SearchPersons(
        surname="Mwangi", givenName="Amina", birthDate="1950-03-14", districtCode="D01", maxResults=5
    )
    assert candidates[0].person.recordId == "CRA900000001"
    assert candidates[0].score == 1.0
    assert candidates[1].person.recordId == "CRA900000005"
    assert candidates[1].score < 1.0
    assert len(candidates) <= 5


def test_search_persons_accepts_swapped_names(civreg: Any) -> None:
    candidates = civreg.SearchPersons(surname="Amina", givenName="Mwangi", birthYear=1950, maxResults=3)
    assert candidates[0].person.recordId in {"CRA900000001", "CRA900000005"}
    assert candidates[0].score > 0.8


def test_search_persons_without_year_uses_district(civreg: Any) -> None:
    candidates = civreg.SearchPersons(surname="Otieno", districtCode="D02", maxResults=50)
    assert "CRA900000004" in [c.person.recordId for c in candidates]


def test_search_persons_limits(civreg: Any) -> None:
    with pytest.raises(zeep.exceptions.Fault) as info:
        civreg.SearchPersons(surname="Mwangi", maxResults=51)
    assert info.value.code == "soap:Client"
    with pytest.raises(zeep.exceptions.Fault) as info:
        civreg.SearchPersons(birthYear=1950)
    assert info.value.code == "soap:Client"
    assert len(civreg.SearchPersons(surname="Mwangi", birthYear=1950, maxResults=1)) == 1


def test_get_household(civreg: Any) -> None:
    for query in ({"nationalId": "9000000001"}, {"recordId": "CRA900000003"}, {"householdId": "HH90000001"}):
        answer = civreg.GetHousehold(**query)
        assert answer.found is True
        assert answer.householdId == "HH90000001"
        members = [(m.relationship, m.person.recordId) for m in answer.member]
        assert members == [("head", "CRA900000001"), ("spouse", "CRA900000002"), ("child", "CRA900000003")]
    assert answer.member[1].person.status == "deceased"
    missing = civreg.GetHousehold(householdId="HH99999999")
    assert missing.found is False
    assert missing.member == []
    # a registered person without a household (the duplicate record)
    assert civreg.GetHousehold(recordId="CRA900000005").found is False
    with pytest.raises(zeep.exceptions.Fault) as info:
        civreg.GetHousehold(nationalId="9000000001", recordId="CRA900000001")
    assert info.value.code == "soap:Client"


def test_get_deaths_since(civreg: Any) -> None:
    answer = civreg.GetDeathsSince(since="2099-01-01")
    deaths = [(d.recordId, str(d.registeredOn)) for d in answer.death]
    assert deaths == [("CRA900000006", "2099-02-01"), ("CRA900000002", "2099-05-20")]
    assert answer.hasMore is False
    first = answer.death[0]
    assert (first.surname, first.givenName, first.sex, first.nationalId) == ("Achieng", "Mary", "F", "9000000006")
    assert str(first.deathDate) == "2099-01-10"
    page = civreg.GetDeathsSince(since="2099-01-01", limit=1)
    assert [d.recordId for d in page.death] == ["CRA900000006"]
    assert page.hasMore is True
    page = civreg.GetDeathsSince(since="2099-01-01", offset=1, limit=1)
    assert [d.recordId for d in page.death] == ["CRA900000002"]
    assert page.hasMore is False
    with pytest.raises(zeep.exceptions.Fault):
        civreg.GetDeathsSince(since="2099-01-01", limit=1001)


def test_all_deaths_are_in_registration_order(civreg: Any) -> None:
    deaths = civreg.GetDeathsSince(since="1900-01-01", limit=1000).death
    registered = [str(d.registeredOn) for d in deaths]
    assert registered == sorted(registered)
    assert all(d.deathDate is not None for d in deaths)


# --- GetPersonByRecordId, ListResidents -----------------------------------------------------------


def residents_in(country: Path, district: str, *, everyone: bool = False) -> list[str]:
    """Record ids the registry holds in a district (straight from its database), by record id."""
    conn = sqlite3.connect(country / AGENCY_FILES["cra"])
    try:
        alive = "" if everyone else " AND death_date IS NULL"
        rows = conn.execute(
            f"SELECT record_id FROM person WHERE district_code = ?{alive} ORDER BY record_id",
            (district,),
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def zeep_fault(call: Any, **kwargs: Any) -> tuple[str, str]:
    """faultcode and detail/errorCode of a Fault raised through zeep."""
    with pytest.raises(zeep.exceptions.Fault) as info:
        call(**kwargs)
    detail = info.value.detail
    assert detail is not None
    return info.value.code, detail.findtext(f"{{{cra.TNS}}}errorCode") or ""


def test_get_person_by_record_id(civreg: Any) -> None:
    answer = civreg.GetPersonByRecordId(recordId="CRA900000001")
    assert answer.found is True
    person = answer.person
    assert person.recordId == "CRA900000001"
    assert person.nationalId == known.AMINA["national_id"]
    assert (person.surname, person.givenName, person.secondName) == ("Mwangi", "Amina", "Wanjiru")
    assert (person.districtCode, person.villageCode, person.householdId) == ("D01", "V0101", "HH90000001")
    assert person.status == "alive"
    # the duplicate registration is a record of its own, found by its own id
    duplicate = civreg.GetPersonByRecordId(recordId="CRA900000005").person
    assert (duplicate.recordId, duplicate.nationalId, duplicate.districtCode) == ("CRA900000005", None, "D02")
    joseph = civreg.GetPersonByRecordId(recordId="CRA900000002").person
    assert joseph.status == "deceased"
    assert str(joseph.deathDate) == "2099-05-02"


def test_get_person_by_record_id_not_found(civreg: Any) -> None:
    answer = civreg.GetPersonByRecordId(recordId="CRA999999999")
    assert answer.found is False
    assert answer.person is None


def test_get_person_by_record_id_malformed(civreg: Any) -> None:
    assert zeep_fault(civreg.GetPersonByRecordId, recordId="CRA12345") == ("soap:Client", "invalid-argument")
    assert zeep_fault(civreg.GetPersonByRecordId, recordId="cra900000001") == ("soap:Client", "invalid-argument")


def test_list_residents_alive_by_record_id(civreg: Any, country: Path) -> None:
    expected = residents_in(country, "D01")
    answer = civreg.ListResidents(districtCode="D01", limit=1000)
    ids = [p.recordId for p in answer.person]
    assert ids == expected
    assert answer.hasMore is False
    assert {"CRA900000001", "CRA900000003"} <= set(ids)  # Amina and Baraka
    assert not {"CRA900000002", "CRA900000006"} & set(ids)  # Joseph and Mary have died
    assert all(p.status == "alive" and p.districtCode == "D01" for p in answer.person)
    amina = answer.person[ids.index("CRA900000001")]
    assert (amina.surname, amina.givenName, str(amina.birthDate)) == ("Mwangi", "Amina", "1950-03-14")
    explicit = civreg.ListResidents(districtCode="D01", status="alive", limit=1000)
    assert [p.recordId for p in explicit.person] == expected


def test_list_residents_all_includes_the_deceased(civreg: Any, country: Path) -> None:
    expected = residents_in(country, "D01", everyone=True)
    answer = civreg.ListResidents(districtCode="D01", status="all", limit=1000)
    ids = [p.recordId for p in answer.person]
    assert ids == expected
    assert answer.hasMore is False
    assert {"CRA900000001", "CRA900000002", "CRA900000003", "CRA900000006"} <= set(ids)
    statuses = {p.recordId: p.status for p in answer.person}
    assert (statuses["CRA900000002"], statuses["CRA900000006"]) == ("deceased", "deceased")
    assert set(ids) - set(residents_in(country, "D01")) == {p.recordId for p in answer.person if p.status == "deceased"}


def test_list_residents_lists_duplicates_as_they_are(civreg: Any, country: Path) -> None:
    ids = [p.recordId for p in civreg.ListResidents(districtCode="D02", limit=1000).person]
    assert ids == residents_in(country, "D02")
    # Amina's duplicate registration lives in D02 on the record; Amina herself (D01) is not listed
    assert {"CRA900000004", "CRA900000005"} <= set(ids)
    assert "CRA900000001" not in ids


def test_list_residents_pages(civreg: Any, country: Path) -> None:
    expected = residents_in(country, "D01", everyone=True)
    assert len(expected) > 7
    seen: list[str] = []
    offset = 0
    while True:
        page = civreg.ListResidents(districtCode="D01", status="all", offset=offset, limit=7)
        ids = [p.recordId for p in page.person]
        assert len(ids) <= 7
        seen += ids
        offset += 7
        if not page.hasMore:
            break
        assert len(ids) == 7
    assert seen == expected
    last = civreg.ListResidents(districtCode="D01", status="all", offset=len(expected) - 1, limit=1)
    assert ([p.recordId for p in last.person], last.hasMore) == ([expected[-1]], False)
    before = civreg.ListResidents(districtCode="D01", status="all", offset=len(expected) - 2, limit=1)
    assert ([p.recordId for p in before.person], before.hasMore) == ([expected[-2]], True)
    beyond = civreg.ListResidents(districtCode="D01", status="all", offset=len(expected), limit=5)
    assert (beyond.person, beyond.hasMore) == ([], False)
    default = civreg.ListResidents(districtCode="D01", status="all")
    assert [p.recordId for p in default.person] == expected[: cra.RESIDENTS_DEFAULT]
    assert default.hasMore is (len(expected) > cra.RESIDENTS_DEFAULT)


def test_list_residents_of_an_unknown_district_is_empty(civreg: Any) -> None:
    answer = civreg.ListResidents(districtCode="NOWHERE-99")
    assert (answer.person, answer.hasMore) == ([], False)


def test_list_residents_limits_through_zeep(civreg: Any) -> None:
    assert zeep_fault(civreg.ListResidents, districtCode="D01", limit=1001) == ("soap:Client", "invalid-argument")
    assert zeep_fault(civreg.ListResidents, districtCode="D01", limit=0) == ("soap:Client", "invalid-argument")
    assert zeep_fault(civreg.ListResidents, districtCode="D01", offset=-1) == ("soap:Client", "invalid-argument")
    assert zeep_fault(civreg.ListResidents, districtCode="D 01") == ("soap:Client", "invalid-argument")
    assert len(civreg.ListResidents(districtCode="D01", status="all", limit=1000).person) <= cra.RESIDENTS_MAX


@pytest.mark.parametrize(
    ("op", "inner", "error"),
    [
        ("GetPersonByRecordId", "", "missing-argument"),
        ("GetPersonByRecordId", "<cra:recordId>CRA1</cra:recordId>", "invalid-argument"),
        ("GetPersonByRecordId", "<cra:recordId>CRA9000000011</cra:recordId>", "invalid-argument"),
        ("GetPersonByRecordId", "<cra:recordId>9000000001</cra:recordId>", "invalid-argument"),
        ("ListResidents", "", "missing-argument"),
        ("ListResidents", "<cra:status>all</cra:status>", "missing-argument"),
        ("ListResidents", "<cra:districtCode>D01;--</cra:districtCode>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D0123456789ABC</cra:districtCode>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:status>dead</cra:status>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:status>ALL</cra:status>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:offset>-1</cra:offset>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:offset>x</cra:offset>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:limit>0</cra:limit>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:limit>1001</cra:limit>", "invalid-argument"),
        ("ListResidents", "<cra:districtCode>D01</cra:districtCode><cra:limit>ten</cra:limit>", "invalid-argument"),
    ],
)
def test_record_and_resident_arguments_are_client_faults(
    servers: SandboxServers, http: httpx.Client, op: str, inner: str, error: str
) -> None:
    assert fault_of(post_soap(http, servers, soap(op, inner))) == ("soap:Client", error)


def test_list_residents_on_the_wire(servers: SandboxServers, http: httpx.Client, country: Path) -> None:
    inner = "<cra:districtCode>D02</cra:districtCode><cra:limit>1</cra:limit>"
    response = post_soap(http, servers, soap("ListResidents", inner))
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    out = root.find("soap:Body/cra:ListResidentsResponse", NS)
    assert out is not None
    assert [etree.QName(c).localname for c in out] == ["person", "hasMore"]
    assert out.findtext("cra:person/cra:recordId", namespaces=NS) == residents_in(country, "D02")[0]
    assert out.findtext("cra:hasMore", namespaces=NS) == "true"


@pytest.mark.parametrize(
    ("op", "inner"),
    [
        ("GetPersonByNationalId", "<cra:nationalId>12345</cra:nationalId>"),
        ("GetPersonByNationalId", "<cra:nationalId>90000000O1</cra:nationalId>"),
        ("GetPersonByNationalId", ""),
        ("GetPersonByBirthCertificate", "<cra:birthCertificateNo>1950/1</cra:birthCertificateNo>"),
        ("GetHousehold", "<cra:recordId>CRA1</cra:recordId>"),
        ("GetHousehold", "<cra:householdId>HH1</cra:householdId>"),
        ("GetDeathsSince", "<cra:since>2099-13-01</cra:since>"),
        ("GetDeathsSince", "<cra:since>2099-01-01</cra:since><cra:offset>-1</cra:offset>"),
        ("SearchPersons", "<cra:surname>Mwangi</cra:surname><cra:sex>X</cra:sex>"),
        ("SearchPersons", "<cra:surname>Mwangi</cra:surname><cra:birthYear>soon</cra:birthYear>"),
    ],
)
def test_invalid_arguments_are_client_faults(servers: SandboxServers, http: httpx.Client, op: str, inner: str) -> None:
    code, error = fault_of(post_soap(http, servers, soap(op, inner)))
    assert code == "soap:Client"
    assert error in {"invalid-argument", "missing-argument"}


def test_malformed_identifier_through_zeep(civreg: Any) -> None:
    with pytest.raises(zeep.exceptions.Fault) as info:
        civreg.GetPersonByNationalId(nationalId="12-34")
    assert info.value.code == "soap:Client"
    assert "nationalId" in info.value.message


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>", "malformed-xml"),
        (b"not xml at all", "malformed-xml"),
        (b"<Envelope><Body/></Envelope>", "not-soap"),
        (soap("DeletePerson"), "unknown-operation"),
        (soap("GetPersonByNationalId").replace(cra.TNS.encode(), b"urn:other"), "unknown-operation"),
        (b"<a>&undefined;</a>", "malformed-xml"),
    ],
)
def test_malformed_requests_are_client_faults(
    servers: SandboxServers, http: httpx.Client, body: bytes, error: str
) -> None:
    assert fault_of(post_soap(http, servers, body)) == ("soap:Client", error)


def test_soap12_envelope_is_a_version_mismatch(servers: SandboxServers, http: httpx.Client) -> None:
    body = soap("GetPersonByNationalId").replace(SOAP_ENV.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    assert fault_of(post_soap(http, servers, body))[0] == "soap:VersionMismatch"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode() for i in range(1, 10)
    )
    + b"]>\n"
    + soap("GetPersonByNationalId", "<cra:nationalId>&lol9;</cra:nationalId>")
)
EXTERNAL_ENTITY = b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n' + soap(
    "GetPersonByNationalId", "<cra:nationalId>&xxe;</cra:nationalId>"
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_entity_declarations_are_refused_without_expansion(
    servers: SandboxServers, http: httpx.Client, body: bytes
) -> None:
    started = time.monotonic()
    response = post_soap(http, servers, body)
    assert time.monotonic() - started < 2
    assert fault_of(response) == ("soap:Client", "forbidden-dtd")
    assert len(response.content) < 2000
    assert b"lollol" not in response.content
    assert b"root:" not in response.content


def test_entity_declarations_are_refused_by_the_parser_too() -> None:
    """Even when the byte scan is fooled (UTF-16), the parsed document's DTD is caught."""
    body = BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(cra.SoapFault) as info:
        cra.parse_request(body.decode().encode("utf-16"))
    assert info.value.code == "Client"
    assert info.value.error_code in {"forbidden-dtd", "malformed-xml"}


def test_oversized_request_is_refused(servers: SandboxServers, http: httpx.Client) -> None:
    body = soap("SearchPersons", "<cra:surname>" + "A" * (cra.MAX_BODY + 10) + "</cra:surname>")
    assert fault_of(post_soap(http, servers, body)) == ("soap:Client", "too-large")


def test_soap_headers_are_echoed(servers: SandboxServers, http: httpx.Client) -> None:
    header = '<xrd:id xmlns:xrd="http://x-road.eu/xsd/xroad.xsd">abc-123</xrd:id>'
    response = post_soap(
        http, servers, soap("GetPersonByNationalId", "<cra:nationalId>9000000001</cra:nationalId>", header)
    )
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    assert root.findtext("soap:Header/{http://x-road.eu/xsd/xroad.xsd}id", namespaces=NS) == "abc-123"
    assert root.findtext("soap:Body/cra:GetPersonByNationalIdResponse/cra:found", namespaces=NS) == "true"


def test_get_without_wsdl_query_is_not_allowed(servers: SandboxServers, http: httpx.Client) -> None:
    response = http.get(servers.manifest["systems"]["cra"]["endpoint"])
    assert response.status_code == 405


# --- tax authority --------------------------------------------------------------------------------


def test_tax_taxpayer_with_incomes(servers: SandboxServers, http: httpx.Client) -> None:
    doc = http.get(url(servers, "tax", "/v1/taxpayers/TIN90000001")).json()
    assert doc["tin"] == "TIN90000001"
    assert doc["national_id"] == "9000000004"
    assert (doc["surname"], doc["given_name"]) == ("Otieno", "Peter")
    assert [(i["year"], i["kind"], i["payer"], i["gross_income"], i["tax_paid"]) for i in doc["incomes"]] == [
        (2022, "employment", "Acme Ltd", 120000, 12000),
        (2023, "employment", "Acme Ltd", 130000, 13000),
        (2023, "business", "self", 20000, 1000),
    ]
    filtered = http.get(url(servers, "tax", "/v1/taxpayers/TIN90000001"), params={"from_year": 2023}).json()
    assert {i["year"] for i in filtered["incomes"]} == {2023}
    incomes = http.get(url(servers, "tax", "/v1/taxpayers/TIN90000001/incomes"), params={"to_year": 2022}).json()
    assert incomes == {
        "tin": "TIN90000001",
        "incomes": [
            {"year": 2022, "kind": "employment", "payer": "Acme Ltd", "gross_income": 120000, "tax_paid": 12000}
        ],
    }


def test_tax_by_national_id(servers: SandboxServers, http: httpx.Client) -> None:
    found = http.get(url(servers, "tax", "/v1/taxpayers"), params={"national_id": "9000000004"}).json()
    assert [t["tin"] for t in found["items"]] == ["TIN90000001", "TIN90000002"]
    doc = http.get(url(servers, "tax", "/v1/incomes"), params={"national_id": "9000000004"}).json()
    assert doc["tins"] == ["TIN90000001", "TIN90000002"]
    assert len(doc["incomes"]) == 4
    assert doc["totals"] == [
        {"year": 2021, "gross_income": 5000, "tax_paid": 0},
        {"year": 2022, "gross_income": 120000, "tax_paid": 12000},
        {"year": 2023, "gross_income": 150000, "tax_paid": 14000},
    ]
    none = http.get(url(servers, "tax", "/v1/incomes"), params={"national_id": "9999999990"}).json()
    assert (none["tins"], none["incomes"], none["totals"]) == ([], [], [])
    assert http.get(url(servers, "tax", "/v1/taxpayers"), params={"national_id": "9999999990"}).json() == {"items": []}


def test_tax_errors(servers: SandboxServers, http: httpx.Client) -> None:
    problem_of(http.get(url(servers, "tax", "/v1/taxpayers/TIN99999999")), 404, "not-found")
    doc = problem_of(http.get(url(servers, "tax", "/v1/taxpayers/TIN123")), 400, "invalid-identifier")
    assert "tin" in doc["detail"]
    assert "TIN123" not in json.dumps(doc["errors"])  # the value is not echoed
    problem_of(http.get(url(servers, "tax", "/v1/incomes"), params={"national_id": "12ab"}), 400, "invalid-identifier")
    problem_of(http.get(url(servers, "tax", "/v1/incomes")), 422, "invalid-request")
    problem_of(
        http.get(url(servers, "tax", "/v1/taxpayers/TIN90000001"), params={"from_year": "last"}), 422, "invalid-request"
    )
    problem_of(http.get(url(servers, "tax", "/v2/nothing")), 404, "not-found")
    problem_of(http.post(url(servers, "tax", "/v1/taxpayers/TIN90000001")), 405, "method-not-allowed")


# --- social security fund -------------------------------------------------------------------------


def test_ssf_member_contributions_pension(servers: SandboxServers, http: httpx.Client) -> None:
    member = http.get(url(servers, "ssf", "/v1/members/SSN900000001")).json()
    assert member | {"birth_date": None} == known.MEMBERS[0]
    contributions = http.get(url(servers, "ssf", "/v1/members/SSN900000001/contributions")).json()
    assert contributions["contributions"] == [
        {"year": 2022, "employer": "Acme Ltd", "months": 12, "amount": 24000},
        {"year": 2023, "employer": "Acme Ltd", "months": 10, "amount": 21000},
    ]
    assert (contributions["total_months"], contributions["total_amount"], contributions["last_year"]) == (
        22,
        45000,
        2023,
    )
    later = http.get(url(servers, "ssf", "/v1/members/SSN900000001/contributions"), params={"from_year": 2023}).json()
    assert later["total_months"] == 10
    assert http.get(url(servers, "ssf", "/v1/members/SSN900000001/pension")).json() == {
        "ssn": "SSN900000001",
        "has_pension": False,
        "pension": None,
    }
    pension = http.get(url(servers, "ssf", "/v1/members/SSN900000002/pension")).json()
    assert pension["has_pension"] is True
    assert pension["pension"] == {
        "kind": "old-age",
        "monthly_amount": 3500,
        "start_date": "2015-04-01",
        "status": "in-payment",
    }


def test_ssf_by_national_id_and_errors(servers: SandboxServers, http: httpx.Client) -> None:
    found = http.get(url(servers, "ssf", "/v1/members"), params={"national_id": "9000000001"}).json()
    assert [m["ssn"] for m in found["items"]] == ["SSN900000002"]
    assert http.get(url(servers, "ssf", "/v1/members"), params={"national_id": "9999999990"}).json() == {"items": []}
    for path in (
        "/v1/members/SSN999999999",
        "/v1/members/SSN999999999/contributions",
        "/v1/members/SSN999999999/pension",
    ):
        problem_of(http.get(url(servers, "ssf", path)), 404, "not-found")
    for path in ("/v1/members/ssn900000001", "/v1/members/SSN9/pension", "/v1/members/12345/contributions"):
        problem_of(http.get(url(servers, "ssf", path)), 400, "invalid-identifier")
    problem_of(
        http.get(url(servers, "ssf", "/v1/members"), params={"national_id": "900000000"}), 400, "invalid-identifier"
    )


# --- programme MIS --------------------------------------------------------------------------------


def test_msp_beneficiary_and_enrolment(servers: SandboxServers, http: httpx.Client) -> None:
    doc = http.get(url(servers, "msp", "/v1/beneficiaries/CSG-90000002")).json()
    assert doc == known.BENEFICIARIES[1] | {"flags": []}
    enrolment = http.get(url(servers, "msp", "/v1/beneficiaries/OAG-90000001/enrolment")).json()
    assert enrolment == {
        "beneficiary_no": "OAG-90000001",
        "programme": "old-age-grant",
        "status": "active",
        "active": True,
        "enrolled_on": "2015-05-01",
        "monthly_amount": 1500,
    }
    suspended = http.get(url(servers, "msp", "/v1/beneficiaries/DG-90000003/enrolment")).json()
    assert (suspended["status"], suspended["active"]) == ("suspended", False)


def test_msp_search(servers: SandboxServers, http: httpx.Client) -> None:
    def search(**params: Any) -> list[str]:
        response = http.get(url(servers, "msp", "/v1/beneficiaries"), params=params)
        assert response.status_code == 200, response.text
        return [b["beneficiary_no"] for b in response.json()["items"]]

    assert search(national_id="9000000004") == ["DG-90000003"]
    assert search(surname="MWANGI", birth_date="1950-03-14") == ["OAG-90000001"]
    assert search(surname="mwangi", given_name="baraka") == ["CSG-90000002"]
    mwangi = search(surname="Mwangi", programme="child-grant")
    assert "CSG-90000002" in mwangi
    assert "OAG-90000001" not in mwangi
    assert search(birth_date="2015-01-20", programme="child-grant", limit=200).count("CSG-90000002") == 1
    assert search(national_id="9999999990") == []


def test_msp_errors(servers: SandboxServers, http: httpx.Client) -> None:
    search = url(servers, "msp", "/v1/beneficiaries")
    problem_of(http.get(search), 400, "missing-criteria")
    problem_of(http.get(search, params={"given_name": "Amina"}), 400, "missing-criteria")
    problem_of(http.get(search, params={"national_id": "abc"}), 400, "invalid-identifier")
    problem_of(http.get(search, params={"surname": "Mwangi", "programme": "housing"}), 422, "invalid-request")
    problem_of(http.get(search, params={"birth_date": "14/03/1950"}), 422, "invalid-request")
    problem_of(http.get(search, params={"surname": "Mwangi", "limit": 0}), 422, "invalid-request")
    problem_of(http.get(url(servers, "msp", "/v1/beneficiaries/XYZ-90000001")), 400, "invalid-identifier")
    problem_of(http.get(url(servers, "msp", "/v1/beneficiaries/OAG-99999999")), 404, "not-found")
    problem_of(http.get(url(servers, "msp", "/v1/beneficiaries/OAG-99999999/enrolment")), 404, "not-found")


# --- OpenAPI and the manifest ---------------------------------------------------------------------


@pytest.mark.parametrize("system", ["tax", "ssf", "msp"])
def test_openapi_documents(servers: SandboxServers, http: httpx.Client, system: str) -> None:
    entry = servers.manifest["systems"][system]
    doc = http.get(entry["openapi"]).json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == set(entry["paths"])
    for path in doc["paths"].values():
        for operation in path.values():
            responses = operation["responses"]
            assert "200" in responses
            errors = [code for code in responses if code.startswith("4")]
            assert errors
            assert all(PROBLEM in responses[code]["content"] for code in errors)


def test_manifest_lists_the_four_reachable_systems(
    servers: SandboxServers, http: httpx.Client, manifest_dir: Path
) -> None:
    manifest = json.loads((manifest_dir / MANIFEST_FILE).read_text())
    assert manifest == servers.manifest
    assert manifest["instance"] == "ZZ"
    systems = manifest["systems"]
    assert list(systems) == ["cra", "tax", "ssf", "msp"]
    assert {code: s["member"] for code, s in systems.items()} == {
        "cra": "ZZ/GOV/CRA",
        "tax": "ZZ/GOV/TAX",
        "ssf": "ZZ/GOV/SSF",
        "msp": "ZZ/GOV/MSP",
    }
    assert systems["cra"]["name"] == "Civil Registration Authority"
    assert systems["msp"]["name"] == "Ministry of Social Protection programme MIS"
    assert len({s["base_url"] for s in systems.values()}) == 4
    for s in systems.values():
        assert s["base_url"].startswith("http://127.0.0.1:")
        assert http.get(s["base_url"] + "/_sandbox/health").json() == {"status": "ok"}
    assert systems["cra"]["kind"] == "soap"
    assert systems["cra"]["endpoint"] == systems["cra"]["base_url"] + "/civreg"
    assert http.get(systems["cra"]["wsdl"]).status_code == 200
    for code in ("tax", "ssf", "msp"):
        assert systems[code]["kind"] == "rest"
        assert http.get(systems[code]["openapi"]).status_code == 200


def test_missing_country_fails_before_starting(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), SandboxServers(tmp_path):
        pass


def test_serve_forever_writes_manifest_and_stops_on_sigterm(country: Path, tmp_path: Path) -> None:
    for name in AGENCY_FILES.values():
        shutil.copy(country / name, tmp_path / name)
    code = (
        f"from pathlib import Path; from sandbox.servers import serve_forever; serve_forever(Path({str(tmp_path)!r}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, text=True
    )
    try:
        manifest_file = tmp_path / MANIFEST_FILE
        deadline = time.monotonic() + 20
        while not manifest_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        manifest = json.loads(manifest_file.read_text())
        for system in manifest["systems"].values():
            assert httpx.get(system["base_url"] + "/_sandbox/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert not manifest_file.exists()
        assert "ZZ/GOV/CRA" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# --- fault injection ------------------------------------------------------------------------------

#: One ordinary agency request per system.
AGENCY_REQUEST: dict[str, tuple[str, str, bytes | None]] = {
    "cra": ("POST", "/civreg", soap("GetPersonByNationalId", "<cra:nationalId>9000000001</cra:nationalId>")),
    "tax": ("GET", "/v1/taxpayers/TIN90000001", None),
    "ssf": ("GET", "/v1/members/SSN900000001", None),
    "msp": ("GET", "/v1/beneficiaries/OAG-90000001", None),
}


def agency_call(http: httpx.Client, servers: SandboxServers, system: str) -> httpx.Response:
    method, path, body = AGENCY_REQUEST[system]
    headers = {"Content-Type": "text/xml; charset=utf-8"} if body else {}
    return http.request(method, url(servers, system, path), content=body, headers=headers)


def set_fault(http: httpx.Client, servers: SandboxServers, system: str, **fault: Any) -> dict[str, Any]:
    response = http.post(url(servers, system, "/_sandbox/fault"), json=fault)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def hits(http: httpx.Client, servers: SandboxServers, system: str) -> int:
    n: int = http.get(url(servers, system, "/_sandbox/hits")).json()["hits"]
    return n


def assert_normal(response: httpx.Response, system: str) -> None:
    assert response.status_code == 200
    if system == "cra":
        assert b"<cra:found>true</cra:found>" in response.content
    else:
        assert response.json()


@pytest.mark.parametrize("system", SYSTEM_ORDER)
def test_fault_error_applies_to_count_requests(servers: SandboxServers, http: httpx.Client, system: str) -> None:
    set_fault(http, servers, system, mode="error", count=2)
    assert hits(http, servers, system) == 0
    for _ in range(2):
        response = agency_call(http, servers, system)
        if system == "cra":
            assert fault_of(response) == ("soap:Server", "internal-error")
        else:
            problem_of(response, 500, "injected-fault")
    assert_normal(agency_call(http, servers, system), system)
    assert hits(http, servers, system) == 3


@pytest.mark.parametrize("system", SYSTEM_ORDER)
def test_fault_garbage_is_a_broken_body(servers: SandboxServers, http: httpx.Client, system: str) -> None:
    set_fault(http, servers, system, mode="garbage", count=1)
    response = agency_call(http, servers, system)
    assert response.status_code == 200
    if system == "cra":
        assert response.headers["content-type"].startswith("text/xml")
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(response.content)
    else:
        assert response.headers["content-type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            response.json()
    assert_normal(agency_call(http, servers, system), system)


@pytest.mark.parametrize("system", SYSTEM_ORDER)
def test_fault_delay_does_not_block_the_server(servers: SandboxServers, http: httpx.Client, system: str) -> None:
    set_fault(http, servers, system, mode="delay", seconds=0.6, count=1)
    slow: dict[str, Any] = {}

    def call() -> None:
        started = time.monotonic()
        with httpx.Client(timeout=10) as other:
            slow["response"] = agency_call(other, servers, system)
        slow["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert_normal(agency_call(http, servers, system), system)  # the fault's one request is taken
    assert time.monotonic() - started < 0.4
    thread.join(timeout=10)
    assert slow["elapsed"] >= 0.55
    assert_normal(slow["response"], system)
    assert hits(http, servers, system) == 2


def test_fault_until_cleared_and_what_is_not_counted(servers: SandboxServers, http: httpx.Client) -> None:
    state = set_fault(http, servers, "tax", mode="error", count=None)
    assert state == {"mode": "error", "seconds": 0.0, "count": None, "hits": 0}
    for _ in range(3):
        assert agency_call(http, servers, "tax").status_code == 500
    # metadata and control endpoints are neither faulted nor counted
    assert http.get(url(servers, "tax", "/openapi.json")).status_code == 200
    assert http.get(url(servers, "tax", "/_sandbox/fault")).json()["mode"] == "error"
    assert hits(http, servers, "tax") == 3
    set_fault(http, servers, "tax", mode="none")
    assert hits(http, servers, "tax") == 0
    assert_normal(agency_call(http, servers, "tax"), "tax")
    assert hits(http, servers, "tax") == 1
    # an unknown path is still an agency request
    http.get(url(servers, "tax", "/v1/unknown"))
    assert hits(http, servers, "tax") == 2

    set_fault(http, servers, "cra", mode="error")
    assert http.get(servers.manifest["systems"]["cra"]["wsdl"]).status_code == 200
    assert hits(http, servers, "cra") == 0


def test_zeep_meets_injected_faults(servers: SandboxServers, http: httpx.Client, civreg: Any) -> None:
    set_fault(http, servers, "cra", mode="error", count=1)
    with pytest.raises(zeep.exceptions.Fault) as info:
        civreg.GetPersonByNationalId(nationalId="9000000001")
    assert info.value.code == "soap:Server"
    assert civreg.GetPersonByNationalId(nationalId="9000000001").found is True
    assert hits(http, servers, "cra") == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "explode"},
        {"mode": "delay"},
        {"mode": "delay", "seconds": -1},
        {"mode": "delay", "seconds": "1"},
        {"mode": "error", "count": -1},
        {"mode": "error", "count": 1.5},
        ["error"],
    ],
)
def test_invalid_fault_requests(servers: SandboxServers, http: httpx.Client, fault: Any) -> None:
    response = http.post(url(servers, "ssf", "/_sandbox/fault"), json=fault)
    assert response.status_code == 400
    assert response.json()["error"]
    assert http.get(url(servers, "ssf", "/_sandbox/fault")).json()["mode"] == "none"


def test_unknown_control_endpoint(servers: SandboxServers, http: httpx.Client) -> None:
    assert http.get(url(servers, "msp", "/_sandbox/nothing")).status_code == 404


# --- a generated country ----------------------------------------------------------------------------


def test_generated_records_are_served(country: Path, servers: SandboxServers, http: httpx.Client, civreg: Any) -> None:
    """Every system answers for records the generator wrote, not only for the known ones."""
    if not (country / "truth.sqlite").exists():
        pytest.skip("the generator is not available")

    def sample(agency: str, sql: str) -> list[sqlite3.Row]:
        conn = sqlite3.connect(country / AGENCY_FILES[agency])
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(sql))
        finally:
            conn.close()

    people = sample(
        "cra",
        "SELECT * FROM person WHERE national_id IS NOT NULL AND birth_date IS NOT NULL"
        " AND record_id NOT LIKE 'CRA9000%' ORDER BY record_id LIMIT 15",
    )
    assert people
    for row in people:
        answer = civreg.GetPersonByNationalId(nationalId=row["national_id"])
        assert answer.found is True
        assert answer.person.nationalId == row["national_id"]
        candidates = civreg.SearchPersons(
            surname=row["surname"], givenName=row["given_name"], birthDate=row["birth_date"], maxResults=50
        )
        best = candidates[0].score
        assert row["record_id"] in [c.person.recordId for c in candidates if c.score == best]
    for agency, sql, path in [
        ("tax", "SELECT tin FROM taxpayer LIMIT 5", "/v1/taxpayers/{}"),
        ("ssf", "SELECT ssn FROM member LIMIT 5", "/v1/members/{}/contributions"),
        ("msp", "SELECT beneficiary_no FROM beneficiary LIMIT 5", "/v1/beneficiaries/{}/enrolment"),
    ]:
        for (key,) in sample(agency, sql):
            assert http.get(url(servers, agency, path.format(key))).status_code == 200


def test_internal_failures_are_server_errors_without_identifiers_in_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Databases without tables make every query fail: the answer is a clean 500, the log names no one."""
    for name in AGENCY_FILES.values():
        sqlite3.connect(tmp_path / name).close()
    with SandboxServers(tmp_path, gateway="none") as broken, httpx.Client(timeout=10) as http:
        response = http.get(url(broken, "tax", "/v1/taxpayers/TIN90000001"))
        problem_of(response, 500, "internal-error")
        code, error = fault_of(post_soap(http, broken, AGENCY_REQUEST["cra"][2] or b""))
        assert (code, error) == ("soap:Server", "internal-error")
    assert "TIN90000001" not in caplog.text
    assert "9000000001" not in caplog.text
