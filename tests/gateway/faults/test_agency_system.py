"""An agency system that is down, unreachable, slow, hanging, answering garbage, resetting or failing.

One gateway (no federation) in front of the sandbox's tax system (REST) and civil registry (SOAP), each
reached through a `FaultyTcp`, with `provider_timeout` 1 s and circuits that open after two failures
for one second. For every fault: the client's exact error, within the timeout, nothing left in
flight; the circuit opens, refuses at once without calling the system, and closes again once the
system is healthy. Single cases of some of these are in tests/gateway/test_rest.py and test_soap.py
(`test_provider_down`, `test_provider_timeout`, `test_provider_garbage_is_an_invalid_response`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sandbox import federation
from sandbox.demo import soap_request
from sandbox.servers import SandboxServers
from tests.gateway.faults.conftest import BREAKER, NATIONAL_ID, TIN, without_hosted_services
from tests.gateway.faults.harness import (
    FaultyTcp,
    RunningNode,
    assert_rest_error,
    assert_soap_fault,
    fault,
    hits,
    running,
    wait_until,
    within,
)

TIMEOUT = 1.0  # server.provider_timeout of the node
STATE = BREAKER | {"breaker_reset_seconds": 0.5}  # a circuit opened here lets its trial call through soon
RESET = STATE["breaker_reset_seconds"]
TAXPAYER = f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/{TIN}"
OPEN = ("Server.ServerProxy.ServiceUnavailable", "circuit open")


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@dataclass
class Agency:
    """The node, and the two systems behind it with the proxies in front of them."""

    node: RunningNode
    sandbox: SandboxServers
    proxies: dict[str, FaultyTcp]

    def system(self, protocol: str) -> str:
        return "tax" if protocol == "rest" else "cra"

    def ask(self, protocol: str) -> httpx.Response:
        if protocol == "rest":
            return self.node.get(TAXPAYER)
        return self.node.soap(soap_request(NATIONAL_ID, federation.PROGRAMME_MIS))

    def ok(self, protocol: str) -> bool:
        answer = self.ask(protocol)
        return answer.status_code == 200 and "X-Road-Error" not in answer.headers

    def sandbox_fault(self, protocol: str, mode: str, **kw: Any) -> None:
        fault(self.sandbox.base_url(self.system(protocol)), mode, **kw)

    def hits(self, protocol: str) -> int:
        return hits(self.sandbox.base_url(self.system(protocol)))

    def opened(self, protocol: str) -> float:
        return self.node.metric("kiungo_circuits_opened_total", circuit=f"system:{self.system(protocol)}")


@pytest.fixture(scope="module")
def agency(sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    systems = sandbox.manifest["systems"]
    with (
        FaultyTcp(_address(systems["tax"]["base_url"]), name="tax-proxy") as tax,
        FaultyTcp(_address(systems["cra"]["endpoint"]), name="cra-proxy") as cra,
    ):
        config, tokens = federation.gateway_config(systems, tmp_path_factory.mktemp("agency-node"), policy=True)
        without_hosted_services(config)
        config["server"]["provider_timeout"] = TIMEOUT
        config["state"] = dict(STATE)
        config["systems"]["tax"]["base_url"] = tax.url()
        config["systems"]["cra"]["endpoint"] = cra.url() + urlsplit(systems["cra"]["endpoint"]).path
        with running(config, "agency-node", tokens) as node:
            agency = Agency(node, sandbox, {"tax": tax, "cra": cra})
            assert agency.ok("rest")
            assert agency.ok("soap")
            yield agency


@pytest.fixture(autouse=True)
def _healthy(agency: Agency, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with its system reachable and its circuit closed, and leaves nothing in flight."""
    protocol = request.node.callspec.params.get("protocol", "rest") if hasattr(request.node, "callspec") else "rest"
    wait_until(lambda: agency.ok(protocol), 3 * RESET + 2, f"the {protocol} system is healthy")
    yield
    for proxy in agency.proxies.values():
        proxy.set("forward")
    agency.node.assert_idle()


def assert_refused(response: httpx.Response, protocol: str, status: int, code: str, gist: str) -> None:
    if protocol == "rest":
        assert_rest_error(response, status, code, gist)
    else:
        assert_soap_fault(response, code, gist)


@dataclass(frozen=True)
class Fault:
    """How to break the system, and what the client must then see."""

    name: str
    status: int
    code: str
    gist: str
    limit: float  # seconds within which the client has its answer
    proxy_mode: str | None = None  # FaultyTcp mode, else a sandbox fault mode
    sandbox_mode: str | None = None
    seconds: float = 0.0

    def apply(self, agency: Agency, protocol: str) -> Callable[[], None]:
        """Break the system; returns what mends it."""
        if self.proxy_mode is not None:
            proxy = agency.proxies[agency.system(protocol)]
            proxy.set(self.proxy_mode)  # type: ignore[arg-type]
            return lambda: proxy.set("forward")
        assert self.sandbox_mode is not None
        agency.sandbox_fault(protocol, self.sandbox_mode, seconds=self.seconds)
        return lambda: agency.sandbox_fault(protocol, "none")


DOWN = Fault("down", 502, "Server.ServerProxy.NetworkError", "could not be reached", 1.0, proxy_mode="refuse")
OFFLINE = Fault("offline", 504, "Server.ServerProxy.ServiceTimeout", "did not answer in time", TIMEOUT, "drop")
SLOW = Fault("slow", 504, "Server.ServerProxy.ServiceTimeout", "did not answer in time", TIMEOUT, None, "delay", 3.0)
HANG = Fault("hang", 504, "Server.ServerProxy.ServiceTimeout", "did not answer in time", TIMEOUT, proxy_mode="hang")
# REST: the answer must be cut to the agreement's fields, so it is parsed ("the provider's JSON answer does not
# parse"); SOAP: the envelope is always parsed ("the provider's answer is not acceptable")
GARBAGE = Fault("garbage", 502, "Server.ServerProxy.InvalidResponse", "answer ", 1.0, sandbox_mode="garbage")
RESETS = Fault("reset", 502, "Server.ServerProxy.NetworkError", "connection lost", 1.0, "reset")
FAULTS = [DOWN, OFFLINE, SLOW, HANG, GARBAGE, RESETS]


def _cases(faults: list[Fault], slow: set[str]) -> list[Any]:
    """Each fault for each protocol; the ids in `slow` run with the slow cases (another connector, same path)."""
    cases = []
    for f in faults:
        for protocol in ("rest", "soap"):
            case = f"{f.name}-{protocol}"
            cases.append(pytest.param(f, protocol, id=case, marks=[pytest.mark.slow] if case in slow else []))
    return cases


@pytest.mark.parametrize(("broken", "protocol"), _cases(FAULTS, {"offline-soap", "hang-soap"}))
def test_a_failing_system_is_a_clear_error_in_time(agency: Agency, protocol: str, broken: Fault) -> None:
    mend = broken.apply(agency, protocol)
    try:
        with within(broken.limit):
            refused = agency.ask(protocol)
    finally:
        mend()
    assert_refused(refused, protocol, broken.status, broken.code, broken.gist)
    assert NATIONAL_ID not in refused.text
    assert TIN not in refused.text


@pytest.mark.parametrize(
    ("broken", "protocol"), _cases([DOWN, SLOW, GARBAGE, RESETS], {"down-soap", "slow-soap", "reset-rest"})
)
def test_the_circuit_opens_refuses_at_once_and_closes_again(agency: Agency, protocol: str, broken: Fault) -> None:
    opened = agency.opened(protocol)
    proxy = agency.proxies[agency.system(protocol)]
    mend = broken.apply(agency, protocol)
    try:
        for _ in range(int(STATE["breaker_failures"])):
            assert_refused(agency.ask(protocol), protocol, broken.status, broken.code, broken.gist)
        calls, connections = agency.hits(protocol), proxy.accepted
        with within(0.0):  # immediate: not even the connect is tried
            refused = agency.ask(protocol)
        assert_refused(refused, protocol, 503, *OPEN)
        assert agency.hits(protocol) == calls, "no call reached the system"
        assert proxy.accepted == connections, "not even a connection"
        assert agency.opened(protocol) == opened + 1
    finally:
        mend()
    time.sleep(RESET + 0.1)
    assert agency.ok(protocol), "the trial call after breaker_reset_seconds closes the circuit"
    assert agency.ok(protocol)


@pytest.mark.parametrize("protocol", ["rest", pytest.param("soap", marks=pytest.mark.slow)])
def test_the_system_saying_it_is_unavailable_passes_through_and_opens_the_circuit(
    agency: Agency, protocol: str
) -> None:
    agency.sandbox_fault(protocol, "unavailable")
    try:
        for _ in range(int(STATE["breaker_failures"])):
            failed = agency.ask(protocol)
            assert failed.status_code == 503
            assert "X-Road-Error" not in failed.headers
        calls = agency.hits(protocol)
        assert_refused(agency.ask(protocol), protocol, 503, *OPEN)
        assert agency.hits(protocol) == calls
    finally:
        agency.sandbox_fault(protocol, "none")
    time.sleep(RESET + 0.1)
    assert agency.ok(protocol)


@pytest.mark.parametrize("protocol", ["rest", pytest.param("soap", marks=pytest.mark.slow)])
def test_a_500_passes_through_and_never_opens_the_circuit(agency: Agency, protocol: str) -> None:
    """A SOAP Fault for a malformed identifier is a 500: bad input from one client must not cut the system off."""
    agency.sandbox_fault(protocol, "error")
    try:
        for _ in range(int(STATE["breaker_failures"]) + 2):
            failed = agency.ask(protocol)
            assert failed.status_code == 500
            assert "X-Road-Error" not in failed.headers
    finally:
        agency.sandbox_fault(protocol, "none")
    assert agency.ok(protocol), "no circuit was opened"


def test_many_exchanges_waiting_on_a_slow_system_all_end_in_time(agency: Agency) -> None:
    """No hung workers: every exchange waiting on a system that never answers in time is answered."""
    agency.sandbox_fault("rest", "delay", seconds=3.0)
    with ThreadPoolExecutor(8) as pool, within(TIMEOUT):
        answers = list(pool.map(lambda _: agency.ask("rest"), range(8)))
    agency.sandbox_fault("rest", "none")
    assert {a.headers.get("X-Road-Error") for a in answers} == {"Server.ServerProxy.ServiceTimeout"}
    agency.node.assert_idle()
