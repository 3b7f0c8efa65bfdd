"""The Civil Registration Authority's civil registry: a SOAP 1.1 service, as many registries still run.

Hand-made rather than generated so that the wire format is exactly what the WSDL (`cra.wsdl`) says
and so that the parser is under control: requests come from outside, and XML is a well-known attack
surface (entity expansion, external entities), so no DTD is ever accepted.

Conventions: a person who is not registered is a normal answer (`found` false), not a Fault; invalid
input is a `soap:Client` Fault, a failure of the registry a `soap:Server` Fault, both with HTTP 500
as SOAP 1.1 over HTTP prescribes, and an `errorCode` in the detail. SOAP headers of the request are
echoed in the response (the X-Road convention), and otherwise ignored.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from datetime import date
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import phonetic
from sandbox.agencydb import AgencyDb
from sandbox.faults import Canned, FaultInjection

TNS = "urn:zz:cra:civreg:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
PATH = "/civreg"
XML_TYPE = "text/xml; charset=utf-8"
MAX_BODY = 1 << 20
WSDL_FILE = Path(__file__).with_name("cra.wsdl")

OPERATIONS = (
    "GetPersonByNationalId",
    "GetPersonByBirthCertificate",
    "SearchPersons",
    "GetHousehold",
    "GetDeathsSince",
    "GetPersonByRecordId",
    "ListResidents",
    "GetBirthsSince",
    "GetPersonsByNationalIds",
)

SEARCH_DEFAULT, SEARCH_MAX = 10, 50
DEATHS_DEFAULT, DEATHS_MAX = 100, 1000
BIRTHS_DEFAULT, BIRTHS_MAX = 100, 1000
RESIDENTS_DEFAULT, RESIDENTS_MAX = 100, 1000
#: National IDs one GetPersonsByNationalIds may ask for.
BATCH_MAX = 100
_CANDIDATES_PER_KEY = 1000

_NATIONAL_ID = re.compile(r"[0-9]{10}")
_RECORD_ID = re.compile(r"CRA[0-9]{9}")
_HOUSEHOLD_ID = re.compile(r"HH[0-9]{8}")
_BIRTH_CERT = re.compile(r"BC/[A-Z0-9-]{1,12}/[0-9]{4}/[0-9]{1,12}")
_DISTRICT = re.compile(r"[A-Za-z0-9-]{1,12}")
_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(Z|[+-][0-9]{2}:[0-9]{2})?")
_INT = re.compile(r"[+-]?[0-9]{1,9}")
_MAX_NAME = 100

#: Person element names in the XSD's order, with the database column each comes from.
_PERSON_FIELDS = (
    ("recordId", "record_id"),
    ("nationalId", "national_id"),
    ("birthCertificateNo", "birth_cert_no"),
    ("surname", "surname"),
    ("givenName", "given_name"),
    ("secondName", "second_name"),
    ("sex", "sex"),
    ("birthDate", "birth_date"),
    ("birthYear", "birth_year"),
    ("motherName", "mother_name"),
    ("birthDistrict", "birth_district"),
    ("districtCode", "district_code"),
    ("villageCode", "village_code"),
    ("householdId", "household_id"),
    ("deathDate", "death_date"),
)
_DEATH_FIELDS = (
    ("recordId", "record_id"),
    ("nationalId", "national_id"),
    ("surname", "surname"),
    ("givenName", "given_name"),
    ("sex", "sex"),
    ("birthDate", "birth_date"),
    ("deathDate", "death_date"),
    ("registeredOn", "death_registered_on"),
)
_BIRTH_FIELDS = (
    ("recordId", "record_id"),
    ("nationalId", "national_id"),
    ("birthCertificateNo", "birth_cert_no"),
    ("surname", "surname"),
    ("givenName", "given_name"),
    ("sex", "sex"),
    ("birthDate", "birth_date"),
    ("motherRecordId", "mother_record_id"),
    ("motherNationalId", "mother_national_id"),
    ("districtCode", "district_code"),
    ("registeredOn", "registered_on"),
)
#: A birth is the record that registered a birth certificate: a later record carrying the same
#: certificate (a duplicate registration) is not a second birth. Certificate holders were registered at
#: birth, so `registered_on` is the birth's registration date.
_BIRTHS_SINCE = """
SELECT p.record_id, p.national_id, p.birth_cert_no, p.surname, p.given_name, p.sex, p.birth_date,
       p.mother_record_id, m.national_id AS mother_national_id, p.district_code, p.registered_on
FROM person p LEFT JOIN person m ON m.record_id = p.mother_record_id
WHERE p.birth_cert_no IS NOT NULL AND p.registered_on >= ?
  AND NOT EXISTS (SELECT 1 FROM person o WHERE o.birth_cert_no = p.birth_cert_no
                  AND (o.registered_on < p.registered_on
                       OR (o.registered_on = p.registered_on AND o.record_id < p.record_id)))
ORDER BY p.registered_on, p.record_id LIMIT ? OFFSET ?
"""
#: When several records carry the same identifier (duplicates), the one with a registered death
#: wins (a death is the fact a caller must not miss), then the oldest registration.
_DUPLICATE_ORDER = "death_date IS NULL, registered_on, record_id"
_BY_NATIONAL_ID = f"SELECT * FROM person WHERE national_id = ? ORDER BY {_DUPLICATE_ORDER} LIMIT 1"  # noqa: S608
_BY_BIRTH_CERT = f"SELECT * FROM person WHERE birth_cert_no = ? ORDER BY {_DUPLICATE_ORDER} LIMIT 1"  # noqa: S608
#: The same choice for many national IDs in one query: the first record of each by the duplicate order.
_BY_NATIONAL_IDS = (
    "SELECT * FROM (SELECT *, ROW_NUMBER() OVER"  # noqa: S608
    f" (PARTITION BY national_id ORDER BY {_DUPLICATE_ORDER}) AS pick FROM person WHERE national_id IN ({{marks}}))"
    " WHERE pick = 1"
)
_BY_RECORD_ID = "SELECT * FROM person WHERE record_id = ?"
_HOUSEHOLD_MEMBERS = (
    "SELECT * FROM person WHERE household_id = ? ORDER BY CASE relationship WHEN 'head' THEN 0"
    " WHEN 'spouse' THEN 1 WHEN 'child' THEN 2 WHEN 'parent' THEN 3 ELSE 4 END, birth_year, record_id"
)

log = logging.getLogger("sandbox.cra")

Row = Any  # sqlite3.Row: indexable by column name


class Args(dict[str, str]):
    """An operation's arguments by local name (the last value of a repeated one, empty ones left out);
    `lists` keeps every value of every argument in document order, empty ones included."""

    def __init__(self, values: dict[str, str] | None = None, lists: dict[str, list[str]] | None = None) -> None:
        super().__init__(values or {})
        self.lists: dict[str, list[str]] = lists if lists is not None else {k: [v] for k, v in self.items()}


class SoapFault(Exception):
    """Answered as a SOAP 1.1 Fault; `code` is Client, Server or VersionMismatch."""

    def __init__(self, code: str, message: str, error_code: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_code = error_code


def _client(message: str, error_code: str = "invalid-argument") -> SoapFault:
    return SoapFault("Client", message, error_code)


# --- XML in -------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    """A parser that never reads a DTD, expands an entity, or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_request(raw: bytes) -> tuple[str, Args, list[etree._Element]]:
    """The operation's name, its arguments by local name, and the request's SOAP header blocks."""
    if len(raw) > MAX_BODY:
        raise _client("request too large", "too-large")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise _client("DTDs and entity declarations are not accepted", "forbidden-dtd")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError:
        raise _client("malformed XML", "malformed-xml") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.doctype:
        raise _client("DTDs and entity declarations are not accepted", "forbidden-dtd")
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise SoapFault("VersionMismatch", "only SOAP 1.1 envelopes are understood", "not-soap")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise _client("not a SOAP 1.1 envelope", "not-soap")
    header = root.find(f"{{{SOAP_ENV}}}Header")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise _client("the envelope has no Body", "not-soap")
    children = [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise _client("the Body must hold exactly one operation element", "unknown-operation")
    op = etree.QName(children[0])
    if op.namespace != TNS or op.localname not in OPERATIONS:
        raise _client("unknown operation", "unknown-operation")
    args = Args(lists={})
    for child in children[0]:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if len(child):
            raise _client(f"argument {name} must be a simple value")
        text = (child.text or "").strip()
        args.lists.setdefault(name, []).append(text)
        if text:
            args[name] = text
    headers = [] if header is None else [h for h in header if isinstance(h.tag, str)]
    return op.localname, args, headers


def _required(args: Args, name: str) -> str:
    value = args.get(name)
    if value is None:
        raise _client(f"missing argument {name}", "missing-argument")
    return value


def _check(value: str, pattern: re.Pattern[str], name: str) -> str:
    if not pattern.fullmatch(value):
        raise _client(f"{name} is not in the documented format")
    return value


def _date(value: str, name: str) -> date:
    m = _DATE.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        return date.fromisoformat(m.group(1))
    except ValueError:
        raise _client(f"{name} is not a date (YYYY-MM-DD)") from None


def _int(value: str, name: str, low: int, high: int) -> int:
    if not _INT.fullmatch(value) or not low <= int(value) <= high:
        raise _client(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _name(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > _MAX_NAME:
        raise _client(f"{name} is too long")
    return value


# --- XML out ------------------------------------------------------------------------------------


def _q(local: str) -> str:
    return f"{{{TNS}}}{local}"


def _text(parent: etree._Element, local: str, value: object) -> None:
    if value is None:
        return
    el = etree.SubElement(parent, _q(local))
    if isinstance(value, bool):
        el.text = "true" if value else "false"
    else:
        el.text = str(value)


def _person(parent: etree._Element, local: str, row: Row) -> None:
    el = etree.SubElement(parent, _q(local))
    for xml_name, column in _PERSON_FIELDS:
        _text(el, xml_name, row[column])
    _text(el, "status", "deceased" if row["death_date"] else "alive")


def _envelope(headers: list[etree._Element]) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "cra": TNS})
    if headers:
        header = etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
        for h in headers:
            header.append(copy.deepcopy(h))
    return env, etree.SubElement(env, f"{{{SOAP_ENV}}}Body")


def _serialize(env: etree._Element) -> bytes:
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def fault_envelope(fault: SoapFault, headers: list[etree._Element] | None = None) -> bytes:
    env, body = _envelope(headers or [])
    el = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(el, "faultcode").text = f"soap:{fault.code}"
    etree.SubElement(el, "faultstring").text = fault.message
    detail = etree.SubElement(el, "detail")
    etree.SubElement(detail, _q("errorCode")).text = fault.error_code
    return _serialize(env)


# --- operations ---------------------------------------------------------------------------------


def _person_result(body: etree._Element, op: str, row: Row | None) -> None:
    out = etree.SubElement(body, _q(op + "Response"))
    _text(out, "found", row is not None)
    if row is not None:
        _person(out, "person", row)


def get_person_by_national_id(db: AgencyDb, args: Args, body: etree._Element) -> None:
    nid = _check(_required(args, "nationalId"), _NATIONAL_ID, "nationalId")
    row = db.one(_BY_NATIONAL_ID, (nid,))
    _person_result(body, "GetPersonByNationalId", row)


def get_persons_by_national_ids(db: AgencyDb, args: Args, body: etree._Element) -> None:
    """Up to BATCH_MAX national IDs in one query: one person per known ID (the single lookup's record choice), in
    the order of the IDs' first appearance; unknown IDs are left out, repeated ones answered once."""
    values = args.lists.get("nationalId", [])
    if not any(values):
        raise _client("missing argument nationalId", "missing-argument")
    if len(values) > BATCH_MAX:
        raise _client(f"nationalId may be given at most {BATCH_MAX} times")
    for position, value in enumerate(values, start=1):
        if not _NATIONAL_ID.fullmatch(value):
            # the position, never the value: an identifier does not go into a Fault (nor into logs)
            raise _client(f"nationalId at position {position} is not in the documented format")
    wanted = list(dict.fromkeys(values))
    rows = db.all(_BY_NATIONAL_IDS.format(marks=", ".join("?" * len(wanted))), wanted)
    by_id = {row["national_id"]: row for row in rows}
    out = etree.SubElement(body, _q("GetPersonsByNationalIdsResponse"))
    for nid in wanted:
        if nid in by_id:
            _person(out, "person", by_id[nid])


def get_person_by_birth_certificate(db: AgencyDb, args: Args, body: etree._Element) -> None:
    no = _check(_required(args, "birthCertificateNo"), _BIRTH_CERT, "birthCertificateNo")
    row = db.one(_BY_BIRTH_CERT, (no,))
    _person_result(body, "GetPersonByBirthCertificate", row)


def get_person_by_record_id(db: AgencyDb, args: Args, body: etree._Element) -> None:
    record_id = _check(_required(args, "recordId"), _RECORD_ID, "recordId")
    row = db.one(_BY_RECORD_ID, (record_id,))
    _person_result(body, "GetPersonByRecordId", row)


def _similar(a: str | None, b: str | None) -> float:
    fa, fb = phonetic.fold(a or ""), phonetic.fold(b or "")
    if not fa or not fb:
        return 0.0
    if fa == fb:
        return 1.0
    ratio = SequenceMatcher(None, fa, fb).ratio()
    return max(ratio, 0.85) if phonetic.key(fa) == phonetic.key(fb) else ratio


def score(query: dict[str, Any], row: Row) -> float:
    """The registry's naive similarity: names (either order), birth date or year, district, sex."""
    parts: list[tuple[float, float]] = []  # (weight, similarity)
    surname, given = query.get("surname"), query.get("givenName")
    if surname or given:
        rec_given = [row["given_name"], row["second_name"]]
        straight = (
            _similar(surname, row["surname"]) if surname else None,
            max(_similar(given, g) for g in rec_given) if given else None,
        )
        swapped = (
            max(_similar(surname, g) for g in rec_given) if surname else None,
            _similar(given, row["surname"]) if given else None,
        )

        def names(pair: tuple[float | None, float | None], factor: float) -> list[tuple[float, float]]:
            out = []
            if pair[0] is not None:
                out.append((0.35, pair[0] * factor))
            if pair[1] is not None:
                out.append((0.30, pair[1] * factor))
            return out

        a, b = names(straight, 1.0), names(swapped, 0.9)
        parts += a if sum(w * s for w, s in a) >= sum(w * s for w, s in b) else b
    birth_date: date | None = query.get("birthDate")
    year: int | None = query.get("birthYear") or (birth_date.year if birth_date else None)
    if year is not None:
        rec_year = row["birth_year"] or (int(row["birth_date"][:4]) if row["birth_date"] else None)
        if rec_year is None:
            sim = 0.0
        elif birth_date is not None and row["birth_date"] == birth_date.isoformat():
            sim = 1.0
        else:
            diff = abs(rec_year - year)
            exact_year = birth_date is None or row["birth_date"] is None
            sim = {0: 1.0 if exact_year else 0.7, 1: 0.4, 2: 0.2}.get(diff, 0.0)
        parts.append((0.25, sim))
    district = query.get("districtCode")
    if district:
        sim = 1.0 if row["district_code"] == district else 0.5 if row["birth_district"] == district else 0.0
        parts.append((0.10, sim))
    total = sum(w for w, _ in parts)
    value = sum(w * s for w, s in parts) / total if total else 0.0
    sex = query.get("sex")
    if sex and row["sex"] != sex:
        value *= 0.5
    return round(value, 4)


def search_persons(db: AgencyDb, args: Args, body: etree._Element) -> None:
    query: dict[str, Any] = {
        "surname": _name(args.get("surname"), "surname"),
        "givenName": _name(args.get("givenName"), "givenName"),
    }
    if not query["surname"] and not query["givenName"]:
        raise _client("SearchPersons needs a surname or a given name", "missing-argument")
    if "sex" in args:
        if args["sex"] not in ("M", "F"):
            raise _client("sex must be M or F")
        query["sex"] = args["sex"]
    if "birthDate" in args:
        query["birthDate"] = _date(args["birthDate"], "birthDate")
    if "birthYear" in args:
        query["birthYear"] = _int(args["birthYear"], "birthYear", 1800, 2200)
    if "districtCode" in args:
        query["districtCode"] = _check(args["districtCode"], _DISTRICT, "districtCode")
    limit = _int(args["maxResults"], "maxResults", 1, SEARCH_MAX) if "maxResults" in args else SEARCH_DEFAULT

    keys: set[tuple[str, str]] = set()
    for name in (query["surname"], query["givenName"]):
        k = phonetic.key(name or "")
        if k:  # either name may be recorded as surname or as given name (swapped order)
            keys |= {("surname_key", k), ("given_key", k)}
    year = query.get("birthYear") or (query["birthDate"].year if "birthDate" in query else None)
    rows: dict[str, Row] = {}
    for column, k in sorted(keys):  # column: surname_key or given_key, never input
        if year is not None:
            sql = f"SELECT * FROM person WHERE {column} = ? AND birth_year BETWEEN ? AND ? LIMIT ?"  # noqa: S608
            params: tuple[Any, ...] = (k, year - 2, year + 2, _CANDIDATES_PER_KEY)
        elif "districtCode" in query:
            sql = f"SELECT * FROM person WHERE {column} = ? AND district_code = ? LIMIT ?"  # noqa: S608
            params = (k, query["districtCode"], _CANDIDATES_PER_KEY)
        else:
            sql = f"SELECT * FROM person WHERE {column} = ? LIMIT ?"  # noqa: S608
            params = (k, _CANDIDATES_PER_KEY)
        for row in db.all(sql, params):
            rows[row["record_id"]] = row
    ranked = sorted(((score(query, r), r) for r in rows.values()), key=lambda sr: (-sr[0], sr[1]["record_id"]))
    out = etree.SubElement(body, _q("SearchPersonsResponse"))
    for value, row in ranked[:limit]:
        cand = etree.SubElement(out, _q("candidate"))
        _text(cand, "score", value)
        _person(cand, "person", row)


def get_household(db: AgencyDb, args: Args, body: etree._Element) -> None:
    given = [n for n in ("nationalId", "recordId", "householdId") if n in args]
    if len(given) != 1:
        raise _client("GetHousehold needs exactly one of nationalId, recordId, householdId", "missing-argument")
    household: str | None
    if given == ["householdId"]:
        household = _check(args["householdId"], _HOUSEHOLD_ID, "householdId")
    else:
        if given == ["nationalId"]:
            sql = _BY_NATIONAL_ID
            value = _check(args["nationalId"], _NATIONAL_ID, "nationalId")
        else:
            sql = _BY_RECORD_ID
            value = _check(args["recordId"], _RECORD_ID, "recordId")
        row = db.one(sql, (value,))
        household = row["household_id"] if row is not None else None
    members = db.all(_HOUSEHOLD_MEMBERS, (household,)) if household else []
    out = etree.SubElement(body, _q("GetHouseholdResponse"))
    _text(out, "found", bool(members))
    if members:
        _text(out, "householdId", household)
    for row in members:
        member = etree.SubElement(out, _q("member"))
        _text(member, "relationship", row["relationship"] or "other")
        _person(member, "person", row)


def get_deaths_since(db: AgencyDb, args: Args, body: etree._Element) -> None:
    since = _date(_required(args, "since"), "since")
    offset = _int(args["offset"], "offset", 0, 10**9) if "offset" in args else 0
    limit = _int(args["limit"], "limit", 1, DEATHS_MAX) if "limit" in args else DEATHS_DEFAULT
    rows = db.all(
        "SELECT * FROM person WHERE death_registered_on >= ? AND death_date IS NOT NULL"
        " ORDER BY death_registered_on, record_id LIMIT ? OFFSET ?",
        (since.isoformat(), limit + 1, offset),
    )
    out = etree.SubElement(body, _q("GetDeathsSinceResponse"))
    for row in rows[:limit]:
        death = etree.SubElement(out, _q("death"))
        for xml_name, column in _DEATH_FIELDS:
            _text(death, xml_name, row[column])
    _text(out, "hasMore", len(rows) > limit)


def get_births_since(db: AgencyDb, args: Args, body: etree._Element) -> None:
    """Births registered on or after `since`, as GetDeathsSince lists deaths."""
    since = _date(_required(args, "since"), "since")
    offset = _int(args["offset"], "offset", 0, 10**9) if "offset" in args else 0
    limit = _int(args["limit"], "limit", 1, BIRTHS_MAX) if "limit" in args else BIRTHS_DEFAULT
    rows = db.all(_BIRTHS_SINCE, (since.isoformat(), limit + 1, offset))
    out = etree.SubElement(body, _q("GetBirthsSinceResponse"))
    for row in rows[:limit]:
        birth = etree.SubElement(out, _q("birth"))
        for xml_name, column in _BIRTH_FIELDS:
            _text(birth, xml_name, row[column])
    _text(out, "hasMore", len(rows) > limit)


def list_residents(db: AgencyDb, args: Args, body: etree._Element) -> None:
    """The records whose current district is `districtCode`, by record id; duplicates are listed as they are."""
    district = _check(_required(args, "districtCode"), _DISTRICT, "districtCode")
    status = args.get("status", "alive")
    if status not in ("alive", "all"):
        raise _client("status must be alive or all")
    offset = _int(args["offset"], "offset", 0, 10**9) if "offset" in args else 0
    limit = _int(args["limit"], "limit", 1, RESIDENTS_MAX) if "limit" in args else RESIDENTS_DEFAULT
    alive = " AND death_date IS NULL" if status == "alive" else ""
    rows = db.all(
        f"SELECT * FROM person WHERE district_code = ?{alive} ORDER BY record_id LIMIT ? OFFSET ?",  # noqa: S608
        (district, limit + 1, offset),
    )
    out = etree.SubElement(body, _q("ListResidentsResponse"))
    for row in rows[:limit]:
        _person(out, "person", row)
    _text(out, "hasMore", len(rows) > limit)


_HANDLERS: dict[str, Callable[[AgencyDb, Args, etree._Element], None]] = {
    "GetPersonByNationalId": get_person_by_national_id,
    "GetPersonByBirthCertificate": get_person_by_birth_certificate,
    "SearchPersons": search_persons,
    "GetHousehold": get_household,
    "GetDeathsSince": get_deaths_since,
    "GetPersonByRecordId": get_person_by_record_id,
    "ListResidents": list_residents,
    "GetBirthsSince": get_births_since,
    "GetPersonsByNationalIds": get_persons_by_national_ids,
}


def handle(db: AgencyDb, raw: bytes) -> tuple[int, bytes]:
    """Answer one SOAP request: HTTP status and envelope. Runs in a worker thread (parsing, SQLite)."""
    headers: list[etree._Element] = []
    try:
        operation, args, headers = parse_request(raw)
        env, body = _envelope(headers)
        _HANDLERS[operation](db, args, body)
        return 200, _serialize(env)
    except SoapFault as fault:
        log.info("soap fault %s: %s", fault.code, fault.error_code)
        return 500, fault_envelope(fault, headers)
    except Exception as exc:
        log.error("civreg internal error: %s", type(exc).__name__)
        return 500, fault_envelope(SoapFault("Server", "the registry could not answer", "internal-error"), headers)


# --- vital events registered while the registry runs ----------------------------------------------

EVENTS_PATH = "/_sandbox/events"
_MAX_EVENT_BODY = 4096
_DEATH_KEYS = frozenset({"type", "national_id", "record_id", "death_date", "registered_on"})
_BIRTH_KEYS = frozenset(
    {
        "type",
        "mother_national_id",
        "mother_record_id",
        "given_name",
        "second_name",
        "surname",
        "sex",
        "birth_date",
        "registered_on",
    }
)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LAST_RECORD = 999_999_999


class EventError(Exception):
    """A registration refused: HTTP status (400 bad input, 404 unknown person, 409 conflict) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _event_date(doc: dict[str, Any], key: str, default: date) -> date:
    value = doc.get(key)
    if value is None:
        return default
    try:
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise EventError(400, f"{key} must be a date (YYYY-MM-DD)") from None


def _registered_on(doc: dict[str, Any], today: date) -> date:
    """A registration may be back-dated (a late entry), never dated ahead of the registry's today."""
    registered_on = _event_date(doc, "registered_on", today)
    if registered_on > today:
        raise EventError(400, "registered_on must not be after today")
    return registered_on


def _event_name(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME:
        raise EventError(400, f"{key} must be a non-empty string of at most {_MAX_NAME} characters")
    return value.strip()


def _one_of(doc: dict[str, Any], what: str, by_id: str, by_record: str) -> tuple[str, str]:
    """The SQL and value finding a person by national ID or by record id, exactly one of them given."""
    given = [k for k in (by_id, by_record) if doc.get(k) is not None]
    if len(given) != 1:
        raise EventError(400, f"{what} needs exactly one of {by_id}, {by_record}")
    value = doc[given[0]]
    if given[0] == by_id:
        if not isinstance(value, str) or not _NATIONAL_ID.fullmatch(value):
            raise EventError(400, f"{by_id} must be a string of 10 digits")
        return _BY_NATIONAL_ID, value
    if not isinstance(value, str) or not _RECORD_ID.fullmatch(value):
        raise EventError(400, f"{by_record} must be CRA and 9 digits")
    return _BY_RECORD_ID, value


def _find(conn: sqlite3.Connection, sql: str, value: str, key: str) -> Row:
    row = conn.execute(sql, (value,)).fetchone()
    if row is None:
        raise EventError(404, f"no person with this {key}")
    return row


def _register_death(conn: sqlite3.Connection, doc: dict[str, Any], today: date) -> dict[str, Any]:
    sql, value = _one_of(doc, "a death", "national_id", "record_id")
    registered_on = _registered_on(doc, today)
    death_date = _event_date(doc, "death_date", today)
    if death_date > registered_on:
        raise EventError(400, "death_date must not be after registered_on")
    row = _find(conn, sql, value, "national_id" if sql == _BY_NATIONAL_ID else "record_id")
    if row["death_date"] is not None:
        raise EventError(409, "the death of this person is already registered")
    if row["birth_date"] is not None and death_date.isoformat() < row["birth_date"]:
        raise EventError(409, "death_date is before the person's birth date")
    conn.execute(
        "UPDATE person SET death_date = ?, death_registered_on = ? WHERE record_id = ?",
        (death_date.isoformat(), registered_on.isoformat(), row["record_id"]),
    )
    return {"type": "death", "record_id": row["record_id"], "registered_on": registered_on.isoformat()}


def _new_record_id(conn: sqlite3.Connection) -> str:
    """Above the highest record id; should that be the last one, the highest free one below it."""
    top = conn.execute("SELECT MAX(record_id) FROM person WHERE record_id GLOB 'CRA[0-9]*'").fetchone()[0]
    number = int(top[3:]) + 1 if top else 1
    if number <= _LAST_RECORD:
        return f"CRA{number:09d}"
    expected = _LAST_RECORD
    for (record_id,) in conn.execute("SELECT record_id FROM person WHERE record_id GLOB 'CRA[0-9]*' ORDER BY 1 DESC"):
        if int(record_id[3:]) < expected:
            return f"CRA{expected:09d}"
        expected = int(record_id[3:]) - 1
    if expected < 0:
        raise RuntimeError("no record id left")
    return f"CRA{expected:09d}"


def _new_birth_certificate(conn: sqlite3.Connection, district: str, year: int) -> str:
    """The next serial of the district and year: `BC/{district}/{year}/{serial}`, serials from 000001."""
    prefix = f"BC/{district}/{year}/"
    rows = conn.execute(
        "SELECT birth_cert_no FROM person WHERE birth_cert_no >= ? AND birth_cert_no < ?",
        (prefix, prefix[:-1] + "0"),  # '0' follows '/': every number with this prefix, through the index
    )
    serials = [int(no[len(prefix) :]) for (no,) in rows if no[len(prefix) :].isdigit()]
    return f"{prefix}{max(serials, default=0) + 1:06d}"


def _relationship_of_child(mother: Row) -> str | None:
    """Relative to the household head, as the registry records it: the head's (or spouse's) child, else other
    (a grandchild, say); no household, no relationship."""
    if mother["household_id"] is None:
        return None
    return "child" if mother["relationship"] in ("head", "spouse") else "other"


def _register_birth(conn: sqlite3.Connection, doc: dict[str, Any], today: date) -> dict[str, Any]:
    sql, value = _one_of(doc, "a birth", "mother_national_id", "mother_record_id")
    given = _event_name(doc, "given_name")
    surname = _event_name(doc, "surname")
    second = _event_name(doc, "second_name") if doc.get("second_name") is not None else None
    sex = doc.get("sex")
    if sex not in ("M", "F"):
        raise EventError(400, "sex must be M or F")
    registered_on = _registered_on(doc, today)
    birth_date = _event_date(doc, "birth_date", today)
    if birth_date > registered_on:
        raise EventError(400, "birth_date must not be after registered_on")
    mother = _find(conn, sql, value, "mother_national_id" if sql == _BY_NATIONAL_ID else "mother_record_id")
    if mother["sex"] != "F":
        raise EventError(409, "the mother's record is not a woman's")
    if mother["death_date"] is not None and mother["death_date"] < birth_date.isoformat():
        raise EventError(409, "the mother's death is registered before birth_date")
    record_id = _new_record_id(conn)
    district = mother["district_code"]
    row = {
        "record_id": record_id,
        "national_id": None,
        "birth_cert_no": _new_birth_certificate(conn, district, birth_date.year),
        "surname": surname,
        "given_name": given,
        "second_name": second,
        "sex": sex,
        "birth_date": birth_date.isoformat(),
        "birth_year": birth_date.year,
        "mother_name": f"{mother['given_name']} {mother['surname']}",
        "mother_record_id": mother["record_id"],
        "birth_district": district,
        "district_code": district,
        "village_code": mother["village_code"],
        "household_id": mother["household_id"],
        "relationship": _relationship_of_child(mother),
        "death_date": None,
        "death_registered_on": None,
        "registered_on": registered_on.isoformat(),
        "surname_key": phonetic.key(surname),
        "given_key": phonetic.key(given),
    }
    columns = ", ".join(row)  # constant names: the dict above, never input
    conn.execute(f"INSERT INTO person ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))  # noqa: S608
    return {"type": "birth", "record_id": record_id, "registered_on": registered_on.isoformat()}


def register_event(db: AgencyDb, raw: bytes, today: date | None = None) -> tuple[int, dict[str, Any]]:
    """Register a death or a birth from a control request's body: HTTP status and JSON answer."""
    try:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack goes
            raise EventError(400, "body is not JSON") from None
        if not isinstance(doc, dict):
            raise EventError(400, "body must be a JSON object")
        kind = doc.get("type")
        if kind not in ("death", "birth"):
            raise EventError(400, "type must be death or birth")
        unknown = sorted(set(doc) - (_DEATH_KEYS if kind == "death" else _BIRTH_KEYS))
        if unknown:
            raise EventError(400, f"unknown fields for a {kind}: {', '.join(unknown)}")
        register = _register_death if kind == "death" else _register_birth
        with db.write() as conn:
            return 201, register(conn, doc, today or date.today())
    except EventError as exc:
        return exc.status, {"error": exc.message}
    except Exception as exc:
        log.error("civreg could not register an event: %s", type(exc).__name__)
        return 500, {"error": "the registry could not register the event"}


class CivregControl(FaultInjection):
    """Fault injection's control endpoints, plus `POST /_sandbox/events`: the registry records events as it runs."""

    def __init__(self, app: ASGIApp, db: AgencyDb, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.db = db

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != EVENTS_PATH:
            await super()._control(scope, receive, send)
            return
        if scope["method"] != "POST":
            answer = JSONResponse({"error": "POST events here"}, status_code=405, headers={"Allow": "POST"})
        else:
            raw = await _read_body(Request(scope, receive), _MAX_EVENT_BODY)
            if raw is None:
                answer = JSONResponse({"error": "body too large"}, status_code=400)
            else:
                status, doc = await run_in_threadpool(register_event, self.db, raw)
                answer = JSONResponse(doc, status_code=status)
        await answer(scope, receive, send)


# --- HTTP ---------------------------------------------------------------------------------------


def wsdl(address: str) -> bytes:
    """The WSDL with its soap:address set to where this server is reached."""
    text = WSDL_FILE.read_text(encoding="utf-8")
    return text.replace('"{{ADDRESS}}"', quoteattr(address)).encode("utf-8")


def _is_wsdl_request(scope: Scope) -> bool:
    if scope["method"] != "GET":
        return False
    parts = bytes(scope.get("query_string", b"")).lower().split(b"&")
    return any(p == b"wsdl" or p.startswith(b"wsdl=") for p in parts)


async def _read_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The body, or None when it is larger than `limit` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


INJECTED_ERROR = Canned(
    500, XML_TYPE, fault_envelope(SoapFault("Server", "the registry could not answer", "internal-error"))
)
INJECTED_GARBAGE = Canned(
    200,
    XML_TYPE,
    f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:cra="{TNS}">'
    "<soap:Body><cra:GetPersonByNationalIdResponse><cra:found>tr".encode(),
)


def create_app(db: AgencyDb, base_url: str | None = None) -> FaultInjection:
    """The civil registry's ASGI app; `base_url` fixes the WSDL's address, else each request's is used."""

    async def civreg(request: Request) -> Response:
        if request.method == "GET":
            if not _is_wsdl_request(request.scope):
                return PlainTextResponse(
                    "POST SOAP 1.1 requests here; the WSDL is at ?wsdl\n",
                    status_code=405,
                    headers={"Allow": "GET, POST"},
                )
            root = base_url.rstrip("/") if base_url else str(request.base_url).rstrip("/")
            return Response(wsdl(root + PATH), media_type=XML_TYPE)
        raw = await _read_body(request)
        if raw is None:
            status, answer = 500, fault_envelope(_client("request too large", "too-large"))
        else:
            status, answer = await run_in_threadpool(handle, db, raw)
        return Response(answer, status_code=status, media_type=XML_TYPE)

    app = Starlette(routes=[Route(PATH, civreg, methods=["GET", "POST"])])
    return CivregControl(app, db, error=INJECTED_ERROR, garbage=INJECTED_GARBAGE, exempt=_is_wsdl_request)
