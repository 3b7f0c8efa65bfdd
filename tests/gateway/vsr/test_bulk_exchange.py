"""Bulk decisions through the federation: a list, a district, and a gateway restart in the middle."""

from __future__ import annotations

import copy
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from gateway.app import listeners
from gateway.server import ServerThread
from sandbox import federation
from tests.gateway.nodes import migrated
from tests.gateway.vsr.conftest import OLD_AGE, Vsr


def _ids(vsr: Vsr, count: int) -> list[str]:
    conn = sqlite3.connect(vsr.servers.country_dir / "cra.sqlite")
    try:
        rows = conn.execute(
            "SELECT national_id FROM person WHERE national_id IS NOT NULL ORDER BY national_id LIMIT ?", (count,)
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def _wait(get: Any, job_id: str, *, until: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = get(job_id)
        if until(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"bulk job {job_id} did not get there in {timeout} s")


def _results(vsr: Vsr, base: str, job_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{base}/r1/{federation.VSR}/bulk/{job_id}/results", headers=vsr.headers(), params={"after": 0}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in answer.text.splitlines()]


def test_a_list_of_people(vsr: Vsr) -> None:
    people = [{"national_id": nid} for nid in _ids(vsr, 40)] + [{"surname": "Nobody", "birth_year": 1901}]
    created = vsr.post("bulk", {"programme": "old-age-grant", "people": people})
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["total"] == 41
    assert job["params"]["programme"] == "old-age-grant"

    def status(job_id: str) -> dict[str, Any]:
        return vsr.get("bulk", f"/{job_id}").json()  # type: ignore[no-any-return]

    final = _wait(status, job["job_id"], until=lambda s: s["state"] == "done")
    assert final["done"] == 41
    lines = _results(vsr, vsr.gateway()["base_url"], job["job_id"])
    assert lines[-1]["type"] == "end"
    results = lines[:-1]
    assert sorted(r["index"] for r in results) == list(range(41))
    assert [r["seq"] for r in results] == list(range(1, 42))
    outcomes = {r["result"]["outcome"] for r in results}
    assert outcomes <= {"eligible", "not_eligible", "undetermined"}
    assert "not_eligible" in outcomes
    nobody = next(r for r in results if r["index"] == 40)["result"]
    assert nobody["identity"]["status"] == "not_found"
    assert nobody["outcome"] == "undetermined"
    # the cursor: reading on from seq 30 gives the rest only
    rest = httpx.get(
        vsr.url("bulk", f"/{job['job_id']}/results"), headers=vsr.headers(), params={"after": 30}, timeout=30
    )
    assert [json.loads(x)["seq"] for x in rest.text.splitlines()[:-1]] == list(range(31, 42))


def test_everyone_in_a_district(vsr: Vsr) -> None:
    conn = sqlite3.connect(vsr.servers.country_dir / "cra.sqlite")
    try:
        district, count = conn.execute(
            "SELECT district_code, COUNT(*) FROM person WHERE death_date IS NULL "
            "GROUP BY district_code ORDER BY COUNT(*) LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    created = vsr.post("bulk", {"programme": "old-age-grant", "district": district})
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["total"] == count
    assert job["params"]["district"] == district


def test_bulk_errors_are_clear(vsr: Vsr) -> None:
    neither = vsr.post("bulk", {"programme": "old-age-grant"})
    assert neither.status_code == 400
    assert neither.json()["title"] == "give either people (a list of person queries) or a district"
    purpose = vsr.post("bulk", {"programme": "child-grant", "people": [{"national_id": "9000000001"}]})
    assert purpose.status_code == 400
    assert purpose.json()["title"] == "bulk decisions for 'child-grant' need the purpose 'child-grant-eligibility'"
    unknown = vsr.get("bulk", "/no-such-job")
    assert unknown.status_code == 404
    assert unknown.json()["title"] == "no bulk job 'no-such-job'"


@pytest.fixture
def ministry(vsr: Vsr, tmp_path: Path) -> dict[str, Any]:
    """A second instance of the ministry's gateway (same member, same keys), with its own data and jobs."""
    assert vsr.servers.federation is not None
    config = copy.deepcopy(vsr.servers.federation.configs["msp"])
    config["server"]["port"] = 0
    config["federation"]["port"] = 0
    config["data_dir"] = str(tmp_path / "msp2")
    config["vsr"]["jobs_url"] = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    config["vsr"]["bulk_concurrency"] = 2
    return config


def _start(config: dict[str, Any]) -> tuple[ServerThread, str]:
    nodes = listeners(migrated(config))
    thread = ServerThread({"gateway": nodes["gateway"], "peers": nodes["peers"]}, name="ministry-2")
    thread.start()
    sock = nodes["gateway"].sock
    return thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_bulk_job_resumes_after_the_gateway_restarts(vsr: Vsr, ministry: dict[str, Any]) -> None:
    people = [{"national_id": nid} for nid in _ids(vsr, 30)]
    vsr.fault("tax", "delay", seconds=0.2)  # slow enough to stop the gateway half-way
    thread, base = _start(ministry)
    headers = vsr.headers(OLD_AGE)

    def status(job_id: str) -> dict[str, Any]:
        return httpx.get(f"{base}/r1/{federation.VSR}/bulk/{job_id}", headers=headers, timeout=10).json()  # type: ignore[no-any-return]

    try:
        created = httpx.post(
            f"{base}/r1/{federation.VSR}/bulk",
            json={"programme": "old-age-grant", "people": people},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        _wait(status, job_id, until=lambda s: s["done"] >= 5)
    finally:
        thread.stop()
    vsr.fault("tax", "none")
    thread, base = _start(ministry)  # a new process would do the same: the job is resumed at start
    try:
        final = _wait(status, job_id, until=lambda s: s["state"] == "done")
        assert final["done"] == 30
        results = _results(vsr, base, job_id)[:-1]
    finally:
        thread.stop()
    indices = [r["index"] for r in results]
    assert sorted(indices) == list(range(30)), "every person decided exactly once"
    assert [r["seq"] for r in results] == list(range(1, 31))


def test_results_in_bounded_pages(vsr: Vsr) -> None:
    people = [{"national_id": nid} for nid in _ids(vsr, 12)]
    job = vsr.post("bulk", {"programme": "old-age-grant", "people": people}).json()

    def status(job_id: str) -> dict[str, Any]:
        return vsr.get("bulk", f"/{job_id}").json()  # type: ignore[no-any-return]

    _wait(status, job["job_id"], until=lambda s: s["state"] == "done")
    first = vsr.get("bulk", f"/{job['job_id']}/results", after=0, limit=5).text.splitlines()
    assert [json.loads(x)["seq"] for x in first] == [1, 2, 3, 4, 5]
    last = vsr.get("bulk", f"/{job['job_id']}/results", after=10, limit=5).text.splitlines()
    assert [json.loads(x).get("seq") for x in last] == [11, 12, None]
    assert json.loads(last[-1])["type"] == "end"
    beyond = vsr.get("bulk", f"/{job['job_id']}/results", after=99, limit=5)
    assert beyond.status_code == 400
    assert beyond.json()["title"] == f"invalid cursor 99 for bulk job '{job['job_id']}' (0 to 12)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_bulk_job_resumes_after_the_gateway_is_killed(vsr: Vsr, ministry: dict[str, Any], tmp_path: Path) -> None:
    """SIGKILL, not a graceful stop: whatever was committed stays, the rest is decided after the restart."""
    ministry["vsr"]["batch_size"] = 0  # one person per exchange, so the job takes a few seconds
    ministry["server"]["port"] = _free_port()
    ministry["federation"]["port"] = _free_port()
    config = tmp_path / "msp2.toml"
    config.write_text(tomli_w.dumps(ministry))
    kiungo = str(Path(sys.executable).with_name("kiungo"))
    subprocess.run([kiungo, "db", "upgrade", "-c", str(config)], check=True, capture_output=True)
    base = f"http://127.0.0.1:{ministry['server']['port']}"
    headers = vsr.headers(OLD_AGE)

    def serve() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [kiungo, "gateway", "serve", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.kill()
        raise AssertionError("the ministry's gateway did not start")

    def status(job_id: str) -> dict[str, Any]:
        return httpx.get(f"{base}/r1/{federation.VSR}/bulk/{job_id}", headers=headers, timeout=10).json()  # type: ignore[no-any-return]

    people = [{"national_id": nid} for nid in _ids(vsr, 30)]
    vsr.fault("ssf", "delay", seconds=0.2)
    proc = serve()
    try:
        created = httpx.post(
            f"{base}/r1/{federation.VSR}/bulk",
            json={"programme": "old-age-grant", "people": people},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        killed_at = _wait(status, job_id, until=lambda s: s["done"] >= 5)["done"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        vsr.fault("ssf", "none")
        proc = serve()
        final = _wait(status, job_id, until=lambda s: s["state"] == "done")
        results = _results(vsr, base, job_id)[:-1]
    finally:
        vsr.fault("ssf", "none")
        proc.terminate()
        proc.wait(20)
    assert killed_at < 30
    assert final["done"] == 30
    assert sorted(r["index"] for r in results) == list(range(30)), "every person decided exactly once"
    assert [r["seq"] for r in results] == list(range(1, 31))
