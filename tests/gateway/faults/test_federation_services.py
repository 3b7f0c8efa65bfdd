"""The federation's own services fail: the OCSP responder, the CRL, the directory's address, the TSA.

None of them is on an exchange's path the way a peer gateway is, but two decide trust: a peer whose
revocation status cannot be established is refused (fail closed), and a directory that has expired
refuses every federated exchange. A directory that cannot be fetched leaves the last good copy in use
until it expires; a time-stamp authority that is down leaves signed tree heads without their stamp,
recorded, and touches no exchange. Related cases: tests/gateway/test_federation.py
(`test_expired_directory`, `test_tampered_directory_is_never_used`, revocation by CRL and OCSP) and
tests/gateway/exchangelog/test_tsa_and_bundle.py (`test_tsa_down_keeps_the_head_and_reports`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.app import listeners
from gateway.errors import ConfigError
from sandbox import federation
from sandbox.demo import soap_request
from tests.gateway.faults.conftest import CRA, NATIONAL_ID, TAXPAYER, MiniFed
from tests.gateway.faults.harness import (
    MARGIN,
    Mode,
    RunningNode,
    assert_rest_error,
    assert_soap_fault,
    running,
    within,
)
from tests.gateway.nodes import migrated

REVOCATION_TIMEOUT = 5.0  # gateway/trust.py: the CRL and OCSP client's timeout
TSA_TIMEOUT = 5.0  # gateway/exchangelog/tsa.py: request_token's timeout
OCSP_UNKNOWN = ("Server.ServerProxy.SslAuthenticationFailed", "revocation status cannot be established (OCSP)")
CRL_UNKNOWN = ("Server.ServerProxy.SslAuthenticationFailed", "revocation status cannot be established (CRL)")
EXPIRED_CLIENT = ("Server.ClientProxy.OutdatedGlobalConf", "the federation directory expired")
EXPIRED_SERVER = ("Server.ServerProxy.OutdatedGlobalConf", "the federation directory expired")


def slow_when_hanging(modes: list[str]) -> list[Any]:
    """`hang` waits for a 5 s client timeout: with the slow cases."""
    return [pytest.param(m, marks=[pytest.mark.slow] if m == "hang" else []) for m in modes]


@pytest.fixture(scope="module")
def gateways(mini: MiniFed) -> Iterator[dict[str, RunningNode]]:
    """The ministry's gateway (consumer) and two providers: the tax authority's (CRL) and the civil registry's
    (OCSP), as the sandbox sets revocation up; both check the consumer's certificate on every exchange."""
    with (
        mini.node("tax") as tax,
        mini.node("cra") as cra,
        mini.node("msp") as msp,
    ):
        yield {"msp": msp, "tax": tax, "cra": cra}


def soap(node: RunningNode) -> httpx.Response:
    return node.soap(soap_request(NATIONAL_ID, federation.PROGRAMME_MIS))


@pytest.mark.parametrize("mode", slow_when_hanging(["refuse", "hang"]))
def test_ocsp_responder_down_refuses_the_peer_fail_closed(
    mini: MiniFed, gateways: dict[str, RunningNode], mode: Mode
) -> None:
    msp = gateways["msp"]
    assert soap(msp).status_code == 200
    opened = msp.metric("kiungo_circuits_opened_total", circuit=f"peer:{CRA}")
    with mini.ocsp.broken(mode):
        with within(REVOCATION_TIMEOUT):
            refused = soap(msp)
        assert_soap_fault(refused, *OCSP_UNKNOWN)
        with within(0.5 if mode == "refuse" else REVOCATION_TIMEOUT):
            assert msp.get(TAXPAYER).status_code == 200, "a provider checking the CRL is not affected"
    assert msp.metric("kiungo_circuits_opened_total", circuit=f"peer:{CRA}") == opened, "an answer, not an outage"
    assert soap(msp).status_code == 200
    for node in gateways.values():
        node.assert_idle()


def test_crl_unreachable_refuses_the_peer_fail_closed(mini: MiniFed, gateways: dict[str, RunningNode]) -> None:
    msp = gateways["msp"]
    with mini.crl.broken("refuse"), within(1.0):
        refused = msp.get(TAXPAYER)
    assert_rest_error(refused, 403, *CRL_UNKNOWN)
    assert "TIN90000001" not in refused.text
    assert msp.get(TAXPAYER).status_code == 200


def test_directory_unreachable_then_expired(mini: MiniFed, gateways: dict[str, RunningNode]) -> None:
    """The directory cannot be fetched: the last good copy stays in use, until it expires; then every
    federated exchange is refused, on both sides, at once, until a fresh directory arrives."""
    msp, tax = gateways["msp"], gateways["tax"]
    config = mini.config("msp", federation={"directory": mini.directory.url() + "/directory"})
    with running(config, "msp-fetching", mini.tokens) as fetching:
        assert fetching.get(TAXPAYER).status_code == 200
        mini.publish(valid_for=dt.timedelta(seconds=2))
        expires = time.time() + 2
        try:
            assert fetching.refresh_directory()["refreshed"] is True
            assert tax.refresh_directory()["refreshed"] is True  # the provider takes the short-lived one too
            with mini.directory.broken("refuse"):
                result = fetching.refresh_directory()
                assert result["refreshed"] is False
                assert "ConnectError" in result["last_error"]
                assert fetching.get(TAXPAYER).status_code == 200, "the last good copy is used while it is valid"
                time.sleep(max(0.0, expires - time.time()) + 0.2)
                with within(0.5):
                    refused = fetching.get(TAXPAYER)
                assert_rest_error(refused, 503, *EXPIRED_CLIENT)
                assert fetching.health()["status"] == "degraded"
                with within(0.5):
                    refused = msp.get(TAXPAYER)  # the consumer's copy is current; the provider's has expired
                assert_rest_error(refused, 503, *EXPIRED_SERVER)
        finally:
            mini.publish()
            for node in (fetching, tax):
                assert node.refresh_directory()["refreshed"] is True
        assert fetching.get(TAXPAYER).status_code == 200
        assert msp.get(TAXPAYER).status_code == 200
        fetching.assert_idle()


def test_a_node_does_not_start_without_its_directory(mini: MiniFed) -> None:
    """At start a directory that verifies is required: unreachable, the node refuses to start, saying why."""
    config = mini.config("ssf", federation={"directory": mini.directory.url() + "/directory"})
    with mini.directory.broken("refuse"), within(1.0), pytest.raises(ConfigError, match=r"federation\.directory: http"):
        listeners(migrated(config))


@pytest.mark.parametrize("mode", slow_when_hanging(["refuse", "hang"]))
def test_tsa_down_leaves_heads_unstamped_and_exchanges_untouched(
    mini: MiniFed, gateways: dict[str, RunningNode], mode: Mode
) -> None:
    tax = gateways["tax"]
    assert tax.config["log"]["tsa_url"].startswith(mini.tsa.url())
    with mini.tsa.broken(mode):
        signing: dict[str, Any] = {}

        def sign() -> None:
            signing["head"] = httpx.post(tax.url + "/api/log/tree-heads", headers=tax.operator(), timeout=30)

        signer = threading.Thread(target=sign)
        signer.start()
        time.sleep(0.2)
        with within(0.5):  # exchanges do not wait for the time-stamp authority
            assert gateways["msp"].get(TAXPAYER).status_code == 200
        signer.join(TSA_TIMEOUT + MARGIN + 1)
    head = signing["head"]
    assert head.status_code == 201, head.text
    assert head.json()["tsa_token"] is None
    assert "time-stamp authority unreachable" in head.json()["tsa_error"]
    assert httpx.post(tax.url + "/api/log/verify", headers=tax.operator(), timeout=30).json()["ok"] is True
    stamped = httpx.post(tax.url + "/api/log/tree-heads", headers=tax.operator(), timeout=30).json()
    assert stamped["tsa_token"], "stamped again once the authority is back"
