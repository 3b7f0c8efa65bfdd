"""A sandbox federation whose ministry gateway hosts the virtual registry, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox import federation
from sandbox.servers import SandboxServers
from tests.sandbox import fixtures_country as known

MSP, CRA = "ZZ/GOV/MSP", "ZZ/GOV/CRA"
OLD_AGE = "old-age-grant-eligibility"


@dataclass
class Vsr:
    servers: SandboxServers

    def gateway(self, member: str = MSP) -> dict[str, Any]:
        return self.servers.manifest["federation"]["gateways"][member]  # type: ignore[no-any-return]

    def headers(self, purpose: str = OLD_AGE, **extra: str) -> dict[str, str]:
        return {
            "X-Road-Client": federation.PROGRAMME_MIS,
            "X-Kiungo-Client-Token": self.servers.federation.tokens[federation.PROGRAMME_MIS],  # type: ignore[union-attr]
            "X-Road-PDU-Purpose": purpose,
            "X-Road-UserId": "ZZ-officer-7",
            **extra,
        }

    def url(self, service: str, path: str = "") -> str:
        return f"{self.gateway()['base_url']}/r1/{federation.VSR}/{service}{path}"

    def post(self, service: str, body: Any, *, path: str = "", purpose: str = OLD_AGE) -> httpx.Response:
        return httpx.post(self.url(service, path), json=body, headers=self.headers(purpose), timeout=30)

    def get(self, service: str, path: str = "", *, purpose: str = OLD_AGE, **params: Any) -> httpx.Response:
        return httpx.get(self.url(service, path), params=params, headers=self.headers(purpose), timeout=30)

    def eligibility(self, person: dict[str, Any], programme: str = "old-age-grant") -> dict[str, Any]:
        purpose = f"{programme}-eligibility"
        answer = self.post("eligibility", {"programme": programme, "person": person}, purpose=purpose)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def fault(self, system: str, mode: str, **kw: Any) -> None:
        httpx.post(self.servers.base_url(system) + "/_sandbox/fault", json={"mode": mode, **kw}).raise_for_status()

    def operator(self, member: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gateway(member)['operator_token']}"}


@pytest.fixture(scope="package")
def vsr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vsr]:
    country = tmp_path_factory.mktemp("vsr-country")
    known.build_country(country)
    with SandboxServers(country, data_dir=tmp_path_factory.mktemp("vsr-fed")) as servers:
        yield Vsr(servers)


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "vsr" in request.fixturenames:
        running: Vsr = request.getfixturevalue("vsr")
        for system in ("cra", "tax", "ssf", "msp"):
            running.fault(system, "none")
