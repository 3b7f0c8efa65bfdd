"""The X-Road REST protocol through a real gateway in front of the real sandbox systems."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from sandbox import federation
from tests.gateway.conftest import MAX_BODY, Gateway

TAXPAYERS = "/r1/ZZ/GOV/TAX/taxreg/taxpayers"
PURPOSE = {"X-Road-PDU-Purpose": "old-age-grant-eligibility"}


def get(gw: Gateway, http: httpx.Client, path: str, **headers: str) -> httpx.Response:
    return http.get(gw.url + path, headers=gw.client_headers(**PURPOSE) | headers)


def assert_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["X-Road-Error"] == code
    body = response.json()
    assert body["type"] == code
    assert message in body["message"]
    assert body["detail"]  # the exchange id, so the client can quote it


def test_a_call_reaches_the_system_and_carries_xroad_headers(gateway: Gateway, http: httpx.Client):
    message_id = str(uuid.uuid4())
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN90000001", **{"X-Road-Id": message_id})
    assert r.status_code == 200, r.text
    assert r.json()["tin"] == "TIN90000001"
    assert r.headers["X-Road-Client"] == federation.PROGRAMME_MIS
    assert r.headers["X-Road-Service"] == "ZZ/GOV/TAX/taxreg/taxpayers"
    assert r.headers["X-Road-Id"] == message_id
    assert uuid.UUID(r.headers["X-Road-Request-Id"])
    assert len(base64.b64decode(r.headers["X-Road-Request-Hash"])) == 64
    assert "X-Road-Error" not in r.headers


def test_query_parameters_pass_unchanged(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers?national_id=9000000004")
    assert r.status_code == 200, r.text
    assert {t["tin"] for t in r.json()["items"]} == {"TIN90000001", "TIN90000002"}


def test_message_id_is_made_when_absent(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN90000001")
    assert uuid.UUID(r.headers["X-Road-Id"])


def test_provider_application_errors_pass_through_unchanged(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN99999999")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "X-Road-Error" not in r.headers
    gateway.fault("tax", "error", count=1)
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN90000001")
    assert r.status_code == 500
    assert "X-Road-Error" not in r.headers  # the provider's own failure, not the gateway's


def test_missing_client_header(gateway: Gateway, http: httpx.Client):
    headers = gateway.client_headers(**PURPOSE)
    del headers["X-Road-Client"]
    r = http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=headers)
    assert_error(r, 400, "Client.MissingHeader", "the X-Road-Client header is required")


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ("ZZ/GOV", "expected INSTANCE/CLASS/CODE/SUBSYSTEM, got 2 parts"),
        ("ZZ/GOV/MSP/programme mis", "subsystem code may contain only letters, digits"),
        ("ZZ//MSP/programme-mis", "member class is empty"),
    ],
)
def test_bad_client_identifier(gateway: Gateway, http: httpx.Client, client: str, message: str):
    headers = gateway.client_headers(**PURPOSE) | {"X-Road-Client": client}
    r = http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=headers)
    assert_error(r, 400, "Client.InvalidClientIdentifier", message)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/r1/ZZ/GOV/TAX", "the path must be /r1/INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/path]"),
        ("/r1/ZZ/GOV/TAX/tax%3Creg/taxpayers", "subsystem code may contain only letters, digits"),
        ("/r1/ZZ/GOV/TAX/taxreg/%2E%2E", "service code may contain only letters, digits"),
    ],
)
def test_bad_service_identifier(gateway: Gateway, http: httpx.Client, path: str, message: str):
    assert_error(get(gateway, http, path), 400, "Client.InvalidServiceIdentifier", message)


def test_dot_segments_cannot_leave_the_service(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, f"{TAXPAYERS}/v1/%2e%2e/%2E%2E/_sandbox/hits")
    assert_error(r, 400, "Client.BadRequest", "must not contain '.', '..'")


def test_unknown_service_and_unknown_subsystem(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, "/r1/ZZ/GOV/TAX/taxreg/nothing/v1/x")
    assert_error(r, 404, "Server.ServerProxy.UnknownService", "service ZZ/GOV/TAX/taxreg/nothing is not offered")
    r = get(gateway, http, "/r1/ZZ/GOV/XYZ/none/taxpayers/v1/x")
    assert_error(r, 404, "Server.ClientProxy.UnknownMember", "subsystem ZZ/GOV/XYZ/none is not known")


def test_purpose_is_required_and_checked(gateway: Gateway, http: httpx.Client):
    r = http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=gateway.client_headers())
    assert_error(r, 400, "Client.MissingPurpose", "no purpose, no exchange")
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN90000001", **{"X-Road-PDU-Purpose": "<script>"})
    assert_error(r, 400, "Client.InvalidPurpose", "must be a purpose code")


def test_unregistered_client_and_bad_token(gateway: Gateway, http: httpx.Client):
    headers = gateway.client_headers(**PURPOSE) | {"X-Road-Client": "ZZ/GOV/MSP/stranger"}
    r = http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=headers)
    assert_error(r, 403, "Server.ClientProxy.UnknownClient", "client ZZ/GOV/MSP/stranger is not registered")
    headers = gateway.client_headers(**PURPOSE) | {"X-Kiungo-Client-Token": "wrong"}
    r = http.get(gateway.url + f"{TAXPAYERS}/v1/taxpayers/TIN90000001", headers=headers)
    assert_error(r, 401, "Server.ClientProxy.ClientAuthenticationFailed", "did not present a valid access token")


def test_client_without_access_right(gateway: Gateway, http: httpx.Client):
    headers = gateway.client_headers(federation.TAX_CLIENT, **PURPOSE)
    r = http.get(gateway.url + "/r1/ZZ/GOV/SSF/contributions/members/v1/members/SSN900000001", headers=headers)
    assert_error(r, 403, "Server.ServerProxy.AccessDenied", "may not call ZZ/GOV/SSF/contributions/members")


def test_oversized_body(gateway: Gateway, http: httpx.Client):
    body = b"x" * (MAX_BODY + 1)
    r = http.post(gateway.url + f"{TAXPAYERS}/v1/taxpayers", headers=gateway.client_headers(**PURPOSE), content=body)
    assert_error(r, 413, "Client.MessageTooLarge", f"larger than {MAX_BODY} bytes")


def test_oversized_and_unprintable_headers(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN90000001", **{"X-Road-UserId": "x" * 300})
    assert_error(r, 400, "Client.InvalidHeader", "X-Road-UserId must be printable ASCII of at most 255")


def test_provider_down(gateway: Gateway, http: httpx.Client):
    r = get(gateway, http, "/r1/ZZ/GOV/TAX/taxreg/archive/v1/anything")
    assert_error(r, 502, "Server.ServerProxy.NetworkError", "could not be reached")


def test_provider_timeout(gateway: Gateway, http: httpx.Client):
    gateway.fault("tax", "delay", seconds=3, count=1)
    r = get(gateway, http, f"{TAXPAYERS}/v1/taxpayers/TIN90000001")
    assert_error(r, 504, "Server.ServerProxy.ServiceTimeout", "did not answer in time")
    assert "TIN90000001" not in r.text
