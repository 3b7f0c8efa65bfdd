"""The disk under a node's SQLite files fills up: no log record, no exchange, and the log still verifies.

The node runs as `kiungo gateway serve`, as in production. "Full" is its file-size limit (RLIMIT_FSIZE)
lowered from this process with prlimit(2): every write beyond the first byte of any file then fails
with EFBIG (Python ignores SIGXFSZ), as writes fail with ENOSPC on a full disk. Raising the limit again
is the operator freeing space. Operational monitoring (also SQLite here) drops its records meanwhile.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
import tomli_w

from gateway.exchangelog import ExchangeLog
from gateway.server import bind
from sandbox import federation
from sandbox.demo import soap_request
from sandbox.servers import SandboxServers
from tests.gateway.faults.conftest import BREAKER, NATIONAL_ID, TAXPAYER, without_hosted_services
from tests.gateway.faults.harness import PURPOSE, assert_rest_error, assert_soap_fault, wait_until, within
from tests.gateway.nodes import migrated

KIUNGO = str(Path(sys.executable).with_name("kiungo"))
LOGGING_FAILED = ("Server.ServerProxy.LoggingFailed", "could not be written to the exchange log, so it is refused")
pytestmark = pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit(2) (Linux)")


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    url: str
    tokens: dict[str, str]
    data_dir: Path
    output: list[bytes]

    def ask(self) -> httpx.Response:
        headers = {
            "X-Road-Client": federation.PROGRAMME_MIS,
            "X-Kiungo-Client-Token": self.tokens[federation.PROGRAMME_MIS],
            "X-Road-PDU-Purpose": PURPOSE,
        }
        return httpx.get(self.url + TAXPAYER, headers=headers, timeout=30)

    def soap(self) -> httpx.Response:
        headers = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": self.tokens[federation.PROGRAMME_MIS]}
        envelope = soap_request(NATIONAL_ID, federation.PROGRAMME_MIS)
        return httpx.post(self.url + "/", content=envelope, headers=headers, timeout=30)

    def disk(self, *, full: bool) -> None:
        """Fill the disk (writes past the first byte of any file fail) or free it."""
        soft = 1 if full else resource.RLIM_INFINITY
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))

    def metric(self, name: str) -> float:
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    """Read the node's output from a pipe (a pipe is not a file: the size limit does not touch it)."""
    for line in stream:
        into.append(line)


@pytest.fixture(scope="module")
def node(sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    root = tmp_path_factory.mktemp("disk-full")
    config, tokens = federation.gateway_config(sandbox.manifest["systems"], root / "data", policy=False)
    without_hosted_services(config)
    config.pop("console", None)
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()
    config["server"] |= {"port": port, "provider_timeout": 2.0}
    config["state"] = dict(BREAKER)
    migrated(config)  # `kiungo db upgrade`, before the disk is anything but fine
    path = root / "node.toml"
    path.write_text(tomli_w.dumps(config))
    proc = subprocess.Popen(
        [KIUNGO, "gateway", "serve", "-c", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    output: list[bytes] = []
    threading.Thread(target=_drain, args=(proc.stdout, output), daemon=True).start()
    running = Process(proc, f"http://127.0.0.1:{port}", tokens, root / "data", output)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(running.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the node did not start: " + b"".join(output).decode(errors="replace")[-2000:])
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            running.disk(full=False)
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_full_disk_refuses_exchanges_then_the_log_verifies(node: Process) -> None:
    served = node.ask()
    assert served.status_code == 200, served.text
    node.disk(full=True)
    try:
        with within(2.0):
            refused = node.ask()
        assert_rest_error(refused, 500, *LOGGING_FAILED)
        assert "TIN90000001" not in refused.text, "no answer leaves without its log record"
        assert_soap_fault(node.soap(), *LOGGING_FAILED)
        assert httpx.get(node.url + "/health", timeout=5).status_code == 200, "the node itself keeps answering"
    finally:
        node.disk(full=False)
    assert node.metric("kiungo_log_failures_total") >= 2
    wait_until(lambda: node.ask().status_code == 200, 5, "exchanges succeed once there is space again")
    after = node.ask()
    assert after.status_code == 200
    assert node.metric("kiungo_exchanges_in_flight") == 0
    node.proc.terminate()  # graceful: the last tree head is signed, the log closed
    assert node.proc.wait(20) == 0, b"".join(node.output).decode(errors="replace")[-2000:]
    with ExchangeLog.open(f"sqlite:///{node.data_dir / 'log.sqlite'}", node="") as log:
        report = log.verify()
        logged = {record.exchange_id for _, record in log.search(limit=100_000)}
    assert report.ok, report
    assert {served.headers["X-Road-Id"], after.headers["X-Road-Id"]} <= logged
    assert refused.json()["detail"] not in logged
