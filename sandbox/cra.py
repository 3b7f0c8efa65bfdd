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
import logging
import re
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
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Scope

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
)

SEARCH_DEFAULT, SEARCH_MAX = 10, 50
DEATHS_DEFAULT, DEATHS_MAX = 100, 1000
RESIDENTS_DEFAULT, RESIDENTS_MAX = 100, 1000
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
#: When several records carry the same identifier (duplicates), the one with a registered death
#: wins (a death is the fact a caller must not miss), then the oldest registration.
_BY_NATIONAL_ID = (
    "SELECT * FROM person WHERE national_id = ? ORDER BY death_date IS NULL, registered_on, record_id LIMIT 1"
)
_BY_BIRTH_CERT = (
    "SELECT * FROM person WHERE birth_cert_no = ? ORDER BY death_date IS NULL, registered_on, record_id LIMIT 1"
)
_BY_RECORD_ID = "SELECT * FROM person WHERE record_id = ?"
_HOUSEHOLD_MEMBERS = (
    "SELECT * FROM person WHERE household_id = ? ORDER BY CASE relationship WHEN 'head' THEN 0"
    " WHEN 'spouse' THEN 1 WHEN 'child' THEN 2 WHEN 'parent' THEN 3 ELSE 4 END, birth_year, record_id"
)

log = logging.getLogger("sandbox.cra")

Row = Any  # sqlite3.Row: indexable by column name
Args = dict[str, str]


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
    args: Args = {}
    for child in children[0]:
        if not isinstance(child.tag, str):
            continue
        if len(child):
            raise _client(f"argument {etree.QName(child).localname} must be a simple value")
        text = (child.text or "").strip()
        if text:
            args[etree.QName(child).localname] = text
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


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
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
    return FaultInjection(app, error=INJECTED_ERROR, garbage=INJECTED_GARBAGE, exempt=_is_wsdl_request)
