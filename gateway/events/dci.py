"""DCI (Digital Convergence Initiative) messages of the event service: subscribe and unsubscribe in,
subscription answers and notify envelopes out.

This module only translates: parsed JSON in, plain dataclasses for the service, plain dicts back out.
A fault in the envelope (no header, wrong action, too many items) rejects the whole message
(`DciError`, rendered by `error_response`); a fault in one subscribe item rejects only that item.
Reason codes come from the registry core bundle's enums (`MsgHeaderStatusReasonCode`,
`SubscribeStatusReasonCode`, `UnSubscribeStatusReasonCode`) and its `Error` codes (`err.*`) for a
message that cannot be read at all.

Where the registry core bundle (spdci/standards at b4816e1) is defective we follow its intent:
- `SubscriptionInfo` names its code `code` but requires `subscription_code` and `subscribe_criteria`:
  we send all three.
- `UnSubscribeRequest` requires `sunscription_codes` and `timestamp` but defines `subscription_codes`
  and `timesstamp`: we read either spelling of the codes, and do not insist on a timestamp.
  `UnSubscribeResponse` requires `timestamp` but defines `timesatmp`: we send `timestamp`.
- `NotifyEventRequest` types `reg_records` as one object; like the social registry bundle (and the
  virtual registry) we send an array, here of one record.
- `RegistryQueries` (the filter) is a oneOf whose two object branches accept any object, so no object
  validates: we read `{"district": ...}` and `{}` all the same, and show a subscription's filter back
  in the one form that validates, a predicate list (`[]` for every event).
- The header's reason-code enum has no code for an unreadable message; its `Error` object has
  `err.request.bad` (and `err.sender_id.invalid`, `err.encryption.invalid`): we put those in the
  rejecting header all the same, as the virtual registry does.
- `RegistryEventType` values are left to the implementation: we accept `death` and `birth`, the
  spdci-common form (`spdci-common:RegistryEventType:Death`, `...:LiveBirth`), DCI's vital events
  (`live_birth`) and MOSIP's (`DEATH_REGISTERED`, `BIRTH_REGISTERED`).

Our extension: each subscription names the X-Road service that receives its notifications,
`subscribe_criteria.callback = {"service": "ZZ/GOV/MSP/programme-mis/notifications", "path": ""}`, a
service of the subscriber's own member: DCI's `sender_uri` is a URL, and in an exchange layer every
delivery is an exchange between two members.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from gateway.dcienvelope import (
    ERR_REQUEST,
    VERSION,
    read_envelope,
    timestamp,
)
from gateway.events.errors import DciError
from gateway.identifiers import ClientId, IdentifierError, ServiceId

if TYPE_CHECKING:
    from gateway.events.store import Event, Subscription

SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"
NOTIFY: Final = "notify"
MAX_ITEMS: Final = 100  # subscribe_request items, or subscription codes, per message
REG_TYPE: Final = "civil-registry"
RECORD_TYPE: Final = "person"
EVENT_TYPES: Final = ("death", "birth")
_MAX_REASON_MESSAGE: Final = 999
_MAX_TRANSACTION_ID: Final = 99
_MAX_REFERENCE_ID: Final = 255
_MAX_CODE: Final = 99  # the spec's SubscriptionCode maxLength

# Header faults (MsgHeaderStatusReasonCode).
RJCT_TOTAL_COUNT: Final = "rjct.total_count.invalid"
RJCT_TOTAL_COUNT_LIMIT: Final = "rjct.total_count.limit_exceeded"
# Item faults (SubscribeStatusReasonCode, UnSubscribeStatusReasonCode).
RJCT_REFERENCE_ID: Final = "rjct.reference_id.invalid"
RJCT_REFERENCE_ID_DUPLICATE: Final = "rjct.reference_id.duplicate"
RJCT_TIMESTAMP: Final = "rjct.timestamp.invalid"
RJCT_NOTIFY_TYPES: Final = "rjct.notify_types.invalid"
RJCT_NOTIFY_DETAILS: Final = "rjct.notify_details.invalid"
RJCT_ALREADY_SUBSCRIBED: Final = "rjct.event.already_subscribed"
RJCT_SUBSCRIPTION_CODE: Final = "rjct.subscription_code.invalid"
RJCT_REQUESTER: Final = "rjct.requester.invalid"
RJCT_ALREADY_UNSUBSCRIBED: Final = "rjct.event.already_unsubscribed"
# An unreadable message (the Error object's codes).

_QUERY_TYPES: Final = ("idtype-value", "expression", "predicate")
_DISTRICT_ATTRIBUTES: Final = frozenset(
    {"district", "district_code", "districtcode", "address.district", "sub_region_code", "address.sub_region_code"}
)
_DISTRICT = re.compile(r"[A-Za-z0-9-]{1,12}")
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*")
_EVENT_NAMES: Final[Mapping[str, str]] = {
    "death": "death",
    "birth": "birth",
    "livebirth": "birth",
    "live_birth": "birth",
}


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a subscription asks for: one event type, districts (none = all), and where to deliver."""

    event_type: str  # death | birth
    districts: tuple[str, ...]
    callback_service: str
    callback_path: str


@dataclass(frozen=True, slots=True)
class SubscribeItem:
    reference_id: str
    criteria: Criteria


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One subscribe item's answer: the subscription made (or already there), or why it was refused."""

    reference_id: str
    status: Literal["succ", "rjct"]
    subscription: Subscription | None = None
    reason_code: str | None = None
    reason_message: str | None = None


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """A parsed subscribe message: the items to make, and those already refused."""

    header: dict[str, Any]
    transaction_id: str
    items: tuple[SubscribeItem, ...]
    rejected: tuple[ItemResult, ...]


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    header: dict[str, Any]
    transaction_id: str
    codes: tuple[str, ...]


# ---------------------------------------------------------------------------------------------- parsing


def parse_subscribe(envelope: object, subscriber: str) -> SubscribeRequest:
    """The subscribe message as criteria for the service, with the items it cannot take set aside."""
    header, message = _envelope(envelope, SUBSCRIBE)
    transaction_id = _transaction_id(message)
    raw_items = message.get("subscribe_request")
    if not isinstance(raw_items, list) or not raw_items:
        raise DciError(ERR_REQUEST, "message.subscribe_request must be a non-empty list")
    _check_count(header, len(raw_items), "subscribe_request")
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, Mapping):
            raise DciError(ERR_REQUEST, f"message.subscribe_request[{i}] is not an object")
    references = [raw.get("reference_id") for raw in raw_items]
    seen: dict[str, int] = {}
    for ref in references:
        if isinstance(ref, str):
            seen[ref] = seen.get(ref, 0) + 1
    items: list[SubscribeItem] = []
    rejected: list[ItemResult] = []
    for raw, ref in zip(raw_items, references, strict=True):
        if not isinstance(ref, str) or not ref.strip() or len(ref) > _MAX_REFERENCE_ID:
            shown = ref if isinstance(ref, str) and len(ref) <= _MAX_REFERENCE_ID else ""
            rejected.append(
                _reject(shown, RJCT_REFERENCE_ID, f"reference_id must be text of 1 to {_MAX_REFERENCE_ID} characters")
            )
        elif seen[ref] > 1:
            rejected.append(
                _reject(ref, RJCT_REFERENCE_ID_DUPLICATE, f"reference_id is used by {seen[ref]} items of this message")
            )
        else:
            try:
                items.append(SubscribeItem(ref, _subscribe_item(raw, subscriber)))
            except DciError as exc:
                rejected.append(_reject(ref, exc.reason_code, exc.message))
    return SubscribeRequest(dict(header), transaction_id, tuple(items), tuple(rejected))


def parse_unsubscribe(envelope: object) -> UnsubscribeRequest:
    """The subscription codes to cancel (either spelling the bundle uses)."""
    header, message = _envelope(envelope, UNSUBSCRIBE)
    transaction_id = _transaction_id(message)
    codes = message.get("subscription_codes", message.get("sunscription_codes"))
    if not isinstance(codes, list) or not codes:
        raise DciError(ERR_REQUEST, "message.subscription_codes must be a non-empty list")
    if len(codes) > MAX_ITEMS:
        raise DciError(RJCT_TOTAL_COUNT_LIMIT, f"{len(codes)} subscription codes; at most {MAX_ITEMS} per message")
    for code in codes:
        if not isinstance(code, str) or not code.strip() or len(code) > _MAX_CODE:
            raise DciError(RJCT_SUBSCRIPTION_CODE, f"a subscription code is text of 1 to {_MAX_CODE} characters")
    return UnsubscribeRequest(dict(header), transaction_id, tuple(dict.fromkeys(codes)))


def event_type(value: object) -> str | None:
    """`death` or `birth` from any of the spellings DCI implementations use; None when neither."""
    if not isinstance(value, str):
        return None
    key = value.rsplit(":", 1)[-1].strip().lower().replace("-", "_").removesuffix("_registered")
    return _EVENT_NAMES.get(key)


def _envelope(envelope: object, action: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    return read_envelope(envelope, action, DciError)


def _transaction_id(message: Mapping[str, Any]) -> str:
    tid = message.get("transaction_id")
    if not isinstance(tid, str) or not tid or len(tid) > _MAX_TRANSACTION_ID:
        raise DciError(ERR_REQUEST, f"message.transaction_id must be text of 1 to {_MAX_TRANSACTION_ID} characters")
    return tid


def _check_count(header: Mapping[str, Any], count: int, what: str) -> None:
    if count > MAX_ITEMS:
        raise DciError(RJCT_TOTAL_COUNT_LIMIT, f"{count} {what} items; at most {MAX_ITEMS} per message")
    declared = header.get("total_count")
    if declared is None:
        return
    if isinstance(declared, str) and declared.strip().isdecimal():
        declared = int(declared)
    if isinstance(declared, bool) or not isinstance(declared, int) or declared != count:
        raise DciError(RJCT_TOTAL_COUNT, f"header.total_count must be the number of {what} items ({count})")


def _subscribe_item(raw: Mapping[str, Any], subscriber: str) -> Criteria:
    if timestamp(raw.get("timestamp")) is None:
        raise DciError(RJCT_TIMESTAMP, "timestamp must be an ISO 8601 date-time")
    criteria = raw.get("subscribe_criteria")
    if not isinstance(criteria, Mapping):
        raise DciError(RJCT_NOTIFY_DETAILS, "subscribe_criteria is missing or not an object")
    if criteria.get("version", VERSION) != VERSION:
        raise DciError(RJCT_NOTIFY_DETAILS, f"subscribe_criteria.version must be {VERSION}")
    kind = event_type(criteria.get("reg_event_type"))
    if kind is None:
        raise DciError(RJCT_NOTIFY_TYPES, f"reg_event_type must be one of {', '.join(EVENT_TYPES)}")
    record_type = criteria.get("notify_record_type")
    if not isinstance(record_type, str) or record_type.rsplit(":", 1)[-1].strip().lower() != RECORD_TYPE:
        raise DciError(RJCT_NOTIFY_DETAILS, f"notify_record_type must be {RECORD_TYPE}")
    filter_type = criteria.get("filter_type")
    if filter_type is not None and filter_type not in _QUERY_TYPES:
        raise DciError(RJCT_NOTIFY_DETAILS, f"filter_type must be one of {', '.join(_QUERY_TYPES)}")
    districts = _districts(criteria.get("filter"))
    if districts and kind == "death":
        raise DciError(RJCT_NOTIFY_DETAILS, "death records carry no district: subscribe to deaths without a filter")
    service, path = _callback(criteria.get("callback"), subscriber)
    return Criteria(kind, districts, service, path)


def _districts(raw: object) -> tuple[str, ...]:
    """A filter's districts: none (every event), `{"district": ...}`, or one DCI predicate on the district."""
    if raw is None or raw == "" or raw == {} or raw == []:
        return ()
    if isinstance(raw, Mapping):
        keys = [k for k in raw if isinstance(k, str) and k.lower() in _DISTRICT_ATTRIBUTES]
        if len(keys) != 1 or len(raw) != 1:
            raise DciError(RJCT_NOTIFY_DETAILS, "filter supports one attribute: district")
        return _district_values(raw[keys[0]], "eq" if not isinstance(raw[keys[0]], list) else "in")
    if isinstance(raw, list):
        if len(raw) != 1 or not isinstance(raw[0], Mapping):
            raise DciError(RJCT_NOTIFY_DETAILS, "a predicate filter holds one expression on the district")
        predicate = raw[0]
        if predicate.get("expression2") is not None or predicate.get("condition") not in (None, "and"):
            raise DciError(RJCT_NOTIFY_DETAILS, "a predicate filter holds one expression on the district")
        expression = predicate.get("expression1")
        if not isinstance(expression, Mapping):
            raise DciError(RJCT_NOTIFY_DETAILS, "filter[0].expression1 is missing or not an object")
        name = expression.get("attribute_name")
        if not isinstance(name, str) or name.lower() not in _DISTRICT_ATTRIBUTES:
            raise DciError(RJCT_NOTIFY_DETAILS, "filter supports one attribute: district")
        operator = expression.get("operator")
        if operator not in ("eq", "in"):
            raise DciError(RJCT_NOTIFY_DETAILS, "a district filter's operator is eq or in")
        return _district_values(expression.get("attribute_value"), str(operator))
    raise DciError(RJCT_NOTIFY_DETAILS, "filter must be an object, a predicate list, or empty")


def _district_values(value: object, operator: str) -> tuple[str, ...]:
    values = value if operator == "in" and isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and _DISTRICT.fullmatch(v) for v in values):
        raise DciError(RJCT_NOTIFY_DETAILS, "a district is a code of 1 to 12 letters, digits or -")
    return tuple(sorted({str(v).upper() for v in values}))


def _callback(raw: object, subscriber: str) -> tuple[str, str]:
    if not isinstance(raw, Mapping):
        raise DciError(RJCT_NOTIFY_DETAILS, "subscribe_criteria.callback is required: {service, path}")
    service = raw.get("service")
    try:
        sid = ServiceId.parse(service) if isinstance(service, str) else None
    except IdentifierError:
        sid = None
    if sid is None:
        raise DciError(
            RJCT_NOTIFY_DETAILS, "callback.service must be a service id INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE"
        )
    if str(sid.provider.member) != str(ClientId.parse(subscriber).member):
        raise DciError(RJCT_NOTIFY_DETAILS, "callback.service must be a service of the subscriber's own member")
    path = raw.get("path", "")
    if path is None:
        path = ""
    if not isinstance(path, str) or not _PATH.fullmatch(path) or any(s in (".", "..") for s in path.split("/")):
        raise DciError(RJCT_NOTIFY_DETAILS, "callback.path must be empty or a path like /v1/x (no query, no dots)")
    return str(sid), path


def _reject(reference_id: str, reason_code: str, message: str) -> ItemResult:
    return ItemResult(reference_id, "rjct", reason_code=reason_code, reason_message=message)


def rejected(reference_id: str, reason_code: str, message: str, subscription: Subscription | None = None) -> ItemResult:
    """An item refused by the service (e.g. already subscribed: the subscription in force comes with it)."""
    return ItemResult(reference_id, "rjct", subscription, reason_code, message)


def accepted(reference_id: str, subscription: Subscription) -> ItemResult:
    return ItemResult(reference_id, "succ", subscription)


# ---------------------------------------------------------------------------------------------- answers


def filter_view(districts: Sequence[str]) -> dict[str, Any]:
    """A subscription's filter in our plain form: `{}` (everything) or `{"district": ...}`."""
    if not districts:
        return {}
    return {"district": districts[0] if len(districts) == 1 else list(districts)}


def filter_predicate(districts: Sequence[str]) -> list[dict[str, Any]]:
    """A subscription's filter in DCI's predicate form: `[]` (everything) or one expression on the district."""
    if not districts:
        return []
    operator, value = ("eq", districts[0]) if len(districts) == 1 else ("in", list(districts))
    return [
        {"seq_num": 1, "expression1": {"attribute_name": "district", "operator": operator, "attribute_value": value}}
    ]


def subscription_info(sub: Subscription) -> dict[str, Any]:
    """The spec's SubscriptionInfo (with the names its `required` list uses as well as its properties)."""
    criteria = {
        "version": VERSION,
        "reg_type": REG_TYPE,
        "reg_event_type": sub.event_type,
        "filter_type": "predicate",
        "filter": filter_predicate(sub.districts),
        "notify_record_type": RECORD_TYPE,
        "callback": {"service": sub.callback_service, "path": sub.callback_path},
    }
    return {
        "code": sub.code,
        "subscription_code": sub.code,
        "status": "subscribe" if sub.active else "unsubscribe",
        "timestamp": sub.created_at,
        "version": VERSION,
        "reg_type": REG_TYPE,
        "reg_event_type": sub.event_type,
        "filter_type": "predicate",
        "filter": criteria["filter"],
        "notify_record_type": RECORD_TYPE,
        "subscribe_criteria": criteria,
    }


def subscribe_response(
    request: SubscribeRequest, results: Sequence[ItemResult], *, sender_id: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The answer to a subscribe message, one entry per item: those refused on reading first, then the rest."""
    when = _iso(now)
    order = {item.reference_id: i for i, item in enumerate(request.items)}
    answers = sorted(results, key=lambda r: order.get(r.reference_id, -1))
    out: list[dict[str, Any]] = []
    for result in [*request.rejected, *answers]:
        entry: dict[str, Any] = {"reference_id": result.reference_id, "timestamp": when, "status": result.status}
        if result.reason_code is not None:
            entry["status_reason_code"] = result.reason_code
            entry["status_reason_message"] = _clip(result.reason_message or "")
        if result.subscription is not None:
            entry["subscriptions"] = [subscription_info(result.subscription)]
        out.append(entry)
    header = _response_header("succ", "on-subscribe", sender_id=sender_id, request_header=request.header, when=when)
    header["total_count"] = header["completed_count"] = len(out)
    message = {
        "transaction_id": request.transaction_id,
        "correlation_id": str(uuid.uuid4()),
        "subscribe_response": out,
    }
    return {"header": header, "message": message}


def unsubscribe_response(
    request: UnsubscribeRequest,
    statuses: Sequence[tuple[str, bool]],
    *,
    sender_id: str,
    reason: tuple[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The answer to an unsubscribe message: each code and whether it is now cancelled, or the refusal."""
    when = _iso(now)
    status: Literal["succ", "rjct"] = "rjct" if reason else "succ"
    header = _response_header(status, "on-unsubscribe", sender_id=sender_id, request_header=request.header, when=when)
    header["total_count"] = header["completed_count"] = len(request.codes)
    message: dict[str, Any] = {
        "transaction_id": request.transaction_id,
        "correlation_id": str(uuid.uuid4()),
        "timestamp": when,
        "status": status,
        "subscription_status": [
            {"code": code, "status": "unsubscribe" if cancelled else "subscribe"} for code, cancelled in statuses
        ],
    }
    if reason is not None:
        message["status_reason_code"], message["status_reason_message"] = reason[0], _clip(reason[1])
    return {"header": header, "message": message}


def error_response(
    header: Mapping[str, Any] | None,
    reason_code: str,
    message: str,
    *,
    action: str,
    sender_id: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The whole message refused: a header with status rjct and the reason, and no message body."""
    request_header = header if isinstance(header, Mapping) else None
    out = _response_header("rjct", action, sender_id=sender_id, request_header=request_header, when=_iso(now))
    out["total_count"] = out["completed_count"] = 0
    out["status_reason_code"] = reason_code
    out["status_reason_message"] = _clip(message)
    return {"header": out}


def notify_envelope(
    *, delivery_id: str, subscription: Subscription, event: Event, sender_id: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """One event for one subscriber: `reference_id` is the event id (the receiver's duplicate check),
    `header.message_id` the delivery id (the same on every attempt), `transaction_id` the subscription."""
    when = _iso(now)
    header = {
        "version": VERSION,
        "message_id": delivery_id,
        "message_ts": when,
        "action": NOTIFY,
        "status": "succ",
        "sender_id": sender_id,
        "receiver_id": subscription.subscriber,
        "total_count": 1,
        "completed_count": 1,
        "is_msg_encrypted": False,
    }
    item = {
        "reference_id": event.event_id,
        "timestamp": event.seen_at,
        "data": {
            "version": VERSION,
            "reg_type": REG_TYPE,
            "reg_event_type": event.event_type,
            "reg_record_type": RECORD_TYPE,
            "reg_records": [dict(event.record)],
        },
    }
    return {"header": header, "message": {"transaction_id": subscription.code, "notify_event": [item]}}


def _response_header(
    status: Literal["succ", "rjct"],
    action: str,
    *,
    sender_id: str,
    request_header: Mapping[str, Any] | None,
    when: str,
) -> dict[str, Any]:
    """A callback header; the spec's signature is optional and left to the exchange layer, which signs."""
    out: dict[str, Any] = {
        "version": VERSION,
        "message_id": str(uuid.uuid4()),
        "message_ts": when,
        "action": action,
        "status": status,
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
