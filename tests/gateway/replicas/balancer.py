"""A TCP (layer 4) load balancer for tests: the stand-in for HAProxy or nginx `stream` in front of replicas.

TLS passes through untouched, so each replica terminates mutual TLS itself, as in production. Each new
connection goes to the next replica that accepts it (round robin, skipping one that refuses), which is
how "new exchanges go to the other replica" when one shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

from gateway.server import bind


class Balancer:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.only: int | None = None  # route every new connection to this backend (tests pin a replica)
        self.sock = bind("127.0.0.1", 0)
        self.port = int(self.sock.getsockname()[1])
        self.chosen: list[int] = []  # which backend each connection went to, in order
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="balancer", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Balancer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, sock=self.sock)

    async def _stop(self) -> None:
        self._drop_all()
        if self._server is not None:
            self._server.close()
        handlers = [task for task in self._handlers if not task.done()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def cut(self) -> None:
        """Drop every connection in progress, as a balancer does when its pool changes."""
        self._loop.call_soon_threadsafe(self._drop_all)

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    def _order(self) -> list[int]:
        if self.only is not None:
            return [self.only]
        start = self._next
        self._next = (self._next + 1) % len(self.backends)
        return [(start + i) % len(self.backends) for i in range(len(self.backends))]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        for index in self._order():
            host, port = self.backends[index]
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            self.chosen.append(index)
            self._writers.update((writer, up_writer))
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.difference_update((writer, up_writer))
            return
        writer.transport.abort()  # no replica accepts: the client sees the connection refused

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()
            if reader.at_eof():
                writer.close()


def free_socket() -> socket.socket:
    return bind("127.0.0.1", 0)
