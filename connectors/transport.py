"""Outgoing HTTP on aiohttp's connection pool: a small client for the hot paths, and an httpx transport.

Measured here (REFERENCE.md, "The performance floor of a Python gateway pair"): httpx on its own
pool (httpcore) spends about 0.8 ms of CPU per request under concurrency, httpx on this module's
transport 0.26 ms, aiohttp alone 0.07 ms. So the calls every exchange makes (consumer gateway to
provider gateway, provider gateway to the agency's REST system) use `HttpClient` directly, and code
that needs the httpx API (zeep, in-process apps) can keep it with `AiohttpTransport`.

Both raise httpx's exceptions (ConnectError, ConnectTimeout, ReadTimeout, RemoteProtocolError,
ReadError), so callers map failures to their own errors in one way whichever they use.

A connection the peer closed while it sat in the pool (a restarted or draining server) can fail the
next request before any byte of the answer arrives. With `retry_closed`, such a request is sent once
more, on a new connection; only for callers whose requests are safe to repeat (a peer gateway refuses
a replayed message id). aiohttp's own silent repeat of idempotent requests is off: repeating is the
caller's decision.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from multidict import CIMultiDictProxy
from yarl import URL

from connectors.limits import ResponseTooLarge

# What httpx sends as it is in a URL (it encodes " < > ` { } and drops a #fragment): such URLs skip parsing.
_PLAIN_URL = re.compile(r"[A-Za-z0-9!$&'()*+,\-.:;=@\[\\\]^_|~/?%]*")
_CLOSED_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer: status, headers (case-insensitive, repeated ones kept; and as they came) and body."""

    status: int
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content: bytes


@dataclass(frozen=True, slots=True)
class _Used:
    """The connection a request went out on: whether it came from the pool, its transport and TLS object.

    The TLS object is taken when the connection is handed out: by the time the caller looks, a
    connection that is not kept (the one repeat, on a connection of its own) may already be closed.
    """

    reused: bool
    transport: asyncio.Transport | None
    ssl_object: ssl.SSLObject | None


# Set by the connector in the task that sends the request, read by that same task afterwards.
_used: contextvars.ContextVar[_Used | None] = contextvars.ContextVar("kiungo_transport_used", default=None)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, noting for each request which connection it got and whether it was pooled.

    The response cannot tell: aiohttp hands a connection back to the pool as soon as a small answer
    is complete, before the caller sees the response.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seen: weakref.WeakSet[object] = weakref.WeakSet()

    async def connect(self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout) -> Connection:
        conn = await super().connect(req, traces, timeout)
        protocol = conn.protocol
        reused = protocol in self._seen
        if not reused and protocol is not None:
            self._seen.add(protocol)
        transport = conn.transport
        _used.set(_Used(reused, transport, transport.get_extra_info("ssl_object") if transport else None))
        return conn


def url_of(text: str) -> URL:
    """A URL sent exactly as given when it is already encoded (as httpx would send it), else encoded."""
    if _PLAIN_URL.fullmatch(text) is None:
        text = str(httpx.URL(text))
    return URL(text, encoded=True)


class HttpClient:
    """A pooled HTTP/1.1 client on one aiohttp session, made in the event loop that first uses it.

    `ssl_context` is used for https as given (mutual TLS, pinned CAs); without one, httpx's default
    verification. Timeouts as httpx's: `connect` for the TCP and TLS handshake, `timeout` between two
    reads and for waiting on a pooled connection. An idle connection is closed after `keepalive_expiry`
    seconds: by default a little sooner than common servers close theirs (uvicorn: 5 s), so that a
    request is not sent on a connection the server is closing. `decompress`: hand over the decoded
    body (else the bytes as they came, e.g. when a signature covers them). `headers` go with every
    request.
    """

    def __init__(
        self,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int = 100,
        keepalive_expiry: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
        decompress: bool = True,
        retry_closed: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._keepalive = keepalive_expiry
        self._ssl = ssl_context
        self._decompress = decompress
        self._retry_closed = retry_closed
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None  # no pool: for the one repeat after a closed connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _new_session(self, *, pooled: bool) -> aiohttp.ClientSession:
        context = self._ssl if self._ssl is not None else httpx.create_ssl_context()
        connector = _Connector(
            ssl=context,
            limit=self._max_connections,
            keepalive_timeout=self._keepalive if pooled else None,
            force_close=not pooled,
            ttl_dns_cache=60,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            auto_decompress=self._decompress,
            skip_auto_headers=("Content-Type",),  # httpx sends none unless the caller gives one
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),  # a gateway relays answers; it keeps no one's cookies
        )
        session._retry_connection = False  # see the module's docstring
        return session

    def _pooled(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            # first use, or another event loop (tests): a session belongs to the loop it was made in
            self._session, self._fresh, self._loop = self._new_session(pooled=True), None, loop
        return self._session

    def timeouts(self, read: float | None, connect: float | None, pool: float | None) -> aiohttp.ClientTimeout:
        """httpx's timeouts as aiohttp's (None: no limit); waiting for a pooled connection counts as connecting."""
        key = (read, connect, pool)
        timeout = self._timeouts.get(key)
        if timeout is None:
            overall = None if connect is None or pool is None else connect + pool
            timeout = aiohttp.ClientTimeout(total=None, connect=overall, sock_connect=connect, sock_read=read)
            if len(self._timeouts) < 32:
                self._timeouts[key] = timeout
        return timeout

    async def _start(
        self, method: str, url: URL, headers: _Headers | None, content: bytes | None, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """Send the request and read the answer's head: httpx's exception on failure."""
        args: dict[str, Any] = {
            "headers": headers,
            "data": content or None,
            "timeout": timeout,
            "allow_redirects": False,
        }
        _used.set(None)
        try:
            try:
                return await self._pooled().request(method, url, **args)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if not (self._retry_closed and _closed_before_answer(exc)):
                    raise
                if self._fresh is None:
                    self._fresh = self._new_session(pooled=False)
                return await self._fresh.request(method, url, **args)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = _translate(exc, method, url, answered=False)
            raise error from error.__cause__

    async def open(
        self,
        method: str,
        url: str | URL,
        *,
        headers: _Headers | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> Head:
        """Send, and wait for the answer's head; its body is read with `Head.read` (or dropped with `close`).

        For callers that treat failures before an answer (the system is not there) apart from failures
        in the middle of one (it answered badly); `send` does both steps at once.
        """
        target = url if isinstance(url, URL) else url_of(url)
        read = self.timeout if timeout is None else timeout
        response = await self._start(method, target, headers, content, self.timeouts(read, self.connect_timeout, read))
        used = _used.get()
        return Head(response, method, target, used.ssl_object if used else None)

    async def send(
        self,
        method: str,
        url: str | URL,
        *,
        headers: _Headers | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
        max_bytes: int,
        check: Callable[[ssl.SSLObject | None], None] | None = None,
    ) -> Answer:
        """Send and read the whole answer, or raise ResponseTooLarge once it passes `max_bytes`.

        `check` sees the connection's TLS object after the answer's head and before its body: a
        certificate pin refuses there without reading what the wrong peer sends.
        """
        head = await self.open(method, url, headers=headers, content=content, timeout=timeout)
        if check is not None:
            try:
                check(head.ssl_object)
            except BaseException:
                head.close()
                raise
        return Answer(head.status, head.headers, head.raw_headers, await head.read(max_bytes))

    async def aclose(self) -> None:
        sessions = [s for s in (self._session, self._fresh) if s is not None]
        self._session = self._fresh = None
        if self._loop is asyncio.get_running_loop():
            for session in sessions:
                await session.close()


def joined(pairs: Iterable[tuple[str, str]], *, without: frozenset[str] = frozenset()) -> dict[str, str]:
    """Headers as one lowercase name each, repeated ones joined by commas: what httpx's `Headers.items()` gives."""
    flat: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in without:
            continue
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


class Head:
    """An answer whose head has arrived: status, headers and the connection's TLS object; the body to come."""

    __slots__ = ("_method", "_response", "_url", "headers", "raw_headers", "ssl_object", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, method: str, url: URL, ssl_object: ssl.SSLObject | None
    ) -> None:
        self._response = response
        self._method = method
        self._url = url
        self.status = response.status
        self.headers = response.headers
        self.raw_headers = response.raw_headers
        self.ssl_object = ssl_object

    async def read(self, max_bytes: int) -> bytes:
        """The whole body, or ResponseTooLarge once it passes `max_bytes`; httpx's exception on failure."""
        response = self._response
        try:
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise ResponseTooLarge
            body = await _read_limited(response, max_bytes)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            response.close()
            error = _translate(exc, self._method, self._url, answered=True)
            raise error from error.__cause__
        except BaseException:
            response.close()  # too large, or cancelled: the connection goes, not back to the pool
            raise
        response.release()
        return body

    def close(self) -> None:
        """Drop the answer unread (a refused peer, a caller giving up): its connection is closed."""
        self._response.close()


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    received = bytearray()  # not bytes +=: a large answer in many chunks would be copied again each time
    async for chunk in response.content.iter_any():
        received += chunk
        if len(received) > limit:
            raise ResponseTooLarge
    return bytes(received)


class _NetworkStream:
    """What httpx's `network_stream` response extension offers that callers use: `get_extra_info`."""

    __slots__ = ("_used",)

    def __init__(self, used: _Used | None) -> None:
        self._used = used

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._used is None:
            return default
        if name == "ssl_object":
            return self._used.ssl_object
        transport = self._used.transport
        return default if transport is None or transport.is_closing() else transport.get_extra_info(name, default)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, method: str, url: URL) -> None:
        self._response = response
        self._method = method
        self._url = url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = _translate(exc, self._method, self._url, answered=True)
            raise error from error.__cause__

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on `HttpClient`'s pool, for code that needs the httpx API (zeep, tests).

    The request httpx built is sent as it is (aiohttp adds no header), the answer comes back
    undecoded (httpx decodes it), and httpx's per-request timeouts apply.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive_expiry: float = 4.0,
        retry_closed: bool = False,
    ) -> None:
        self._client = HttpClient(
            timeout=5.0,
            connect_timeout=5.0,
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            ssl_context=ssl_context,
            decompress=False,
            retry_closed=retry_closed,
            headers={},
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body: bytes = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw if k != b"transfer-encoding"
        ]
        t = request.extensions.get("timeout") or {}
        url = URL(str(request.url), encoded=True)
        timeout = self._client.timeouts(t.get("read"), t.get("connect"), t.get("pool"))
        response = await self._client._start(request.method, url, headers, body, timeout)
        used = _used.get()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request.method, url),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1" if response.version == aiohttp.HttpVersion11 else b"HTTP/1.0",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
                "network_stream": _NetworkStream(used),
            },
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _closed_before_answer(exc: BaseException) -> bool:
    """The request failed on a pooled connection the peer had closed, before any byte of its answer."""
    used = _used.get()
    if used is None or not used.reused:
        return False
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return isinstance(exc.message, str)  # else the parser had begun an answer: it holds what came
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in _CLOSED_ERRNOS


def _translate(exc: BaseException, method: str, url: URL, *, answered: bool) -> httpx.TransportError:
    """aiohttp's failure as the exception httpx's own transport raises for it, the cause kept in the chain."""
    request = httpx.Request(method, str(url))
    message = str(exc) or type(exc).__name__
    error: httpx.TransportError
    cause: BaseException = exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout(message, request=request)
    elif isinstance(exc, TimeoutError):  # SocketTimeoutError and the rest: no byte for too long
        error = httpx.ReadTimeout(message, request=request)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError(message, request=request)
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            cause = exc.certificate_error  # the TLS failure itself, which callers look for in the chain
        elif isinstance(exc, aiohttp.ClientConnectorSSLError):
            cause = exc.os_error
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        said = "peer closed connection without sending complete message body" if answered else None
        error = httpx.RemoteProtocolError(said or "Server disconnected without sending a response.", request=request)
    elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        error = httpx.RemoteProtocolError(message, request=request)
    elif isinstance(exc, aiohttp.ClientConnectionError | OSError):
        error = httpx.ReadError(message, request=request)
    else:
        error = httpx.TransportError(message, request=request)
    error.__cause__ = cause
    return error
