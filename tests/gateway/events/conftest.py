"""A sandbox federation whose civil registry gateway runs the event service with test timings.

The civil registry's gateway is run here as a second instance of its member (same keys), on a peer port
the directory is re-published to point at, so that the tests can give it short poll and retry times,
and stop and start it again. The country is the package's own: the tests register deaths and births.
"""

from __future__ import annotations

import copy
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.app import listeners
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.federation import FederationPlan
from sandbox.servers import SandboxServers
from tests.gateway.nodes import migrated
from tests.sandbox import fixtures_country as known

MSP, CRA = "ZZ/GOV/MSP", "ZZ/GOV/CRA"
PURPOSE = "vital-event-notification"
NOTIFICATIONS = f"{federation.PROGRAMME_MIS}/notifications"
#: Test timings: a poll every 0.2 s, retries after 0.1 to 0.5 s, a dead letter at the third attempt.
TIMINGS = {
    "poll_seconds": 0.2,
    "retry_base_seconds": 0.1,
    "retry_max_seconds": 0.5,
    "max_attempts": 3,
    "exchange_timeout": 10.0,
}
#: A second subscriber, allowed by an agreement of the tests' own: the owner rule needs two.
OTHER = federation.RESEARCH
OTHER_AGREEMENT = f"""
id = "DSA-CRA-EVT-TEST"
version = 1
title = "Tests only: a second subscriber of the event service"
provider = "ZZ/GOV/CRA"
clients = ["{OTHER}"]
purposes = ["{PURPOSE}"]
lawful_basis = "public-task"
legal_reference = "tests"
data_categories = ["identity", "vital-status"]
valid_from = "2026-01-01"
valid_until = "2030-12-31"

[[services]]
service = "ZZ/GOV/CRA/events/subscriptions"
"""


@dataclass
class CraGateway:
    """The civil registry's gateway instance the directory points at: stoppable and restartable."""

    config: dict[str, Any]
    client_port: int = 0
    peer_port: int = 0
    thread: ServerThread | None = None
    url: str = ""

    def start(self) -> None:
        client_sock, peer_sock = bind("127.0.0.1", self.client_port), bind("127.0.0.1", self.peer_port)
        self.client_port, self.peer_port = client_sock.getsockname()[1], peer_sock.getsockname()[1]
        nodes = listeners(migrated(self.config), client_sock=client_sock, peer_sock=peer_sock)
        self.thread = ServerThread({"gateway": nodes["gateway"], "peers": nodes["peers"]}, name="cra-events")
        self.thread.start()
        self.url = base_url(client_sock)

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


@dataclass
class Events:
    servers: SandboxServers
    cra: CraGateway
    codes: list[tuple[str, str]] = field(default_factory=list)  # (subscriber, code) made by the tests
    _living: list[str] = field(default_factory=list)

    @property
    def plan(self) -> FederationPlan:
        assert self.servers.federation is not None
        return self.servers.federation

    def gateway(self, member: str) -> dict[str, Any]:
        return self.servers.manifest["federation"]["gateways"][member]  # type: ignore[no-any-return]

    def headers(self, client: str = federation.PROGRAMME_MIS, purpose: str = PURPOSE) -> dict[str, str]:
        return {
            "X-Road-Client": client,
            "X-Kiungo-Client-Token": self.plan.tokens[client],
            "X-Road-PDU-Purpose": purpose,
        }

    def url(self, path: str) -> str:
        return f"{self.gateway(MSP)['base_url']}/r1/{federation.EVENTS}/subscriptions{path}"

    def post(self, path: str, body: Any, *, client: str = federation.PROGRAMME_MIS, **kw: Any) -> httpx.Response:
        return httpx.post(self.url(path), json=body, headers=self.headers(client, **kw), timeout=30)

    def get(self, path: str, *, client: str = federation.PROGRAMME_MIS, **kw: Any) -> httpx.Response:
        return httpx.get(self.url(path), headers=self.headers(client, **kw), timeout=30)

    def subscribe(
        self, event_type: str = "death", *, client: str = federation.PROGRAMME_MIS, **criteria: Any
    ) -> dict[str, Any]:
        """A subscription made through the federation; its code is cancelled after the test."""
        answer = self.post(
            "/subscribe", subscribe_envelope(subscribe_item("r1", event_type, **criteria)), client=client
        )
        assert answer.status_code == 200, answer.text
        item = answer.json()["message"]["subscribe_response"][0]
        assert item["status"] == "succ", item
        info: dict[str, Any] = item["subscriptions"][0]
        self.codes.append((client, info["code"]))
        return info

    def unsubscribe(self, *codes: str, client: str = federation.PROGRAMME_MIS) -> dict[str, Any]:
        answer = self.post("/unsubscribe", unsubscribe_envelope(*codes), client=client)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def status(self, code: str) -> dict[str, Any]:
        answer = self.get(f"/subscriptions/{code}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """A death or a birth registered in the civil registry while it runs (registered today)."""
        answer = httpx.post(self.servers.base_url("cra") + "/_sandbox/events", json=body, timeout=10)
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def death(self) -> str:
        """The event id of a new death, of a living person with a national ID not used before."""
        if not self._living:
            conn = sqlite3.connect(self.servers.country_dir / "cra.sqlite")
            try:
                rows = conn.execute(
                    "SELECT national_id FROM person WHERE national_id IS NOT NULL AND death_date IS NULL "
                    "AND sex = 'M' GROUP BY national_id HAVING COUNT(*) = 1 ORDER BY national_id DESC LIMIT 200"
                ).fetchall()
            finally:
                conn.close()
            self._living = [r[0] for r in rows]
        nid = self._living.pop()
        return f"death:{self.register({'type': 'death', 'national_id': nid})['record_id']}"

    def notified(self) -> set[str]:
        """The event ids the programme MIS has received."""
        answer = httpx.get(self.servers.base_url("msp") + "/v1/notifications", params={"limit": 200}, timeout=10)
        assert answer.status_code == 200, answer.text
        return {n["event_id"] for n in answer.json()["items"]}

    def fault(self, system: str, mode: str, **kw: Any) -> None:
        httpx.post(self.servers.base_url(system) + "/_sandbox/fault", json={"mode": mode, **kw}).raise_for_status()

    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plan.tokens['operator']}"}

    def log(self, base: str, **query: Any) -> list[dict[str, Any]]:
        answer = httpx.post(base + "/api/log/records/search", json=query, headers=self.operator(), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["records"]  # type: ignore[no-any-return]


def wait_for(check: Callable[[], Any], *, timeout: float = 15, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def header(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": "1.0.0",
        "message_id": str(uuid.uuid4()),
        "message_ts": "2026-11-28T10:00:00Z",
        "action": "subscribe",
        "sender_id": "programme-mis.msp.zz",
        "receiver_id": "events.cra.zz",
        "total_count": 1,
        "is_msg_encrypted": False,
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def subscribe_item(
    reference_id: str = "r1",
    event_type: str = "death",
    *,
    filter: Any = None,
    callback: Any = None,
    **criteria: Any,
) -> dict[str, Any]:
    return {
        "reference_id": reference_id,
        "timestamp": "2026-11-28T10:00:00Z",
        "subscribe_criteria": {
            "version": "1.0.0",
            "reg_type": "civil-registry",
            "reg_event_type": event_type,
            "filter": filter if filter is not None else {},
            "notify_record_type": "person",
            "callback": callback if callback is not None else {"service": NOTIFICATIONS, "path": ""},
            **criteria,
        },
    }


def subscribe_envelope(*items: dict[str, Any], **header_changes: Any) -> dict[str, Any]:
    return {
        "header": header(**{"total_count": len(items), **header_changes}),
        "message": {"transaction_id": "t-" + uuid.uuid4().hex[:8], "subscribe_request": list(items)},
    }


def unsubscribe_envelope(*codes: str, **header_changes: Any) -> dict[str, Any]:
    return {
        "header": header(**{"action": "unsubscribe", "total_count": len(codes), **header_changes}),
        "message": {
            "transaction_id": "t-" + uuid.uuid4().hex[:8],
            "timestamp": "2026-11-28T10:00:00Z",
            "subscription_codes": list(codes),
        },
    }


@pytest.fixture(scope="package")
def events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Events]:
    country = tmp_path_factory.mktemp("events-country")
    known.build_country(country, people=500)
    extra = tmp_path_factory.mktemp("events-agreements")
    (extra / "DSA-CRA-EVT-TEST.toml").write_text(OTHER_AGREEMENT)
    with SandboxServers(country, data_dir=tmp_path_factory.mktemp("events-fed")) as servers:
        plan = servers.federation
        assert plan is not None
        config = copy.deepcopy(plan.configs["cra"])
        config["data_dir"] = str(tmp_path_factory.mktemp("cra-events"))
        config["events"] |= TIMINGS
        config["policy"]["agreements"].append(str(extra))
        cra = CraGateway(config)
        cra.start()
        try:
            _point_directory_at(servers, cra.peer_port)
            yield Events(servers, cra)
        finally:
            cra.stop()


def _point_directory_at(servers: SandboxServers, peer_port: int) -> None:
    """Re-publish the directory with the civil registry's gateway at this instance, and have every gateway read it."""
    plan = servers.federation
    assert plan is not None
    content = copy.deepcopy(plan.content)
    content["members"][CRA]["gateway"]["address"] = f"https://127.0.0.1:{peer_port}"
    content["serial"] = plan.content["serial"] + 1
    plan.publish(content)
    auth = {"Authorization": f"Bearer {plan.tokens['operator']}"}
    for gw in servers.manifest["federation"]["gateways"].values():
        answer = httpx.post(gw["base_url"] + "/api/operator/directory/refresh", headers=auth, timeout=10)
        assert answer.status_code == 200, answer.text


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: no fault, and the test's subscriptions cancelled (a stray one would get later events)."""
    yield
    if "events" not in request.fixturenames:
        return
    running: Events = request.getfixturevalue("events")
    running.fault("msp", "none")
    if running.cra.thread is None:
        running.cra.start()
    for client, code in running.codes:
        running.post("/unsubscribe", unsubscribe_envelope(code), client=client)
    running.codes.clear()
