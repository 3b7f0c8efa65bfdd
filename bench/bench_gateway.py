"""The cost of the gateway: the same calls straight to an agency system, through one gateway, and through two.

Agency systems, gateway and load generator (wrk) each run in their own process, as they would on
separate machines; all share this machine's two cores, so the figures are for comparison in one run.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import tomli_w
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.stats import median
from gateway.authority import create_authority_app
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.demo import PURPOSE, soap_request
from sandbox.generator import generate

ROUNDS = 3
SECONDS = 5
KIUNGO = str(Path(sys.executable).with_name("kiungo"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def plain_soap(nid: str) -> bytes:
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:cra="urn:zz:cra:civreg:1"><soapenv:Body><cra:GetPersonByNationalId>'
        f"<cra:nationalId>{nid}</cra:nationalId></cra:GetPersonByNationalId></soapenv:Body></soapenv:Envelope>"
    ).encode()


def main() -> None:
    console = Console(width=160)
    if not wrk.available():
        console.print("[yellow]bench_gateway skipped: wrk is not installed (apt-get install wrk)[/yellow]")
        return
    with tempfile.TemporaryDirectory(prefix="kiungo-bench-") as tmp:
        root = Path(tmp)
        country = root / "country"
        generate(people=20_000, seed=11, out=country, progress=False)
        tin = sqlite3.connect(country / "tax.sqlite").execute("SELECT tin FROM taxpayer LIMIT 1").fetchone()[0]
        nid = (
            sqlite3.connect(country / "cra.sqlite")
            .execute("SELECT national_id FROM person WHERE national_id IS NOT NULL LIMIT 1")
            .fetchone()[0]
        )
        with process(KIUNGO, "sandbox", "serve", "--dir", str(country), "--gateway", "none"):
            manifest_path = country / "sandbox.json"
            deadline = time.monotonic() + 30
            while not manifest_path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            systems = json.loads(manifest_path.read_text())["systems"]
            single, tokens = federation.gateway_config(systems, root / "gateway", port=free_port())
            (root / "gateway.toml").write_text(tomli_w.dumps(single))
            authority_sock = bind("127.0.0.1", 0)
            plan = federation.plan_federation(
                systems,
                root / "federation",
                host="127.0.0.1",
                client_ports={code: free_port() for code in federation.MEMBERS},
                peer_ports={code: free_port() for code in federation.MEMBERS},
                authority_url=base_url(authority_sock),
            )
            for code in ("msp", "tax", "cra"):
                plan.configs[code]["federation"]["revocation_cache_seconds"] = 60  # production-like
                (root / f"{code}.toml").write_text(tomli_w.dumps(plan.configs[code]))
            authority = {"authority": (create_authority_app(plan.ca, plan.directory_file), authority_sock)}
            with (
                ServerThread(authority, name="authority"),
                process(KIUNGO, "gateway", "serve", "-c", str(root / "gateway.toml")),
                process(KIUNGO, "gateway", "serve", "-c", str(root / "msp.toml")),
                process(KIUNGO, "gateway", "serve", "-c", str(root / "tax.toml")),
                process(KIUNGO, "gateway", "serve", "-c", str(root / "cra.toml")),
            ):
                gw = f"http://127.0.0.1:{single['server']['port']}"
                msp = f"http://127.0.0.1:{plan.configs['msp']['server']['port']}"
                for url in (gw, msp, f"http://127.0.0.1:{plan.configs['tax']['server']['port']}"):
                    wait_for(url + "/health")
                client = federation.PROGRAMME_MIS
                auth = {"X-Road-Client": client, "X-Kiungo-Client-Token": tokens[client], "X-Road-PDU-Purpose": PURPOSE}
                fed_auth = auth | {"X-Kiungo-Client-Token": plan.tokens[client]}
                soap_headers = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": tokens[client]}
                fed_soap_headers = soap_headers | {"X-Kiungo-Client-Token": plan.tokens[client]}
                taxpayer = f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/{tin}"
                envelope = soap_request(nid, client, message_id=wrk.UNIQUE)
                cases: list[tuple[str, str, str, dict[str, str], bytes | None]] = [
                    ("REST direct", "GET", systems["tax"]["base_url"] + f"/v1/taxpayers/{tin}", {}, None),
                    ("REST via gateway", "GET", gw + taxpayer, auth, None),
                    ("REST via two gateways", "GET", msp + taxpayer, fed_auth, None),
                    ("SOAP direct", "POST", systems["cra"]["endpoint"], {"Content-Type": "text/xml"}, plain_soap(nid)),
                    ("SOAP via gateway", "POST", gw + "/", soap_headers, envelope),
                    ("SOAP via two gateways", "POST", msp + "/", fed_soap_headers, envelope),
                ]
                loaded: dict[str, list[wrk.Load]] = {name: [] for name, *_ in cases}
                single_conn: dict[str, list[wrk.Load]] = {name: [] for name, *_ in cases}
                for _, method, url, headers, body in cases:  # warm-up: pools, caches, WSDL, CRL
                    wrk.run(url, headers=headers, method=method, body=body, seconds=1)
                for _ in range(ROUNDS):  # interleaved, so drift hits every case alike
                    for name, method, url, headers, body in cases:
                        loaded[name].append(wrk.run(url, headers=headers, method=method, body=body, seconds=SECONDS))
                        single_conn[name].append(
                            wrk.run(url, headers=headers, method=method, body=body, seconds=3, connections=1, threads=1)
                        )
    report(console, loaded, single_conn)


def report(console: Console, loaded: dict[str, list[wrk.Load]], single: dict[str, list[wrk.Load]]) -> None:
    title = (
        f"Gateways: medians of {ROUNDS} interleaved wrk runs per path (throughput: 16 connections, "
        f"{SECONDS} s; latency: 1 connection, 3 s); 20,000-person country; {os.cpu_count()} cores shared by the "
        "agency systems, five gateway processes and wrk. Two gateways: mutual TLS, ES256 signatures both ways, "
        "replay guard, CRL checks, one SQLite monitoring commit per side"
    )
    table = Table(
        "path",
        "req/s (c16)",
        "× direct",
        "p50 ms (c1)",
        "p99 ms (c1)",
        "+ p50 ms",
        "p50 ms (c16)",
        "p99 ms (c16)",
        "non-2xx",
        title=title,
    )
    for name in loaded:
        base = name.split()[0] + " direct"
        rps = median([x.rps for x in loaded[name]])
        p50 = median([x.p50_ms for x in single[name]])
        table.add_row(
            name,
            f"{rps:,.0f}",
            f"{rps / median([x.rps for x in loaded[base]]):.2f}",
            f"{p50:.2f}",
            f"{median([x.p99_ms for x in single[name]]):.2f}",
            f"{p50 - median([x.p50_ms for x in single[base]]):+.2f}",
            f"{median([x.p50_ms for x in loaded[name]]):.2f}",
            f"{median([x.p99_ms for x in loaded[name]]):.2f}",
            str(sum(x.bad for x in loaded[name] + single[name])),
        )
    console.print(table)


if __name__ == "__main__":
    main()
