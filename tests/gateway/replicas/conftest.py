"""Two replicas of the tax authority's gateway behind one address, sharing PostgreSQL and Redis.

The federation is the sandbox's; the directory is republished so the tax authority's gateway address
is the balancer's. Each replica keeps its own exchange log (its own PostgreSQL database); consent,
monitoring and the fast state (replay nonces, rate limits, circuit breakers) are shared.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import listeners
from gateway.server import ServerThread, base_url
from sandbox import federation
from sandbox.servers import SandboxServers
from tests.gateway.federation_setup import MSP, TAX, Fed
from tests.gateway.nodes import migrated
from tests.gateway.replicas.balancer import Balancer, free_socket
from tests.postgres import database, require_postgres
from tests.sandbox import fixtures_country as known

REDIS = "redis://127.0.0.1:6379/0"
IN_CI = os.environ.get("CI", "").lower() == "true"
RATE_PURPOSE = "replica-rate-test"
CACHE_PURPOSE = "replica-cache-test"
CACHE_AGREEMENT = f"""
id = "DSA-TAX-RPL-002"
version = 1
title = "Taxpayer look-ups whose answers may be reused for a minute (replica test)"
provider = "ZZ/GOV/TAX"
clients = ["ZZ/GOV/MSP/programme-mis"]
purposes = ["{CACHE_PURPOSE}"]
lawful_basis = "public-task"
legal_reference = "Replica test regulation (sandbox)"
data_categories = ["income"]
valid_from = "2026-01-01"
valid_until = "2030-12-31"
cache_seconds = 60

[[services]]
service = "ZZ/GOV/TAX/taxreg/taxpayers"
methods = ["GET"]
paths = ["/v1/taxpayers/*"]
fields = ["tin", "surname"]
"""
RATE_AGREEMENT = f"""
id = "DSA-TAX-RPL-001"
version = 1
title = "Taxpayer look-ups at a bounded rate (replica test)"
provider = "ZZ/GOV/TAX"
clients = ["ZZ/GOV/MSP/programme-mis"]
purposes = ["{RATE_PURPOSE}"]
lawful_basis = "public-task"
legal_reference = "Replica test regulation (sandbox)"
data_categories = ["income"]
valid_from = "2026-01-01"
valid_until = "2030-12-31"
rate_limit = "4/minute"

[[services]]
service = "ZZ/GOV/TAX/taxreg/taxpayers"
methods = ["GET"]
paths = ["/v1/taxpayers/*"]
fields = ["tin", "surname"]
"""


def require_redis() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return
    except OSError:
        pass
    if IN_CI:
        pytest.fail("Redis is required in CI but 127.0.0.1:6379 is unreachable")
    pytest.skip("Redis not reachable on 127.0.0.1:6379: the replica tests need it")


@dataclass
class Replica:
    name: str
    config: dict[str, Any]
    client_sock: socket.socket
    peer_sock: socket.socket
    thread: ServerThread | None = None

    @property
    def url(self) -> str:
        return base_url(self.client_sock)

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_sock.getsockname()[1]}"

    @property
    def peer_port(self) -> int:
        return int(self.peer_sock.getsockname()[1])

    def start(self) -> None:
        nodes = listeners(migrated(self.config), client_sock=self.client_sock, peer_sock=self.peer_sock)
        self.thread = ServerThread(nodes, name=f"tax-{self.name}")
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


@dataclass
class Replicas:
    fed: Fed
    a: Replica
    b: Replica
    balancer: Balancer
    databases: dict[str, str]
    prefix: str

    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.fed.plan.tokens['operator']}"}

    def ask(self, path: str, purpose: str, client: str = federation.PROGRAMME_MIS, **params: Any) -> httpx.Response:
        """An exchange as the programme MIS (or the research unit) makes it, through the ministry's gateway."""
        headers = {
            "X-Road-Client": client,
            "X-Kiungo-Client-Token": self.fed.plan.tokens[client],
            "X-Road-PDU-Purpose": purpose,
        }
        url = self.fed.gateway(MSP)["base_url"] + "/r1/ZZ/GOV/TAX/taxreg/taxpayers" + path
        return httpx.get(url, params=params, headers=headers, timeout=20)

    def pin(self, replica: Replica | None, *, cut: bool = True) -> None:
        """New connections go to this replica (None: round robin); open ones are cut unless told not to."""
        self.balancer.only = None if replica is None else (0 if replica is self.a else 1)
        if cut:
            self.balancer.cut()


@pytest.fixture(scope="package")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    require_postgres()
    require_redis()
    tag = uuid.uuid4().hex[:8]
    prefix = f"kiungo-test-{tag}"
    country = tmp_path_factory.mktemp("replica-country")
    known.build_country(country, people=300)
    agreements = tmp_path_factory.mktemp("replica-agreements")
    (agreements / "DSA-TAX-RPL-001.toml").write_text(RATE_AGREEMENT)
    (agreements / "DSA-TAX-RPL-002.toml").write_text(CACHE_AGREEMENT)
    servers = SandboxServers(country, data_dir=tmp_path_factory.mktemp("replica-fed"))
    made: list[Replica] = []
    with contextlib.ExitStack() as stack:
        databases = {key: stack.enter_context(database(f"rep_{key}")) for key in ("state", "log_a", "log_b")}
        stack.callback(_forget, prefix)
        stack.callback(servers.stop)
        stack.callback(_stop_all, made)
        servers.start()
        fed = Fed(servers)
        for name in ("a", "b"):
            config = copy.deepcopy(fed.plan.configs["tax"])
            config["data_dir"] = str(tmp_path_factory.mktemp(f"replica-{name}"))
            # one member, one secret: keyed subject hashes must agree across replicas (consent, logs)
            config["subject_secret_file"] = str(Path(fed.plan.configs["tax"]["data_dir"]) / "subject.secret")
            config["state"] = {
                "url": databases["state"],
                "redis_url": REDIS,
                "redis_prefix": prefix,
                "breaker_failures": 3,
                "breaker_reset_seconds": 60,
            }
            config["log"] = dict(config["log"], url=databases[f"log_{name}"])
            config["policy"] = {"agreements": [*config["policy"]["agreements"], str(agreements)]}
            config.pop("consent", None)  # consent records live in the shared database
            made.append(Replica(name, config, free_socket(), free_socket()))
        for replica in made:
            replica.start()
        a, b = made
        with Balancer([("127.0.0.1", a.peer_port), ("127.0.0.1", b.peer_port)]) as balancer:

            def behind_balancer(content: dict[str, Any]) -> None:
                content["members"][TAX]["gateway"]["address"] = f"https://127.0.0.1:{balancer.port}"

            fed.republish(behind_balancer)
            for replica in made:
                httpx.post(
                    replica.url + "/api/operator/directory/refresh",
                    headers={"Authorization": f"Bearer {fed.plan.tokens['operator']}"},
                ).raise_for_status()
            yield Replicas(fed, a, b, balancer, databases, prefix)


def _stop_all(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.stop()


def _forget(prefix: str) -> None:
    """The test's keys out of the shared Redis."""
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
