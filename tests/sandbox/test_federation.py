"""`kiungo sandbox serve` puts a gateway in front of the systems and says how to reach it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from connectors import Router
from sandbox import federation
from sandbox.servers import CONNECTORS_FILE, MANIFEST_FILE, SandboxServers
from tests.sandbox import fixtures_country as known


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fed-country")
    known.build_country(out, people=500)
    return out


def test_sandbox_json_lists_the_gateway_and_a_client_can_use_it(country: Path, tmp_path: Path):
    manifest_path = tmp_path / MANIFEST_FILE
    with SandboxServers(country, manifest_path=manifest_path, data_dir=tmp_path / "gw", gateway="single"):
        written = json.loads(manifest_path.read_text())
        gw = written["gateway"]
        assert gw["instance"] == "ZZ"
        assert "ZZ/GOV/CRA" in gw["members"]
        assert "ZZ/GOV/CRA/civreg" in gw["subsystems"]
        assert "ZZ/GOV/TAX/taxreg/taxpayers" in gw["services"]
        token = gw["clients"][federation.PROGRAMME_MIS]["token"]
        r = httpx.get(
            gw["base_url"] + "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/TIN90000001",
            headers={
                "X-Road-Client": federation.PROGRAMME_MIS,
                "X-Kiungo-Client-Token": token,
                "X-Road-PDU-Purpose": "old-age-grant-eligibility",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["tin"] == "TIN90000001"
        assert (tmp_path / CONNECTORS_FILE).exists()
        health = httpx.get(gw["base_url"] + "/health").json()
        assert health["services"] == len(gw["services"])
    assert not manifest_path.exists()
    assert not (tmp_path / CONNECTORS_FILE).exists()


@pytest.mark.anyio
async def test_the_written_connector_configuration_works(country: Path, tmp_path: Path):
    manifest_path = tmp_path / MANIFEST_FILE
    with SandboxServers(country, manifest_path=manifest_path, gateway="none"):
        async with Router.from_file(tmp_path / CONNECTORS_FILE) as router:
            person = await router.call("getPersonByNationalId", {"nationalId": "9000000001"})
            pension = await router.call("getPension", {"ssn": "SSN900000002"})
    assert person.data["person"]["givenName"] == "Amina"
    assert pension.data["pension"]["monthly_amount"] == 3500
