"""DCI (Digital Convergence Initiative) messages for the virtual registry: searches in, person records out.

DCI clients (a social registry, a programme platform) query the registry unchanged through the sync
search (`/registry/sync/search`, social registry bundle) and the IBR enrolment check
(`/registry/sync/enrolled`). This module only translates: parsed JSON in, plain dataclasses for the
registry, and plain dicts back out; HTTP and the registry are wired elsewhere.

A fault in the envelope (no header, wrong action, too many items) rejects the whole message: `DciError`,
which the app renders with `error_response`. A fault in one search item rejects only that item: it comes
back as an `ItemResult` with status `rjct` and the other items are still answered. Reason codes come from
the spec's enums: `MsgHeaderStatusReasonCode` for the header, `SearchStatusReasonCode` for items, the
`Error` object's codes (`err.*`) for a message that cannot be read at all.

Where the published bundles (spdci/standards at b4816e1) are defective we follow their intent:
- The header's reason-code enum has no code for an unreadable message; its `Error` object (meant for
  acknowledgements) has `err.request.bad`. We put that code in the rejecting header all the same.
- The social registry types `reg_records` as an array, the registry core as one object: we send an array.
- Its records are `Group` or `Member` (`response_entity`); a person is a Member whose `demographic_info`
  is the person. The bundle's example and its sample message disagree on names (`given_name` vs
  `first_name`) and sex (`female` vs `F`): we follow the schema example and the core's `dci_Sex` enum.
  Addresses use the core's `openid_Address` (`sub_region_code` is its district code).
- The IBR's `EnrolledRequest` carries one `enrolled_criteria` and no reference_id, yet `EnrolledResponse`
  answers a list keyed by reference_id, and the endpoint's response is a bare schema with no envelope.
  We answer in the usual envelope; the reference_id is the criteria's own (an extension) or else the
  transaction_id. Its query example spells the programme key `program` where the record says `programme`.
- Samples send `total_count` as a string, `consent`/`authorize`/`meta` as "" and locale "EN/GB" (the
  schema wants an ISO 639-3 code): accepted here; a locale that is not one is not echoed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from gateway.dcienvelope import (
    ERR_REQUEST,
    VERSION,
    read_envelope,
    timestamp,
)
from gateway.vsr.errors import QueryError

SEARCH_ACTION: Final = "search"
RESPONSE_ACTION: Final = "on-search"
MAX_ITEMS: Final = 100  # search_request items (or enrolled criteria) per message
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100  # a larger page_size is served as this; the response's pagination says so
_MAX_REASON_MESSAGE: Final = 999  # the spec's maxLength of status_reason_message
_MAX_TRANSACTION_ID: Final = 99  # the spec's maxLength of transaction_id
_MAX_INT32: Final = 2**31 - 1  # pagination numbers are int32

# Header faults (MsgHeaderStatusReasonCode).
RJCT_MESSAGE_ID_DUPLICATE: Final = "rjct.message_id.duplicate"  # for the caller's replay check
RJCT_TOTAL_COUNT: Final = "rjct.total_count.invalid"
RJCT_TOTAL_COUNT_LIMIT: Final = "rjct.total_count.limit_exceeded"
# Item faults (SearchStatusReasonCode).
RJCT_REFERENCE_ID: Final = "rjct.reference_id.invalid"
RJCT_REFERENCE_ID_DUPLICATE: Final = "rjct.reference_id.duplicate"
RJCT_TIMESTAMP: Final = "rjct.timestamp.invalid"
RJCT_CRITERIA: Final = "rjct.search_criteria.invalid"
RJCT_SORT: Final = "rjct.sort.invalid"
RJCT_PAGINATION: Final = "rjct.pagination.invalid"
RJCT_TOO_MANY_RECORDS: Final = "rjct.search.too_many_records_found"  # for the registry's answer
# An unreadable message (the Error object's codes).

_OPERATORS: Final = ("gt", "lt", "eq", "ge", "le", "in")
_CONDITIONS: Final = ("and", "or", "not")
_QUERY_TYPES: Final = ("idtype-value", "expression", "predicate")
_LOCALE = re.compile(r"[a-z]{3}")  # the spec's LanguageCode pattern, ISO 639-3
# Identifier types that name the national ID: the core's UIN, the samples' NID and NationalID.
_NATIONAL_ID_TYPES: Final = frozenset({"UIN", "NID", "NATIONALID"})

# Query attribute names (lower-cased) to PersonCriteria fields. DCI leaves attribute names to the
# implementation; these are the names its bundles and samples use (flat, `name.*`, the core's `sur_name`,
# the spec's `YOB`/`DOB` examples). The bundles have no mother's name: `mother_name` is ours.
_ATTRIBUTES: Final[Mapping[str, str]] = {
    "uin": "national_id",
    "nid": "national_id",
    "national_id": "national_id",
    "person_identifier": "national_id",
    "given_name": "given_name",
    "name.given_name": "given_name",
    "first_name": "given_name",
    "name.first_name": "given_name",
    "second_name": "second_name",
    "name.second_name": "second_name",
    "middle_name": "second_name",
    "name.middle_name": "second_name",
    "surname": "surname",
    "name.surname": "surname",
    "sur_name": "surname",
    "name.sur_name": "surname",
    "family_name": "surname",
    "sex": "sex",
    "gender": "sex",
    "birth_date": "birth_date",
    "birthdate": "birth_date",
    "dob": "birth_date",
    "birth_year": "birth_year",
    "yob": "birth_year",
    "mother_name": "mother_name",
    "district": "district",
    "address.district": "district",
    "sub_region_code": "district",
    "address.sub_region_code": "district",
}
_SEARCHABLE: Final = "UIN, given_name, second_name, surname, sex, birth_date, birth_year, mother_name, district"
# The enrolment check's programme key, as the IBR record names it and as its query example spells it.
_PROGRAMME_ATTRIBUTES: Final = frozenset(
    {
        "programme",
        "programme_identifier",
        "programme_identifier.programme.programme_identifier",
        "programme_identifier.program.programme_identifier",
    }
)
_SEX_CODES: Final[Mapping[str, str]] = {"m": "M", "male": "M", "f": "F", "female": "F"}
_SEX_NAMES: Final[Mapping[str, str]] = {"M": "male", "F": "female"}


class DciError(QueryError):
    """A DCI message, or one search item, cannot be answered; `reason_code` is the spec's code for why.

    Like every registry error, the message names fields and codes, never a value a client sent.
    """

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class PersonCriteria:
    """What the registry can answer a person query by; None means not asked."""

    national_id: str | None = None
    given_name: str | None = None
    second_name: str | None = None
    surname: str | None = None
    sex: str | None = None  # M or F
    birth_date: str | None = None  # ISO date
    birth_year: int | None = None
    mother_name: str | None = None
    district: str | None = None

    def as_query(self) -> dict[str, Any]:
        """The registry's own query shape (the fields asked, by the same names)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class SearchItem:
    """One answerable search_request item."""

    reference_id: str
    criteria: PersonCriteria
    purpose: str | None  # consent.purpose.code, else its text
    page_size: int
    page_number: int
    sort: tuple[tuple[str, Literal["asc", "desc"]], ...] = ()  # (PersonCriteria field, order), for the registry
    locale: str | None = None  # echoed in the answer when it is an ISO 639-3 code


@dataclass(frozen=True)
class ItemResult:
    """The answer to one item: records (see `person_record`) when it succeeded, a reason when rejected."""

    reference_id: str
    status: Literal["succ", "rjct"]
    reason_code: str | None = None
    reason_message: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    total_count: int | None = None  # all matches across pages; None means the records are all of them

    @classmethod
    def success(cls, reference_id: str, records: list[dict[str, Any]], total_count: int | None = None) -> ItemResult:
        return cls(reference_id, "succ", records=records, total_count=total_count)

    @classmethod
    def reject(cls, reference_id: str, reason_code: str, reason_message: str) -> ItemResult:
        return cls(reference_id, "rjct", reason_code, reason_message)


@dataclass(frozen=True)
class SearchRequest:
    """A parsed search message: the items to answer and those already rejected (answered by `search_response`)."""

    header: dict[str, Any]
    transaction_id: str
    items: tuple[SearchItem, ...]
    rejected: tuple[ItemResult, ...] = ()


@dataclass(frozen=True)
class EnrolledQuery:
    """One IBR enrolment check: is this person enrolled (in this programme, if named)?"""

    reference_id: str
    criteria: PersonCriteria
    programme: str | None
    purpose: str | None


# ---------------------------------------------------------------------------------------------- parsing


def parse_search_request(envelope: object) -> SearchRequest:
    """The sync search message as items for the registry, with the items it cannot answer set aside."""
    header, message = _envelope(envelope)
    transaction_id = _transaction_id(message)
    raw_items = message.get("search_request")
    if not isinstance(raw_items, list) or not raw_items:
        raise DciError(ERR_REQUEST, "message.search_request must be a non-empty list")
    _check_count(header, len(raw_items), "search_request")
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, Mapping):
            raise DciError(ERR_REQUEST, f"message.search_request[{i}] is not an object")

    references = [_reference_id(raw) for raw in raw_items]
    seen: dict[str, int] = {}
    for ref in references:
        if ref is not None:
            seen[ref] = seen.get(ref, 0) + 1
    items: list[SearchItem] = []
    rejected: list[ItemResult] = []
    for raw, ref in zip(raw_items, references, strict=True):
        if ref is None:
            rejected.append(ItemResult.reject(_loose_reference(raw), RJCT_REFERENCE_ID, "reference_id must be text"))
        elif seen[ref] > 1:
            rejected.append(
                ItemResult.reject(
                    ref, RJCT_REFERENCE_ID_DUPLICATE, f"reference_id is used by {seen[ref]} items of this message"
                )
            )
        else:
            try:
                items.append(_search_item(raw, ref))
            except DciError as e:
                rejected.append(ItemResult.reject(ref, e.reason_code, e.message))
    return SearchRequest(dict(header), transaction_id, tuple(items), tuple(rejected))


def parse_enrolled_request(envelope: object) -> tuple[dict[str, Any], str, tuple[EnrolledQuery, ...]]:
    """The IBR enrolment check as (header, transaction_id, queries).

    The spec's request holds one `enrolled_criteria` object, so a fault in it rejects the message. A list
    of criteria objects, each with its own `reference_id`, is accepted as a batch (our extension).
    """
    header, message = _envelope(envelope)
    transaction_id = _transaction_id(message)
    raw = message.get("enrolled_criteria")
    if isinstance(raw, Mapping):
        _check_count(header, 1, "enrolled_criteria")
        reference = raw.get("reference_id", transaction_id)
        if not isinstance(reference, str):
            raise DciError(ERR_REQUEST, "enrolled_criteria.reference_id must be text")
        return dict(header), transaction_id, (_enrolled_query(raw, reference, "enrolled_criteria"),)
    if not isinstance(raw, list) or not raw:
        raise DciError(ERR_REQUEST, "message.enrolled_criteria must be an object (or a non-empty list of them)")
    _check_count(header, len(raw), "enrolled_criteria")
    queries: list[EnrolledQuery] = []
    for i, one in enumerate(raw):
        where = f"enrolled_criteria[{i}]"
        if not isinstance(one, Mapping):
            raise DciError(ERR_REQUEST, f"message.{where} is not an object")
        reference = one.get("reference_id")
        if not isinstance(reference, str):
            raise DciError(RJCT_REFERENCE_ID, f"{where}.reference_id must be text")
        queries.append(_enrolled_query(one, reference, where))
    counts: dict[str, int] = {}
    for q in queries:
        counts[q.reference_id] = counts.get(q.reference_id, 0) + 1
    if any(n > 1 for n in counts.values()):
        raise DciError(RJCT_REFERENCE_ID_DUPLICATE, "two enrolled_criteria share a reference_id")
    return dict(header), transaction_id, tuple(queries)


def _envelope(envelope: object) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    return read_envelope(envelope, SEARCH_ACTION, DciError)


def _transaction_id(message: Mapping[str, Any]) -> str:
    tid = message.get("transaction_id")
    if not isinstance(tid, str) or len(tid) > _MAX_TRANSACTION_ID:
        raise DciError(ERR_REQUEST, f"message.transaction_id must be text of at most {_MAX_TRANSACTION_ID} characters")
    return tid


def _check_count(header: Mapping[str, Any], count: int, what: str) -> None:
    """The batch is within our limit and the header counts it right (samples send the count as text)."""
    if count > MAX_ITEMS:
        raise DciError(RJCT_TOTAL_COUNT_LIMIT, f"{count} {what} items; at most {MAX_ITEMS} per message")
    declared = header.get("total_count")
    if declared is None:
        return
    if isinstance(declared, str) and declared.strip().isdecimal():
        declared = int(declared)
    if isinstance(declared, bool) or not isinstance(declared, int) or declared != count:
        raise DciError(RJCT_TOTAL_COUNT, f"header.total_count must be the number of {what} items ({count})")


def _reference_id(raw: Mapping[str, Any]) -> str | None:
    ref = raw.get("reference_id")
    return ref if isinstance(ref, str) else None


def _loose_reference(raw: Mapping[str, Any]) -> str:
    """An unusable reference_id as the client may still recognise it (a number), else empty."""
    ref = raw.get("reference_id")
    return str(ref) if isinstance(ref, int) and not isinstance(ref, bool) else ""


def _search_item(raw: Mapping[str, Any], reference_id: str) -> SearchItem:
    if not isinstance(raw.get("timestamp"), str) or timestamp(raw["timestamp"]) is None:
        raise DciError(RJCT_TIMESTAMP, "timestamp must be an ISO 8601 date-time")
    sc = raw.get("search_criteria")
    if not isinstance(sc, Mapping):
        raise DciError(RJCT_CRITERIA, "search_criteria is missing or not an object")
    criteria = _criteria(sc.get("query_type"), sc.get("query"), allow_programme=False)[0]
    entity = sc.get("response_entity")
    if entity not in (None, "", "Member"):
        raise DciError(RJCT_CRITERIA, "response_entity must be Member: this registry answers person records")
    page_size, page_number = _pagination(sc.get("pagination"))
    return SearchItem(
        reference_id=reference_id,
        criteria=criteria,
        purpose=_purpose(sc.get("consent")),
        page_size=page_size,
        page_number=page_number,
        sort=_sort(sc.get("sort")),
        locale=_locale(raw.get("locale")),
    )


def _enrolled_query(raw: Mapping[str, Any], reference_id: str, where: str) -> EnrolledQuery:
    try:
        criteria, programme = _criteria(raw.get("query_type"), raw.get("query"), allow_programme=True)
    except DciError as e:
        raise DciError(e.reason_code, f"{where}: {e.message}") from None
    return EnrolledQuery(reference_id, criteria, programme, _purpose(raw.get("consent")))


# ---------------------------------------------------------------------------------------------- queries


@dataclass
class _Terms:
    """Criteria gathered from (attribute, operator, value) terms joined by `and`."""

    allow_programme: bool
    values: dict[str, Any] = field(default_factory=dict)
    programme: str | None = None
    after: dt.date | None = None  # birth_date lower bound, inclusive
    before: dt.date | None = None  # birth_date upper bound, inclusive

    def add(self, where: str, attribute: object, operator: object, value: object) -> None:
        if not isinstance(attribute, str) or not attribute:
            raise DciError(RJCT_CRITERIA, f"{where}: attribute_name must be text")
        if not isinstance(operator, str) or operator not in _OPERATORS:
            raise DciError(RJCT_CRITERIA, f"{where}: operator must be one of {', '.join(_OPERATORS)}")
        key = attribute.strip().lower()
        if self.allow_programme and key in _PROGRAMME_ATTRIBUTES:
            self._programme(where, operator, value)
            return
        name = _ATTRIBUTES.get(key)
        if name is None:
            searchable = _SEARCHABLE + (", programme" if self.allow_programme else "")
            raise DciError(RJCT_CRITERIA, f"{where}: attribute {_shown(attribute)} is not searchable; use {searchable}")
        if name == "birth_date" and operator in ("ge", "gt", "le", "lt"):
            self._bound(where, operator, value)
            return
        if operator != "eq":
            allowed = "eq, ge, gt, le or lt" if name == "birth_date" else "eq"
            raise DciError(RJCT_CRITERIA, f"{where}: operator {operator} is not supported for {name}; use {allowed}")
        if name == "birth_date":
            day = _date(value)
            if day is not None:
                self._set(where, "birth_date", day.isoformat())
            elif _year(value) is not None:  # a year alone is a birth date to OpenID and the core's birthdate
                self._set(where, "birth_year", _year(value))
            else:
                raise DciError(RJCT_CRITERIA, f"{where}: birth_date must be an ISO 8601 date")
        elif name == "birth_year":
            year = _year(value)
            if year is None:
                raise DciError(RJCT_CRITERIA, f"{where}: birth_year must be a four-digit year")
            self._set(where, "birth_year", year)
        elif name == "sex":
            sex = _SEX_CODES.get(value.strip().lower()) if isinstance(value, str) else None
            if sex is None:
                raise DciError(RJCT_CRITERIA, f"{where}: sex must be M, F, male or female")
            self._set(where, "sex", sex)
        else:
            self._set(where, name, _text(where, name, value, numbers=name == "national_id"))

    def _set(self, where: str, name: str, value: Any) -> None:
        if self.values.get(name, value) != value:
            raise DciError(RJCT_CRITERIA, f"{where}: {name} is asked twice with different values")
        self.values[name] = value

    def _programme(self, where: str, operator: str, value: object) -> None:
        if operator != "eq":
            raise DciError(RJCT_CRITERIA, f"{where}: operator {operator} is not supported for programme; use eq")
        programme = _text(where, "programme", value, numbers=True)
        if self.programme not in (None, programme):
            raise DciError(RJCT_CRITERIA, f"{where}: programme is asked twice with different values")
        self.programme = programme

    def _bound(self, where: str, operator: str, value: object) -> None:
        day = _date(value)
        if day is None:
            raise DciError(RJCT_CRITERIA, f"{where}: birth_date must be an ISO 8601 date")
        try:
            if operator in ("ge", "gt"):
                bound = day + dt.timedelta(days=1) if operator == "gt" else day
                if self.after is not None:
                    raise DciError(RJCT_CRITERIA, f"{where}: birth_date has two lower bounds")
                self.after = bound
            else:
                bound = day - dt.timedelta(days=1) if operator == "lt" else day
                if self.before is not None:
                    raise DciError(RJCT_CRITERIA, f"{where}: birth_date has two upper bounds")
                self.before = bound
        except OverflowError:
            raise DciError(RJCT_CRITERIA, f"{where}: birth_date is out of range") from None

    def criteria(self) -> PersonCriteria:
        if self.after is not None or self.before is not None:
            a, b = self.after, self.before
            if a is None or b is None or (a.month, a.day, b.month, b.day) != (1, 1, 12, 31) or a.year != b.year:
                raise DciError(
                    RJCT_CRITERIA,
                    "a birth_date range must span one calendar year: ge YYYY-01-01 and le YYYY-12-31",
                )
            self._set("query", "birth_year", a.year)
        birth_date, birth_year = self.values.get("birth_date"), self.values.get("birth_year")
        if birth_date is not None and birth_year is not None and int(birth_date[:4]) != birth_year:
            raise DciError(RJCT_CRITERIA, "birth_date and the birth year asked disagree")
        if not self.values:
            raise DciError(RJCT_CRITERIA, "the query names no person attribute")
        return PersonCriteria(**self.values)


def _criteria(query_type: object, query: object, *, allow_programme: bool) -> tuple[PersonCriteria, str | None]:
    """A query of a supported type as person criteria (and the programme, for the enrolment check)."""
    if query_type == "expression":
        raise DciError(RJCT_CRITERIA, "query_type expression is not supported; use idtype-value or predicate")
    if query_type not in _QUERY_TYPES:
        raise DciError(RJCT_CRITERIA, "query_type must be idtype-value or predicate")
    terms = _Terms(allow_programme)
    if query_type == "predicate":
        _predicate(terms, query)
    elif isinstance(query, Mapping) and "type" in query and "value" in query:
        _idtype_value(terms, query)
    elif allow_programme and isinstance(query, Mapping) and query:
        # The IBR's example query: {attribute: {operator: value}}.
        for attribute, ops in query.items():
            where = f"query.{_shown(attribute)}"
            if not isinstance(ops, Mapping) or not ops:
                raise DciError(RJCT_CRITERIA, f"{where} must be an object of operator: value")
            for operator, value in ops.items():
                terms.add(where, attribute, operator, value)
    else:
        raise DciError(RJCT_CRITERIA, "an idtype-value query must be an object with type and value")
    return terms.criteria(), terms.programme


def _idtype_value(terms: _Terms, query: Mapping[str, Any]) -> None:
    id_type = query["type"]
    if not isinstance(id_type, str):
        raise DciError(RJCT_CRITERIA, "query.type must be an identifier type such as UIN")
    if re.sub(r"[^A-Z]", "", id_type.upper()) not in _NATIONAL_ID_TYPES:
        raise DciError(RJCT_CRITERIA, f"identifier type {_shown(id_type)} is not searchable; use UIN (the national ID)")
    terms.values["national_id"] = _text("query", "value", query["value"], numbers=True)


def _predicate(terms: _Terms, query: object) -> None:
    """Predicates joined by `and`, within (expression1 and expression2) and between list entries."""
    if not isinstance(query, list) or not query:
        raise DciError(RJCT_CRITERIA, "a predicate query must be a non-empty list")
    for i, entry in enumerate(query):
        where = f"query[{i}]"
        if not isinstance(entry, Mapping):
            raise DciError(RJCT_CRITERIA, f"{where} is not an object")
        condition = entry.get("condition")
        if condition in ("or", "not"):
            raise DciError(RJCT_CRITERIA, f"{where}: condition {condition} is not supported; use and")
        if condition not in (None, "", "and"):
            raise DciError(RJCT_CRITERIA, f"{where}: condition must be one of {', '.join(_CONDITIONS)}")
        if entry.get("expression2") is not None and condition != "and":
            raise DciError(RJCT_CRITERIA, f"{where}: expression2 needs condition and")
        for side in ("expression1", "expression2"):
            expression = entry.get(side)
            if expression is None and side == "expression2":
                continue
            if not isinstance(expression, Mapping):
                raise DciError(RJCT_CRITERIA, f"{where}.{side} is missing or not an object")
            terms.add(
                f"{where}.{side}",
                expression.get("attribute_name"),
                expression.get("operator"),
                expression.get("attribute_value"),
            )


def _pagination(raw: object) -> tuple[int, int]:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE, 1
    if not isinstance(raw, Mapping):
        raise DciError(RJCT_PAGINATION, "pagination must be an object")
    size = _whole(raw.get("page_size", DEFAULT_PAGE_SIZE))
    number = _whole(raw.get("page_number", 1))
    if size is None or size < 1:
        raise DciError(RJCT_PAGINATION, "pagination.page_size must be a whole number from 1")
    if number is None or not 1 <= number <= _MAX_INT32:
        raise DciError(RJCT_PAGINATION, "pagination.page_number must be a whole number from 1 (int32)")
    return min(size, MAX_PAGE_SIZE), number


def _sort(raw: object) -> tuple[tuple[str, Literal["asc", "desc"]], ...]:
    if raw is None or raw == "":
        return ()
    if not isinstance(raw, list):
        raise DciError(RJCT_SORT, "sort must be a list")
    out: list[tuple[str, Literal["asc", "desc"]]] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise DciError(RJCT_SORT, f"sort[{i}] is not an object")
        attribute = entry.get("attribute_name")
        name = _ATTRIBUTES.get(attribute.strip().lower()) if isinstance(attribute, str) else None
        if name is None:
            raise DciError(
                RJCT_SORT, f"sort[{i}]: attribute {_shown(attribute)} cannot be sorted on; use {_SEARCHABLE}"
            )
        order = entry.get("sort_order", "asc")
        if order == "asc":
            out.append((name, "asc"))
        elif order == "desc":
            out.append((name, "desc"))
        else:
            raise DciError(RJCT_SORT, f"sort[{i}].sort_order must be asc or desc")
    return tuple(out)


def _purpose(consent: object) -> str | None:
    """The consent's purpose code, else its text; absent or empty consent (the sample sends "") is None."""
    if not isinstance(consent, Mapping):
        return None
    purpose = consent.get("purpose")
    if not isinstance(purpose, Mapping):
        return None
    for key in ("code", "text"):
        value = purpose.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _locale(raw: object) -> str | None:
    return raw if isinstance(raw, str) and _LOCALE.fullmatch(raw) else None


def _text(where: str, name: str, value: object, *, numbers: bool = False) -> str:
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise DciError(RJCT_CRITERIA, f"{where}: {name} must be non-empty text")
    return value.strip()


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _year(value: object) -> int | None:
    if isinstance(value, str):
        value = value.strip()
        if len(value) != 4 or not (value.isascii() and value.isdecimal()):
            return None
        value = int(value)
    year = _whole(value)
    return year if year is not None and 1000 <= year <= 9999 else None


def _date(value: object) -> dt.date | None:
    """An ISO date, or the date part of an ISO date-time (the bundle's examples send 1985-05-20T00:00:00Z)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value).date()
    except ValueError:
        return None


def _shown(value: object) -> str:
    """A client's name for something (never a value it searched by), short enough for a message."""
    text = (value or '""') if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------- records


def person_record(view: Mapping[str, Any]) -> dict[str, Any]:
    """The registry's person view as a social registry `Member` record, its person in `demographic_info`.

    Fields the view does not know are left out, never sent empty. A birth year without a date goes out as
    `birth_date: "YYYY"`, as OpenID's birthdate (and the core's record) allow.
    """
    identifiers = [
        {"identifier_type": i["identifier_type"], "identifier_value": i["identifier_value"]}
        for i in view.get("identifier") or ()
        if isinstance(i, Mapping) and i.get("identifier_type") and i.get("identifier_value")
    ]
    name = view.get("name") or {}
    address = view.get("address") or {}
    birth_date = view.get("birth_date")
    if birth_date is None and view.get("birth_year") is not None:
        birth_date = f"{int(view['birth_year']):04d}"
    person = _drop_empty(
        {
            "@type": "SRPerson",
            "identifier": identifiers,
            "name": _drop_empty(
                {k: name.get(k) for k in ("surname", "given_name", "second_name", "maiden_name", "prefix", "suffix")}
            ),
            "sex": _SEX_NAMES.get(view.get("sex") or "", view.get("sex")),
            "birth_date": birth_date,
            "death_date": view.get("death_date"),
            "address": _drop_empty({"sub_region_code": address.get("district"), "locality": address.get("village")}),
        }
    )
    extra = [
        {"name": attribute, "value": view[key]}
        for attribute, key in (("household_id", "household_id"), ("vital_status", "status"))
        if view.get(key) is not None
    ]
    return _drop_empty(
        {
            "@type": "Member",
            "member_identifier": identifiers,  # a virtual registry has no member numbers of its own
            "demographic_info": person,
            "additional_attributes": extra,
        }
    )


def _drop_empty(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {} and v != [] and v != ""}


# ---------------------------------------------------------------------------------------------- responses


def search_response(
    request: SearchRequest,
    results: Sequence[ItemResult],
    *,
    sender_id: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The sync search answer: one result per parsed item, plus the request's own rejections.

    The header speaks for the message (succ: it was read and every item answered); each item carries its
    own status. Raises ValueError when `results` does not answer each of `request.items` exactly once.
    """
    by_reference = {r.reference_id: r for r in results}
    expected = [item.reference_id for item in request.items]
    if len(by_reference) != len(results) or set(by_reference) != set(expected):
        raise ValueError("results must answer each of the request's items exactly once")
    when = _iso(now)
    answers = [_search_answer(by_reference[item.reference_id], item, when) for item in request.items]
    answers += [_search_answer(r, None, when) for r in request.rejected]
    return {
        "header": _response_header(
            "succ", sender_id=sender_id, request_header=request.header, count=len(answers), when=when
        ),
        "message": {
            "transaction_id": request.transaction_id,
            "correlation_id": str(uuid.uuid4()),
            "search_response": answers,
        },
    }


def _search_answer(result: ItemResult, item: SearchItem | None, when: str) -> dict[str, Any]:
    out: dict[str, Any] = {"reference_id": result.reference_id, "timestamp": when, "status": result.status}
    if result.status == "rjct":
        out["status_reason_code"] = result.reason_code or RJCT_CRITERIA
        out["status_reason_message"] = _clip(result.reason_message or "the search item was rejected")
    elif result.reason_message:
        out["status_reason_message"] = _clip(result.reason_message)
    if result.status == "succ" and item is not None:
        out["data"] = {"version": VERSION, "reg_record_type": "Member", "reg_records": list(result.records)}
        total = len(result.records) if result.total_count is None else result.total_count
        out["pagination"] = {"page_size": item.page_size, "page_number": item.page_number, "total_count": total}
    if item is not None and item.locale is not None:
        out["locale"] = item.locale
    return out


def enrolled_response(
    header: Mapping[str, Any],
    transaction_id: str,
    results: Sequence[ItemResult | tuple[str, Sequence[Mapping[str, Any]]]],
    *,
    sender_id: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The IBR enrolment answer: per query, enrolled yes or no (only that, not the enrolments found).

    A result is an ItemResult, or (reference_id, enrolments found). The spec requires `enrolled_status`
    even on a rejected query, where it reads `no`: `status` rjct says the question was not answered. The
    spec's item has no `status_reason_code`; we add it to rejections, as in search answers.
    """
    when = _iso(now)
    answers: list[dict[str, Any]] = []
    for result in results:
        if not isinstance(result, ItemResult):
            reference_id, found = result
            result = ItemResult.success(reference_id, [dict(e) for e in found])
        out: dict[str, Any] = {"reference_id": result.reference_id, "timestamp": when, "status": result.status}
        if result.status == "rjct":
            out["status_reason_code"] = result.reason_code or RJCT_CRITERIA
            out["status_reason_message"] = _clip(result.reason_message or "the query was rejected")
            out["enrolled_status"] = "no"
        else:
            out["enrolled_status"] = "yes" if result.records else "no"
        answers.append(out)
    return {
        "header": _response_header("succ", sender_id=sender_id, request_header=header, count=len(answers), when=when),
        "message": {
            "transaction_id": transaction_id,
            "correlation_id": str(uuid.uuid4()),
            "enrolled_response": answers,
        },
    }


def error_response(
    header: Mapping[str, Any] | None,
    reason_code: str,
    message: str,
    *,
    sender_id: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The whole message rejected: a header with status rjct and the reason, and no message body."""
    request_header = header if isinstance(header, Mapping) else None
    out = _response_header("rjct", sender_id=sender_id, request_header=request_header, count=0, when=_iso(now))
    out["status_reason_code"] = reason_code
    out["status_reason_message"] = _clip(message)
    return {"header": out}


def _response_header(
    status: Literal["succ", "rjct"],
    *,
    sender_id: str,
    request_header: Mapping[str, Any] | None,
    count: int,
    when: str,
) -> dict[str, Any]:
    """A callback header; the spec's signature is optional and left to the signing layer."""
    out: dict[str, Any] = {
        "version": VERSION,
        "message_id": str(uuid.uuid4()),
        "message_ts": when,
        "action": RESPONSE_ACTION,
        "status": status,
        "total_count": count,
        "completed_count": count,  # sync: every item is complete, answered or rejected
        "sender_id": sender_id,
    }
    receiver = request_header.get("sender_id") if request_header is not None else None
    if isinstance(receiver, str) and receiver:
        out["receiver_id"] = receiver
    out["is_msg_encrypted"] = False
    return out


def _iso(now: dt.datetime | None) -> str:
    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_REASON_MESSAGE else text[: _MAX_REASON_MESSAGE - 3] + "..."
