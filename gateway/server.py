"""Running ASGI apps under uvicorn on sockets bound up front, in a background thread or in the foreground.

Binding before starting makes port 0 (any free port) usable and the address known before the first
request. Several apps share one event loop in one thread: tests, the sandbox and the demo get real
sockets without subprocesses to manage.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import uvicorn
import uvloop
from starlette.types import ASGIApp

from gateway.tls import PeerCertificateProtocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one)."""
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


def url_host(host: str) -> str:
    """The host as it goes in a URL: a wildcard address is reached on loopback, IPv6 is bracketed."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def base_url(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{url_host(str(host))}:{port}"


@dataclass(frozen=True)
class Listener:
    """One app on one bound socket; with an SSL context it speaks TLS and sees the peer's certificate."""

    app: ASGIApp
    sock: socket.socket
    ssl: ssl.SSLContext | None = None


#: How long a listener keeps an idle connection open (uvicorn's default) ...
KEEP_ALIVE_SECONDS = 5
#: ... and a TLS listener: longer than peer gateways keep theirs in the pool (gateway.peers), so the
#: client side closes first and does not send on a connection closing under it; and a mutual TLS
#: handshake costs more than the requests sent over the connection it opens.
TLS_KEEP_ALIVE_SECONDS = 30


def server_config(listener: Listener, lifespan: Literal["auto", "on", "off"] = "auto") -> uvicorn.Config:
    context = listener.ssl
    return uvicorn.Config(
        listener.app,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=TLS_KEEP_ALIVE_SECONDS if context is not None else KEEP_ALIVE_SECONDS,
        server_header=False,  # the software behind a gateway is nobody's business
        http=PeerCertificateProtocol if context is not None else "httptools",
        ssl_context_factory=(lambda config, default: context) if context is not None else None,
    )


class ServerThread:
    """Serve named listeners in one background thread until `stop()` (or the `with` ends)."""

    def __init__(
        self,
        listeners: Mapping[str, Listener | tuple[ASGIApp, socket.socket]],
        *,
        name: str = "kiungo-servers",
        startup_timeout: float = 20.0,
        lifespan: Literal["auto", "on", "off"] = "auto",
    ) -> None:
        normal = {k: v if isinstance(v, Listener) else Listener(*v) for k, v in listeners.items()}
        self._sockets = {key: listener.sock for key, listener in normal.items()}
        self._servers = {key: uvicorn.Server(server_config(listener, lifespan)) for key, listener in normal.items()}
        self._name = name
        self._startup_timeout = startup_timeout
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(self._startup_timeout):
            self.stop()
            raise RuntimeError(f"{self._name} did not start within {self._startup_timeout:g} s")
        if self._error is not None:
            error = self._error
            self.stop()
            raise RuntimeError(f"{self._name} failed to start: {error}") from error

    def stop(self) -> None:
        """Graceful: listeners stop in reverse order, each after its in-flight requests finish.

        The first listener of a node is the app whose lifespan owns the node's stores; its peers'
        listener comes after it, so stopping in reverse lets exchanges still running on the peer
        side finish and be logged before the node closes its log.
        """
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
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
            asyncio.create_task(server.serve(sockets=[self._sockets[key]]), name=key)
            for key, server in self._servers.items()
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
        stopping = asyncio.get_running_loop().run_in_executor(None, self._stopping.wait)
        waiting: list[asyncio.Future[Any]] = [*tasks, stopping]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for key, task in reversed(list(zip(self._servers, tasks, strict=True))):
            self._servers[key].should_exit = True
            await asyncio.gather(task, return_exceptions=True)
        if not stopping.done():
            self._stopping.set()
        await asyncio.gather(*tasks)
