"""The event service through the federation: the programme MIS subscribes through the ministry's gateway,
the civil registry registers a death, and the notification reaches the MIS as a logged exchange."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx

from sandbox import federation
from tests.gateway.events.conftest import (
    NOTIFICATIONS,
    OTHER,
    PURPOSE,
    Events,
    subscribe_envelope,
    subscribe_item,
    unsubscribe_envelope,
    wait_for,
)

GET_DEATHS = f"{federation.SUBSYSTEMS[0][0]}/GetDeathsSince"


def _delivered(events: Events, code: str, count: int = 1) -> dict[str, Any]:
    return wait_for(  # type: ignore[no-any-return]
        lambda: (s := events.status(code))["delivered"] >= count and s, what=f"{count} deliveries to {code}"
    )


def test_a_registered_death_reaches_the_programme_mis_as_a_logged_exchange(events: Events) -> None:
    info = events.subscribe("spdci-common:RegistryEventType:Death")
    code = info["code"]
    assert info["status"] == "subscribe"
    assert info["reg_event_type"] == "death"
    event_id = events.death()
    wait_for(lambda: event_id in events.notified(), what="the notification at the MIS")
    status = _delivered(events, code)
    assert status["status"] == "active"
    assert (status["pending"], status["dead_letters"], status["last_error"]) == (0, 0, None)
    assert status["callback"] == {"service": NOTIFICATIONS, "path": ""}

    # signed and logged on both gateways, as an exchange of the event service's client, for the subscription
    query = {"client": federation.EVENTS, "service": NOTIFICATIONS, "issue": code}
    at_cra = events.log(events.cra.url, **query)
    at_msp = events.log(events.gateway("ZZ/GOV/MSP")["base_url"], **query)
    assert [(r["side"], r["status_code"], r["purpose"]) for r in at_cra] == [("Client", 200, PURPOSE)]
    assert [(r["side"], r["status_code"], r["purpose"]) for r in at_msp] == [("Producer", 200, PURPOSE)]
    assert at_cra[0]["exchange_id"] == at_msp[0]["exchange_id"]
    assert at_msp[0]["agreement_id"] == "DSA-MSP-EVT-001"
    assert at_msp[0]["response_signature"]
    # the polls are exchanges of the event service with the civil registry, on the registry's own gateway
    polls = events.log(events.cra.url, client=federation.EVENTS, service=GET_DEATHS, limit=5)
    assert polls
    assert {(r["agreement_id"], r["status_code"]) for r in polls} == {("DSA-CRA-EVT-002", 200)}


def test_an_event_is_delivered_once_though_the_poller_reads_the_day_again(events: Events) -> None:
    code = events.subscribe("death")["code"]
    first, second = events.death(), events.death()
    _delivered(events, code, 2)
    time.sleep(1.0)  # five more polls of the same day
    status = events.status(code)
    assert (status["delivered"], status["pending"]) == (2, 0)
    sent = events.log(events.cra.url, client=federation.EVENTS, service=NOTIFICATIONS, issue=code)
    assert len(sent) == 2
    assert {first, second} <= events.notified()


def test_a_failing_receiver_gets_the_event_after_retries(events: Events) -> None:
    code = events.subscribe("death")["code"]
    events.fault("msp", "error", count=2)
    event_id = events.death()
    status = _delivered(events, code)
    assert (status["pending"], status["dead_letters"]) == (0, 0)
    attempts = events.log(events.cra.url, client=federation.EVENTS, service=NOTIFICATIONS, issue=code)
    assert sorted(r["status_code"] for r in attempts) == [200, 500, 500]
    assert event_id in events.notified()


def test_a_dead_letter_is_listed_and_replayed_by_the_operator(events: Events) -> None:
    code = events.subscribe("death")["code"]
    events.fault("msp", "error")  # until cleared
    event_id = events.death()
    status = wait_for(lambda: (s := events.status(code))["dead_letters"] == 1 and s, what="a dead letter")
    assert (status["delivered"], status["pending"], status["last_error"]) == (0, 0, "HTTP500")

    operator = events.operator()
    listed = httpx.get(events.cra.url + "/api/operator/events/dead-letters", headers=operator).json()["dead_letters"]
    mine = [d for d in listed if d["subscription_code"] == code]
    assert len(mine) == 1
    letter = mine[0]
    assert (letter["state"], letter["attempts"], letter["last_error"]) == ("dead", 3, "HTTP500")
    assert letter["subscriber"] == federation.PROGRAMME_MIS
    assert "death:" not in str(letter), "the operator's list names no person"

    events.fault("msp", "none")
    replayed = httpx.post(
        f"{events.cra.url}/api/operator/events/dead-letters/{letter['delivery_id']}/replay", headers=operator
    )
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["state"], replayed.json()["attempts"]) == ("pending", 0)
    status = _delivered(events, code)
    assert status["dead_letters"] == 0
    assert event_id in events.notified()
    again = httpx.post(
        f"{events.cra.url}/api/operator/events/dead-letters/{letter['delivery_id']}/replay", headers=operator
    )
    assert again.status_code == 404
    assert again.headers["x-road-error"] == "Server.ServerProxy.UnknownService"


def test_the_operator_api_needs_the_token_and_a_node_hosting_the_service(events: Events) -> None:
    url = events.cra.url + "/api/operator/events/subscriptions"
    assert httpx.get(url).status_code == 401
    code = events.subscribe("death")["code"]
    listed = httpx.get(url, headers=events.operator(), params={"limit": 1000}).json()["subscriptions"]
    assert httpx.get(url, headers=events.operator(), params={"limit": 0}).status_code == 422
    assert code in {s["subscription_code"] for s in listed}
    replay_all = httpx.post(events.cra.url + "/api/operator/events/dead-letters/replay", headers=events.operator())
    assert replay_all.json() == {"replayed": 0}
    elsewhere = httpx.get(
        events.gateway("ZZ/GOV/TAX")["base_url"] + url[len(events.cra.url) :], headers=events.operator()
    )
    assert elsewhere.status_code == 404
    assert elsewhere.json()["message"] == "this node hosts no event service"


def test_subscriptions_survive_a_restart_and_what_was_registered_meanwhile_is_delivered(events: Events) -> None:
    code = events.subscribe("death")["code"]
    events.cra.stop()
    event_id = events.death()  # while the registry's gateway is down
    events.cra.start()  # same store: the subscription, the cursor and the pending deliveries are there
    status = _delivered(events, code)
    assert status["status"] == "active"
    assert event_id in events.notified()


def test_unsubscribing_stops_deliveries(events: Events) -> None:
    code = events.subscribe("death")["code"]
    answer = events.unsubscribe(code)
    assert answer["header"]["status"] == "succ"
    assert answer["message"]["status"] == "succ"
    assert answer["message"]["subscription_status"] == [{"code": code, "status": "unsubscribe"}]
    event_id = events.death()
    time.sleep(1.0)
    status = events.status(code)
    assert (status["status"], status["delivered"], status["pending"]) == ("cancelled", 0, 0)
    assert status["cancelled_at"]
    assert event_id not in events.notified()
    again = events.unsubscribe(code)
    assert again["message"]["status_reason_code"] == "rjct.event.already_unsubscribed"
    # a subscription made the same day still gets that day's deaths nobody had read yet
    drain = events.subscribe("death")["code"]
    _delivered(events, drain)
    assert event_id in events.notified()


def test_only_the_subscriber_sees_and_cancels_its_subscriptions(events: Events) -> None:
    mine = events.subscribe("death")["code"]
    theirs = events.subscribe("death", client=OTHER)["code"]
    refused = events.post("/unsubscribe", unsubscribe_envelope(mine), client=OTHER).json()
    assert refused["message"]["status"] == "rjct"
    assert refused["message"]["status_reason_code"] == "rjct.requester.invalid"
    assert events.status(mine)["status"] == "active"
    hidden = events.get(f"/subscriptions/{mine}", client=OTHER)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["title"] == "no such subscription"
    listed = httpx.get(events.url("/subscriptions"), params={"limit": 10}, headers=events.headers(OTHER)).json()[
        "subscriptions"
    ]
    assert [s["subscription_code"] for s in listed] == [theirs]
    unknown = events.post("/unsubscribe", unsubscribe_envelope("no-such-code")).json()
    assert unknown["message"]["status_reason_code"] == "rjct.subscription_code.invalid"
    # a client without an agreement does not reach the service at all
    portal = events.post("/subscribe", subscribe_envelope(subscribe_item()), client=federation.PORTAL)
    assert portal.status_code == 403
    assert portal.headers["x-road-error"] == "Server.ServerProxy.AccessDenied"


def test_births_by_district(events: Events) -> None:
    conn = sqlite3.connect(events.servers.country_dir / "cra.sqlite")
    try:
        rows = conn.execute(
            "SELECT district_code, MIN(national_id) FROM person WHERE sex = 'F' AND death_date IS NULL "
            "AND national_id IS NOT NULL AND birth_year BETWEEN 1980 AND 2000 GROUP BY district_code "
            "ORDER BY district_code LIMIT 2"
        ).fetchall()
    finally:
        conn.close()
    (here, mother_here), (there, mother_there) = rows
    predicate = [
        {"seq_num": 1, "expression1": {"attribute_name": "district", "operator": "eq", "attribute_value": here}}
    ]
    local = events.subscribe("spdci-common:RegistryEventType:LiveBirth", filter=predicate, filter_type="predicate")
    assert local["filter"] == predicate
    assert events.status(local["code"])["filter"] == {"district": here}
    everywhere = events.subscribe("birth")
    child = {"type": "birth", "given_name": "Neema", "surname": "Otieno", "sex": "F"}
    born_here = "birth:" + events.register(child | {"mother_national_id": mother_here})["record_id"]
    born_there = "birth:" + events.register(child | {"mother_national_id": mother_there})["record_id"]
    _delivered(events, everywhere["code"], 2)
    assert _delivered(events, local["code"])["delivered"] == 1
    assert {born_here, born_there} <= events.notified()
    sent = events.log(events.cra.url, client=federation.EVENTS, service=NOTIFICATIONS, issue=local["code"])
    assert len(sent) == 1
    assert there != here


def test_malformed_subscriptions_get_the_dci_reason(events: Events) -> None:
    wrong_action = events.post("/subscribe", subscribe_envelope(subscribe_item(), action="search")).json()
    assert wrong_action == {"header": wrong_action["header"]}
    assert (wrong_action["header"]["status"], wrong_action["header"]["status_reason_code"]) == (
        "rjct",
        "rjct.action.invalid",
    )
    items = [
        subscribe_item("ok", "death"),
        subscribe_item("marriage", "marriage"),
        subscribe_item("no-callback", "death", callback={}),
        subscribe_item("other-member", "death", callback={"service": "ZZ/GOV/TAX/taxreg/taxpayers"}),
        subscribe_item("bad-service", "death", callback={"service": "not a service"}),
        subscribe_item("district-death", "death", filter={"district": "D01"}),
        subscribe_item("dup", "birth"),
        subscribe_item("dup", "birth"),
        subscribe_item("no-time", "birth") | {"timestamp": "yesterday"},
        subscribe_item("record-type", "birth", notify_record_type="group"),
    ]
    answer = events.post("/subscribe", subscribe_envelope(*items))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["header"]["status"] == "succ"
    reasons = [
        (r["reference_id"], r["status"], r.get("status_reason_code")) for r in body["message"]["subscribe_response"]
    ]
    assert sorted(reasons) == sorted(
        [
            ("ok", "succ", None),
            ("marriage", "rjct", "rjct.notify_types.invalid"),
            ("no-callback", "rjct", "rjct.notify_details.invalid"),
            ("other-member", "rjct", "rjct.notify_details.invalid"),
            ("bad-service", "rjct", "rjct.notify_details.invalid"),
            ("district-death", "rjct", "rjct.notify_details.invalid"),
            ("dup", "rjct", "rjct.reference_id.duplicate"),
            ("dup", "rjct", "rjct.reference_id.duplicate"),
            ("no-time", "rjct", "rjct.timestamp.invalid"),
            ("record-type", "rjct", "rjct.notify_details.invalid"),
        ]
    )
    made = next(r for r in body["message"]["subscribe_response"] if r["reference_id"] == "ok")
    code = made["subscriptions"][0]["code"]
    events.codes.append((federation.PROGRAMME_MIS, code))
    # asking again for what is in force names the subscription instead of making a second one
    again = events.post("/subscribe", subscribe_envelope(subscribe_item("ok", "death"))).json()
    item = again["message"]["subscribe_response"][0]
    assert (item["status"], item["status_reason_code"]) == ("rjct", "rjct.event.already_subscribed")
    assert item["subscriptions"][0]["code"] == code
    # the wrong purpose is refused before any DCI reading
    purpose = events.post("/subscribe", subscribe_envelope(subscribe_item()), purpose="old-age-grant-eligibility")
    assert purpose.status_code == 403  # no agreement for that purpose
    counted = events.post("/subscribe", subscribe_envelope(subscribe_item(), total_count=3)).json()
    assert counted["header"]["status_reason_code"] == "rjct.total_count.invalid"
    assert events.post("/unsubscribe", {"header": {}}).json()["header"]["status_reason_code"] == "err.request.bad"
