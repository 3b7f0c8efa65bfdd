"""Means to break what a gateway depends on, and to see how the gateway answers.

`FaultyTcp` stands in front of any TCP service (an agency system, a peer gateway, PostgreSQL, Redis,
the OCSP responder, the time-stamp authority) and can make it go down (connection refused), reset
every connection, or hang (accept and never answer), then come back, without touching the real
server, or drop packets like a host that is off (`Blackhole`: an address that never completes a TCP
handshake). `RunningNode` starts a real gateway node on loopback and reads its
metrics, so a test can check that no exchange stays in flight after the client got its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import httpx
import pytest
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import listeners
from gateway.server import ServerThread, base_url, bind
from tests.gateway.nodes import migrated

IN_CI = os.environ.get("CI", "").lower() == "true"
PROGRAMME_MIS = "ZZ/GOV/MSP/programme-mis"
PURPOSE = "old-age-grant-eligibility"
#: Added to every time bound: the tests check behaviour (an answer comes, and in time), not speed, on a
#: machine shared with other work.
MARGIN = 1.5
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"

Mode = Literal["forward", "refuse", "reset", "hang", "drop"]


def require(name: str, host: str, port: int) -> None:
    """Skip, saying why, when a server the test needs is absent; in CI (CI=true) fail instead."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError:
        pass
    if IN_CI:
        pytest.fail(f"{name} is required in CI but {host}:{port} is unreachable")
    pytest.skip(f"{name} not reachable on {host}:{port}: this fault test needs it")


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashing server or a stateful firewall does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultyTcp:
    """A TCP endpoint in front of `target` that a test can break and mend.

    Modes: `forward` (a transparent proxy), `refuse` (nothing listens: connection refused), `reset`
    (every connection is accepted and reset as its request arrives), `hang` (connections are accepted,
    bytes are swallowed, nothing ever comes back), `drop` (the handshake never completes, as with a host
    that is off: see `Blackhole`). Switching away from `forward` also breaks the connections already open
    (reset, or silence for `hang`), as a server that crashes or a network that partitions does to pooled
    connections.
    """

    def __init__(self, target: tuple[str, int], *, name: str = "faulty-tcp") -> None:
        self.target = target
        self.name = name
        self.mode: Mode = "forward"
        self.accepted = 0  # connections accepted in any mode: "no call reaches it" is a count that stays put
        self._sock: socket.socket | None = bind("127.0.0.1", 0)
        self.port = int(self._sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._hole: Blackhole | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        self._run(self._listen())
        return self

    def __exit__(self, *_: object) -> None:
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def targets(self) -> list[tuple[str, int]]:
        """Where a new connection goes, in order of preference (the next is tried when one refuses)."""
        return [self.target]

    def cut(self) -> None:
        """Reset every connection in progress (the mode stays), as a balancer does when its pool changes."""
        self._run(self._cut())

    async def _cut(self) -> None:
        for writer in list(self._writers):
            _rst(writer)

    def set(self, mode: Mode) -> None:
        """Change what new connections meet, and break the open ones unless the mode is `forward`."""
        self._run(self._set(mode))

    @contextmanager
    def broken(self, mode: Mode) -> Iterator[FaultyTcp]:
        """`mode` for the duration of the block, `forward` again afterwards (even when the test fails)."""
        self.set(mode)
        try:
            yield self
        finally:
            self.set("forward")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        if self._sock is None:
            self._sock = bind("127.0.0.1", self.port)  # the same port again, as a restarted server
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _close(self) -> None:
        if self._hole is not None:
            self._hole.close()
            self._hole = None
        for writer in list(self._writers):
            _rst(writer)
        self._writers.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _set(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if self._hole is not None:
            self._hole.close()
            self._hole = None
        if mode in ("refuse", "drop"):
            await self._close()
            if mode == "drop":
                self._hole = Blackhole(self.port)
            return
        if mode == "reset" or (mode == "forward" and previous == "hang"):
            # reset, or mended after a hang whose swallowed bytes left every open stream unusable
            for writer in list(self._writers):
                _rst(writer)
        await self._listen()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        mode = self.mode
        if mode in ("reset", "refuse", "drop"):
            # reset once the request is in: a server whose worker crashes on it (deterministic for the client,
            # which has sent its request and is reading the answer when the reset comes)
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(reader.read(1), 1.0)
            _rst(writer)
            return
        self._writers.add(writer)
        try:
            if mode == "hang":
                await self._swallow(reader)
                return
            for target in self.targets():
                try:
                    up_reader, up_writer = await asyncio.open_connection(*target)
                    break
                except OSError:
                    continue
            else:  # nobody accepts behind it
                _rst(writer)
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    @staticmethod
    async def _swallow(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode != "forward":  # hanging: what comes is swallowed, nothing goes on
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                if writer.can_write_eof() and self.mode == "forward":
                    writer.write_eof()


class Blackhole:
    """An address whose TCP handshake never completes: a host that is off, or a firewall dropping SYNs.

    A listening socket with a backlog of one, filled by one connection nobody accepts: the kernel then
    drops further SYNs and the client keeps retrying until its own connect timeout.
    """

    def __init__(self, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(0)
        self.port = int(self._sock.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            self._fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", self.port))
            except OSError:
                break  # the queue is full: this connect hung, as every later one will

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._sock.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class Timed:
    seconds: float = 0.0


@contextmanager
def within(limit: float) -> Iterator[Timed]:
    """The block takes at most `limit` seconds plus the margin: the client's answer came in time."""
    timed = Timed()
    started = time.perf_counter()
    yield timed
    timed.seconds = time.perf_counter() - started
    assert timed.seconds <= limit + MARGIN, f"took {timed.seconds:.2f} s, more than {limit:g} s (+{MARGIN:g} s margin)"


def wait_until(check: Callable[[], bool], timeout: float = 5.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s")
        time.sleep(0.05)


def assert_rest_error(response: httpx.Response, status: int, code: str, gist: str) -> None:
    """A gateway's own refusal in the REST form: status, X-Road-Error, the JSON body, the exchange id."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers.get("X-Road-Error") == code, response.text
    body = response.json()
    assert body["type"] == code
    assert gist in body["message"], body["message"]
    assert body["detail"], "the exchange id, for the client to quote"


def soap_fault(response: httpx.Response) -> tuple[str, str]:
    """The faultcode and faultstring of a SOAP Fault answer."""
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


def assert_soap_fault(response: httpx.Response, code: str, gist: str) -> None:
    """A gateway's own refusal in the SOAP form: HTTP 500, X-Road-Error, a Fault with the code as faultcode."""
    assert response.status_code == 500, response.text
    assert response.headers.get("X-Road-Error") == code, response.text
    faultcode, faultstring = soap_fault(response)
    assert faultcode == code
    assert gist in faultstring, faultstring


def fault(system_url: str, mode: str, **kw: Any) -> None:
    """Make a sandbox agency system misbehave (`sandbox.faults`); resets its hit counter."""
    httpx.post(system_url + "/_sandbox/fault", json={"mode": mode, **kw}, timeout=5).raise_for_status()


def hits(system_url: str) -> int:
    """Requests the sandbox system received since its fault was last set."""
    return int(httpx.get(system_url + "/_sandbox/hits", timeout=5).json()["hits"])


@dataclass
class RunningNode:
    """A gateway node serving on loopback: its client listener and, in a federation, its peer listener."""

    name: str
    config: dict[str, Any]
    url: str
    peer_url: str | None
    peer_port: int | None
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    thread: ServerThread | None = field(default=None, repr=False)

    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['operator']}"}

    def client_headers(self, client: str = PROGRAMME_MIS, **extra: str) -> dict[str, str]:
        """What a local client sends with a REST exchange: who it is, its token, and the purpose."""
        token = self.tokens[client]
        return {"X-Road-Client": client, "X-Kiungo-Client-Token": token, "X-Road-PDU-Purpose": PURPOSE} | extra

    def get(self, path: str, **headers: str) -> httpx.Response:
        """A REST exchange as the programme MIS makes it (the test's own timeout is far above any bound)."""
        return httpx.get(self.url + path, headers=self.client_headers(**headers), timeout=60)

    def soap(self, envelope: bytes, client: str = PROGRAMME_MIS) -> httpx.Response:
        headers = {"Content-Type": "text/xml; charset=utf-8", "X-Kiungo-Client-Token": self.tokens[client]}
        return httpx.post(self.url + "/", content=envelope, headers=headers, timeout=60)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def assert_idle(self) -> None:
        """No hung workers: every exchange has ended (the gauge goes back to 0 once answers are out)."""
        wait_until(lambda: self.metric("kiungo_exchanges_in_flight") == 0, 5, f"{self.name}: no exchange in flight")

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.url + "/health", timeout=10).json()
        return answer

    def refresh_directory(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.post(
            self.url + "/api/operator/directory/refresh", headers=self.operator(), timeout=30
        ).json()
        return answer


@contextmanager
def running(config: dict[str, Any], name: str, tokens: dict[str, str]) -> Iterator[RunningNode]:
    """Start a node from its settings (migrated first, as `kiungo db upgrade` does), stop it afterwards."""
    client_sock = bind("127.0.0.1", 0)
    config["server"]["port"] = int(client_sock.getsockname()[1])
    peer_sock = None
    if "federation" in config:
        peer_sock = bind("127.0.0.1", 0)
        config["federation"]["port"] = int(peer_sock.getsockname()[1])
    nodes = listeners(migrated(config), client_sock=client_sock, peer_sock=peer_sock)
    peer_port = int(peer_sock.getsockname()[1]) if peer_sock is not None else None
    with ServerThread(nodes, name=name) as thread:
        yield RunningNode(
            name,
            config,
            base_url(client_sock),
            f"https://127.0.0.1:{peer_port}" if peer_port is not None else None,
            peer_port,
            tokens,
            thread,
        )
