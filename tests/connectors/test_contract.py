"""The connector contract: every connector kind, against the real sandbox systems, behaves the same.

A third-party connector can run this suite by adding a `Case` for its own system.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from connectors import (
    ConnectorTimeout,
    InvalidRequestError,
    MalformedResponseError,
    RestConnector,
    ServiceRequest,
    ServiceResponse,
    SoapConnector,
    UnreachableError,
    UpstreamError,
)
from sandbox.servers import SandboxServers

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


@dataclass(frozen=True)
class Case:
    name: str
    system: str
    kind: str
    found: ServiceRequest
    check_found: Callable[[ServiceResponse], bool]
    missing: ServiceRequest
    check_missing: Callable[[ServiceResponse], bool]
    identifier: str  # the personal identifier the found call sends; must never show in an error
    write: ServiceRequest  # a call that is not idempotent
    settings: dict[str, Any] = field(default_factory=dict)


def rest(path: str, param: str, value: str, missing: str) -> dict[str, Any]:
    return {
        "found": ServiceRequest(operation=path, params={param: value}),
        "check_found": lambda r: r.status == 200 and r.data[param] == value,
        "missing": ServiceRequest(operation=path, params={param: missing}),
        "check_missing": lambda r: r.status == 404 and r.data["type"] == "urn:zz:problem:not-found",
        "identifier": value,
        "write": ServiceRequest(operation=path, method="POST", params={param: value, "note": "x"}),
    }


CASES = [
    Case("tax-rest", "tax", "rest", **rest("/v1/taxpayers/{tin}", "tin", "TIN90000001", "TIN99999999")),
    Case("ssf-rest", "ssf", "rest", **rest("/v1/members/{ssn}", "ssn", "SSN900000002", "SSN999999999")),
    Case(
        "msp-rest",
        "msp",
        "rest",
        **rest("/v1/beneficiaries/{beneficiary_no}", "beneficiary_no", "OAG-90000001", "OAG-99999999"),
    ),
    Case(
        "cra-soap",
        "cra",
        "soap",
        found=ServiceRequest(operation="GetPersonByNationalId", params={"nationalId": "9000000001"}),
        check_found=lambda r: r.data["found"] is True and r.data["person"]["surname"] == "Mwangi",
        missing=ServiceRequest(operation="GetPersonByNationalId", params={"nationalId": "9999999999"}),
        check_missing=lambda r: r.data["found"] is False and r.data["person"] is None,
        identifier="9000000001",
        write=ServiceRequest(operation="GetHousehold", params={"nationalId": "9000000001"}),
        settings={"idempotent_operations": ["GetPersonByNationalId"]},
    ),
]


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def control(sandbox: SandboxServers, case: Case) -> Iterator[Callable[..., Any]]:
    """Set a fault on the case's system, or read its hit count; faults are cleared afterwards."""
    base = sandbox.base_url(case.system) + "/_sandbox"

    def act(mode: str | None = None, **kw: Any) -> Any:
        if mode is None:
            return httpx.get(base + "/hits").json()["hits"]
        return httpx.post(base + "/fault", json={"mode": mode, **kw}).raise_for_status()

    act("none")
    yield act
    act("none")


def make(sandbox: SandboxServers, case: Case, **overrides: Any) -> RestConnector | SoapConnector:
    entry = sandbox.manifest["systems"][case.system]
    settings: dict[str, Any] = {"timeout": 5.0, "retry_backoff": 0.01, **case.settings}
    if case.kind == "rest":
        return RestConnector.from_config(case.system, {"base_url": entry["base_url"], **settings, **overrides})
    return SoapConnector.from_config(case.system, {"wsdl": entry["wsdl"], **settings, **overrides})


def assert_clean(error: Exception, case: Case) -> None:
    """Errors name the system and operation, never the person asked about."""
    text = f"{error} {getattr(error, 'detail', '')!r}"
    assert case.identifier not in text
    assert case.system in str(error)


pytestmark = pytest.mark.anyio


async def test_a_known_record_is_found(sandbox: SandboxServers, case: Case):
    async with make(sandbox, case) as connector:
        response = await connector.call(case.found)
    assert case.check_found(response), response.data
    assert response.elapsed > 0


async def test_not_found_is_an_answer_not_an_error(sandbox: SandboxServers, case: Case):
    async with make(sandbox, case) as connector:
        assert case.check_missing(await connector.call(case.missing))


async def test_unreachable(sandbox: SandboxServers, case: Case):
    where = {"base_url": CLOSED} if case.kind == "rest" else {"endpoint": CLOSED + "/civreg"}
    async with make(sandbox, case, **where, retries=1) as connector:
        with pytest.raises(UnreachableError, match="cannot connect") as caught:
            await connector.call(case.found)
    assert_clean(caught.value, case)


async def test_timeout(sandbox: SandboxServers, case: Case, control: Callable[..., Any]):
    control("delay", seconds=3, count=1)
    started = time.perf_counter()
    async with make(sandbox, case, timeout=0.5) as connector:
        with pytest.raises(ConnectorTimeout, match=r"no answer within 0\.5 s") as caught:
            await connector.call(case.found)
    assert time.perf_counter() - started < 2.5
    assert_clean(caught.value, case)


async def test_upstream_failure(sandbox: SandboxServers, case: Case, control: Callable[..., Any]):
    control("error", count=1)
    async with make(sandbox, case) as connector:
        with pytest.raises(UpstreamError) as caught:
            await connector.call(case.found)
    assert caught.value.status == 500
    assert caught.value.code
    assert_clean(caught.value, case)


async def test_malformed_answer(sandbox: SandboxServers, case: Case, control: Callable[..., Any]):
    async with make(sandbox, case) as connector:
        await connector.call(case.found)  # a SOAP connector loads its WSDL first, unharmed
        control("garbage", count=1)
        with pytest.raises(MalformedResponseError) as caught:
            await connector.call(case.found)
    assert_clean(caught.value, case)


async def test_idempotent_calls_are_retried(sandbox: SandboxServers, case: Case, control: Callable[..., Any]):
    async with make(sandbox, case, retries=2) as connector:
        await connector.call(case.found)
        control("unavailable", count=2)
        assert case.check_found(await connector.call(case.found))
    assert control() == 3


async def test_retries_are_bounded(sandbox: SandboxServers, case: Case, control: Callable[..., Any]):
    async with make(sandbox, case, retries=2) as connector:
        await connector.call(case.found)
        control("unavailable", count=None)
        with pytest.raises(UpstreamError) as caught:
            await connector.call(case.found)
    assert caught.value.status == 503
    assert control() == 3


async def test_other_calls_are_not_retried(sandbox: SandboxServers, case: Case, control: Callable[..., Any]):
    async with make(sandbox, case, retries=2) as connector:
        await connector.call(case.found)
        control("unavailable", count=1)
        with pytest.raises(UpstreamError):
            await connector.call(case.write)
    assert control() == 1


async def test_a_call_that_cannot_be_built_sends_nothing(
    sandbox: SandboxServers, case: Case, control: Callable[..., Any]
):
    async with make(sandbox, case) as connector:
        await connector.call(case.found)
        control("none")
        bad = ServiceRequest(operation=case.found.operation, params={"wrong": "x"})
        with pytest.raises(InvalidRequestError) as caught:
            await connector.call(bad)
        if case.kind == "soap":
            with pytest.raises(InvalidRequestError, match="the WSDL has no such operation"):
                await connector.call(ServiceRequest(operation="DropAllTables"))
    assert control() == 0
    assert case.system in str(caught.value)


async def test_passthrough_hands_back_the_providers_own_failure(
    sandbox: SandboxServers, case: Case, control: Callable[..., Any]
):
    async with make(sandbox, case) as connector:
        if case.kind == "rest":
            path = case.found.operation.format(**case.found.params)
            request = ServiceRequest(operation="", path=path, passthrough=True)
        else:
            await connector.call(case.found)  # learn the endpoint from the WSDL
            envelope = (
                '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:cra="urn:zz:cra:civreg:1"><soap:Body><cra:GetPersonByNationalId>'
                "<cra:nationalId>9000000001</cra:nationalId></cra:GetPersonByNationalId></soap:Body></soap:Envelope>"
            )
            request = ServiceRequest(operation="GetPersonByNationalId", body=envelope.encode(), passthrough=True)
        ok = await connector.call(request)
        assert ok.status == 200
        assert case.identifier.encode() in ok.content
        control("error", count=1)
        failed = await connector.call(request)
    assert failed.status == 500
    assert failed.content
