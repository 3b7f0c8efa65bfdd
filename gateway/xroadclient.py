"""How a service hosted on a gateway (the virtual registry, the event service) asks other services.

Every question such a service asks is an exchange like any other: the gateway authenticates the
service's client subsystem, checks the agreement (and consent), signs, logs and forwards it. The caller
passes on the purpose and the end user of the request it is answering, and puts that request's exchange
id in `X-Road-Issue`, so a DPO can follow one query to every exchange it caused.

Hosted on the gateway, the service reaches it in process (an ASGI transport: the same protocol, without
a loopback socket); run on its own, it reaches it by URL.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx
from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
XROAD = "http://x-road.eu/xsd/xroad.xsd"
IDENT = "http://x-road.eu/xsd/identifiers"
PDU = "urn:kiungo:xsd:pdu:1"
TOKEN_HEADER = "X-Kiungo-Client-Token"  # noqa: S105 - a header name
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class ExchangeFailed(Exception):
    """An exchange gave no usable answer: refused, failed or timed out (never holds personal data)."""

    def __init__(self, service: str, code: str, message: str) -> None:
        super().__init__(f"{service}: {code}: {message}")
        self.service = service
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which exchange a value came from: the service asked, the exchange id, and when."""

    source: str  # service id, e.g. ZZ/GOV/CRA/civreg/GetPersonByNationalId
    exchange_id: str
    time: str  # ISO 8601, UTC

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "exchange_id": self.exchange_id, "time": self.time}


@dataclass(frozen=True, slots=True)
class CallContext:
    """Why and for whom the registry asks: carried onto every exchange it makes."""

    purpose: str
    user_id: str | None = None
    issue: str | None = None  # the exchange id of the request being answered (or a bulk job's id)
    client: str | None = None  # who asked the hosted service (its jobs are that client's alone)


@dataclass(frozen=True, slots=True)
class Answer:
    """A source's answer: parsed data (JSON dict, or the SOAP Body's response element) and provenance."""

    service: str
    status: int
    data: Any
    provenance: Provenance

    @property
    def found(self) -> bool:
        return self.status != 404


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id_xml(tag: str, object_type: str, parts: list[str]) -> str:
    names = ["xRoadInstance", "memberClass", "memberCode", "subsystemCode", "serviceCode"]
    inner = "".join(f"<id:{n}>{escape(p)}</id:{n}>" for n, p in zip(names, parts, strict=False))
    return f'<xroad:{tag} id:objectType="{object_type}">{inner}</xroad:{tag}>'


class XRoadClient:
    """Calls services through the gateway as the registry's client subsystem."""

    def __init__(
        self,
        client_id: str,
        token: str,
        *,
        base_url: str = "http://gateway.local",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        failure: type[ExchangeFailed] = ExchangeFailed,
    ) -> None:
        self.client_id = client_id
        self.failure = failure
        self.timeout = timeout
        self._token = token
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, ctx: CallContext, message_id: str) -> dict[str, str]:
        headers = {
            "X-Road-Client": self.client_id,
            "X-Road-Id": message_id,
            "X-Road-PDU-Purpose": ctx.purpose,
            TOKEN_HEADER: self._token,
        }
        if ctx.user_id:
            headers["X-Road-UserId"] = ctx.user_id
        if ctx.issue:
            headers["X-Road-Issue"] = ctx.issue
        return headers

    async def rest(
        self,
        service: str,
        path: str,
        ctx: CallContext,
        *,
        params: Mapping[str, str | int | Sequence[str]] | None = None,
        method: str = "GET",
        body: Any = None,
    ) -> Answer:
        """A REST exchange; a 404 from the provider is an answer (not found), other errors raise."""
        message_id = str(uuid.uuid4())
        url = "/r1/" + "/".join(quote(p, safe="") for p in service.split("/")) + path
        content = json.dumps(body).encode() if body is not None else None
        headers = self._headers(ctx, message_id)
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(method, url, params=params, content=content, headers=headers)
        except httpx.TimeoutException:
            raise self.failure(service, "Timeout", f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self.failure(
                service, "Unreachable", f"the gateway could not be reached ({type(exc).__name__})"
            ) from None
        provenance = Provenance(service, response.headers.get("x-road-id", message_id), _now())
        error = response.headers.get("x-road-error")
        if error:
            raise self.failure(service, error, _message(response.content))
        if response.status_code == 404:
            return Answer(service, 404, None, provenance)
        if response.status_code >= 400:
            raise self.failure(service, f"HTTP{response.status_code}", "the provider refused or failed")
        if not response.content.strip():  # 204, or an empty 2xx: an answer with nothing to read
            return Answer(service, response.status_code, None, provenance)
        try:
            data = response.json()
        except ValueError:
            raise self.failure(service, "InvalidResponse", "the provider's answer is not JSON") from None
        return Answer(service, response.status_code, data, provenance)

    async def soap(
        self, service: str, ctx: CallContext, arguments: Mapping[str, str | int | Sequence[str]], namespace: str
    ) -> Answer:
        """A SOAP exchange with document/literal arguments; a SOAP Fault raises `failure`."""
        message_id = str(uuid.uuid4())
        parts = service.split("/")
        operation = parts[4]
        args = "".join(
            f"<op:{k}>{escape(str(one))}</op:{k}>"
            for k, v in arguments.items()
            for one in (v if isinstance(v, list | tuple) else [v])  # a list: the element repeated (a batch)
            if one not in (None, "")
        )
        client_parts = self.client_id.split("/")
        optional = "".join(
            f"<xroad:{tag}>{escape(value)}</xroad:{tag}>"
            for tag, value in (("userId", ctx.user_id), ("issue", ctx.issue))
            if value
        )
        envelope = (
            f'<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:xroad="{XROAD}" xmlns:id="{IDENT}" '
            f'xmlns:pdu="{PDU}" xmlns:op="{escape(namespace)}"><soapenv:Header>'
            f"{_id_xml('client', 'SUBSYSTEM', client_parts)}{_id_xml('service', 'SERVICE', parts)}"
            f"<xroad:id>{message_id}</xroad:id>{optional}<xroad:protocolVersion>4.0</xroad:protocolVersion>"
            f"<pdu:purpose>{escape(ctx.purpose)}</pdu:purpose></soapenv:Header>"
            f"<soapenv:Body><op:{operation}>{args}</op:{operation}></soapenv:Body></soapenv:Envelope>"
        )
        headers = {"Content-Type": "text/xml; charset=utf-8", TOKEN_HEADER: self._token}
        try:
            response = await self._http.post("/", content=envelope.encode(), headers=headers)
        except httpx.TimeoutException:
            raise self.failure(service, "Timeout", f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self.failure(
                service, "Unreachable", f"the gateway could not be reached ({type(exc).__name__})"
            ) from None
        provenance = Provenance(service, message_id, _now())
        try:
            root = etree.fromstring(response.content, _PARSER)
        except etree.XMLSyntaxError:
            raise self.failure(service, "InvalidResponse", "the answer is not XML") from None
        body = root.find(f"{{{SOAP11}}}Body")
        fault = body.find(f"{{{SOAP11}}}Fault") if body is not None else None
        if fault is not None:
            code = (fault.findtext("faultcode") or "Fault").split(":")[-1]
            raise self.failure(service, code, fault.findtext("faultstring") or "SOAP Fault")
        if body is None or len(body) == 0:
            raise self.failure(service, "InvalidResponse", "the answer has an empty Body")
        return Answer(service, response.status_code, body[0], provenance)


def _message(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return "the gateway refused the exchange"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else "the gateway refused the exchange"
