"""The Ministry of Social Protection's programme MIS: beneficiaries of its three grants, over REST.

One row per enrolment: a person in two programmes has two beneficiary numbers. Name search is by
exact name, ignoring case, as programme MISs typically offer; fuzzy matching is `matching`'s job.

The MIS also receives vital-event notifications (DCI `notify` envelopes) from the civil registry's
event service: a death flags the beneficiaries concerned for a caseworker to review, it never stops a
payment by itself. Deliveries are at least once, so each event id is recorded once and a repeat
changes nothing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from sandbox import problems
from sandbox.agencydb import AgencyDb
from sandbox.faults import FaultInjection
from sandbox.schema import MSP_EVENTS_DDL
from sandbox.tax import checked_ids, id_list, marks

BENEFICIARY_PATTERN = r"^(CSG|OAG|DG)-[0-9]{8}$"
NATIONAL_ID_PATTERN = r"^[0-9]{10}$"
PROGRAMMES = ("child-grant", "old-age-grant", "disability-grant")
SEARCH_DEFAULT, SEARCH_MAX = 50, 200
NOTIFICATIONS_DEFAULT, NOTIFICATIONS_MAX = 50, 200
MAX_EVENTS, MAX_RECORDS = 1000, 100
MAX_REFERENCE = 255
MAX_NOTIFY_BODY = 5 << 20

FLAG_DECEASED = "deceased-notified"
FLAG_CAREGIVER_DECEASED = "caregiver-deceased-notified"
EVENT_TYPES = ("death", "birth")

PATHS = (
    "/v1/beneficiaries",
    "/v1/beneficiaries/{beneficiary_no}",
    "/v1/beneficiaries/{beneficiary_no}/enrolment",
    "/v1/notifications",
)

Programme = Literal["child-grant", "old-age-grant", "disability-grant"]


class Flag(BaseModel):
    flag: str  # 'deceased-notified', 'caregiver-deceased-notified'
    event_id: str
    noted_on: str


class Beneficiary(BaseModel):
    beneficiary_no: str
    programme: str
    national_id: str | None
    surname: str
    given_name: str
    second_name: str | None
    sex: str | None
    birth_date: str | None
    birth_year: int | None
    district_code: str | None
    village_code: str | None
    caregiver_name: str | None
    caregiver_national_id: str | None
    enrolled_on: str
    status: str  # 'active', 'suspended', 'exited'
    monthly_amount: int
    flags: list[Flag]


class BeneficiaryList(BaseModel):
    items: list[Beneficiary]


class Enrolment(BaseModel):
    beneficiary_no: str
    programme: str
    status: str
    active: bool
    enrolled_on: str
    monthly_amount: int


class NotifyAnswer(BaseModel):
    """Counts only: the notifier learns that its events arrived, not whom they concerned here."""

    received: int
    new: int
    duplicates: int
    flagged: int


class Notification(BaseModel):
    event_id: str
    event_type: str
    received_at: str
    transaction_id: str


class NotificationList(BaseModel):
    items: list[Notification]


BeneficiaryNo = Annotated[
    str, Path(pattern=BENEFICIARY_PATTERN, description="'CSG-', 'OAG-' or 'DG-' and eight digits")
]

_COLUMNS = ", ".join(f for f in Beneficiary.model_fields if f != "flags")


def _problem_doc(description: str) -> dict[str, Any]:
    return {"model": problems.ProblemDetails, "description": description, "content": {problems.MEDIA_TYPE: {}}}


_NOTIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_doc("Not a notify envelope of the documented shape"),
    413: _problem_doc("Body too large"),
}
_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {422: _problem_doc("Invalid parameters")}

_PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A person as the civil registry names its fields; other fields are kept out of the MIS.",
    "properties": {
        "recordId": {"type": "string"},
        "nationalId": {"type": "string", "pattern": NATIONAL_ID_PATTERN},
        "surname": {"type": "string"},
        "givenName": {"type": "string"},
        "sex": {"type": "string"},
        "birthDate": {"type": "string", "format": "date"},
        "deathDate": {"type": "string", "format": "date"},
    },
}
_NOTIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A DCI notify envelope (registry core API, /registry/notify), unsigned and unencrypted.",
    "required": ["header", "message"],
    "properties": {
        "header": {
            "type": "object",
            "required": ["action"],
            "properties": {"action": {"type": "string", "enum": ["notify"]}},
        },
        "message": {
            "type": "object",
            "required": ["transaction_id", "notify_event"],
            "properties": {
                "transaction_id": {"type": "string", "minLength": 1, "maxLength": 99},
                "notify_event": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_EVENTS,
                    "items": {
                        "type": "object",
                        "required": ["reference_id", "timestamp", "data"],
                        "properties": {
                            "reference_id": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_REFERENCE,
                                "description": "The event's id, e.g. death:CRA000123456; stored once.",
                            },
                            "timestamp": {"type": "string", "format": "date-time"},
                            "data": {
                                "type": "object",
                                "required": ["reg_event_type", "reg_record_type", "reg_records"],
                                "properties": {
                                    "version": {"type": "string"},
                                    "reg_type": {"type": "string", "enum": ["civil-registry"]},
                                    "reg_event_type": {"type": "string", "enum": list(EVENT_TYPES)},
                                    "reg_record_type": {"type": "string", "enum": ["person"]},
                                    "reg_records": {
                                        "oneOf": [
                                            {
                                                "type": "array",
                                                "minItems": 1,
                                                "maxItems": MAX_RECORDS,
                                                "items": _PERSON_SCHEMA,
                                            },
                                            _PERSON_SCHEMA,
                                        ]
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

# --- notifications --------------------------------------------------------------------------------

_NATIONAL_ID = re.compile(NATIONAL_ID_PATTERN)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_TEXT = 100


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    records: list[dict[str, Any]]


def _invalid(detail: str) -> problems.Problem:
    return problems.Problem(400, problems.INVALID_REQUEST, detail)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object.")
    return value


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_record(record: Any, where: str) -> dict[str, Any]:
    """Only the fields the MIS reads are checked; the others it ignores."""
    person = _object(record, where)
    nid = person.get("nationalId")
    if nid is not None and (not isinstance(nid, str) or not _NATIONAL_ID.fullmatch(nid)):
        raise _invalid(f"{where}.nationalId must be a string of 10 digits.")
    for key in ("recordId", "surname", "givenName"):
        value = person.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > _MAX_TEXT):
            raise _invalid(f"{where}.{key} must be a string of at most {_MAX_TEXT} characters.")
    for key in ("birthDate", "deathDate"):
        if person.get(key) is not None and not _is_date(person[key]):
            raise _invalid(f"{where}.{key} must be a date (YYYY-MM-DD).")
    return person


def parse_notify(raw: bytes) -> tuple[str, list[Event]]:
    """The transaction id and events of a notify envelope; a Problem (400) says what is wrong with it."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack goes
        raise _invalid("The body is not JSON.") from None
    doc = _object(doc, "The body")
    header = _object(doc.get("header"), "header")
    if header.get("action") != "notify":
        raise _invalid("header.action must be notify.")
    message = _object(doc.get("message"), "message")
    transaction_id = message.get("transaction_id")
    if not isinstance(transaction_id, str) or not 1 <= len(transaction_id) <= 99:
        raise _invalid("message.transaction_id must be a string of 1 to 99 characters.")
    items = message.get("notify_event")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENTS:
        raise _invalid(f"message.notify_event must be a list of 1 to {MAX_EVENTS} events.")
    events: list[Event] = []
    for i, item in enumerate(items):
        where = f"message.notify_event[{i}]"
        event = _object(item, where)
        reference = event.get("reference_id")
        if not isinstance(reference, str) or not 1 <= len(reference) <= MAX_REFERENCE:
            raise _invalid(f"{where}.reference_id must be a string of 1 to {MAX_REFERENCE} characters.")
        if not _is_timestamp(event.get("timestamp")):
            raise _invalid(f"{where}.timestamp must be an ISO 8601 date-time.")
        data = _object(event.get("data"), f"{where}.data")
        if data.get("reg_type", "civil-registry") != "civil-registry":
            raise _invalid(f"{where}.data.reg_type must be civil-registry.")
        kind = data.get("reg_event_type")
        if kind not in EVENT_TYPES:
            raise _invalid(f"{where}.data.reg_event_type must be death or birth.")
        if data.get("reg_record_type") != "person":
            raise _invalid(f"{where}.data.reg_record_type must be person.")
        records = data.get("reg_records")
        if isinstance(records, dict):  # the registry core API types it as one record, the social API as a list
            checked = [_check_record(records, f"{where}.data.reg_records")]
        elif isinstance(records, list) and 1 <= len(records) <= MAX_RECORDS:
            checked = [_check_record(r, f"{where}.data.reg_records[{j}]") for j, r in enumerate(records)]
        else:
            raise _invalid(f"{where}.data.reg_records must be a record or a list of 1 to {MAX_RECORDS} records.")
        events.append(Event(reference, kind, checked))
    return transaction_id, events


def _concerned(conn: sqlite3.Connection, person: dict[str, Any]) -> list[tuple[str, str]]:
    """(beneficiary_no, flag) for a dead person: by national ID, or, without one, by exact name and birth date.

    Caregivers are matched by national ID only: the MIS holds a caregiver's name but no birth date.
    """
    nid = person.get("nationalId")
    if nid:
        own = conn.execute("SELECT beneficiary_no FROM beneficiary WHERE national_id = ?", (nid,))
        cared = conn.execute("SELECT beneficiary_no FROM beneficiary WHERE caregiver_national_id = ?", (nid,))
        return [(r[0], FLAG_DECEASED) for r in own.fetchall()] + [
            (r[0], FLAG_CAREGIVER_DECEASED) for r in cared.fetchall()
        ]
    surname, given, birth = person.get("surname"), person.get("givenName"), person.get("birthDate")
    if not (surname and given and birth):
        return []
    rows = conn.execute(
        "SELECT beneficiary_no FROM beneficiary WHERE birth_date = ?"
        " AND surname = ? COLLATE NOCASE AND given_name = ? COLLATE NOCASE",
        (birth, surname.strip(), given.strip()),
    ).fetchall()
    return [(r[0], FLAG_DECEASED) for r in rows]


def record_notifications(
    db: AgencyDb, transaction_id: str, events: list[Event], now: datetime | None = None
) -> NotifyAnswer:
    """Store each new event once and flag whom a death concerns, all in one transaction."""
    now = now or datetime.now(UTC)
    received_at = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    noted_on = date.today().isoformat()
    new = duplicates = flagged = 0
    with db.write() as conn:
        for event in events:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO notification (event_id, event_type, received_at, transaction_id)"
                " VALUES (?, ?, ?, ?)",
                (event.event_id, event.event_type, received_at, transaction_id),
            ).rowcount
            if not inserted:
                duplicates += 1
                continue
            new += 1
            if event.event_type != "death":
                continue  # a birth is for the MIS to consider enrolling: recorded, nobody flagged
            for person in event.records:
                for beneficiary_no, flag in _concerned(conn, person):
                    flagged += conn.execute(
                        "INSERT OR IGNORE INTO beneficiary_flag (beneficiary_no, flag, event_id, noted_on)"
                        " VALUES (?, ?, ?, ?)",
                        (beneficiary_no, flag, event.event_id, noted_on),
                    ).rowcount
    return NotifyAnswer(received=len(events), new=new, duplicates=duplicates, flagged=flagged)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    too_large = problems.Problem(413, "too-large", f"The body is larger than {MAX_NOTIFY_BODY >> 20} MiB.")
    if declared is not None and declared.isdigit() and int(declared) > MAX_NOTIFY_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_NOTIFY_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _case_variants(name: str) -> list[str]:
    """Spellings to look up so that the (case-sensitive) name index still serves a case-blind search."""
    name = name.strip()
    return sorted({name, name.upper(), name.lower(), name.title(), name.capitalize()})


def create_app(db: AgencyDb) -> FaultInjection:
    db.ensure(MSP_EVENTS_DDL)
    app = problems.rest_app(
        "Ministry of Social Protection programme MIS",
        "Beneficiaries of the child, old-age and disability grants (ZZ/GOV/MSP), and the vital-event "
        "notifications it receives. Errors are application/problem+json.",
    )

    def with_flags(rows: list[sqlite3.Row]) -> list[Beneficiary]:
        numbers = [r["beneficiary_no"] for r in rows]
        flags: dict[str, list[Flag]] = {n: [] for n in numbers}
        if numbers:
            for f in db.all(
                "SELECT beneficiary_no, flag, event_id, noted_on FROM beneficiary_flag"  # noqa: S608
                f" WHERE beneficiary_no IN ({', '.join('?' * len(numbers))})"
                " ORDER BY beneficiary_no, noted_on, event_id, flag",
                numbers,
            ):
                flags[f["beneficiary_no"]].append(Flag(flag=f["flag"], event_id=f["event_id"], noted_on=f["noted_on"]))
        return [Beneficiary(**dict(r), flags=flags[r["beneficiary_no"]]) for r in rows]

    def beneficiary(no: str) -> Beneficiary:
        row = db.one(f"SELECT {_COLUMNS} FROM beneficiary WHERE beneficiary_no = ?", (no,))  # noqa: S608
        if row is None:
            raise problems.not_found("beneficiary")
        return with_flags([row])[0]

    @app.get("/v1/beneficiaries/{beneficiary_no}", responses=problems.LOOKUP_RESPONSES)
    def get_beneficiary(beneficiary_no: BeneficiaryNo) -> Beneficiary:
        """One enrolment's beneficiary record, with the flags vital-event notifications set on it."""
        return beneficiary(beneficiary_no)

    @app.get("/v1/beneficiaries/{beneficiary_no}/enrolment", responses=problems.LOOKUP_RESPONSES)
    def get_enrolment(beneficiary_no: BeneficiaryNo) -> Enrolment:
        """Whether the enrolment is active, since when, for how much."""
        b = beneficiary(beneficiary_no)
        return Enrolment(
            beneficiary_no=b.beneficiary_no,
            programme=b.programme,
            status=b.status,
            active=b.status == "active",
            enrolled_on=b.enrolled_on,
            monthly_amount=b.monthly_amount,
        )

    @app.get("/v1/beneficiaries", responses=problems.SEARCH_RESPONSES)
    def search_beneficiaries(
        national_id: Annotated[list[str], id_list(NATIONAL_ID_PATTERN, "ten digits", required=False)],
        surname: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        given_name: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        birth_date: Annotated[date | None, Query(description="YYYY-MM-DD")] = None,
        programme: Programme | None = None,
        limit: Annotated[int, Query(ge=1, le=SEARCH_MAX)] = SEARCH_DEFAULT,
    ) -> BeneficiaryList:
        """Enrolments by national ID, or by surname and/or birth date (given name and programme narrow).

        `national_id` may be repeated (up to 100; a malformed one is named by its position from 1): the enrolments of
        any of them. Given more than once, `limit` does not apply: the answer holds every enrolment of those IDs.
        """
        if not (national_id or surname or birth_date):
            raise problems.Problem(400, problems.MISSING_CRITERIA, "Give national_id, or surname and/or birth_date.")
        wanted = checked_ids(national_id, "national_id", NATIONAL_ID_PATTERN, positions=False)
        where: list[str] = []
        params: list[Any] = []
        if wanted:
            where.append(f"national_id IN ({marks(wanted)})")
            params += wanted
        if surname:
            variants = _case_variants(surname)
            where.append(f"surname IN ({', '.join('?' * len(variants))})")
            params += variants
        if given_name:
            where.append("given_name = ? COLLATE NOCASE")
            params.append(given_name.strip())
        if birth_date:
            where.append("birth_date = ?")
            params.append(birth_date.isoformat())
        if programme:
            where.append("programme = ?")
            params.append(programme)
        # A batch of national IDs is answered whole: at most MAX_IDS people with a few enrolments each.
        cap = -1 if len(national_id) > 1 else limit  # LIMIT -1: no limit
        # Only constant column names and placeholders go into the SQL; values are parameters.
        rows = db.all(
            f"SELECT {_COLUMNS} FROM beneficiary WHERE {' AND '.join(where)} ORDER BY beneficiary_no LIMIT ?",  # noqa: S608
            [*params, cap],
        )
        return BeneficiaryList(items=with_flags(rows))

    @app.post(
        "/v1/notifications",
        responses=_NOTIFY_RESPONSES,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _NOTIFY_SCHEMA}}}},
    )
    async def receive_notifications(request: Request) -> NotifyAnswer:
        """Vital events from the civil registry (a DCI notify envelope); a repeated event id changes nothing."""
        transaction_id, events = parse_notify(await _read_body(request))
        return await run_in_threadpool(record_notifications, db, transaction_id, events)

    @app.get("/v1/notifications", responses=_LIST_RESPONSES)
    def list_notifications(
        limit: Annotated[int, Query(ge=1, le=NOTIFICATIONS_MAX)] = NOTIFICATIONS_DEFAULT,
    ) -> NotificationList:
        """The notifications received, newest first."""
        rows = db.all(
            "SELECT event_id, event_type, received_at, transaction_id FROM notification"
            " ORDER BY received_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return NotificationList(items=[Notification(**dict(r)) for r in rows])

    return problems.with_faults(app)
