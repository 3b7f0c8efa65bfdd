"""PostgreSQL unreachable: the exchange log (`[log] url`) and the shared stores (`[state] url`) go through a
`FaultyTcp`, so the database can vanish, reset every connection, or stop answering, and come back.

No log record, no exchange: while the log database is unreachable every exchange is refused with
`LoggingFailed` and no answer leaves; once it is back the next exchange succeeds and the log verifies.
A consent check that cannot read the consent registry refuses too. Operational monitoring is best
effort and never stops an exchange. The log's own PostgreSQL tests are in
tests/gateway/exchangelog/test_postgres.py; replicas sharing PostgreSQL in tests/gateway/replicas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.database import CONNECT_TIMEOUT
from gateway.exchangelog import ExchangeLog
from gateway.exchangelog.log import RETRY_MAX, WRITE_TIMEOUT
from gateway.monitoring import MONITOR_WRITE_TIMEOUT
from sandbox import federation
from sandbox.demo import soap_request
from sandbox.servers import SandboxServers
from tests.gateway.faults.conftest import BREAKER, NATIONAL_ID, TAXPAYER, without_hosted_services
from tests.gateway.faults.harness import (
    FaultyTcp,
    RunningNode,
    assert_rest_error,
    assert_soap_fault,
    hits,
    running,
    wait_until,
    within,
)
from tests.postgres import database

PG = ("127.0.0.1", 5432)
LOGGING_FAILED = ("Server.ServerProxy.LoggingFailed", "could not be written to the exchange log, so it is refused")
STATE_UNAVAILABLE = ("Server.ServerProxy.StateUnavailable", "a database this gateway needs could not be read")


@dataclass
class Node:
    node: RunningNode
    db: FaultyTcp
    log_url: str  # straight to PostgreSQL, for checking the log afterwards
    subject: str  # a taxpayer who consented to the poverty study
    system: str  # the civil registry's address, to count its calls

    def ask(self) -> httpx.Response:
        return self.node.get(TAXPAYER)

    def research(self) -> httpx.Response:
        """An exchange whose agreement's lawful basis is consent: the consent registry must be read."""
        return httpx.get(
            self.node.url + f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes?national_id={self.subject}",
            headers={
                "X-Road-Client": federation.RESEARCH,
                "X-Kiungo-Client-Token": self.node.tokens[federation.RESEARCH],
                "X-Road-PDU-Purpose": federation.RESEARCH_PURPOSE,
            },
            timeout=60,
        )

    def log_failures(self) -> float:
        return self.node.metric("kiungo_log_failures_total")


@pytest.fixture(scope="module")
def pg(sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with (
        database("faults_log") as log_url,
        database("faults_state") as state_url,
        FaultyTcp(PG, name="postgres-path") as db,
    ):
        via = f"postgresql://postgres@127.0.0.1:{db.port}"
        config, tokens = federation.gateway_config(
            sandbox.manifest["systems"], tmp_path_factory.mktemp("pg-node"), policy=True
        )
        without_hosted_services(config)
        config["server"]["provider_timeout"] = 2.0
        config["state"] = dict(BREAKER) | {"url": via + "/" + state_url.rsplit("/", 1)[1]}
        config["log"] = {"url": via + "/" + log_url.rsplit("/", 1)[1]}
        config["consent"] = {"controller": "ZZ/GOV/TAX"}  # who records the consents (no federation here)
        with running(config, "pg-node", tokens) as node:
            subject = federation.consent_subjects(sandbox.country_dir)[0]
            _grant(node, subject)
            yield Node(node, db, log_url, subject, sandbox.base_url("cra"))


def _grant(node: RunningNode, subject: str) -> None:
    body = federation.research_consent(subject)
    answer = httpx.post(node.url + "/api/consent/records", json=body, headers=node.operator(), timeout=10)
    assert answer.status_code in (200, 201), answer.text


@pytest.fixture(autouse=True)
def _reachable_again(pg: Node) -> Iterator[None]:
    pg.db.set("forward")
    wait_until(lambda: pg.ask().status_code == 200, RETRY_MAX + 2, "the log database is reachable again")
    yield
    pg.db.set("forward")
    pg.node.assert_idle()


def _logged_ids(pg: Node) -> set[str]:
    """The exchange ids in the log, read straight from PostgreSQL; and the log must verify."""
    with ExchangeLog.open(pg.log_url, node="") as log:
        report = log.verify()
        assert report.ok, report
        return {record.exchange_id for _, record in log.search(limit=100_000)}


@pytest.mark.parametrize("mode", ["refuse", "reset"])
def test_log_database_down_refuses_every_exchange_then_recovers(pg: Node, mode: str) -> None:
    """PostgreSQL stopped (refused) or crashing (every connection reset): fail closed, at once, then recover."""
    served = pg.ask()
    assert served.status_code == 200
    failures = pg.log_failures()
    with pg.db.broken(mode):  # type: ignore[arg-type]
        with within(1.0):
            refused = pg.ask()
        assert_rest_error(refused, 500, *LOGGING_FAILED)
        assert "TIN90000001" not in refused.text, "no answer leaves without its log record"
        calls = hits(pg.system)
        with within(1.0):
            soap = pg.node.soap(soap_request(NATIONAL_ID, federation.PROGRAMME_MIS))
        assert_soap_fault(soap, *LOGGING_FAILED)
        assert hits(pg.system) == calls, "while the log is known to be down, the system is not even asked"
        with within(1.0):
            research = pg.research()  # the consent registry, in the shared database, cannot be read either
        assert_rest_error(research, 503, *STATE_UNAVAILABLE)
        assert pg.log_failures() >= failures + 2
    wait_until(lambda: pg.ask().status_code == 200, RETRY_MAX + 2, "exchanges succeed again")
    assert pg.research().status_code == 200
    logged = _logged_ids(pg)
    assert served.headers["X-Road-Id"] in logged
    assert refused.json()["detail"] not in logged


def test_a_database_restart_while_idle_costs_no_exchange(pg: Node) -> None:
    """Its pooled connections died while idle: the first append finds out, and takes a new connection."""
    assert pg.ask().status_code == 200
    pg.db.set("reset")  # every open connection reset, as a restart does
    pg.db.set("forward")
    answer = pg.ask()
    assert answer.status_code == 200, answer.text


@pytest.mark.slow
def test_a_log_database_that_stops_answering_is_given_up_on(pg: Node) -> None:
    """It accepts bytes and never answers (a frozen server, a stuck failover): the write is broken after
    WRITE_TIMEOUT (and monitoring's after its own), the exchange refused, the next ones refused at once."""
    assert pg.ask().status_code == 200
    with pg.db.broken("hang"):
        with within(WRITE_TIMEOUT + MONITOR_WRITE_TIMEOUT):
            refused = pg.ask()
        assert_rest_error(refused, 500, *LOGGING_FAILED)
        with within(0.5):
            assert pg.node.health()["status"], "the node answers meanwhile"
            assert_rest_error(pg.ask(), 500, *LOGGING_FAILED)
    wait_until(lambda: pg.ask().status_code == 200, RETRY_MAX + CONNECT_TIMEOUT + 2, "exchanges succeed again")
    assert refused.json()["detail"] not in _logged_ids(pg)
