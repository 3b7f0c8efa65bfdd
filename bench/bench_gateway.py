"""The cost of the gateway: the same calls straight to an agency system, through one gateway, and through two.

Agency systems, gateway and load generator (wrk) each run in their own process, as they would on
separate machines; all share this machine's cores, so throughput and latency are for comparison in
one run. The CPU each process spends per exchange (from /proc, over the loaded runs) is the figure
that transfers to a gateway on a machine of its own: 1000 / (CPU ms per exchange) exchanges per
second per core.
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import tomli_w
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.stats import cpu_ms, machine_busy_ms, median, own_ms
from gateway.authority import create_authority_app
from gateway.server import ServerThread, base_url, bind
from sandbox import federation
from sandbox.demo import PURPOSE, soap_request
from sandbox.generator import generate

#: Issue #11's goals for a gateway pair: exchanges per second, and milliseconds added to the median exchange.
GOAL_RPS, GOAL_ADDED_P50_MS = 500, 5.0
ROUNDS = int(os.environ.get("ROUNDS", "3"))  # ROUNDS=1 SECONDS=2 for a quick look while iterating
SECONDS = int(os.environ.get("SECONDS", "5"))
LATENCY_SECONDS = max(1, min(3, SECONDS))
KIUNGO = str(Path(sys.executable).with_name("kiungo"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30, *, logs: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    said = "".join(f"\n--- {p.name}:\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log"))) if logs else ""
    raise RuntimeError(f"{url} did not come up{said}")


@contextmanager
def process(*args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server in a process of its own; what it says goes to `log` (a pipe nobody reads could block it)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
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


@dataclass
class Case:
    """One path under load, and the processes whose CPU time it costs (role -> pid)."""

    protocol: str
    path: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    pids: dict[str, int]
    loaded: list[wrk.Load] = field(default_factory=list)
    single: list[wrk.Load] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # role -> CPU ms per exchange, one per round
    servers: tuple[int, ...] = ()  # every server process of the benchmark, busy with this case or not
    others: list[float] = field(default_factory=list)  # share of the machine used outside the benchmark

    def measure(self) -> None:
        before = {pid: cpu_ms(pid) for pid in self.servers}
        mine, machine = own_ms(), machine_busy_ms()
        load = wrk.run(self.url, headers=self.headers, method=self.method, body=self.body, seconds=SECONDS)
        machine, mine = machine_busy_ms() - machine, own_ms() - mine
        after = {pid: cpu_ms(pid) for pid in self.servers}
        self.loaded.append(load)
        for role, pid in self.pids.items():
            self.cpu.setdefault(role, []).append((after[pid] - before[pid]) / max(1, load.requests))
        ours = mine + sum(after[pid] - before[pid] for pid in self.servers)
        self.others.append(max(0.0, machine - ours) / (SECONDS * 1000 * (os.cpu_count() or 1)))
        self.single.append(
            wrk.run(
                self.url,
                headers=self.headers,
                method=self.method,
                body=self.body,
                seconds=LATENCY_SECONDS,
                connections=1,
                threads=1,
            )
        )


@contextmanager
def running(*, replay_window: float | None = None) -> Iterator[list[Case]]:
    """The agency systems, one gateway and a federation of three, serving; the cases to load them with."""
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
        with process(
            KIUNGO, "sandbox", "serve", "--dir", str(country), "--gateway", "none", log=root / "sandbox.log"
        ) as agencies:
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
                if replay_window is not None:  # the soak: in-process replay state fills one window, then levels
                    plan.configs[code]["federation"]["replay_window_seconds"] = replay_window
                (root / f"{code}.toml").write_text(tomli_w.dumps(plan.configs[code]))
            for name in ("gateway", "msp", "tax", "cra"):  # as an operator does before starting a node
                subprocess.run(
                    [KIUNGO, "db", "upgrade", "-c", str(root / f"{name}.toml")], capture_output=True, check=True
                )
            authority = {"authority": (create_authority_app(plan.ca, plan.directory_file), authority_sock)}
            with (
                ServerThread(authority, name="authority"),
                process(KIUNGO, "gateway", "serve", "-c", str(root / "gateway.toml"), log=root / "gateway.log") as one,
                process(KIUNGO, "gateway", "serve", "-c", str(root / "msp.toml"), log=root / "msp.log") as msp_gw,
                process(KIUNGO, "gateway", "serve", "-c", str(root / "tax.toml"), log=root / "tax.log") as tax_gw,
                process(KIUNGO, "gateway", "serve", "-c", str(root / "cra.toml"), log=root / "cra.log") as cra_gw,
            ):
                gw = f"http://127.0.0.1:{single['server']['port']}"
                msp = f"http://127.0.0.1:{plan.configs['msp']['server']['port']}"
                for url in (gw, msp, f"http://127.0.0.1:{plan.configs['tax']['server']['port']}"):
                    wait_for(url + "/health", logs=root)
                client = federation.PROGRAMME_MIS
                auth = {"X-Road-Client": client, "X-Kiungo-Client-Token": tokens[client], "X-Road-PDU-Purpose": PURPOSE}
                fed_auth = auth | {"X-Kiungo-Client-Token": plan.tokens[client]}
                soap_headers = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": tokens[client]}
                fed_soap_headers = soap_headers | {"X-Kiungo-Client-Token": plan.tokens[client]}
                taxpayer = f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/{tin}"
                envelope = soap_request(nid, client, message_id=wrk.UNIQUE)
                agency = {"agency system": agencies.pid}
                cases = [
                    Case(
                        "REST", "direct", "GET", systems["tax"]["base_url"] + f"/v1/taxpayers/{tin}", {}, None, agency
                    ),
                    Case("REST", "one gateway", "GET", gw + taxpayer, auth, None, {"consumer": one.pid} | agency),
                    Case(
                        "REST",
                        "two gateways",
                        "GET",
                        msp + taxpayer,
                        fed_auth,
                        None,
                        {"consumer": msp_gw.pid, "provider": tax_gw.pid} | agency,
                    ),
                    Case(
                        "SOAP",
                        "direct",
                        "POST",
                        systems["cra"]["endpoint"],
                        {"Content-Type": "text/xml"},
                        plain_soap(nid),
                        agency,
                    ),
                    Case(
                        "SOAP", "one gateway", "POST", gw + "/", soap_headers, envelope, {"consumer": one.pid} | agency
                    ),
                    Case(
                        "SOAP",
                        "two gateways",
                        "POST",
                        msp + "/",
                        fed_soap_headers,
                        envelope,
                        {"consumer": msp_gw.pid, "provider": cra_gw.pid} | agency,
                    ),
                ]
                for case in cases:
                    case.servers = (agencies.pid, one.pid, msp_gw.pid, tax_gw.pid, cra_gw.pid)
                yield cases


def main() -> None:
    console = Console(width=180)
    if not wrk.available():
        console.print("[yellow]bench_gateway skipped: wrk is not installed (apt-get install wrk)[/yellow]")
        return
    with running() as cases:
        for case in cases:  # warm-up: pools, caches, WSDL, CRL
            wrk.run(case.url, headers=case.headers, method=case.method, body=case.body, seconds=1)
        for _ in range(ROUNDS):  # interleaved, so drift hits every case alike
            for case in cases:
                case.measure()
    for protocol in ("REST", "SOAP"):
        report(console, protocol, [c for c in cases if c.protocol == protocol])


def report(console: Console, protocol: str, cases: list[Case]) -> None:
    title = (
        f"{protocol} through gateways: medians of {ROUNDS} interleaved wrk runs per path (throughput and CPU: "
        f"16 connections, {SECONDS} s; latency: 1 connection, {LATENCY_SECONDS} s); 20,000-person country; "
        f"{os.cpu_count()} cores shared by the agency systems, five gateway processes and wrk. Two gateways: "
        "mutual TLS, ES256 signatures both ways, replay guard, CRL checks, policy, consent, exchange log and "
        "one SQLite monitoring commit per side. CPU: ms per exchange per process; capacity: exchanges per "
        "second one core of the busiest gateway could serve. Other work on the machine during the loaded runs: "
        f"{100 * median([x for c in cases for x in c.others]):.0f}% of its CPU (median)"
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
        "CPU consumer gw",
        "CPU provider gw",
        "CPU agency",
        "capacity /core",
        "non-2xx",
        title=title,
    )
    direct = cases[0]
    direct_rps = median([x.rps for x in direct.loaded])
    direct_p50 = median([x.p50_ms for x in direct.single])
    for case in cases:
        rps = median([x.rps for x in case.loaded])
        p50 = median([x.p50_ms for x in case.single])
        cpu = {role: median(values) for role, values in case.cpu.items()}
        gateways = [cpu[role] for role in ("consumer", "provider") if role in cpu]
        table.add_row(
            case.path,
            f"{rps:,.0f}",
            f"{rps / direct_rps:.2f}",
            f"{p50:.2f}",
            f"{median([x.p99_ms for x in case.single]):.2f}",
            f"{p50 - direct_p50:+.2f}" if case is not direct else "",
            f"{median([x.p50_ms for x in case.loaded]):.2f}",
            f"{median([x.p99_ms for x in case.loaded]):.2f}",
            f"{cpu['consumer']:.2f}" if "consumer" in cpu else "",
            f"{cpu['provider']:.2f}" if "provider" in cpu else ("(same)" if "consumer" in cpu else ""),
            f"{cpu['agency system']:.2f}",
            f"{1000 / max(gateways):,.0f}" if gateways else f"{1000 / cpu['agency system']:,.0f}",
            str(sum(x.bad for x in case.loaded + case.single)),
        )
    console.print(table)
    pair = cases[-1]
    rps = median([x.rps for x in pair.loaded])
    added = median([x.p50_ms for x in pair.single]) - direct_p50
    busiest = max(median(pair.cpu["consumer"]), median(pair.cpu["provider"]))
    console.print(
        f"{protocol}, two gateways: {rps:,.0f} exchanges/s here (goal {GOAL_RPS}: "
        f"{'met' if rps >= GOAL_RPS else 'not met'}), {added:+.2f} ms at p50 (goal {GOAL_ADDED_P50_MS:g}: "
        f"{'met' if added <= GOAL_ADDED_P50_MS else 'not met'}); a gateway per core: "
        f"{1000 / busiest:,.0f} exchanges/s (busier side {busiest:.2f} ms CPU per exchange)\n"
    )


if __name__ == "__main__":
    main()
