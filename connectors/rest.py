"""A connector for agency systems that speak REST, on aiohttp's pool (or any httpx transport).

Path placeholders are filled from the call's parameters, each percent-encoded on its own so that no
value can change the path; other parameters become the query (GET, DELETE) or a JSON body. Only
idempotent calls are retried, and only when the connection failed or the system said it is
temporarily unavailable: a retried POST could pay a benefit twice.

Calls go out through `connectors.transport.HttpClient` (a tenth of httpx's CPU per call, and every
exchange a provider gateway serves makes one); given an httpx transport (an app in the same process,
a test double), through httpx.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from connectors.connector import AsyncCloseContext, Param, ServiceRequest, ServiceResponse
from connectors.errors import (
    ConnectorTimeout,
    InvalidRequestError,
    MalformedResponseError,
    UnreachableError,
    UpstreamError,
)
from connectors.limits import ResponseTooLarge, read_limited
from connectors.redaction import Redactor
from connectors.retries import IDEMPOTENT_METHODS, RETRY_STATUSES, backoff
from connectors.settings import RestSettings, parse
from connectors.transport import HttpClient, joined

# the content was decoded while it came in: its length and coding are no longer the wire's
_DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FORMATTER = string.Formatter()


def placeholders(template: str) -> list[str]:
    """Names of the `{placeholders}` in a path template."""
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


@dataclass(frozen=True, slots=True)
class _Outgoing:
    method: str
    path: str  # after the base URL: the filled-in path, and the query as the call gave it
    params: dict[str, str]  # more query parameters, encoded as httpx encodes them
    headers: dict[str, str]
    content: bytes | None


class _LostBeforeAnswer(Exception):
    """The connection broke after the request went out and before any byte of the answer came back."""


class RestConnector(AsyncCloseContext):
    """Calls one REST agency system through a pooled client."""

    def __init__(self, name: str, settings: RestSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.settings = settings
        self._http: HttpClient | None = None
        self._client: httpx.AsyncClient | None = None
        if transport is None:
            self._http = HttpClient(
                timeout=settings.timeout,
                connect_timeout=settings.connect_timeout,
                max_connections=settings.max_connections,
                headers=settings.headers,
            )
        else:
            self._client = httpx.AsyncClient(
                base_url=settings.base_url,
                headers=settings.headers,
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                limits=httpx.Limits(
                    max_connections=settings.max_connections, max_keepalive_connections=settings.max_keepalive
                ),
                follow_redirects=False,
                transport=transport,
            )

    @classmethod
    def from_config(cls, name: str, settings: Mapping[str, Any]) -> RestConnector:
        return cls(name, parse(RestSettings, name, settings))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def call(self, request: ServiceRequest) -> ServiceResponse:
        method = request.method.upper()
        redact = Redactor(request.params.values())
        built = self._build(method, request)
        tries = 1 + (self.settings.retries if method in IDEMPOTENT_METHODS else 0)
        started = time.perf_counter()
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                status, headers, content = await self._send(built, request.timeout)
            except httpx.ConnectError as exc:
                if not last:
                    await backoff(self.settings.retry_backoff, attempt)
                    continue
                raise UnreachableError(
                    f"cannot connect ({type(exc).__name__})", system=self.name, operation=request.operation
                ) from None
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and not last:
                    await backoff(self.settings.retry_backoff, attempt)
                    continue
                raise ConnectorTimeout(
                    f"no answer within {request.timeout or self.settings.timeout:g} s ({type(exc).__name__})",
                    system=self.name,
                    operation=request.operation,
                ) from None
            except _LostBeforeAnswer as exc:  # reset or broken before any byte of an answer: not there
                # not retried: the system may have received (and acted on) the request before the reset
                raise UnreachableError(
                    f"connection lost before an answer ({exc})", system=self.name, operation=request.operation
                ) from None
            except httpx.TransportError as exc:  # connection reset, protocol violation mid-answer
                raise MalformedResponseError(
                    f"broken answer ({type(exc).__name__})", system=self.name, operation=request.operation
                ) from None
            if status in RETRY_STATUSES and not last:
                await backoff(self.settings.retry_backoff, attempt)
                continue
            return self._respond(request, redact, status, headers, content, time.perf_counter() - started)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _build(self, method: str, request: ServiceRequest) -> _Outgoing:
        names = placeholders(request.operation)
        missing = [n for n in names if request.params.get(n) in (None, "")]
        if missing:
            raise InvalidRequestError(
                f"missing parameter(s) {', '.join(missing)}", system=self.name, operation=request.operation
            )
        path = request.operation.format_map({n: quote(str(request.params[n]), safe="") for n in names})
        path += request.path
        if request.query:
            path += "?" + request.query
        rest = {k: v for k, v in request.params.items() if k not in names and v is not None}
        query: dict[str, str] = {}
        content: bytes | None = request.body
        headers = dict(request.headers)
        if content is None and rest:
            if method in _BODY_METHODS:
                content = json.dumps(rest).encode()
                headers.setdefault("content-type", "application/json")
            else:
                query = {k: _query_value(v) for k, v in rest.items()}
        return _Outgoing(method, "/" + path.lstrip("/"), query, headers, content)

    async def _send(self, out: _Outgoing, timeout: float | None) -> tuple[int, dict[str, str], bytes]:
        limit = self.settings.max_response_bytes
        try:
            if self._http is not None:
                url = self.settings.base_url + out.path
                if out.params:  # httpx's encoding of the query, as before
                    url = str(httpx.URL(url).copy_merge_params(out.params))
                try:
                    head = await self._http.open(
                        out.method, url, headers=out.headers, content=out.content, timeout=timeout
                    )
                except (httpx.ReadError, httpx.WriteError) as exc:
                    raise _LostBeforeAnswer(type(exc).__name__) from None
                content = await head.read(limit)
                return head.status, joined(head.headers.items(), without=_DECODED), content
            assert self._client is not None
            built = self._client.build_request(
                out.method, out.path, params=out.params or None, content=out.content, headers=out.headers
            )
            if timeout is not None:
                built.extensions["timeout"] = httpx.Timeout(timeout, connect=self.settings.connect_timeout).as_dict()
            response = await self._client.send(built, stream=True)
            try:
                content = await read_limited(response, limit)
            finally:
                await response.aclose()
            return response.status_code, joined(response.headers.multi_items(), without=_DECODED), content
        except ResponseTooLarge:
            raise MalformedResponseError(f"answer larger than {limit} bytes", system=self.name) from None

    def _respond(
        self,
        request: ServiceRequest,
        redact: Redactor,
        status: int,
        headers: dict[str, str],
        content: bytes,
        elapsed: float,
    ) -> ServiceResponse:
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        data: Any = None
        is_json = media_type == "application/json" or media_type.endswith("+json")
        if request.passthrough:
            return ServiceResponse(status, headers, content, None, media_type, elapsed)
        if is_json and content:
            try:
                data = json.loads(content)
            except ValueError:
                if status < 500:
                    raise MalformedResponseError(
                        f"answer {status} declared {media_type} but is not valid JSON",
                        system=self.name,
                        operation=request.operation,
                    ) from None
        if status >= 500:
            problem = data if isinstance(data, dict) else {}
            code = str(problem.get("type") or "") or None
            title = redact(str(problem.get("title") or ""))
            raise UpstreamError(
                f"upstream answered {status}" + (f" ({title})" if title else ""),
                system=self.name,
                operation=request.operation,
                status=status,
                code=code,
                detail=redact(str(problem.get("detail") or "")) or None,
            )
        return ServiceResponse(
            status=status,
            headers=headers,
            content=content,
            data=data,
            media_type=media_type,
            elapsed=elapsed,
        )


def _query_value(value: Param) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
