"""What the fault tests share: the sandbox's agency systems, and a small federation of our own.

The federation (CA, authority, time-stamp authority, keys and settings of the four members) is planned
here rather than taken from the `fed` fixture, so that each test starts just the gateways it needs,
with short breaker and timeout settings, and breaks what it likes without disturbing other tests.
Every outside service a gateway reaches in it (CRL, OCSP, directory, TSA) sits behind its own
`FaultyTcp`, so a test can take exactly one of them down.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.authority import create_authority_app
from gateway.exchangelog import create_tsa_app
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.federation import FederationPlan
from sandbox.servers import SandboxServers
from tests.gateway.faults.harness import FaultyTcp, RunningNode, fault, running

MSP, TAX, CRA = "ZZ/GOV/MSP", "ZZ/GOV/TAX", "ZZ/GOV/CRA"
TIN = "TIN90000001"
NATIONAL_ID = "9000000001"
TAXPAYER = f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/{TIN}"
#: Short breaker settings for every node of these tests: two failures open a circuit for one second.
BREAKER = {"breaker_failures": 2, "breaker_reset_seconds": 1.0}
_HOSTED = ("vsr", "events")  # services run inside a node; not what these tests are about, and slow to start


def without_hosted_services(config: dict[str, Any]) -> dict[str, Any]:
    """A node's settings without the virtual registry and the event service it would host."""
    for section in _HOSTED:
        config.pop(section, None)
    config["services"] = {k: v for k, v in config["services"].items() if v["system"] not in _HOSTED}
    hosted = (federation.VSR, federation.EVENTS)
    config["subsystems"] = {k: v for k, v in config["subsystems"].items() if k not in hosted}
    return config


@pytest.fixture(autouse=True)
def _healthy_systems(sandbox: SandboxServers) -> Iterator[None]:
    """Whatever a test broke in the agency systems is mended before the next one."""
    yield
    for system in ("cra", "tax", "ssf", "msp"):
        fault(sandbox.base_url(system), "none")


@pytest.fixture(scope="package")
def systems(sandbox: SandboxServers) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.manifest["systems"]
    return found


@dataclass
class MiniFed:
    """A federation on the sandbox's agency systems whose gateways the tests start one by one."""

    plan: FederationPlan
    root: Path
    sandbox: SandboxServers
    crl: FaultyTcp
    ocsp: FaultyTcp
    directory: FaultyTcp
    tsa: FaultyTcp
    addresses: dict[str, str] = field(default_factory=dict)  # member -> the address the directory lists
    serial: int = 1
    started: int = 0

    @property
    def tokens(self) -> dict[str, str]:
        return self.plan.tokens

    def config(self, code: str, **sections: dict[str, Any]) -> dict[str, Any]:
        """The member's node settings with a data directory of its own and the given sections merged in."""
        config = without_hosted_services(copy.deepcopy(self.plan.configs[code]))
        self.started += 1
        config["data_dir"] = str(self.root / "nodes" / f"{code}-{self.started}")
        config["state"] = dict(BREAKER)
        config["federation"]["refresh_seconds"] = 3600  # the tests refresh directories when they mean to
        for name, values in sections.items():
            config[name] = {**config.get(name, {}), **values}
        return config

    def publish(
        self, change: Callable[[dict[str, Any]], None] | None = None, *, valid_for: dt.timedelta | None = None
    ) -> None:
        """Sign and publish a directory with the current gateway addresses (a new serial each time)."""
        content = copy.deepcopy(self.plan.content)
        self.serial = max(self.serial, int(content.get("serial", 1))) + 1
        content["serial"] = self.serial
        for member, address in self.addresses.items():
            content["members"][member]["gateway"]["address"] = address
        content["crl_url"] = self.crl.url() + "/crl"
        content["ocsp_url"] = self.ocsp.url() + "/ocsp"
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        content["issued_at"] = now.isoformat().replace("+00:00", "Z")
        content["expires_at"] = (now + (valid_for or dt.timedelta(days=1))).isoformat().replace("+00:00", "Z")
        if change is not None:
            change(content)
        self.plan.publish(content)

    @contextmanager
    def node(self, code: str, config: dict[str, Any] | None = None, *, listed: bool = True) -> Iterator[RunningNode]:
        """Start the member's gateway; `listed`: the directory lists its peer listener as the member's address."""
        config = config if config is not None else self.config(code)
        member = config["federation"]["member"]
        with running(config, f"{code}-node", self.tokens) as node:
            if listed:
                assert node.peer_url is not None
                self.addresses[member] = node.peer_url
                self.publish()
            yield node


@pytest.fixture(scope="package")
def mini(sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniFed]:
    root = tmp_path_factory.mktemp("faults-fed")
    authority_sock, tsa_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0)
    authority = base_url(authority_sock)
    with (
        FaultyTcp(authority_sock.getsockname()[:2], name="crl") as crl,
        FaultyTcp(authority_sock.getsockname()[:2], name="ocsp") as ocsp,
        FaultyTcp(authority_sock.getsockname()[:2], name="directory") as directory,
        FaultyTcp(tsa_sock.getsockname()[:2], name="tsa") as tsa,
    ):
        nowhere = {code: 9 for code in federation.MEMBERS}  # the discard port: replaced as gateways start
        plan = federation.plan_federation(
            sandbox.manifest["systems"],
            root / "federation",
            host="127.0.0.1",
            client_ports=nowhere,
            peer_ports=nowhere,
            authority_url=authority,
            tsa_url=tsa.url() + "/",
        )
        apps = {
            "authority": (create_authority_app(plan.ca, plan.directory_file), authority_sock),
            "tsa": (create_tsa_app(plan.tsa_key, plan.tsa_cert_pem), tsa_sock),
        }
        with ServerThread(apps, name="faults-authority"):
            mini = MiniFed(plan, root, sandbox, crl, ocsp, directory, tsa)
            mini.publish()
            yield mini


@pytest.fixture(autouse=True)
def _mended_outside_services(request: pytest.FixtureRequest) -> Iterator[None]:
    """The authority's services come back after each test that used the federation."""
    yield
    if "mini" in request.fixturenames:
        mini: MiniFed = request.getfixturevalue("mini")
        for proxy in (mini.crl, mini.ocsp, mini.directory, mini.tsa):
            proxy.set("forward")
