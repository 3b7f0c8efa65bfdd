"""A sandbox federation whose gateways serve the console on loopback, a headless Chromium, and helpers."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import federation
from sandbox.servers import SandboxServers
from tests.sandbox import fixtures_country as known

MSP, TAX, CRA, SSF = "ZZ/GOV/MSP", "ZZ/GOV/TAX", "ZZ/GOV/CRA", "ZZ/GOV/SSF"
CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
INCOMES = "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes"


@dataclass
class Federation:
    servers: SandboxServers

    def gateway(self, member: str) -> dict[str, Any]:
        return self.servers.manifest["federation"]["gateways"][member]  # type: ignore[no-any-return]

    def console(self, member: str = MSP) -> str:
        """The console's address on a member's gateway, without the trailing slash."""
        return str(self.gateway(member)["console"]["url"]).rstrip("/")

    def password(self, role: str, member: str = MSP) -> str:
        return str(self.gateway(member)["console"]["users"][role])

    @property
    def tokens(self) -> dict[str, str]:
        assert self.servers.federation is not None
        return self.servers.federation.tokens

    def operator(self, member: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gateway(member)['operator_token']}"}

    def research(self, subject: str) -> httpx.Response:
        """The poverty study asks the tax authority for a person's incomes, as a client system would."""
        headers = {
            "X-Road-Client": federation.RESEARCH,
            "X-Kiungo-Client-Token": self.tokens[federation.RESEARCH],
            "X-Road-PDU-Purpose": federation.RESEARCH_PURPOSE,
        }
        return httpx.get(
            self.gateway(MSP)["base_url"] + INCOMES, params={"national_id": subject}, headers=headers, timeout=30
        )

    def subjects(self) -> list[str]:
        return federation.consent_subjects(self.servers.country_dir)

    def sign_tree_head(self, member: str) -> None:
        answer = httpx.post(self.gateway(member)["base_url"] + "/api/log/tree-heads", headers=self.operator(member))
        assert answer.status_code == 201, answer.text

    def run_oversight(self, districts: list[str]) -> str:
        """An oversight run of the old-age grant, as the research unit starts one; its job id once done."""
        headers = {
            "X-Road-Client": federation.RESEARCH,
            "X-Kiungo-Client-Token": self.tokens[federation.RESEARCH],
            "X-Road-PDU-Purpose": "oversight-statistics",
        }
        base = f"{self.gateway(MSP)['base_url']}/r1/{federation.VSR}"
        created = httpx.post(
            base + "/oversight",
            json={"programme": "old-age-grant", "districts": districts},
            headers=headers,
            timeout=60,
        )
        assert created.status_code == 202, created.text
        job_id = str(created.json()["job_id"])
        deadline = time.monotonic() + 120
        while httpx.get(f"{base}/bulk/{job_id}", headers=headers, timeout=10).json()["state"] != "done":
            assert time.monotonic() < deadline, "the oversight run did not finish"
            time.sleep(0.2)
        return job_id


@pytest.fixture(scope="package")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    country = tmp_path_factory.mktemp("console-country")
    known.build_country(country)
    with SandboxServers(country, data_dir=tmp_path_factory.mktemp("console-fed")) as servers:
        running = Federation(servers)
        # some exchanges to look at: answered, refused for each consent reason, and the registry's look-ups
        for subject in running.subjects():
            running.research(subject)
        yield running


@pytest.fixture(scope="package")
def oversight_job(fed: Federation) -> str:
    return fed.run_oversight(["D01", "D02"])


class ConsoleClient:
    """A signed-in console session over plain HTTP (no browser), for the server-side checks."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(follow_redirects=False, timeout=30)

    def sign_in(self, user: str, password: str) -> httpx.Response:
        form = self.http.get(self.base + "/sign-in")
        return self.http.post(
            self.base + "/sign-in",
            data={"csrf": csrf_of(form.text), "username": user, "password": password, "next": "/console/"},
        )

    def csrf(self, path: str = "/") -> str:
        return csrf_of(self.http.get(self.base + path).text)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.base + path, **kw)

    def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        body = {"csrf": self.csrf()} | data if csrf else data
        return self.http.post(self.base + path, data=body)

    def close(self) -> None:
        self.http.close()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def as_role(fed: Federation) -> Iterator[Any]:
    """`as_role("dpo", TAX)`: a ConsoleClient signed in as that sandbox user on that member's gateway."""
    made: list[ConsoleClient] = []

    def open_as(role: str, member: str = MSP) -> ConsoleClient:
        client = ConsoleClient(fed.console(member))
        answer = client.sign_in(role, fed.password(role, member))
        assert answer.status_code == 303, answer.text
        made.append(client)
        return client

    yield open_as
    for client in made:
        client.close()
