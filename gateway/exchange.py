"""One exchange through the node: its context, its checks, the call to the provider, its record.

The protocol modules (REST, SOAP) parse their wire format into an `Exchange` and render the answer;
everything in between (who is calling, what may be called, reaching the system, the monitoring record
and metrics) is here, once for both.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import exc as sqlalchemy_errors

from connectors import (
    Connector,
    ConnectorError,
    ConnectorTimeout,
    InvalidRequestError,
    MalformedResponseError,
    ServiceRequest,
    ServiceResponse,
    UnreachableError,
    UpstreamError,
)
from gateway import errors
from gateway.breaker import CircuitBreakers
from gateway.cache import AnswerCache
from gateway.catalog import Catalog, LocalClient, LocalService
from gateway.errors import GatewayError
from gateway.exchangelog import ExchangeLog, LoggingFailed, LogRecord
from gateway.identifiers import ClientId, ServiceId
from gateway.metrics import NodeMetrics
from gateway.monitoring import OperationalMonitor, OperationalRecord

MAX_HEADER_VALUE = 255
_PURPOSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


# A database that cannot be reached or answer (down, restarting, locked, full, the pool exhausted), as SQLAlchemy
# says it or, from a raw connection, the driver; anything else from a database is a bug, and an internal error.
_UNREACHABLE_DATABASE = (
    sqlalchemy_errors.OperationalError,
    sqlalchemy_errors.InterfaceError,
    sqlalchemy_errors.DisconnectionError,
    sqlalchemy_errors.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Exchange:
    """What is known about one exchange as it proceeds; becomes its operational record at the end."""

    protocol: str
    id: str = ""
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client: ClientId | None = None
    service: ServiceId | None = None
    user_id: str | None = None
    issue: str | None = None
    represented_party: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    consent_reference: str | None = None
    protocol_version: str | None = None
    method: str | None = None
    path_template: str | None = None
    request_size: int = 0
    response_size: int | None = None
    status_code: int | None = None
    request_in_ts: int = field(default_factory=now_ms)
    request_out_ts: int | None = None
    response_in_ts: int | None = None
    started: float = field(default_factory=time.perf_counter)
    resolved: bool = False  # the service is one this node offers (safe as a metrics label)
    side: str = "Producer"  # X-Road's security server type: "Client" when forwarding to a peer
    remote_fault: str | None = None  # the provider gateway's refusal, passed through to the client
    agreement_id: str | None = None
    agreement_version: int | None = None
    decision: str | None = None  # the policy decision's reason code
    consent_record: str | None = None
    subject_hash: str | None = None  # keyed hash of the data subject's id; the id itself is never kept
    subject_hashes: list[str] | None = None  # all of them, when the exchange concerns several (a batch)
    cache_seconds: int = 0  # the agreement lets this gateway reuse the system's answer for this long
    cache_entry: tuple[tuple[str, ...], ServiceRequest, ServiceResponse] | None = None  # to keep, if all goes well
    lawful_basis: str | None = None  # the agreement's (authoritative), else what the client declared
    request_digest: str | None = None
    response_digest: str | None = None
    request_signature: str | None = None
    response_signature: str | None = None
    committed: bool = False
    circuit: str | None = None  # the system's circuit, whose verdict waits until its answer has been checked

    def received(self, body: bytes) -> None:
        self.request_size = len(body)
        self.request_digest = hashlib.sha256(body).hexdigest()

    def log_record(self, error: GatewayError | None) -> LogRecord:
        outcome = error.code if error else (self.remote_fault or "ok")
        return LogRecord(
            exchange_id=self.id or self.request_id,
            request_id=self.request_id,
            side=self.side,
            protocol=self.protocol,
            client=str(self.client) if self.client else None,
            service=str(self.service) if self.service else None,
            user_id=self.user_id,
            purpose=self.purpose,
            lawful_basis=self.lawful_basis or self.legal_basis,
            agreement_id=self.agreement_id,
            agreement_version=self.agreement_version,
            consent_record=self.consent_record,
            decision=self.decision,
            outcome=outcome,
            status_code=error.status if error else self.status_code,
            fault_code=error.code if error else self.remote_fault,
            request_in_ts=self.request_in_ts,
            request_out_ts=self.request_out_ts,
            response_in_ts=self.response_in_ts,
            response_out_ts=now_ms(),
            request_size=self.request_size,
            response_size=self.response_size,
            request_digest=self.request_digest,
            response_digest=self.response_digest,
            request_signature=self.request_signature,
            response_signature=self.response_signature,
            subject_hash=self.subject_hash,
            method=self.method,
            path_template=self.path_template,
            issue=self.issue,
            subject_hashes=self.subject_hashes,
        )

    def record(self, error: GatewayError | None) -> OperationalRecord:
        return OperationalRecord(
            message_id=self.id,
            request_id=self.request_id,
            security_server_type=self.side,
            protocol=self.protocol,
            request_in_ts=self.request_in_ts,
            request_out_ts=self.request_out_ts,
            response_in_ts=self.response_in_ts,
            response_out_ts=now_ms(),
            client_id=str(self.client) if self.client else None,
            service_id=str(self.service) if self.service else None,
            message_user_id=self.user_id,
            message_issue=self.issue,
            message_protocol_version=self.protocol_version,
            purpose=self.purpose,
            rest_method=self.method,
            rest_path=self.path_template,
            request_size=self.request_size,
            response_size=self.response_size,
            status_code=error.status if error else self.status_code,
            succeeded=error is None and self.remote_fault is None,
            fault_code=error.code if error else self.remote_fault,
            fault_string=error.message if error else None,
        )


def header_value(value: str | None, name: str, *, required: bool = False) -> str | None:
    """A bounded, printable header value (X-Road ids, user ids, issues); None when absent."""
    if value is None or value == "":
        if required:
            raise GatewayError(errors.MISSING_HEADER, f"the {name} header is required")
        return None
    if len(value) > MAX_HEADER_VALUE or not _PRINTABLE.fullmatch(value):
        raise GatewayError(
            errors.INVALID_HEADER, f"{name} must be printable ASCII of at most {MAX_HEADER_VALUE} characters"
        )
    return value


def check_purpose(value: str | None, name: str) -> str:
    if not value:
        raise GatewayError(
            errors.MISSING_PURPOSE, f"the purpose of the exchange is required ({name}); no purpose, no exchange"
        )
    if not _PURPOSE.fullmatch(value):
        raise GatewayError(
            errors.INVALID_PURPOSE, f"{name} must be a purpose code: letters, digits and ._:- (at most 128 characters)"
        )
    return value


#: Answers of an agency system that count against its circuit: it, or what stands before it, is unavailable.
UNAVAILABLE = frozenset({502, 503, 504})


class Pipeline:
    """The checks and the provider call shared by every protocol."""

    def __init__(
        self,
        catalog: Catalog,
        connectors: Mapping[str, Connector],
        monitor: OperationalMonitor,
        metrics: NodeMetrics,
        provider_timeout: float,
        log: ExchangeLog,
        breakers: CircuitBreakers | None = None,
        cache: AnswerCache | None = None,
    ) -> None:
        self.log = log
        self.breakers = breakers
        self.cache = cache
        self.catalog = catalog
        self.connectors = connectors
        self.monitor = monitor
        self.metrics = metrics
        self.provider_timeout = provider_timeout

    @asynccontextmanager
    async def recorded(self, ex: Exchange) -> AsyncIterator[None]:
        """Count the exchange while it runs and write its record however it ends."""
        self.metrics.in_flight.inc()
        error: GatewayError | None = None
        try:
            yield
        except GatewayError as exc:
            error = exc
            self._log_refusal(ex, exc)
            raise
        except _UNREACHABLE_DATABASE as exc:
            # a store the exchange must read (the consent registry, the log for findUsage) is unreachable: refused,
            # and said so, rather than an internal error (the driver's own message may quote personal data)
            error = GatewayError(
                errors.STATE_UNAVAILABLE,
                f"a database this gateway needs could not be read ({type(exc).__name__}), so the exchange is refused",
            )
            self._log_refusal(ex, error)
            raise error from None
        except Exception:
            error = GatewayError(errors.INTERNAL_ERROR, "internal error")
            self._log_refusal(ex, error)
            raise
        finally:
            self._circuit_verdict(ex, error)
            if error is None and ex.cache_entry is not None and self.cache is not None:
                key, request, response = ex.cache_entry
                self.cache.put(key, request, response, ex.cache_seconds)
            self.metrics.in_flight.dec()
            label = str(ex.service) if ex.resolved and ex.service else "unknown"
            outcome = error.code if error else (ex.remote_fault or "ok")
            self.metrics.observe(label, ex.protocol, outcome, time.perf_counter() - ex.started)
            self.monitor.add(ex.record(error))

    def commit(self, ex: Exchange, status: int, content: bytes, request_body: bytes | None = None) -> None:
        """Log the exchange before its answer leaves: no log record, no exchange."""
        ex.status_code = status
        ex.response_size = len(content)
        ex.response_digest = hashlib.sha256(content).hexdigest()
        try:
            self.log.append(ex.log_record(None), request_body=request_body, response_body=content)
        except LoggingFailed:
            raise self._logging_failed(ex) from None
        ex.committed = True

    def _logging_failed(self, ex: Exchange) -> GatewayError:
        self.metrics.log_failures.inc()
        kind = errors.LOGGING_FAILED_CLIENT if ex.side == "Client" else errors.LOGGING_FAILED
        return GatewayError(kind, "the exchange could not be written to the exchange log, so it is refused")

    def _circuit_verdict(self, ex: Exchange, error: GatewayError | None) -> None:
        """A system that answered counts as healthy unless its answer proved unusable (garbage, a broken envelope):
        that is only known once the protocol has checked it, after `call`."""
        if ex.circuit is None or self.breakers is None:
            return
        if error is not None and error.kind == errors.INVALID_RESPONSE:
            self.breakers.failed(ex.circuit)
        else:
            self.breakers.succeeded(ex.circuit)

    def _log_refusal(self, ex: Exchange, error: GatewayError) -> None:
        """Refusals are logged too; one that cannot be is still refused (and counted in the metrics)."""
        if ex.committed or error.kind in (errors.LOGGING_FAILED, errors.LOGGING_FAILED_CLIENT):
            return
        try:
            self.log.append(ex.log_record(error))
            ex.committed = True
        except LoggingFailed:
            self.metrics.log_failures.inc()

    def authenticate(self, ex: Exchange, token: str | None, cert_der: bytes | None = None) -> LocalClient:
        """The calling subsystem is registered on this node and presented its certificate or token."""
        assert ex.client is not None
        return self.catalog.client(ex.client, token, cert_der)

    def service(self, ex: Exchange, expected_type: str) -> LocalService:
        """The service is hosted here and has this type (whether the client may call it, enforcement says)."""
        assert ex.service is not None
        service = self.catalog.service(ex.service)
        ex.resolved = True
        if service.type != expected_type:
            raise GatewayError(errors.INVALID_SERVICE_TYPE, f"service {ex.service} is a {service.type.upper()} service")
        return service

    def hosts(self, ex: Exchange) -> bool:
        """Whether the service's provider subsystem lives on this node (else it is a peer's)."""
        assert ex.service is not None
        return ex.service.provider in self.catalog.subsystems

    async def call(self, ex: Exchange, service: LocalService, request: ServiceRequest) -> ServiceResponse:
        """Call the provider's system; connector failures become the gateway's coded errors."""
        cache_key: tuple[str, ...] | None = None
        if self.cache is not None and ex.cache_seconds > 0 and request.method == "GET":
            cache_key = (
                str(ex.agreement_id),
                str(ex.agreement_version),
                str(ex.client),
                str(ex.service),
                ex.purpose or "",
            )
            cached = self.cache.get(cache_key, request)
            if cached is not None:
                self.metrics.cache_hits.inc()
                ex.request_out_ts = ex.response_in_ts = now_ms()
                ex.status_code = cached.status
                ex.response_size = len(cached.content)
                return cached
        if not self.log.available():  # its record could not be kept: the system is not even asked
            raise self._logging_failed(ex)
        connector = self.connectors[service.system]
        breaker = f"system:{service.system}"
        if self.breakers is not None:
            self.breakers.check(breaker, errors.CIRCUIT_OPEN, "the provider's system")
        ex.request_out_ts = now_ms()
        deadline = request.timeout or self.provider_timeout
        try:
            # one deadline for the whole call, whatever the connector does inside it (connects, retries, slow reads)
            async with asyncio.timeout(deadline):
                response = await self._call_through_breaker(ex, connector, request, breaker)
        except TimeoutError:
            if self.breakers is not None:
                self.breakers.failed(breaker)
            raise GatewayError(
                errors.SERVICE_TIMEOUT, f"the provider's system did not answer in time: no answer within {deadline:g} s"
            ) from None
        except UnreachableError as exc:
            raise GatewayError(errors.NETWORK_ERROR, f"the provider's system could not be reached: {exc}") from None
        except ConnectorTimeout as exc:
            raise GatewayError(errors.SERVICE_TIMEOUT, f"the provider's system did not answer in time: {exc}") from None
        except MalformedResponseError as exc:
            raise GatewayError(errors.INVALID_RESPONSE, f"the provider's system answered badly: {exc}") from None
        except InvalidRequestError as exc:
            raise GatewayError(errors.BAD_REQUEST, str(exc)) from None
        except UpstreamError as exc:  # not raised for pass-through calls, kept for completeness
            raise GatewayError(errors.SERVICE_FAILED, str(exc)) from None
        except ConnectorError as exc:
            raise GatewayError(errors.SERVICE_FAILED, str(exc)) from None
        ex.response_in_ts = now_ms()
        ex.status_code = response.status
        ex.response_size = len(response.content)
        if cache_key is not None:
            ex.cache_entry = (cache_key, request, response)  # kept only if the exchange ends well (`recorded`)
        return response

    async def _call_through_breaker(
        self, ex: Exchange, connector: Connector, request: ServiceRequest, name: str
    ) -> ServiceResponse:
        """Count what says the system is down (no answer, a timeout, garbage, 502/503/504) against its circuit; an
        answer's success is counted when the exchange ends (`_circuit_verdict`), once the answer proved usable.

        Not a 500: a SOAP Fault for a malformed identifier is a 500 too, and a client must not be able to shut a
        system off for everyone by sending bad input a few times. A system that fails fast needs no breaker
        anyway: breakers exist so that nobody waits on what cannot answer.
        """
        if self.breakers is None:
            return await connector.call(request)
        try:
            response = await connector.call(request)
        except (UnreachableError, ConnectorTimeout, MalformedResponseError):
            self.breakers.failed(name)
            raise
        if response.status in UNAVAILABLE:
            self.breakers.failed(name)
        else:
            ex.circuit = name
        return response
