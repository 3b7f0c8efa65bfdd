"""X-Road metaservices: listClients, listMethods, allowedMethods, getOpenAPI and getWsdl.

They describe what this node hosts; the protocol modules render them (JSON for REST, XML for SOAP).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from lxml import etree

from connectors import Connector
from gateway import errors
from gateway.catalog import Catalog, LocalService
from gateway.endpoints import EndpointCache
from gateway.errors import GatewayError
from gateway.identifiers import ClientId, ServiceId
from gateway.xmlparser import XmlRejected, parse

REST_METASERVICES = frozenset({"listMethods", "allowedMethods", "getOpenAPI", "findUsage"})
SOAP_METASERVICES = frozenset({"listMethods", "allowedMethods"})
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
_WSDL_TTL_SECONDS = 300


class Metaservices:
    def __init__(
        self,
        catalog: Catalog,
        connectors: Mapping[str, Connector],
        endpoints: EndpointCache,
        may_call: Callable[[ClientId, ServiceId, LocalService], bool],
    ) -> None:
        self.may_call = may_call
        self.catalog = catalog
        self.connectors = connectors
        self.endpoints = endpoints
        self._wsdl: dict[str, tuple[float, bytes]] = {}
        self._fetching: set[str] = set()

    def list_clients(self) -> list[tuple[ClientId, str]]:
        """Members and subsystems this node hosts or serves as clients, each once, sorted."""
        found: dict[ClientId, str] = {}
        for cid, sub in self.catalog.subsystems.items():
            found.setdefault(cid.member, "")
            found[cid] = sub.name
        for cid, client in self.catalog.clients.items():
            found.setdefault(cid.member, "")
            found.setdefault(cid, client.name)
        return sorted(found.items(), key=lambda kv: str(kv[0]))

    def services(self, provider: ClientId, client: ClientId | None, kind: str) -> list[LocalService]:
        """The provider's services of one kind; only those the client may call when a client is given."""
        subsystem = self.catalog.subsystem(provider)
        chosen = [s for s in subsystem.services.values() if s.type == kind]
        if client is not None:
            chosen = [s for s in chosen if self.may_call(client, s.id, s)]
        return sorted(chosen, key=lambda s: s.id.code)

    async def rest_listing(self, provider: ClientId, client: ClientId | None) -> dict[str, Any]:
        """listMethods / allowedMethods in X-Road's JSON form."""
        out = []
        for service in self.services(provider, client, "rest"):
            endpoints = await self._endpoints(service)
            item: dict[str, Any] = {
                "object_type": "SERVICE",
                "service_type": "OPENAPI" if service.openapi else "REST",
                "xroad_instance": provider.instance,
                "member_class": provider.member_class,
                "member_code": provider.member_code,
                "subsystem_code": provider.subsystem,
                "service_code": service.id.code,
                "endpoint_list": [{"method": e.method, "path": e.path} for e in endpoints],
            }
            out.append(item)
        return {"service": out}

    def path_template(self, service: LocalService, method: str, path: str) -> str | None:
        """The OpenAPI template a request path matches, for records that must not hold identifiers.

        Never waits: when the service's OpenAPI is not cached yet, it is fetched in the background and
        this exchange's path is simply not recorded (rather than recorded with an identifier in it).
        """
        key = str(service.id)
        if self.endpoints.cached(key) is None and service.openapi and key not in self._fetching:
            self._fetching.add(key)
            task = asyncio.get_running_loop().create_task(self._endpoints(service))
            task.add_done_callback(lambda _: self._fetching.discard(key))
        return self.endpoints.template(key, method, path)

    async def _endpoints(self, service: LocalService) -> list[Any]:
        if not service.openapi:
            return []
        await self.endpoints.document(
            str(service.id), self.connectors[service.system], service.openapi, service.operation
        )
        return self.endpoints.cached(str(service.id)) or []

    async def openapi(self, provider: ClientId, client: ClientId, service_code: str | None) -> bytes:
        if not service_code:
            raise GatewayError(errors.BAD_REQUEST, "getOpenAPI needs the serviceCode query parameter")
        service = self.catalog.service(ServiceId.of(provider, service_code))
        if service.type != "rest":
            raise GatewayError(errors.INVALID_SERVICE_TYPE, f"service {service.id} is a SOAP service: use getWsdl")
        if not self.may_call(client, service.id, service):
            raise GatewayError(errors.ACCESS_DENIED, f"no_agreement: client {client} may not call {service.id}")
        if not service.openapi:
            raise GatewayError(errors.UNKNOWN_SERVICE, f"service {service.id} has no OpenAPI description")
        document = await self.endpoints.document(
            str(service.id), self.connectors[service.system], service.openapi, service.operation
        )
        if document is None:
            raise GatewayError(errors.SERVICE_FAILED, f"the OpenAPI description of {service.id} is not available")
        return document

    async def wsdl(self, sid: ServiceId, gateway_address: str) -> bytes:
        """The WSDL of a SOAP service, its address pointing at this gateway."""
        service = self.catalog.service(sid)
        if service.type != "soap":
            raise GatewayError(errors.INVALID_SERVICE_TYPE, f"service {sid} is a REST service: use getOpenAPI")
        connector = self.connectors[service.system]
        wsdl_url = getattr(getattr(connector, "settings", None), "wsdl", None)
        if not isinstance(wsdl_url, str) or not wsdl_url.startswith(("http://", "https://")):
            raise GatewayError(errors.SERVICE_FAILED, f"the WSDL of {sid} is not available over HTTP")
        cached = self._wsdl.get(wsdl_url)
        if cached is None or time.monotonic() - cached[0] > _WSDL_TTL_SECONDS:
            cached = (time.monotonic(), await _fetch(wsdl_url, sid))
            self._wsdl[wsdl_url] = cached
        return rewrite_wsdl_address(cached[1], gateway_address)


async def _fetch(url: str, sid: ServiceId) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise GatewayError(
            errors.NETWORK_ERROR, f"the WSDL of {sid} could not be fetched ({type(exc).__name__})"
        ) from None
    if response.status_code != 200:
        raise GatewayError(
            errors.SERVICE_FAILED, f"the WSDL of {sid} could not be fetched (HTTP {response.status_code})"
        )
    return response.content


def rewrite_wsdl_address(wsdl: bytes, address: str) -> bytes:
    """Point every soap:address of a WSDL at the gateway, so clients built from it call through Kiungo."""
    try:
        root = parse(wsdl, max_depth=128)
    except XmlRejected as exc:
        raise GatewayError(errors.INVALID_RESPONSE, f"the provider's WSDL is not acceptable: {exc}") from None
    for element in root.iter(f"{{{WSDL_SOAP_NS}}}address"):
        element.set("location", address)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
