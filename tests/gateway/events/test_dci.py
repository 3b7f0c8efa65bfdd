"""The event service's DCI layer: what a DCI client sends parses, and what we send is what the registry core
bundle accepts, except where the bundle is defective (each such spot is named and bent alone).

The bundle is OpenAPI 3.0.3; its schemas are validated as JSON Schema draft 4, references resolved inside it.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from gateway.events import dci
from gateway.events.errors import DciError
from gateway.events.store import Event, Subscription
from tests.gateway.events.conftest import NOTIFICATIONS, subscribe_envelope, subscribe_item, unsubscribe_envelope

SPECS = Path(__file__).parents[2] / "specs" / "dci"
CORE = "urn:dci:core"
JSON_BODY = "content/application~1json/schema"
MIS = "ZZ/GOV/MSP/programme-mis"
NOW = dt.datetime(2026, 11, 28, 10, 30, tzinfo=dt.UTC)
SUB = Subscription(
    code="6f1c0b1e-0000-4000-8000-000000000001",
    subscriber=MIS,
    event_type="death",
    districts=(),
    callback_service=NOTIFICATIONS,
    callback_path="",
    status="active",
    created_at="2026-11-28T10:00:00.000Z",
    created_on="2026-11-28",
    cancelled_at=None,
)
DEATH = Event(
    "death:CRA000000042",
    "death",
    "2026-11-28",
    {"recordId": "CRA000000042", "nationalId": "1234567890", "surname": "Otieno", "deathDate": "2026-11-27"},
    "2026-11-28T10:05:00.000Z",
)


@functools.cache
def _registry() -> Registry[Any]:
    contents = yaml.safe_load((SPECS / "registry_core_api_v1.0.0.yaml").read_text())
    registry: Registry[Any] = Registry().with_resource(CORE, DRAFT4.create_resource(contents))
    return registry


def schema(pointer: str) -> Draft4Validator:
    return Draft4Validator({"$ref": CORE + pointer}, registry=_registry())


def errors(v: Draft4Validator, instance: object) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.validator}" for e in v.iter_errors(instance))


def request_body(path: str) -> Draft4Validator:
    return schema(f"#/paths/~1registry~1{path}/post/requestBody/{JSON_BODY}")


def parse(*items: dict[str, Any], **header: Any) -> dci.SubscribeRequest:
    return dci.parse_subscribe(subscribe_envelope(*items, **header), MIS)


def item_reason(item: dict[str, Any]) -> tuple[str | None, str | None]:
    parsed = parse(item)
    if parsed.items:
        return None, None
    return parsed.rejected[0].reason_code, parsed.rejected[0].reason_message


def test_what_the_tests_send_is_what_the_spec_accepts() -> None:
    by_district = dci.filter_predicate(["D01"])
    sent = subscribe_envelope(
        subscribe_item("r1", "death", filter=[]), subscribe_item("r2", "birth", filter=by_district)
    )
    # the callback is our extension: the bundle's criteria allow other properties
    assert errors(request_body("subscribe"), sent) == []
    # bundle defect: the filter's object branches accept any object, so an object filter matches two of them
    plain = subscribe_envelope(subscribe_item("r1", "death", filter={}))
    assert errors(request_body("subscribe"), plain) == ["message: oneOf"]
    assert [i.criteria.districts for i in dci.parse_subscribe(sent, MIS).items] == [(), ("D01",)]
    unsubscribe = unsubscribe_envelope(SUB.code)
    found = errors(request_body("unsubscribe"), unsubscribe)
    # bundle defect: UnSubscribeRequest requires `sunscription_codes` (a typo of the property it defines)
    assert found == ["message: oneOf"]
    unsubscribe["message"]["sunscription_codes"] = unsubscribe["message"]["subscription_codes"]
    assert errors(request_body("unsubscribe"), unsubscribe) == []
    assert dci.parse_unsubscribe(unsubscribe).codes == (SUB.code,)


def test_a_subscribe_answer_is_a_valid_subscribe_response() -> None:
    parsed = parse(subscribe_item("r1", "death"), subscribe_item("r2", "marriage"))
    results = [dci.accepted("r1", SUB)]
    answer = dci.subscribe_response(parsed, results, sender_id="ZZ/GOV/CRA/events", now=NOW)
    assert errors(schema("#/components/schemas/SubscribeResponse"), answer["message"]) == []
    assert errors(schema("#/components/schemas/MsgCallbackHeader_V1.0.0"), answer["header"]) == []
    by_ref = {r["reference_id"]: r for r in answer["message"]["subscribe_response"]}
    assert by_ref["r1"]["subscriptions"][0]["code"] == SUB.code
    assert by_ref["r2"]["status_reason_code"] == "rjct.notify_types.invalid"
    assert answer["header"]["receiver_id"] == "programme-mis.msp.zz"
    assert answer["header"]["action"] == "on-subscribe"


def test_an_unsubscribe_answer_is_a_valid_unsubscribe_response() -> None:
    request = dci.parse_unsubscribe(unsubscribe_envelope(SUB.code))
    answer = dci.unsubscribe_response(request, [(SUB.code, True)], sender_id="ZZ/GOV/CRA/events", now=NOW)
    assert errors(schema("#/components/schemas/UnSubscribeResponse"), answer["message"]) == []
    refused = dci.unsubscribe_response(request, [], sender_id="x", reason=(dci.RJCT_REQUESTER, "not yours"), now=NOW)
    assert errors(schema("#/components/schemas/UnSubscribeResponse"), refused["message"]) == []
    assert refused["message"]["status_reason_code"] == "rjct.requester.invalid"


def test_a_notification_is_the_spec_notify_message_but_for_the_records_array() -> None:
    envelope = dci.notify_envelope(delivery_id="d-1", subscription=SUB, event=DEATH, sender_id="ZZ/GOV/CRA/events")
    assert errors(request_body("notify"), envelope) == ["message: oneOf"]
    # bundle defect: the core types reg_records as one object; like the social registry bundle we send a list
    bent = copy.deepcopy(envelope)
    bent["message"]["notify_event"][0]["data"]["reg_records"] = DEATH.record
    assert errors(request_body("notify"), bent) == []
    item = envelope["message"]["notify_event"][0]
    assert item["reference_id"] == "death:CRA000000042"
    assert item["data"]["reg_records"] == [DEATH.record]
    assert envelope["header"]["message_id"] == "d-1"
    assert envelope["header"]["receiver_id"] == MIS
    assert envelope["message"]["transaction_id"] == SUB.code


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("death", "death"),
        ("spdci-common:RegistryEventType:Death", "death"),
        ("DEATH_REGISTERED", "death"),
        ("spdci-common:RegistryEventType:LiveBirth", "birth"),
        ("live_birth", "birth"),
        ("BIRTH_REGISTERED", "birth"),
        ("marriage", None),
        (7, None),
    ],
)
def test_event_type_spellings(value: object, kind: str | None) -> None:
    assert dci.event_type(value) == kind


def test_filters_all_by_district_or_as_a_predicate() -> None:
    def districts(filter: Any, kind: str = "birth") -> tuple[str, ...]:
        parsed = parse(subscribe_item("r", kind, filter=filter))
        assert parsed.items, parsed.rejected
        return parsed.items[0].criteria.districts

    assert districts(None) == districts({}) == districts([]) == ()
    assert districts({"district": "d01"}) == ("D01",)
    assert districts({"district": ["D02", "D01"]}) == ("D01", "D02")
    expression = {"attribute_name": "district", "operator": "in", "attribute_value": ["D03", "D01"]}
    assert districts([{"seq_num": 1, "expression1": expression}]) == ("D01", "D03")


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        (
            {"filter": {"district": "D01", "sex": "F"}},
            "rjct.notify_details.invalid",
            "filter supports one attribute: district",
        ),
        (
            {"filter": {"district": "D 01"}},
            "rjct.notify_details.invalid",
            "a district is a code of 1 to 12 letters, digits or -",
        ),
        (
            {"filter": [{"expression1": {"attribute_name": "district", "operator": "gt", "attribute_value": "D"}}]},
            "rjct.notify_details.invalid",
            "a district filter's operator is eq or in",
        ),
        ({"filter": "D01"}, "rjct.notify_details.invalid", "filter must be an object, a predicate list, or empty"),
        ({"callback": {"service": NOTIFICATIONS, "path": "/../x"}}, "rjct.notify_details.invalid", None),
        ({"callback": {"service": NOTIFICATIONS, "path": "v1"}}, "rjct.notify_details.invalid", None),
        (
            {"filter_type": "sql"},
            "rjct.notify_details.invalid",
            "filter_type must be one of idtype-value, expression, predicate",
        ),
        ({"version": "2.0.0"}, "rjct.notify_details.invalid", "subscribe_criteria.version must be 1.0.0"),
    ],
)
def test_item_rejections_name_the_field_and_never_the_value(
    changes: dict[str, Any], code: str, message: str | None
) -> None:
    item = subscribe_item("r", "birth")
    item["subscribe_criteria"].update(changes)
    reason, text = item_reason(item)
    assert reason == code
    if message is not None:
        assert text == message
    assert "D 01" not in (text or "")


@pytest.mark.parametrize(
    ("envelope_change", "code"),
    [
        (lambda e: e.update(header="x"), "err.request.bad"),
        (lambda e: e["header"].update(version="2.0"), "rjct.version.invalid"),
        (lambda e: e["header"].update(message_ts="now"), "rjct.message_ts.invalid"),
        (lambda e: e["header"].pop("sender_id"), "err.sender_id.invalid"),
        (lambda e: e["header"].update(is_msg_encrypted=True), "err.encryption.invalid"),
        (lambda e: e["message"].update(subscribe_request=[]), "err.request.bad"),
        (lambda e: e["message"].update(transaction_id="x" * 100), "err.request.bad"),
        (
            lambda e: e["message"].update(subscribe_request=[subscribe_item(str(i)) for i in range(101)]),
            "rjct.total_count.limit_exceeded",
        ),
    ],
)
def test_envelope_rejections(envelope_change: Any, code: str) -> None:
    envelope = subscribe_envelope(subscribe_item())
    envelope_change(envelope)
    with pytest.raises(DciError) as caught:
        dci.parse_subscribe(envelope, MIS)
    assert caught.value.reason_code == code
    # bundle defect: the header's reason codes have none for an unreadable message (err.* come from Error)
    bent = ["status_reason_code: enum"] if code.startswith("err.") else []
    answer = dci.error_response(
        envelope.get("header"), caught.value.reason_code, caught.value.message, action="on-subscribe", sender_id="x"
    )
    assert errors(schema("#/components/schemas/MsgCallbackHeader_V1.0.0"), answer["header"]) == bent
