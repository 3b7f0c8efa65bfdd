"""Run the sandbox country's four agency systems as real HTTP servers.

The four apps run as uvicorn servers sharing one asyncio loop in one background thread: tests and
the demo get real sockets (real HTTP, real timeouts) without subprocesses to manage, and one Ctrl-C
stops everything. Ports are bound before the servers start, so port 0 (any free port) works and the
addresses are known up front; they are published in `sandbox.json` for the gateways' configuration.
"""

from __future__ import annotations

import asyncio
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
from typing import Any

import uvicorn
import uvloop
from starlette.types import ASGIApp

from sandbox import cra, msp, ssf, tax
from sandbox.agencydb import AgencyDb
from sandbox.schema import AGENCY_FILES

INSTANCE = "ZZ"
MANIFEST_FILE = "sandbox.json"
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


def url_host(host: str) -> str:
    """The host as it goes in a URL: a wildcard address is reached on loopback, IPv6 is bracketed."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


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


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


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
    ) -> None:
        self.country_dir = Path(country_dir)
        self.host = host
        self.first_port = first_port
        self.manifest_path = manifest_path
        self.startup_timeout = startup_timeout
        self.manifest: dict[str, Any] = {}
        self._dbs: dict[str, AgencyDb] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._servers: dict[str, uvicorn.Server] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> SandboxServers:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
                self._sockets[code] = _bind(self.host, self.first_port + i if self.first_port else 0)
            ports = {code: int(sock.getsockname()[1]) for code, sock in self._sockets.items()}
            self.manifest = build_manifest(self.host, ports, self.country_dir)
            for code, app in build_apps(self._dbs).items():
                config = uvicorn.Config(
                    app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5
                )
                self._servers[code] = uvicorn.Server(config)
            self._thread = threading.Thread(target=self._run, name="sandbox-servers", daemon=True)
            self._thread.start()
            if not self._ready.wait(self.startup_timeout):
                raise RuntimeError("the sandbox servers did not start in time")
            if self._error is not None:
                raise RuntimeError("the sandbox servers failed to start") from self._error
            if self.manifest_path is not None:
                write_manifest(self.manifest_path, self.manifest)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self._servers.values():
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.manifest_path is not None and self._thread is not None:
            self.manifest_path.unlink(missing_ok=True)
        for sock in self._sockets.values():
            sock.close()
        for db in self._dbs.values():
            db.close()
        self._servers.clear()
        self._sockets.clear()
        self._dbs.clear()
        self._thread = None

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # reported to the starting thread, not lost in this one
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(server.serve(sockets=[self._sockets[code]]), name=f"sandbox-{code}")
            for code, server in self._servers.items()
        ]
        while not all(server.started for server in self._servers.values()):
            failed = [t for t in tasks if t.done()]
            if failed:
                for server in self._servers.values():
                    server.should_exit = True
                await asyncio.gather(*tasks, return_exceptions=True)
                raise RuntimeError(f"{failed[0].get_name()} stopped during startup") from failed[0].exception()
            await asyncio.sleep(0.01)
        self._ready.set()
        await asyncio.gather(*tasks)


def serve_forever(dir: Path, host: str = "127.0.0.1", first_port: int = 0) -> None:
    """Serve the country in `dir` until Ctrl-C or SIGTERM; `dir/sandbox.json` says where."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SandboxServers(Path(dir), host=host, first_port=first_port, manifest_path=Path(dir) / MANIFEST_FILE) as s:
            for code in SYSTEM_ORDER:
                entry = s.manifest["systems"][code]
                where = entry.get("wsdl") or entry.get("openapi")
                print(f"{entry['member']:<12} {entry['name']:<45} {where}", flush=True)
            print(f"wrote {Path(dir) / MANIFEST_FILE}; Ctrl-C stops", flush=True)
            while not stop.wait(0.5):
                if not s.alive:
                    raise RuntimeError("the sandbox servers stopped unexpectedly")
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
