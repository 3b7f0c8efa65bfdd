"""Run the sandbox country's four agency systems as real HTTP servers.

The four apps run as uvicorn servers sharing one asyncio loop in one background thread: tests and
the demo get real sockets (real HTTP, real timeouts) without subprocesses to manage, and one Ctrl-C
stops everything. Ports are bound before the servers start, so port 0 (any free port) works and the
addresses are known up front; they are published in `sandbox.json` for the gateways' configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

import tomli_w
from starlette.types import ASGIApp

from gateway.migrations import upgrade_node
from gateway.server import Listener, ServerThread, base_url, bind, url_host
from sandbox import cra, federation, msp, ssf, tax
from sandbox.agencydb import AgencyDb
from sandbox.federation import FederationPlan
from sandbox.schema import AGENCY_FILES

INSTANCE = "ZZ"
GatewayShape = Literal["federation", "single", "none"]
MANIFEST_FILE = "sandbox.json"
CONNECTORS_FILE = "connectors.toml"
SYSTEM_ORDER = ("cra", "tax", "ssf", "msp")


@dataclass(frozen=True)
class System:
    name: str
    member: str
    kind: str


SYSTEMS: dict[str, System] = {
    "cra": System("Civil Registration Authority", f"{INSTANCE}/GOV/CRA", "soap"),
    "tax": System("Tax Authority", f"{INSTANCE}/GOV/TAX", "rest"),
    "ssf": System("Social Security Fund", f"{INSTANCE}/GOV/SSF", "rest"),
    "msp": System("Ministry of Social Protection programme MIS", f"{INSTANCE}/GOV/MSP", "rest"),
}
_REST_PATHS: dict[str, tuple[str, ...]] = {"tax": tax.PATHS, "ssf": ssf.PATHS, "msp": msp.PATHS}


def build_manifest(host: str, ports: Mapping[str, int], country_dir: Path | None = None) -> dict[str, Any]:
    """What `sandbox.json` says: each system's member code, kind and addresses."""
    systems: dict[str, Any] = {}
    for code in SYSTEM_ORDER:
        info = SYSTEMS[code]
        base = f"http://{url_host(host)}:{ports[code]}"
        entry: dict[str, Any] = {"name": info.name, "member": info.member, "kind": info.kind, "base_url": base}
        if info.kind == "soap":
            entry |= {
                "endpoint": base + cra.PATH,
                "wsdl": base + cra.PATH + "?wsdl",
                "namespace": cra.TNS,
                "operations": list(cra.OPERATIONS),
            }
        else:
            entry |= {"openapi": base + "/openapi.json", "paths": list(_REST_PATHS[code])}
        entry["sandbox_control"] = base + "/_sandbox"
        systems[code] = entry
    manifest: dict[str, Any] = {"instance": INSTANCE, "systems": systems}
    if country_dir is not None:
        manifest["country_dir"] = str(country_dir.resolve())
    return manifest


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Write atomically: a reader sees the old file or the whole new one, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def build_apps(dbs: Mapping[str, AgencyDb]) -> dict[str, ASGIApp]:
    return {
        "cra": cra.create_app(dbs["cra"]),
        "tax": tax.create_app(dbs["tax"]),
        "ssf": ssf.create_app(dbs["ssf"]),
        "msp": msp.create_app(dbs["msp"]),
    }


class SandboxServers:
    """The four agency systems on loopback (or `host`), for as long as the context lasts.

    `first_port` 0 picks free ports; otherwise the systems take first_port, +1, +2, +3 in the order
    cra, tax, ssf, msp. With `manifest_path`, the manifest is written there once every server
    accepts connections, and removed again on stop.
    """

    def __init__(
        self,
        country_dir: Path,
        host: str = "127.0.0.1",
        first_port: int = 0,
        manifest_path: Path | None = None,
        startup_timeout: float = 20.0,
        gateway: GatewayShape = "federation",
        data_dir: Path | None = None,
    ) -> None:
        self.country_dir = Path(country_dir)
        self.host = host
        self.first_port = first_port
        self.manifest_path = manifest_path
        self.startup_timeout = startup_timeout
        self.gateway = gateway
        self.data_dir = data_dir or self.country_dir / "gateway"
        self.federation: FederationPlan | None = None
        self.manifest: dict[str, Any] = {}
        self._dbs: dict[str, AgencyDb] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._thread: ServerThread | None = None

    def __enter__(self) -> SandboxServers:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.alive

    def base_url(self, system: str) -> str:
        url: str = self.manifest["systems"][system]["base_url"]
        return url

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        try:
            for code in SYSTEM_ORDER:
                self._dbs[code] = AgencyDb(self.country_dir / AGENCY_FILES[code])
            for i, code in enumerate(SYSTEM_ORDER):
                self._sockets[code] = bind(self.host, self.first_port + i if self.first_port else 0)
            ports = {code: int(sock.getsockname()[1]) for code, sock in self._sockets.items()}
            self.manifest = build_manifest(self.host, ports, self.country_dir)
            apps: dict[str, Listener | tuple[ASGIApp, socket.socket]] = {
                code: (app, self._sockets[code]) for code, app in build_apps(self._dbs).items()
            }
            if self.gateway == "single":
                apps["gateway"] = self._gateway_app()
            elif self.gateway == "federation":
                apps.update(self._federation_listeners())
            self._thread = ServerThread(apps, name="sandbox-servers", startup_timeout=self.startup_timeout)
            self._thread.start()
            if self.federation is not None:
                tax = self.manifest["federation"]["gateways"][federation.MEMBERS["tax"][0]]
                subjects = federation.consent_subjects(self.country_dir)
                self.manifest["federation"]["consents"] = federation.seed_consents(
                    tax["base_url"], tax["operator_token"], subjects
                )
            if self.manifest_path is not None:
                write_manifest(self.manifest_path, self.manifest)
                connectors = self.manifest_path.with_name(CONNECTORS_FILE)
                connectors.write_text(tomli_w.dumps(federation.connector_config(self.manifest["systems"])))
        except BaseException:
            self.stop()
            raise

    def _federation_listeners(self) -> dict[str, Listener]:
        """The federation authority and one gateway per member, each with its own keys and listeners."""
        from gateway.app import listeners
        from gateway.authority import create_authority_app
        from gateway.exchangelog import create_tsa_app
        from gateway.settings import from_mapping

        def sock(name: str) -> socket.socket:
            self._sockets[name] = bind(self.host, 0)
            return self._sockets[name]

        authority = sock("authority")
        tsa = sock("tsa")
        clients = {code: sock(f"{code}-gateway") for code in SYSTEM_ORDER}
        peers = {code: sock(f"{code}-peers") for code in SYSTEM_ORDER}
        plan = federation.plan_federation(
            self.manifest["systems"],
            self.data_dir / "federation",
            host=self.host,
            client_ports={code: s.getsockname()[1] for code, s in clients.items()},
            peer_ports={code: s.getsockname()[1] for code, s in peers.items()},
            authority_url=base_url(authority),
            tsa_url=base_url(tsa) + "/",
            vsr=federation.prepare_vsr(self.country_dir),
        )
        self.federation = plan
        out: dict[str, Listener] = {
            "authority": Listener(create_authority_app(plan.ca, plan.directory_file), authority),
            "tsa": Listener(create_tsa_app(plan.tsa_key, plan.tsa_cert_pem), tsa),
        }
        gateways: dict[str, Any] = {}
        for code in SYSTEM_ORDER:
            config = plan.configs[code]
            settings = from_mapping(config)
            upgrade_node(settings)  # as the operator does with `kiungo db upgrade` before starting a node
            node = listeners(settings, client_sock=clients[code], peer_sock=peers[code])
            out[f"{code}-gateway"] = node["gateway"]
            out[f"{code}-peers"] = node["peers"]
            member = config["federation"]["member"]
            gateways[member] = federation.gateway_manifest(base_url(clients[code]), config, plan.tokens) | {
                "peer_url": f"https://{url_host(self.host)}:{peers[code].getsockname()[1]}",
                "member": member,
            }
        self.manifest["federation"] = {
            "authority": {
                "base_url": base_url(authority),
                "directory": base_url(authority) + "/directory",
                "crl": base_url(authority) + "/crl",
                "ocsp": base_url(authority) + "/ocsp",
                "tsa": base_url(tsa) + "/",
            },
            "directory_file": str(plan.directory_file),
            "anchor": str(plan.anchor),
            "ca_dir": str(plan.ca.dir),
            "gateways": gateways,
        }
        return out

    def _gateway_app(self) -> tuple[ASGIApp, socket.socket]:
        """A gateway in front of the four systems, its settings written where an operator would look."""
        from gateway.app import create_app
        from gateway.settings import from_mapping

        sock = bind(self.host, self.first_port + len(SYSTEM_ORDER) if self.first_port else 0)
        self._sockets["gateway"] = sock
        config, tokens = federation.gateway_config(
            self.manifest["systems"], self.data_dir, host=self.host, vsr=federation.prepare_vsr(self.country_dir)
        )
        config["server"]["port"] = int(sock.getsockname()[1])
        self.manifest["gateway"] = federation.gateway_manifest(base_url(sock), config, tokens)
        settings = from_mapping(config)
        upgrade_node(settings)
        return create_app(settings), sock

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            if self.manifest_path is not None:
                self.manifest_path.unlink(missing_ok=True)
                self.manifest_path.with_name(CONNECTORS_FILE).unlink(missing_ok=True)
        for sock in self._sockets.values():
            sock.close()
        for db in self._dbs.values():
            db.close()
        self._sockets.clear()
        self._dbs.clear()
        self._thread = None


def serve_forever(
    dir: Path, host: str = "127.0.0.1", first_port: int = 0, gateway: GatewayShape = "federation"
) -> None:
    """Serve the country in `dir` until Ctrl-C or SIGTERM; `dir/sandbox.json` says where."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        manifest = Path(dir) / MANIFEST_FILE
        with SandboxServers(Path(dir), host=host, first_port=first_port, manifest_path=manifest, gateway=gateway) as s:
            for code in SYSTEM_ORDER:
                entry = s.manifest["systems"][code]
                where = entry.get("wsdl") or entry.get("openapi")
                print(f"{entry['member']:<12} {entry['name']:<45} {where}", flush=True)
            for member, gw in s.manifest.get("federation", {}).get("gateways", {}).items():
                print(
                    f"{'gateway':<12} {member + ' (clients: HTTP; peers: mTLS ' + gw['peer_url'] + ')':<45} "
                    f"{gw['base_url']}",
                    flush=True,
                )
            if "gateway" in s.manifest:
                print(
                    f"{'gateway':<12} {'Sandbox gateway (X-Road REST /r1/..., SOAP POST /)':<45} "
                    f"{s.manifest['gateway']['base_url']}",
                    flush=True,
                )
            print(f"wrote {Path(dir) / MANIFEST_FILE}; Ctrl-C stops", flush=True)
            while not stop.wait(0.5):
                if not s.alive:
                    raise RuntimeError("the sandbox servers stopped unexpectedly")
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
