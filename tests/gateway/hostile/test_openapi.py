"""Schemathesis against every OpenAPI document Kiungo serves, on the sandbox federation's real sockets.

Each document is exercised with valid and invalid requests (schemathesis' positive and negative modes,
its examples, coverage and fuzzing phases): no answer may be a server error, and every answer must fit
what the document declares. Through a gateway, the gateway's own refusals must be X-Road errors (JSON
`{type, message, detail}` and an `X-Road-Error` header naming the same code); a SOAP Fault is HTTP 500
by SOAP 1.1's rule, so on the SOAP endpoint the check is that a 500 is a Fault the gateway made on
purpose, never its internal error.

The default run keeps the examples few (the whole hostile suite stays around a minute); the `slow` runs,
which CI runs, take many more.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from lxml import etree
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from gateway.soap import SOAP11
from sandbox import federation
from tests.gateway.hostile import fuzzing
from tests.gateway.hostile.conftest import CRA, EVENTS_PURPOSE, MSP, Hostile

QUICK = settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
LONG = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
INTERNAL = "Server.ServerProxy.InternalError"


def xroad_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """A gateway refusal is an X-Road error: the header and the body name the same code; never an internal one."""
    code = (response.headers.get("x-road-error") or [None])[0]
    if code is None:
        return None
    assert code != INTERNAL, f"the gateway failed internally: {response.content[:300]!r}"
    if case.method.upper() == "HEAD":
        return None  # no body to look at
    media = (response.headers.get("content-type") or [""])[0]
    if media.startswith("text/xml"):
        fault = etree.fromstring(response.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
        assert fault is not None, "a SOAP refusal must be a Fault"
        assert fault.findtext("faultcode") == code
        assert fault.findtext("faultstring")
        assert fault.findtext("detail/faultDetail")
        assert response.status_code == 500
        return None
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("type") == code, body
    assert isinstance(body.get("message"), str), body
    assert body["message"], body
    assert isinstance(body.get("detail"), str), body
    assert 400 <= response.status_code < 600
    return None


def soap_faults_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """On the SOAP endpoint an HTTP 500 is allowed only as a Fault the gateway made on purpose."""
    if response.status_code >= 500:
        assert (response.headers.get("x-road-error") or [None])[0] not in (None, INTERNAL), response.content[:300]
    return None


def assert_clean(failures: list[str]) -> None:
    assert not failures, "\n\n".join(failures)


# --- the gateway's own API (client API, metaservices, operator API, consent and log routes) -------------


def gateway_checks(operation: Any) -> Sequence[fuzzing.Check]:
    server_errors = soap_faults_only if operation.path == "/" else not_a_server_error
    return [server_errors, response_schema_conformance, status_code_conformance, xroad_errors]


def exercise_gateway(fuzzed: Hostile, member: str, chosen: settings) -> list[str]:
    document = httpx.get(fuzzed.url(member) + "/openapi.json", timeout=10).json()
    client = federation.EVENTS if member == CRA else federation.PROGRAMME_MIS
    headers = fuzzed.client_headers(client) | fuzzed.operator(member)
    return fuzzing.run(
        fuzzing.load(document, fuzzed.url(member)), settings=chosen, headers=headers, checks=gateway_checks
    )


def test_gateway_api(fuzzed: Hostile) -> None:
    assert_clean(exercise_gateway(fuzzed, CRA, QUICK))


@pytest.mark.slow
@pytest.mark.parametrize("member", [CRA, MSP])
def test_gateway_api_long(fuzzed: Hostile, member: str) -> None:
    assert_clean(exercise_gateway(fuzzed, member, LONG))


# --- the sandbox's agency systems (their own OpenAPI documents, no gateway in front) -------------------

AGENCY_CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# Through a gateway: the gateway's refusals are 4xx/5xx too, which the hosted documents declare as ranges.
RELAYED_CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, xroad_errors]


def exercise_agency(fuzzed: Hostile, system: str, chosen: settings) -> list[str]:
    url = fuzzed.servers.base_url(system)
    schema = fuzzing.load(httpx.get(url + "/openapi.json", timeout=10).json(), url)
    return fuzzing.run(schema, settings=chosen, checks=AGENCY_CHECKS)


@pytest.mark.parametrize("system", ["tax", "ssf", "msp"])
def test_agency_systems(fuzzed: Hostile, system: str) -> None:
    assert_clean(exercise_agency(fuzzed, system, QUICK))


@pytest.mark.slow
@pytest.mark.parametrize("system", ["tax", "ssf", "msp"])
def test_agency_systems_long(fuzzed: Hostile, system: str) -> None:
    assert_clean(exercise_agency(fuzzed, system, LONG))


# --- the event service: on its own socket, and through the exchange layer ------------------------------

EVENTS_HEADERS = {"X-Road-Client": federation.PROGRAMME_MIS, "X-Road-PDU-Purpose": EVENTS_PURPOSE}


def through_gateway(document: dict[str, Any], services: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The document's paths as a client reaches them: /{service code}{path below the service's base}."""
    out = copy.deepcopy(document)
    paths: dict[str, Any] = {}
    for path, item in document["paths"].items():
        for code, base in services:
            if path == base or path.startswith(base + "/"):
                paths[f"/{code}{path[len(base) :]}"] = item
                break
    out["paths"] = paths
    return out


def exercise_events(fuzzed: Hostile, chosen: settings) -> list[str]:
    direct = fuzzing.load(fuzzed.events_openapi, fuzzed.events_url)
    failures = fuzzing.run(direct, settings=chosen, headers=EVENTS_HEADERS, checks=AGENCY_CHECKS)
    document = through_gateway(fuzzed.events_openapi, [("subscriptions", "/registry")])
    relayed = fuzzing.load(document, fuzzed.url(MSP) + f"/r1/{federation.EVENTS}")
    headers = fuzzed.client_headers(purpose=EVENTS_PURPOSE)
    checks = RELAYED_CHECKS
    return failures + fuzzing.run(relayed, settings=chosen, headers=headers, checks=checks)


def test_events(fuzzed: Hostile) -> None:
    assert_clean(exercise_events(fuzzed, QUICK))


@pytest.mark.slow
def test_events_long(fuzzed: Hostile) -> None:
    assert_clean(exercise_events(fuzzed, LONG))


# --- the virtual registry, through the ministry's gateway (its document from getOpenAPI) ---------------


def exercise_vsr(fuzzed: Hostile, chosen: settings) -> list[str]:
    answer = httpx.get(
        fuzzed.url(MSP) + f"/r1/{federation.VSR}/getOpenAPI",
        params={"serviceCode": "persons"},
        headers=fuzzed.client_headers(),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    services = [(code, base) for code, base, _, _ in federation.VSR_SERVICES]
    schema = fuzzing.load(through_gateway(answer.json(), services), fuzzed.url(MSP) + f"/r1/{federation.VSR}")
    checks = RELAYED_CHECKS
    return fuzzing.run(schema, settings=chosen, headers=fuzzed.client_headers(), checks=checks, timeout=60)


def test_vsr(fuzzed: Hostile) -> None:
    assert_clean(exercise_vsr(fuzzed, QUICK))


@pytest.mark.slow
def test_vsr_long(fuzzed: Hostile) -> None:
    assert_clean(exercise_vsr(fuzzed, LONG))
