"""Bodies are not kept by default; with a key (kept outside the database) they are, encrypted."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from gateway.app import listeners
from gateway.exchangelog import ExchangeLog
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.servers import SandboxServers
from tests.gateway.nodes import migrated
from tests.schemas import migrate

TAXPAYER = "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/TIN90000001"


def run_once(sandbox: SandboxServers, data: Path, key_file: Path | None) -> Path:
    config, tokens = federation.gateway_config(sandbox.manifest["systems"], data, policy=False)
    if key_file is not None:
        config["log"] = {"bodies_key_file": str(key_file)}
    sock = bind("127.0.0.1", 0)
    with ServerThread(listeners(migrated(config), client_sock=sock)):
        headers = {
            "X-Road-Client": federation.PROGRAMME_MIS,
            "X-Kiungo-Client-Token": tokens[federation.PROGRAMME_MIS],
            "X-Road-PDU-Purpose": "old-age-grant-eligibility",
        }
        assert httpx.get(base_url(sock) + TAXPAYER, headers=headers).status_code == 200
    return data / "log.sqlite"


def test_bodies_are_not_kept_by_default(sandbox: SandboxServers, tmp_path: Path):
    log_file = run_once(sandbox, tmp_path / "plain", None)
    assert b"Acme Ltd" not in log_file.read_bytes()  # the employer in the answer
    with ExchangeLog.open(migrate(f"sqlite:///{log_file}", "log"), node="", keep_bodies_key=os.urandom(32)) as log:
        assert log.size() == 1
        assert log.body(0, "response") is None  # nothing was kept to decrypt


def test_bodies_can_be_kept_encrypted(sandbox: SandboxServers, tmp_path: Path):
    key_file = tmp_path / "bodies.key"
    key_file.write_bytes(os.urandom(32))
    log_file = run_once(sandbox, tmp_path / "kept", key_file)
    assert b"Acme Ltd" not in log_file.read_bytes()
    with ExchangeLog.open(
        migrate(f"sqlite:///{log_file}", "log"), node="", keep_bodies_key=key_file.read_bytes()
    ) as log:
        body = log.body(0, "response")
        assert body is not None
        assert b"Acme Ltd" in body
