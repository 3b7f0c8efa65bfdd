"""Two replicas of one member's gateway act as one: replay, consent, rate limits, circuits, logs, shutdown.

Every test goes through real servers: the ministry's gateway, a TCP balancer, both replicas (each
terminating mutual TLS), shared PostgreSQL and Redis, and the tax authority's sandbox system.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.exchange import now_ms
from gateway.exchangelog import ExchangeLog
from gateway.requesthash import rest_request_hash
from gateway.rest import xroad_headers
from gateway.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, request_payload
from sandbox import federation
from tests.gateway.federation_setup import MSP, PURPOSE, TAXPAYER
from tests.gateway.replicas.balancer import free_socket
from tests.gateway.replicas.conftest import CACHE_PURPOSE, RATE_PURPOSE, Replica, Replicas

TIN = TAXPAYER.rsplit("/", 1)[1]


def forged(replicas: Replicas, replica: Replica, message_id: str) -> httpx.Response:
    """A request signed as the ministry's gateway would sign it, sent to one replica directly."""
    fed = replicas.fed
    headers = {"x-road-client": federation.PROGRAMME_MIS, "x-road-id": message_id, "x-road-pdu-purpose": PURPOSE}
    ts = now_ms()
    headers[TIMESTAMP_HEADER] = str(ts)
    request_hash = rest_request_hash("GET", TAXPAYER, xroad_headers(headers), b"")
    headers[SIGNATURE_HEADER] = fed.signer(MSP).sign(request_payload(request_hash, ts))
    with fed.peer_client(MSP) as http:
        return http.get(replica.peer_url + TAXPAYER, headers=headers)


def test_a_message_id_replayed_on_the_other_replica_is_refused(replicas: Replicas) -> None:
    message_id = str(uuid.uuid4())
    first = forged(replicas, replicas.a, message_id)
    assert first.status_code == 200, first.text
    again = forged(replicas, replicas.b, message_id)
    assert again.status_code == 409
    assert again.headers["X-Road-Error"] == "Server.ServerProxy.ReplayedMessage"
    assert again.json()["message"] == f"message id {message_id} was already received"


def _grant(replicas: Replicas, subject: str) -> str:
    body = federation.research_consent(subject)
    answer = httpx.post(replicas.a.url + "/api/consent/records", json=body, headers=replicas.operator())
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["record"]["record_id"])


def test_a_consent_withdrawn_through_one_replica_is_enforced_by_the_other(replicas: Replicas) -> None:
    subject = federation.consent_subjects(replicas.fed.servers.country_dir)[0]
    record_id = _grant(replicas, subject)

    def research() -> httpx.Response:
        return replicas.ask("/v1/incomes", federation.RESEARCH_PURPOSE, client=federation.RESEARCH, national_id=subject)

    replicas.pin(replicas.b)
    assert research().status_code == 200
    withdrawn = httpx.post(f"{replicas.a.url}/api/consent/records/{record_id}/withdraw", headers=replicas.operator())
    assert withdrawn.status_code == 200, withdrawn.text
    refused = research()  # the very next exchange, on the other replica
    assert refused.status_code == 403, refused.text
    assert "consent" in refused.json()["message"]
    assert refused.headers["X-Road-Error"] == "Server.ServerProxy.AccessDenied"
    replicas.pin(None)


def test_a_rate_limit_counts_exchanges_on_both_replicas(replicas: Replicas) -> None:
    outcomes = []
    for replica in (replicas.a, replicas.b, replicas.a, replicas.b, replicas.a, replicas.b):
        replicas.pin(replica)
        outcomes.append(replicas.ask(f"/v1/taxpayers/{TIN}", RATE_PURPOSE))
    replicas.pin(None)
    assert [r.status_code for r in outcomes] == [200] * 4 + [403] * 2, "4 per minute across both, not per replica"
    for refused in outcomes[4:]:
        assert refused.headers["X-Road-Error"] == "Server.ServerProxy.AccessDenied"
        assert refused.json()["message"].startswith("rate_limited")


def test_a_circuit_opened_by_one_replica_is_open_on_the_other_and_closes_again(replicas: Replicas) -> None:
    system = replicas.fed.servers.base_url("tax")

    def fault(mode: str) -> None:
        httpx.post(system + "/_sandbox/fault", json={"mode": mode}).raise_for_status()

    def hits() -> int:
        return int(httpx.get(system + "/_sandbox/hits").json()["hits"])

    fault("unavailable")  # 503; a 500 does not count (a SOAP Fault for bad input is one too)
    try:
        replicas.pin(replicas.a)
        failing = [replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE) for _ in range(3)]
        assert all(r.status_code >= 500 for r in failing), [r.status_code for r in failing]
        before = hits()
        replicas.pin(replicas.b)
        refused = replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE)
        assert refused.status_code == 503, refused.text
        assert refused.headers["X-Road-Error"] == "Server.ServerProxy.ServiceUnavailable"
        assert "circuit open" in refused.json()["message"]
        assert hits() == before, "the other replica did not call the failing system"
    finally:
        fault("none")
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    client.hset(f"{replicas.prefix}:breaker:system:tax", "open_until", 1)  # as if the reset time had passed
    trial = replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE)
    assert trial.status_code == 200, trial.text
    replicas.pin(replicas.a)
    assert replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE).status_code == 200
    replicas.pin(None)


def test_an_answer_an_agreement_lets_be_reused_is_shared_encrypted_and_every_exchange_still_logged(
    replicas: Replicas,
) -> None:
    import redis

    system = replicas.fed.servers.base_url("tax")
    httpx.post(system + "/_sandbox/fault", json={"mode": "none"}).raise_for_status()  # resets the hit counter
    replicas.pin(replicas.a)
    first = replicas.ask(f"/v1/taxpayers/{TIN}", CACHE_PURPOSE)
    assert first.status_code == 200, first.text
    replicas.pin(replicas.b)
    second = replicas.ask(f"/v1/taxpayers/{TIN}", CACHE_PURPOSE)
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert int(httpx.get(system + "/_sandbox/hits").json()["hits"]) == 1, "the other replica reused the answer"
    other_purpose = replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE)  # not under the caching agreement
    assert other_purpose.status_code == 200
    assert int(httpx.get(system + "/_sandbox/hits").json()["hits"]) == 2
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    stored = [client.get(key) or b"" for key in client.scan_iter(f"{replicas.prefix}:cache:*")]
    assert stored, "the answer is in the shared cache"
    surname = first.json()["surname"].encode()
    assert not any(TIN.encode() in blob or surname in blob for blob in stored), "and it is encrypted"
    assert not any(TIN in key.decode() for key in client.scan_iter(f"{replicas.prefix}:cache:*"))
    ids = {first.headers["X-Road-Id"], second.headers["X-Road-Id"]}
    logged: set[str] = set()
    for name in ("log_a", "log_b"):
        with ExchangeLog.open(replicas.databases[name], node="") as log:
            logged |= {r.exchange_id for _, r in log.search(purpose=CACHE_PURPOSE, limit=100) if r.outcome == "ok"}
    assert ids <= logged, "a reused answer is an exchange like any other: logged by the replica that gave it"


def test_graceful_shutdown_finishes_in_flight_exchanges_and_new_ones_go_to_the_other(replicas: Replicas) -> None:
    system = replicas.fed.servers.base_url("tax")
    replicas.pin(replicas.a)
    assert replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE).status_code == 200  # a kept-alive connection to A
    httpx.post(system + "/_sandbox/fault", json={"mode": "delay", "seconds": 1.5, "count": 1}).raise_for_status()
    result: dict[str, Any] = {}

    def slow() -> None:
        result["answer"] = replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE)

    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.5)  # the exchange is in A, waiting on the system
    replicas.pin(None, cut=False)
    replicas.a.stop()  # graceful: stops accepting, lets the in-flight exchange finish
    worker.join(10)
    assert result["answer"].status_code == 200, result["answer"].text
    after = [replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE).status_code for _ in range(4)]
    assert after == [200] * 4
    # A comes back on a new port, and the balancer takes it in again
    replicas.a.client_sock, replicas.a.peer_sock = free_socket(), free_socket()
    replicas.a.start()
    replicas.balancer.backends[0] = ("127.0.0.1", replicas.a.peer_port)


def test_each_replica_log_verifies_and_together_they_account_for_every_exchange(replicas: Replicas) -> None:
    replicas.pin(None)
    for _ in range(6):
        assert replicas.ask(f"/v1/taxpayers/{TIN}", PURPOSE).status_code == 200
    provider: dict[str, set[str]] = {}
    for name in ("log_a", "log_b"):
        with ExchangeLog.open(replicas.databases[name], node="") as log:
            report = log.verify()
            assert report.ok, report.summary()
            provider[name] = {r.exchange_id for _, r in log.search(limit=10_000) if r.outcome == "ok"}
    assert provider["log_a"], "replica a served exchanges"
    assert provider["log_b"], "replica b served exchanges"
    assert not provider["log_a"] & provider["log_b"], (
        "served by both? (a replay refused by one is logged there, refused)"
    )
    msp_log = Path(replicas.fed.plan.configs["msp"]["data_dir"]) / "log.sqlite"
    consumer = _tax_exchanges_seen_ok(f"sqlite:///{msp_log}")
    missing = consumer - provider["log_a"] - provider["log_b"]
    assert consumer
    assert not missing, f"{len(missing)} exchange(s) that the ministry saw succeed are in neither replica's log"


def _tax_exchanges_seen_ok(url: str) -> set[str]:
    with ExchangeLog.open(url, node="") as log:
        return {
            record.exchange_id
            for _, record in log.search(limit=100_000)
            if record.side == "Client"
            and (record.service or "").startswith("ZZ/GOV/TAX/")
            and record.outcome == "ok"
            and record.status_code == 200
        }


@pytest.fixture(autouse=True)
def _unpinned(replicas: Replicas) -> Any:
    yield
    replicas.pin(None)
