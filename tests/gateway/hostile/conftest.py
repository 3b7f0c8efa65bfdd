"""One sandbox federation for the hostile-input suites, and the means to look behind a refusal.

The federation is the sandbox's own (four agency systems, an authority, a time-stamp authority, one
gateway per member, the virtual registry on the ministry's gateway, the event service on the civil
registry's). The event service's app is also served on its own socket, so that its OpenAPI document can
be exercised directly as well as through the exchange layer.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.events import EventService, create_events_app
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.servers import SandboxServers
from tests.gateway.federation_setup import Fed
from tests.gateway.nodes import migrated
from tests.sandbox import fixtures_country as known

MSP, TAX, CRA, SSF = "ZZ/GOV/MSP", "ZZ/GOV/TAX", "ZZ/GOV/CRA", "ZZ/GOV/SSF"
PURPOSE = "old-age-grant-eligibility"
EVENTS_PURPOSE = "vital-event-notification"


@dataclass
class Hostile:
    """The running federation, with helpers for the hostile cases."""

    servers: SandboxServers
    fed: Fed
    events_url: str  # the event service's app on its own socket (no gateway in front)
    events_openapi: dict[str, Any]

    def gateway(self, member: str = MSP) -> dict[str, Any]:
        return self.servers.manifest["federation"]["gateways"][member]  # type: ignore[no-any-return]

    def url(self, member: str = MSP) -> str:
        return str(self.gateway(member)["base_url"])

    def token(self, client: str = federation.PROGRAMME_MIS) -> str:
        assert self.servers.federation is not None
        return self.servers.federation.tokens[client]

    def client_headers(
        self, client: str = federation.PROGRAMME_MIS, purpose: str | None = PURPOSE, **extra: str
    ) -> dict[str, str]:
        headers = {"X-Road-Client": client, "X-Kiungo-Client-Token": self.token(client)}
        if purpose is not None:
            headers["X-Road-PDU-Purpose"] = purpose
        return headers | extra

    def operator(self, member: str = MSP) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gateway(member)['operator_token']}"}

    def hits(self, system: str) -> int:
        """Requests the agency system received since its counter was last reset."""
        answer = httpx.get(self.servers.base_url(system) + "/_sandbox/hits", timeout=10)
        answer.raise_for_status()
        return int(answer.json()["hits"])

    def log_records(self, member: str, since_ms: int) -> list[dict[str, Any]]:
        """The exchange log records a gateway wrote since a moment, oldest first (operator API)."""
        answer = httpx.post(
            self.url(member) + "/api/log/records/search",
            json={"since_ms": since_ms, "limit": 1000},
            headers=self.operator(member),
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["records"]  # type: ignore[no-any-return]

    def record_of(self, member: str, since_ms: int, exchange_id: str) -> list[dict[str, Any]]:
        return [r for r in self.log_records(member, since_ms) if r["exchange_id"] == exchange_id]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def federation_running(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Hostile]:
    country = tmp_path_factory.mktemp(f"{name}-country")
    known.build_country(country, people=300)
    with SandboxServers(country, data_dir=tmp_path_factory.mktemp(f"{name}-fed")) as servers:
        assert servers.federation is not None
        # the civil registry's node settings with a data directory of their own: a second, separate store
        config = copy.deepcopy(servers.federation.configs["cra"])
        config["data_dir"] = str(tmp_path_factory.mktemp(f"{name}-events"))
        settings = migrated(config)
        assert settings.events is not None
        service = EventService(settings.events, settings.data_dir, None)
        app = create_events_app(service)
        sock = bind("127.0.0.1", 0)
        with ServerThread({"events": (app, sock)}, name=f"{name}-events", lifespan="off"):
            yield Hostile(servers, Fed(servers), base_url(sock), app.openapi())
        service.store.close()


@pytest.fixture(scope="package")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The federation the hand-written hostile cases share."""
    with federation_running(tmp_path_factory, "hostile") as running:
        yield running


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """A federation of its own for schemathesis, which leaves state behind: consent records, bulk jobs, rate-limit
    counts, and circuits opened by the civil registry's Faults at odd national IDs (see docs/threat-model.md)."""
    with federation_running(tmp_path_factory, "fuzzed") as running:
        yield running


def assert_refused_here(hostile: Hostile, member: str, since_ms: int, exchange_id: str, code: str) -> None:
    """Fail closed: the gateway recorded the refusal as a refusal (never as an exchange that happened), and no
    other gateway of the federation saw the exchange at all (it was never forwarded, so no system answered)."""
    records = hostile.record_of(member, since_ms, exchange_id)
    assert len(records) == 1, records
    assert records[0]["outcome"] == code
    assert records[0]["fault_code"] == code
    assert records[0]["response_digest"] is None
    for other in (MSP, TAX, CRA, SSF):
        if other != member:
            assert hostile.record_of(other, since_ms, exchange_id) == [], f"{other} saw the refused exchange"
