"""Hostile bodies for the services a gateway hosts itself: the virtual registry and the event service.

A body the gateway must read (to find the data subject for the log) and cannot is the gateway's refusal;
a body only the hosted service reads is the service's own problem document, passed through unchanged,
and never echoes what it was given.
"""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox import federation
from tests.gateway.hostile.conftest import EVENTS_PURPOSE, MSP, Hostile, assert_refused_here, now_ms

DEEP = b"[" * 100_000
BAD_UTF8 = b'{"national_id": "\xc3\x28"}'


def vsr(hostile: Hostile, path: str, body: bytes) -> httpx.Response:
    headers = hostile.client_headers() | {"Content-Type": "application/json"}
    return httpx.post(hostile.url(MSP) + f"/r1/{federation.VSR}/{path}", content=body, headers=headers, timeout=30)


def problem(response: httpx.Response, status: int, kind: str, title: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert "X-Road-Error" not in response.headers  # the registry's own answer, not the gateway's refusal
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == kind
    assert body["status"] == status
    assert body["title"] == title
    return body  # type: ignore[no-any-return]


def test_a_body_the_gateway_must_read_for_the_subject_and_cannot(hostile: Hostile):
    """`persons` names its subject in the JSON body: unreadable for the log, so refused by the gateway."""
    since = now_ms()
    r = vsr(hostile, "persons/query", DEEP)
    assert r.status_code == 400, r.text
    assert r.headers["X-Road-Error"] == "Client.BadRequest"
    assert r.json()["message"] == "the JSON body is nested too deeply to be read"
    assert_refused_here(hostile, MSP, since, r.json()["detail"], "Client.BadRequest")


@pytest.mark.parametrize("body", [DEEP, BAD_UTF8])
def test_bodies_only_the_registry_reads(hostile: Hostile, body: bytes):
    problem(vsr(hostile, "bulk", body), 400, "urn:kiungo:vsr:HttpError", "There was an error parsing the body")


def test_malformed_json_is_named_by_place(hostile: Hostile):
    body = problem(vsr(hostile, "bulk", b'{"programme": '), 422, "urn:kiungo:vsr:InvalidRequest", "invalid request")
    assert body["errors"] == [{"loc": ["body", "14"], "msg": "JSON decode error"}]


def test_an_overlong_programme_is_refused_without_being_echoed(hostile: Hostile):
    name = "p" * 100_000
    r = vsr(hostile, "eligibility", json.dumps({"programme": name, "person": {"national_id": "9000000001"}}).encode())
    body = problem(r, 422, "urn:kiungo:vsr:InvalidRequest", "invalid request")
    assert body["errors"] == [{"loc": ["body", "programme"], "msg": "String should have at most 100 characters"}]
    assert name not in r.text
    assert "9000000001" not in r.text


def test_oversize_identifiers_in_a_query(hostile: Hostile):
    r = vsr(hostile, "persons/query", json.dumps({"national_id": "9" * 1_000_000}).encode())
    problem(r, 400, "urn:kiungo:vsr:QueryError", "national_id must be text of at most 100 characters")
    assert "9999999999" not in r.text
    r = vsr(hostile, "persons/query", json.dumps({"national_id": "9000000001\r\nX-Injected: yes"}).encode())
    problem(r, 400, "urn:kiungo:vsr:QueryError", "national_id must be 6 to 20 digits")
    assert "X-Injected" not in r.headers


@pytest.mark.parametrize("body", [DEEP, BAD_UTF8])
def test_event_service_bodies(hostile: Hostile, body: bytes):
    headers = hostile.client_headers(purpose=EVENTS_PURPOSE) | {"Content-Type": "application/json"}
    url = hostile.url(MSP) + f"/r1/{federation.EVENTS}/subscriptions/subscribe"
    r = httpx.post(url, content=body, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert "X-Road-Error" not in r.headers
    assert r.json() == {
        "type": "urn:kiungo:events:HttpError",
        "title": "There was an error parsing the body",
        "status": 400,
    }


def test_event_service_paging_past_the_store(hostile: Hostile):
    """Found by schemathesis: an offset beyond a 64-bit integer crashed the store; now it is a 422."""
    headers = hostile.client_headers(purpose=EVENTS_PURPOSE)
    url = hostile.url(MSP) + f"/r1/{federation.EVENTS}/subscriptions/subscriptions"
    r = httpx.get(url, params={"offset": 2**64}, headers=headers, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {"loc": ["query", "offset"], "msg": "Input should be less than or equal to 9223372036854775807"}
    ]
    # and the gateways' pooled connection is still good for the next exchange
    assert httpx.get(url, headers=headers, timeout=30).status_code == 200
