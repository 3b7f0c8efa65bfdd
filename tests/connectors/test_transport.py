"""Outgoing HTTP on aiohttp (connectors.transport): what goes out, what comes back, how it fails.

Against real servers on loopback: uvicorn for answers, a bare asyncio server for peers that close
connections at awkward moments. A "restart" stops the server and starts a new one on the same port
while the client's event loop is blocked, so the client still holds the old, closed connection in
its pool: the race a restarted or draining server causes in production, made certain.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from connectors.limits import ResponseTooLarge
from connectors.transport import AiohttpTransport, HttpClient, joined
from gateway.server import ServerThread, base_url, bind

pytestmark = pytest.mark.anyio

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes the request as JSON; /slow waits, /big?n= streams n bytes, /gzip answers compressed."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(2)
    if path == "/big":
        n = int(scope["query_string"].decode().removeprefix("n="))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for _ in range(n // 1000):
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    echo = json.dumps(
        {
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body": body.decode(),
            "client_port": scope["client"][1],
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"x-twice", b"a"), (b"x-twice", b"b")]
    if path == "/gzip":
        echo = gzip.compress(echo)
        headers.append((b"content-encoding", b"gzip"))
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": echo})


class Server:
    """The echo app under uvicorn, restartable on the same port."""

    def __init__(self) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = base_url(self.sock)
        self.thread = ServerThread({"echo": (app, self.sock)}, name="echo")
        self.thread.start()

    def restart(self) -> None:
        """Stop and start again, blocking: the caller's event loop does not see the connections close."""
        self.thread.stop()
        self.sock = bind("127.0.0.1", self.port)
        self.thread = ServerThread({"echo": (app, self.sock)}, name="echo")
        self.thread.start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.thread.stop()


def client(**kw: Any) -> HttpClient:
    return HttpClient(timeout=kw.pop("timeout", 5.0), connect_timeout=2.0, **kw)


async def test_the_request_goes_out_as_given(server: Server):
    http = client(headers={"X-Api-Key": "k"})
    try:
        answer = await http.send(
            "POST", server.url + "/a%2Fb/c?x=%20y&z", headers={"X-Test": "1"}, content=b"hello", max_bytes=10_000
        )
    finally:
        await http.aclose()
    echo = json.loads(answer.content)
    assert answer.status == 201
    assert (echo["method"], echo["raw_path"], echo["query"], echo["body"]) == ("POST", "/a%2Fb/c", "x=%20y&z", "hello")
    sent = dict(echo["headers"])
    assert sent["x-test"] == "1"
    assert sent["x-api-key"] == "k"
    assert "content-type" not in sent  # none was given, as with httpx
    assert answer.headers.getall("X-Twice") == ["a", "b"]
    assert (b"x-twice", b"b") in answer.raw_headers


async def test_a_url_httpx_would_encode_is_encoded_the_same_way(server: Server):
    http = client()
    try:
        answer = await http.send("GET", server.url + '/a b"c', max_bytes=10_000)
    finally:
        await http.aclose()
    assert json.loads(answer.content)["raw_path"] == httpx.URL(server.url + '/a b"c').raw_path.decode()


async def test_an_answer_over_the_limit_is_refused(server: Server):
    http = client()
    try:
        with pytest.raises(ResponseTooLarge):  # streamed, no length declared
            await http.send("GET", server.url + "/big?n=50000", max_bytes=20_000)
        with pytest.raises(ResponseTooLarge):  # declared
            await http.send("GET", server.url + "/echo", max_bytes=10)
        assert len((await http.send("GET", server.url + "/big?n=5000", max_bytes=20_000)).content) == 5000
    finally:
        await http.aclose()


async def test_decoded_or_as_it_came(server: Server):
    decoding, raw = client(), client(decompress=False)
    try:
        decoded = await decoding.send("GET", server.url + "/gzip", max_bytes=10_000)
        undecoded = await raw.send("GET", server.url + "/gzip", max_bytes=10_000)
    finally:
        await decoding.aclose()
        await raw.aclose()
    assert json.loads(decoded.content)["raw_path"] == "/gzip"
    assert json.loads(gzip.decompress(undecoded.content))["raw_path"] == "/gzip"
    assert undecoded.headers["content-encoding"] == "gzip"


async def test_failures_are_httpx_exceptions(server: Server):
    http = client(timeout=0.3)
    try:
        with pytest.raises(httpx.ConnectError):
            await http.send("GET", CLOSED + "/", max_bytes=10_000)
        started = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await http.send("GET", server.url + "/slow", max_bytes=10_000)
        assert time.perf_counter() - started < 1.5
        # a call's own timeout overrides the client's
        assert (await http.send("GET", server.url + "/slow", timeout=4, max_bytes=10_000)).status == 201
    finally:
        await http.aclose()


async def test_a_pooled_connection_the_server_closed_is_tried_once_more_on_a_new_one(server: Server):
    http = client(retry_closed=True)
    try:
        first = json.loads((await http.send("POST", server.url + "/x", content=b"1", max_bytes=10_000)).content)
        server.restart()
        second = json.loads((await http.send("POST", server.url + "/x", content=b"2", max_bytes=10_000)).content)
    finally:
        await http.aclose()
    assert second["body"] == "2"
    assert second["client_port"] != first["client_port"]


async def test_without_retry_closed_the_caller_decides(server: Server):
    http = client()
    try:
        await http.send("POST", server.url + "/x", content=b"1", max_bytes=10_000)
        server.restart()
        with pytest.raises(httpx.TransportError) as caught:  # a POST to an agency system is not repeated
            await http.send("POST", server.url + "/x", content=b"2", max_bytes=10_000)
        assert isinstance(caught.value, httpx.RemoteProtocolError | httpx.ReadError)
        assert (await http.send("GET", server.url + "/x", max_bytes=10_000)).status == 201  # the pool recovers
    finally:
        await http.aclose()


class RawServer:
    """A bare HTTP/1.1 server: answers `answered` requests on the first connection, then misbehaves."""

    def __init__(self, *, answered: int, then: bytes) -> None:
        self.answered = answered
        self.then = then  # sent before closing instead of an answer (b"": nothing)
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for n in range(self.answered + 1):
                await reader.readuntil(b"\r\n\r\n")
                if n < self.answered:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
            writer.write(self.then)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        sock: socket.socket = self.server.sockets[0]
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_a_new_connection_closed_unanswered_is_not_tried_again():
    raw = RawServer(answered=0, then=b"")
    http = client(retry_closed=True)
    try:
        async with raw as url:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await http.send("GET", url + "/", max_bytes=10_000)
    finally:
        await http.aclose()
    assert raw.connections == 1


async def test_an_answer_cut_short_is_not_tried_again():
    raw = RawServer(answered=1, then=b"HTTP/1.1 200 OK\r\nContent-Le")
    http = client(retry_closed=True)
    try:
        async with raw as url:
            assert (await http.send("GET", url + "/", max_bytes=10_000)).content == b"ok"
            with pytest.raises(httpx.RemoteProtocolError):  # an answer had begun: the peer did act on it
                await http.send("GET", url + "/", max_bytes=10_000)
    finally:
        await http.aclose()
    assert raw.connections == 1


async def test_httpx_on_the_aiohttp_transport(server: Server):
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(0.3, connect=2)) as http:
        r = await http.post(server.url + "/a%2Fb?q=1", content=b"hi", headers={"X-Test": "1"})
        assert r.status_code == 201
        echo = r.json()
        assert (echo["raw_path"], echo["query"], echo["body"]) == ("/a%2Fb", "q=1", "hi")
        assert dict(echo["headers"])["user-agent"].startswith("python-httpx/")  # httpx's request, as built
        assert r.headers.get_list("x-twice") == ["a", "b"]
        assert r.extensions["network_stream"].get_extra_info("ssl_object") is None
        zipped = await http.get(server.url + "/gzip")
        assert zipped.json()["raw_path"] == "/gzip"  # httpx decodes
        async with http.stream("GET", server.url + "/gzip") as streamed:
            assert gzip.decompress(b"".join([c async for c in streamed.aiter_raw()])).startswith(b"{")
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url + "/slow")
        assert (await http.get(server.url + "/slow", timeout=4)).status_code == 201
        with pytest.raises(httpx.ConnectError):
            await http.get(CLOSED + "/")


async def test_open_tells_a_failure_before_the_answer_from_one_in_its_middle():
    cut = RawServer(answered=0, then=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
    http = client()
    try:
        with pytest.raises(httpx.ConnectError):
            await http.open("POST", CLOSED + "/", content=b"x")
        async with cut as url:
            head = await http.open("POST", url + "/", content=b"x")
            assert (head.status, head.headers["content-length"]) == (200, "10")
            with pytest.raises(httpx.RemoteProtocolError):
                await head.read(10_000)
            head.close()  # harmless after a read
    finally:
        await http.aclose()


def test_joined_headers_are_httpx_items():
    pairs = [("X-A", "1"), ("x-a", "2"), ("Content-Length", "5"), ("B", "3")]
    assert joined(pairs) == dict(httpx.Headers(pairs).items())
    assert joined(pairs, without=frozenset({"content-length"})) == {"x-a": "1, 2", "b": "3"}
