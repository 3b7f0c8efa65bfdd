"""Health, Prometheus metrics and operational monitoring records, without personal identifiers."""

from __future__ import annotations

import time

import httpx

from tests.gateway.conftest import Gateway
from tests.gateway.test_rest import PURPOSE, TAXPAYERS


def operator(gw: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.tokens['operator']}"}


def test_health(gateway: Gateway, http: httpx.Client):
    body = http.get(gateway.url + "/health").json()
    assert body["status"] == "ok"
    assert body["instance"] == "ZZ"
    assert body["services"] >= 8


def test_every_exchange_leaves_one_monitoring_record_without_identifiers(gateway: Gateway, http: httpx.Client):
    # the first exchange of a service starts fetching its OpenAPI; until it is there, no path is recorded
    http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000002", headers=gateway.client_headers(**PURPOSE))
    time.sleep(0.5)
    message_id = "opmon-test-1"
    headers = gateway.client_headers(**PURPOSE, **{"X-Road-Id": message_id, "X-Road-UserId": "ZZ-officer-7"})
    assert http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=headers).status_code == 200
    refused = http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=gateway.client_headers())
    assert refused.status_code == 400
    records = http.get(gateway.url + "/api/operator/monitoring?limit=1000", headers=operator(gateway)).json()["records"]
    [record] = [r for r in records if r["message_id"] == message_id]
    assert record["service_id"] == "ZZ/GOV/TAX/taxreg/taxpayers"
    assert record["client_id"] == "ZZ/GOV/MSP/programme-mis"
    assert record["protocol"] == "REST"
    assert record["rest_method"] == "GET"
    assert record["rest_path"] == "/v1/taxpayers/{tin}"  # the template, not the identifier
    assert record["succeeded"] is True
    assert record["status_code"] == 200
    assert record["purpose"] == "old-age-grant-eligibility"
    assert record["message_user_id"] == "ZZ-officer-7"
    for ts in ("request_in_ts", "request_out_ts", "response_in_ts", "response_out_ts"):
        assert isinstance(record[ts], int)
    assert record["request_in_ts"] <= record["request_out_ts"] <= record["response_in_ts"] <= record["response_out_ts"]
    assert record["response_size"] > 0
    failed = [r for r in records if r["fault_code"] == "Client.MissingPurpose"]
    assert failed
    assert failed[-1]["succeeded"] is False
    assert "TIN90000001" not in str(records)


def test_operator_api_needs_the_operator_token(gateway: Gateway, http: httpx.Client):
    r = http.get(gateway.url + "/api/operator/monitoring")
    assert r.status_code == 401
    assert r.headers["X-Road-Error"] == "Server.Operator.AuthenticationFailed"
    r = http.get(gateway.url + "/api/operator/monitoring", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_metrics_count_exchanges_by_service_and_outcome(gateway: Gateway, http: httpx.Client):
    http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000002", headers=gateway.client_headers(**PURPOSE))
    http.get(gateway.url + "/r1/ZZ/GOV/TAX/taxreg/made-up-9000000001/x", headers=gateway.client_headers(**PURPOSE))
    text = http.get(gateway.url + "/metrics").text
    assert 'kiungo_exchanges_total{outcome="ok",protocol="REST",service="ZZ/GOV/TAX/taxreg/taxpayers"}' in text
    assert 'outcome="Server.ServerProxy.UnknownService",protocol="REST",service="unknown"' in text
    assert "kiungo_exchange_seconds_bucket" in text
    assert "kiungo_exchanges_in_flight" in text
    assert "TIN9000000" not in text
    assert "9000000001" not in text


def test_openapi_of_the_node_is_served(gateway: Gateway, http: httpx.Client):
    spec = http.get(gateway.url + "/openapi.json").json()
    assert "/r1/{target}" in spec["paths"]
    assert "/listClients" in spec["paths"]
    assert http.get(gateway.url + "/docs").status_code == 200
