"""A provider's gateway that is down, slow, silent, resetting connections or answering garbage.

The ministry's gateway (the consumer) reaches the tax authority's gateway through a `FaultyTcp`, which
the directory lists as the tax authority's address. The consumer waits `peer_timeout` 1 s and opens a
circuit per provider gateway after two failures. `test_provider_gateway_unreachable` and
`test_tampered_response_body` in tests/gateway/test_federation.py cover one refused exchange and a
forged answer; the SIGKILL test (tests/gateway/crash) covers a gateway that dies under load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import tls
from gateway.server import Listener, ServerThread, bind
from sandbox import federation
from sandbox.demo import soap_request
from tests.gateway.faults.conftest import NATIONAL_ID, TAX, TAXPAYER, MiniFed
from tests.gateway.faults.harness import (
    FaultyTcp,
    RunningNode,
    assert_rest_error,
    fault,
    wait_until,
    within,
)

PEER_TIMEOUT = 1.0
STATE = {"breaker_failures": 2, "breaker_reset_seconds": 0.5}
OPEN = ("Server.ClientProxy.ServiceUnavailable", "the gateway of ZZ/GOV/TAX failed 2 times in a row")
DOWN = ("Server.ClientProxy.NetworkError", "the gateway of ZZ/GOV/TAX could not be reached")
SLOW = ("Server.ClientProxy.ServiceTimeout", "the gateway of ZZ/GOV/TAX did not answer in time")


@dataclass
class Pair:
    mini: MiniFed
    consumer: RunningNode
    provider: RunningNode
    path: FaultyTcp  # the way to the provider's gateway

    def ask(self) -> httpx.Response:
        return self.consumer.get(TAXPAYER)

    def ok(self) -> bool:
        return self.ask().status_code == 200

    def opened(self) -> float:
        return self.consumer.metric("kiungo_circuits_opened_total", circuit=f"peer:{TAX}")


@pytest.fixture(scope="module")
def pair(mini: MiniFed) -> Iterator[Pair]:
    provider_config = mini.config("tax", server={"provider_timeout": 3.0})
    with mini.node("tax", provider_config, listed=False) as provider:
        assert provider.peer_port is not None
        with FaultyTcp(("127.0.0.1", provider.peer_port), name="tax-gateway-path") as path:
            mini.addresses[TAX] = path.url("https")
            mini.publish()
            consumer_config = mini.config("msp", federation={"peer_timeout": PEER_TIMEOUT}, state=STATE)
            with mini.node("msp", consumer_config) as consumer:
                pair = Pair(mini, consumer, provider, path)
                assert pair.ok()
                yield pair


@pytest.fixture(autouse=True)
def _healthy(pair: Pair) -> Iterator[None]:
    wait_until(pair.ok, 5, "the provider's gateway answers")
    yield
    pair.path.set("forward")
    pair.consumer.assert_idle()
    pair.provider.assert_idle()


def test_provider_gateway_down_is_a_network_error_and_its_circuit_opens_and_closes(pair: Pair) -> None:
    opened = pair.opened()
    with pair.path.broken("refuse"):
        for _ in range(2):
            with within(1.0):
                refused = pair.ask()
            assert_rest_error(refused, 502, *DOWN)
        connections = pair.path.accepted
        with within(0.0):
            refused = pair.ask()
        assert_rest_error(refused, 503, *OPEN)
        assert "circuit open" in refused.json()["message"]
        assert pair.path.accepted == connections, "no connection to the provider's gateway while the circuit is open"
        assert pair.opened() == opened + 1
        soap = pair.consumer.soap(soap_request(NATIONAL_ID, federation.PROGRAMME_MIS))  # another member: unaffected
        assert soap.headers.get("X-Road-Error") != OPEN[0]
    time.sleep(STATE["breaker_reset_seconds"] + 0.1)
    assert pair.ok(), "the trial exchange closes the circuit"
    assert pair.ok()


def test_provider_gateway_slower_than_peer_timeout(pair: Pair) -> None:
    """The provider's gateway is up but its system takes 1.5 s: the consumer stops waiting after peer_timeout."""
    fault(pair.mini.sandbox.base_url("tax"), "delay", seconds=1.5)
    for _ in range(2):
        with within(PEER_TIMEOUT):
            refused = pair.ask()
        assert_rest_error(refused, 504, *SLOW)
    with within(0.0):
        assert_rest_error(pair.ask(), 503, *OPEN)
    fault(pair.mini.sandbox.base_url("tax"), "none")
    pair.provider.assert_idle()  # the provider's gateway finished its side too, and logged it
    time.sleep(STATE["breaker_reset_seconds"] + 0.1)
    assert pair.ok()


def test_a_silent_provider_gateway(pair: Pair) -> None:
    """It accepts connections and never answers (a hung process, a half-open firewall): peer_timeout bounds it."""
    with pair.path.broken("hang"), within(PEER_TIMEOUT):
        refused = pair.ask()
    assert_rest_error(refused, 504, *SLOW)


@pytest.mark.slow
def test_an_unreachable_provider_gateway_host(pair: Pair) -> None:
    """Its host is off or firewalled (SYNs dropped): the connect timeout is min(5 s, peer_timeout)."""
    with pair.path.broken("drop"), within(PEER_TIMEOUT):
        refused = pair.ask()
    assert_rest_error(refused, 504, *SLOW)


def test_provider_gateway_resetting_connections(pair: Pair) -> None:
    """A reset in the TLS handshake is a network failure of that gateway, counted against its circuit."""
    opened = pair.opened()
    with pair.path.broken("reset"):
        for _ in range(2):
            with within(1.0):
                refused = pair.ask()
            assert_rest_error(refused, 502, *DOWN)
        assert_rest_error(pair.ask(), 503, *OPEN)
        assert pair.opened() == opened + 1
    time.sleep(STATE["breaker_reset_seconds"] + 0.1)
    assert pair.ok()


def test_provider_gateway_answering_garbage_is_refused_not_passed_on(pair: Pair) -> None:
    """An answer that is not signed for this request never reaches the client (fail closed: signatures)."""
    mini = pair.mini
    creds = mini.plan.configs["tax"]["federation"]
    context = tls.server_context(
        creds["auth_cert"],
        creds["auth_key"],
        mini.plan.passphrase_file.read_bytes(),
        client_cas=mini.plan.content["ca_certs"],
        require_client_cert=True,
    )

    async def garbage(request: Request) -> Response:
        return Response(b'{"tin": "TIN90000001", "gross_income": 99', media_type="application/json")

    sock = bind("127.0.0.1", 0)
    app = Starlette(routes=[Route("/{path:path}", garbage, methods=["GET"])])
    with ServerThread({"garbage": Listener(app, sock, context)}):
        mini.addresses[TAX] = f"https://127.0.0.1:{sock.getsockname()[1]}"
        mini.publish()
        pair.consumer.refresh_directory()
        try:
            with within(1.0):
                refused = pair.ask()
        finally:
            mini.addresses[TAX] = pair.path.url("https")
            mini.publish()
            pair.consumer.refresh_directory()
    assert_rest_error(refused, 502, "Server.ClientProxy.InvalidSignatureValue", "the provider's answer is for another")
    assert "gross_income" not in refused.text
