"""A running sandbox (four agency systems) and a gateway in front of it, shared by the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.servers import SandboxServers
from tests.gateway.federation_setup import Fed
from tests.gateway.nodes import migrated
from tests.sandbox import fixtures_country as known

MAX_BODY = 64 * 1024


@dataclass
class Gateway:
    url: str
    tokens: dict[str, str]
    sandbox: SandboxServers

    def client_headers(self, client: str = federation.PROGRAMME_MIS, **extra: str) -> dict[str, str]:
        return {"X-Road-Client": client, "X-Kiungo-Client-Token": self.tokens[client], **extra}

    def fault(self, system: str, mode: str, **kw: Any) -> None:
        httpx.post(self.sandbox.base_url(system) + "/_sandbox/fault", json={"mode": mode, **kw}).raise_for_status()


@pytest.fixture(scope="session")
def gateway(sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir: Path = tmp_path_factory.mktemp("gateway")
    config, tokens = federation.gateway_config(sandbox.manifest["systems"], data_dir, policy=False)
    config["server"] |= {"max_body_bytes": MAX_BODY, "provider_timeout": 1.0}
    # a system nobody answers for, to see the gateway's answer when a provider is down
    config["systems"]["archive"] = {"connector": "rest", "base_url": "http://127.0.0.1:9", "retries": 0}
    config["services"]["ZZ/GOV/TAX/taxreg/archive"] = {
        "system": "archive",
        "type": "rest",
        "allow": [federation.PROGRAMME_MIS],
    }
    # the civil registry's WSDL, but an address where nothing answers
    cra = sandbox.manifest["systems"]["cra"]
    config["systems"]["cra-archive"] = {
        "connector": "soap",
        "wsdl": cra["wsdl"],
        "endpoint": "http://127.0.0.1:9/civreg",
        "retries": 0,
    }
    config["subsystems"]["ZZ/GOV/CRA/civreg-archive"] = {"name": "Archived civil register"}
    config["services"]["ZZ/GOV/CRA/civreg-archive/GetPersonByNationalId"] = {
        "system": "cra-archive",
        "type": "soap",
        "operation": "GetPersonByNationalId",
        "allow": [federation.PROGRAMME_MIS],
    }
    sock = bind("127.0.0.1", 0)
    with ServerThread({"gateway": (create_app(migrated(config)), sock)}, name="test-gateway"):
        yield Gateway(base_url(sock), tokens, sandbox)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    country = tmp_path_factory.mktemp("fed-country")
    known.build_country(country, people=500)
    with SandboxServers(country, data_dir=tmp_path_factory.mktemp("fed")) as servers:
        yield Fed(servers)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "gateway" in request.fixturenames:
        gw: Gateway = request.getfixturevalue("gateway")
        for system in ("cra", "tax", "ssf", "msp"):
            gw.fault(system, "none")
