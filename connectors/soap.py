"""A connector for agency systems that speak SOAP 1.1, on zeep with an async httpx transport.

The WSDL is loaded once, on first use, in a worker thread (zeep loads it synchronously) and hardened
(no DTD, no entities, no external references). Structured calls go through zeep; a client's own SOAP
envelope can also be passed through unchanged, which is what an X-Road-style gateway does.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from connectors.connector import AsyncCloseContext, ServiceRequest, ServiceResponse
from connectors.errors import (
    ConfigurationError,
    ConnectorTimeout,
    InvalidRequestError,
    MalformedResponseError,
    UnreachableError,
    UpstreamError,
)
from connectors.limits import ResponseTooLarge, read_limited
from connectors.redaction import Redactor
from connectors.retries import RETRY_STATUSES, backoff
from connectors.settings import SoapSettings, parse
from connectors.transport import AiohttpTransport, HttpClient, joined

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

# What the transport saw during the current call: whether anything was sent, and the raw answer.
_sent: contextvars.ContextVar[bool] = contextvars.ContextVar("kiungo_soap_sent", default=False)
_raw: contextvars.ContextVar[bytes] = contextvars.ContextVar("kiungo_soap_raw", default=b"")
_status: contextvars.ContextVar[int] = contextvars.ContextVar("kiungo_soap_status", default=0)


class _Transport(AsyncTransport):
    """zeep's async transport with a bounded answer size, noting what it sent and received."""

    def __init__(self, client: httpx.AsyncClient, wsdl_client: httpx.Client, limit: int) -> None:
        super().__init__(client=client, wsdl_client=wsdl_client)
        self._limit = limit

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        _sent.set(True)
        request = self.client.build_request("POST", address, content=message, headers=headers)
        response = await self.client.send(request, stream=True)
        try:
            content = await read_limited(response, self._limit)
        finally:
            await response.aclose()
        _raw.set(content)
        _status.set(response.status_code)
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)


class SoapConnector(AsyncCloseContext):
    """Calls one SOAP agency system described by its WSDL."""

    def __init__(self, name: str, settings: SoapSettings) -> None:
        self.name = name
        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_keepalive
            ),
            follow_redirects=False,
            transport=AiohttpTransport(max_connections=settings.max_connections),
        )
        self._raw = HttpClient(
            timeout=settings.timeout,
            connect_timeout=settings.connect_timeout,
            max_connections=settings.max_connections,
        )
        self._service: Any = None
        self._endpoint: str | None = settings.endpoint
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, name: str, settings: Mapping[str, Any]) -> SoapConnector:
        return cls(name, parse(SoapSettings, name, settings))

    async def aclose(self) -> None:
        await self._raw.aclose()
        await self._http.aclose()

    @property
    def endpoint(self) -> str | None:
        """Where calls are posted: the configured endpoint, or the WSDL's address once loaded."""
        return self._endpoint

    async def operations(self) -> list[str]:
        """The operations the WSDL offers (loads it if needed)."""
        service = await self._ensure_loaded()
        return sorted(service._binding._operations)

    async def call(self, request: ServiceRequest) -> ServiceResponse:
        if request.passthrough:
            return await self._passthrough(request)
        service = await self._ensure_loaded()
        try:
            operation = service[request.operation]
        except (AttributeError, KeyError, ValueError):
            raise InvalidRequestError(
                "the WSDL has no such operation", system=self.name, operation=request.operation
            ) from None
        params = {k: v for k, v in request.params.items() if v is not None}
        retries = self.settings.retries if request.operation in self._idempotent else 0
        started = time.perf_counter()
        for attempt in range(retries + 1):
            try:
                result, raw = await self._invoke(operation, params, request)
                break
            except (UnreachableError, UpstreamError) as exc:
                transient = isinstance(exc, UnreachableError) or exc.status in RETRY_STATUSES
                if attempt == retries or not transient:
                    raise
                await backoff(self.settings.retry_backoff, attempt)
        return ServiceResponse(
            status=200,
            headers={},
            content=raw,
            data=jsonable(zeep.helpers.serialize_object(result, dict)),
            media_type="text/xml",
            elapsed=time.perf_counter() - started,
        )

    @property
    def _idempotent(self) -> frozenset[str]:
        return frozenset(self.settings.idempotent_operations)

    async def _invoke(self, operation: Any, params: dict[str, Any], request: ServiceRequest) -> tuple[Any, bytes]:
        """Run one zeep call in a context of its own, so the transport's notes are this call's."""
        ctx = contextvars.copy_context()
        task = asyncio.get_running_loop().create_task(self._run(operation, params, request), context=ctx)
        result = await task
        return result, ctx.get(_raw, b"")

    async def _run(self, operation: Any, params: dict[str, Any], request: ServiceRequest) -> Any:
        where = {"system": self.name, "operation": request.operation}
        redact = Redactor(request.params.values())
        timeout = request.timeout or self.settings.timeout
        try:
            async with asyncio.timeout(timeout):
                return await operation(**params)
        except zeep.exceptions.Fault as fault:
            raise UpstreamError(
                f"SOAP Fault {fault.code or ''}".rstrip(),
                status=_status.get() or 500,
                code=str(fault.code) if fault.code else None,
                detail=redact(str(fault.message or "")) or None,
                **where,
            ) from None
        except (TypeError, zeep.exceptions.ValidationError) as exc:
            if not _sent.get():
                raise InvalidRequestError(_argument_problem(exc, redact), **where) from None
            raise MalformedResponseError("the answer does not match the WSDL", **where) from None
        except zeep.exceptions.TransportError as exc:
            if exc.status_code >= 500:
                raise UpstreamError(f"upstream answered {exc.status_code}", status=exc.status_code, **where) from None
            raise MalformedResponseError(
                f"answer {exc.status_code or ''} is not a SOAP envelope".replace("  ", " "), **where
            ) from None
        except zeep.exceptions.Error as exc:
            raise MalformedResponseError(
                f"the answer does not match the WSDL ({type(exc).__name__})", **where
            ) from None
        except ResponseTooLarge:
            raise MalformedResponseError(
                f"answer larger than {self.settings.max_response_bytes} bytes", **where
            ) from None
        except etree.XMLSyntaxError:
            raise MalformedResponseError("answer is not well-formed XML", **where) from None
        except httpx.ConnectError as exc:
            raise UnreachableError(f"cannot connect ({type(exc).__name__})", **where) from None
        except (httpx.TimeoutException, TimeoutError):
            raise ConnectorTimeout(f"no answer within {timeout:g} s", **where) from None
        except httpx.TransportError as exc:
            raise MalformedResponseError(f"broken answer ({type(exc).__name__})", **where) from None

    async def _passthrough(self, request: ServiceRequest) -> ServiceResponse:
        """Post a complete SOAP envelope as it is, and hand back the answer (Faults included) as it is."""
        if request.body is None:
            raise InvalidRequestError("a pass-through call needs a body", system=self.name, operation=request.operation)
        if self._endpoint is None:
            await self._ensure_loaded()
        assert self._endpoint is not None
        where = {"system": self.name, "operation": request.operation}
        headers = {"content-type": "text/xml; charset=utf-8", **request.headers}
        timeout = request.timeout or self.settings.timeout
        started = time.perf_counter()
        try:
            head = await self._raw.open("POST", self._endpoint, headers=headers, content=request.body, timeout=timeout)
        except httpx.ConnectError as exc:
            raise UnreachableError(f"cannot connect ({type(exc).__name__})", **where) from None
        except httpx.TimeoutException:
            raise ConnectorTimeout(f"no answer within {timeout:g} s", **where) from None
        except (httpx.ReadError, httpx.WriteError) as exc:
            # reset or broken before any byte of an answer: the system is not there, it did not answer badly
            raise UnreachableError(f"connection lost before an answer ({type(exc).__name__})", **where) from None
        except httpx.TransportError as exc:
            raise MalformedResponseError(f"broken answer ({type(exc).__name__})", **where) from None
        try:
            content = await head.read(self.settings.max_response_bytes)
        except ResponseTooLarge:
            raise MalformedResponseError(
                f"answer larger than {self.settings.max_response_bytes} bytes", **where
            ) from None
        except httpx.TimeoutException:
            raise ConnectorTimeout(f"no answer within {timeout:g} s", **where) from None
        except httpx.TransportError as exc:
            raise MalformedResponseError(f"broken answer ({type(exc).__name__})", **where) from None
        media_type = head.headers.get("content-type", "").split(";")[0].strip().lower()
        return ServiceResponse(
            status=head.status,
            headers=joined(head.headers.items()),
            content=content,
            media_type=media_type,
            elapsed=time.perf_counter() - started,
        )

    async def _ensure_loaded(self) -> Any:
        if self._service is not None:
            return self._service
        async with self._lock:
            if self._service is None:
                self._service = await asyncio.to_thread(self._load)
        return self._service

    def _load(self) -> Any:
        s = self.settings
        wsdl_http = httpx.Client(timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout), follow_redirects=False)
        try:
            client = zeep.AsyncClient(
                s.wsdl,
                transport=_Transport(self._http, wsdl_http, s.max_response_bytes),
                settings=_ZEEP_SETTINGS,
            )
            service = client.bind(s.service, s.port) if (s.service or s.port) else client.service
        except httpx.ConnectError as exc:
            raise UnreachableError(f"cannot load the WSDL ({type(exc).__name__})", system=self.name) from None
        except httpx.TimeoutException:
            raise ConnectorTimeout("the WSDL did not load in time", system=self.name) from None
        except (OSError, httpx.HTTPError, zeep.exceptions.Error, etree.XMLSyntaxError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the WSDL ({type(exc).__name__}: {exc})", system=self.name) from None
        finally:
            wsdl_http.close()
        if service is None:
            raise ConfigurationError("the WSDL defines no service", system=self.name)
        if self._endpoint:
            service = AsyncServiceProxy(client, service._binding, address=self._endpoint)
        else:
            self._endpoint = service._binding_options["address"]
        return service


def fault_of(content: bytes) -> tuple[str | None, str]:
    """The faultcode and faultstring of a SOAP 1.1 Fault, read with a parser that expands nothing."""
    try:
        root = etree.fromstring(content, _SAFE_PARSER)
    except etree.XMLSyntaxError:
        return None, ""
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    if fault is None:
        return None, ""
    return fault.findtext("faultcode"), fault.findtext("faultstring") or ""


def jsonable(value: Any) -> Any:
    """zeep's Python values (dates, decimals, bytes) as plain JSON types."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _argument_problem(exc: Exception, redact: Redactor) -> str:
    return f"invalid arguments: {redact(str(getattr(exc, 'message', '') or exc))}"
