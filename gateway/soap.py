"""The X-Road SOAP message protocol (4.0): SOAP 1.1 envelopes with the X-Road header block.

The client's envelope is checked (hardened parse, header block, protocol version, service code equal
to the body's element), the X-Road and purpose headers are taken off before the agency system sees
the message (agency systems do not speak X-Road), and the answer gets them back, echoed, with the
request hash. Refusals are SOAP Faults whose faultcode is the X-Road error code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree
from starlette.requests import Request
from starlette.responses import Response

import policies
from connectors import ServiceRequest
from gateway import errors
from gateway.bodies import check_headers, read_body
from gateway.catalog import TOKEN_HEADER, LocalService
from gateway.errors import GatewayError
from gateway.exchange import Exchange, check_purpose, header_value, now_ms
from gateway.federation import resolve_peer
from gateway.identifiers import ClientId, IdentifierError, ServiceId
from gateway.metaservices import SOAP_METASERVICES
from gateway.requesthash import SHA512_URI, soap_request_hash
from gateway.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, request_payload, response_payload
from gateway.tls import peer_certificate
from gateway.trust import check_answer
from gateway.xmlparser import XmlRejected, parse

if TYPE_CHECKING:
    from gateway.node import Node

XML = "text/xml; charset=utf-8"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XROAD = "http://x-road.eu/xsd/xroad.xsd"
IDENT = "http://x-road.eu/xsd/identifiers"
XINCLUDE = "http://www.w3.org/2001/XInclude"
PDU = "urn:kiungo:xsd:pdu:1"  # Kiungo's purpose headers, after Estonia's draft PDU extension for REST
PROTOCOL_VERSION = "4.0"
NSMAP = {"soapenv": SOAP11, "xroad": XROAD, "id": IDENT, "pdu": PDU}
_XROAD_HEADERS = ("client", "service", "id", "userId", "issue", "protocolVersion", "requestHash", "representedParty")
_PDU_HEADERS = ("purpose", "legalBasis", "consentReference")


@dataclass(slots=True)
class SoapMessage:
    root: etree._Element
    body_element: etree._Element
    headers: dict[str, etree._Element]  # X-Road and PDU header elements by local name


def read_envelope(data: bytes, content_type: str, max_depth: int) -> SoapMessage:
    media = content_type.split(";")[0].strip().lower()
    if media == "application/soap+xml":
        raise GatewayError(errors.INVALID_SOAP, "SOAP 1.2 is not supported: send SOAP 1.1 (text/xml)")
    if media.startswith("multipart/"):
        raise GatewayError(errors.INVALID_SOAP, "SOAP messages with attachments are not supported")
    if media != "text/xml":
        raise GatewayError(errors.INVALID_SOAP, f"a SOAP 1.1 request has Content-Type text/xml, not {media or 'none'}")
    try:
        root = parse(data, max_depth=max_depth)
    except XmlRejected as exc:
        raise GatewayError(errors.INVALID_SOAP, f"malformed SOAP message: {exc}") from None
    if root.tag == f"{{{SOAP12}}}Envelope":
        raise GatewayError(errors.INVALID_SOAP, "SOAP 1.2 is not supported: send SOAP 1.1")
    if root.tag != f"{{{SOAP11}}}Envelope":
        raise GatewayError(errors.INVALID_SOAP, "the document is not a SOAP 1.1 Envelope")
    if next(root.iter(f"{{{XINCLUDE}}}*"), None) is not None:  # a provider that expands it may read files or URLs
        raise GatewayError(errors.INVALID_SOAP, "XInclude is not allowed in a SOAP message")
    header_elements = root.findall(f"{{{SOAP11}}}Header")
    bodies = root.findall(f"{{{SOAP11}}}Body")
    if len(header_elements) != 1:
        raise GatewayError(errors.INVALID_SOAP, "the envelope needs exactly one Header with the X-Road headers")
    if len(bodies) != 1:
        raise GatewayError(errors.INVALID_SOAP, "the envelope needs exactly one Body")
    children = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(children) != 1:
        raise GatewayError(errors.INVALID_SOAP, "the Body must hold exactly one element")
    headers: dict[str, etree._Element] = {}
    for element in header_elements[0]:  # comments and PIs were dropped by the parser
        qname = etree.QName(element)
        if (qname.namespace == XROAD and qname.localname in _XROAD_HEADERS) or (
            qname.namespace == PDU and qname.localname in _PDU_HEADERS
        ):
            if qname.localname in headers:
                raise GatewayError(errors.INVALID_SOAP, f"duplicate header {qname.localname}")
            headers[qname.localname] = element
    return SoapMessage(root, children[0], headers)


def _text(msg: SoapMessage, name: str) -> str | None:
    element = msg.headers.get(name)
    if element is None:
        return None
    return (element.text or "").strip()


def _identifier_parts(element: etree._Element, names: tuple[str, ...]) -> list[str]:
    parts = []
    for name in names:
        found = element.findall(f"{{{IDENT}}}{name}")
        if len(found) > 1:
            raise IdentifierError(f"{name} is given twice")
        if found:
            parts.append((found[0].text or "").strip())
    return parts


def read_client(element: etree._Element) -> ClientId:
    kind = element.get(f"{{{IDENT}}}objectType")
    if kind not in ("MEMBER", "SUBSYSTEM"):
        raise GatewayError(errors.INVALID_CLIENT_ID, "client objectType must be MEMBER or SUBSYSTEM")
    names = ("xRoadInstance", "memberClass", "memberCode") + (("subsystemCode",) if kind == "SUBSYSTEM" else ())
    try:
        parts = _identifier_parts(element, names)
        if len(parts) != len(names):
            raise IdentifierError(f"a {kind} client needs {', '.join(names)}")
        return ClientId.from_parts(parts)  # as written: SOAP identifiers are not percent-encoded
    except IdentifierError as exc:
        raise GatewayError(errors.INVALID_CLIENT_ID, f"invalid client identifier: {exc}") from None


def read_service(element: etree._Element) -> ServiceId:
    if element.get(f"{{{IDENT}}}objectType") != "SERVICE":
        raise GatewayError(errors.INVALID_SERVICE_ID, "service objectType must be SERVICE")
    names = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode", "serviceCode")
    try:
        parts = _identifier_parts(element, names)
        if len(parts) != len(names):
            raise IdentifierError("a service needs xRoadInstance, memberClass, memberCode, subsystemCode, serviceCode")
        version = _identifier_parts(element, ("serviceVersion",))
        return ServiceId.from_parts(parts + version)
    except IdentifierError as exc:
        raise GatewayError(errors.INVALID_SERVICE_ID, f"invalid service identifier: {exc}") from None


def identifier_element(tag: str, ident: ClientId | ServiceId) -> etree._Element:
    """An X-Road identifier element (`client`, `service`, or a listing's `service`)."""
    element = etree.Element(tag, nsmap={"id": IDENT})
    provider = ident.provider if isinstance(ident, ServiceId) else ident
    kind = "SERVICE" if isinstance(ident, ServiceId) else provider.object_type
    element.set(f"{{{IDENT}}}objectType", kind)
    values = [
        ("xRoadInstance", provider.instance),
        ("memberClass", provider.member_class),
        ("memberCode", provider.member_code),
        ("subsystemCode", provider.subsystem),
    ]
    if isinstance(ident, ServiceId):
        values += [("serviceCode", ident.code), ("serviceVersion", ident.version)]
    for name, value in values:
        if value is not None:
            etree.SubElement(element, f"{{{IDENT}}}{name}").text = value
    return element


def fault(error: GatewayError, exchange_id: str) -> Response:
    envelope = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soapenv": SOAP11})
    body = etree.SubElement(envelope, f"{{{SOAP11}}}Body")
    element = etree.SubElement(body, f"{{{SOAP11}}}Fault")
    etree.SubElement(element, "faultcode").text = error.code
    etree.SubElement(element, "faultstring").text = error.message
    detail = etree.SubElement(element, "detail")
    etree.SubElement(detail, "faultDetail").text = exchange_id
    return Response(
        etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"),
        status_code=500,
        media_type="text/xml; charset=utf-8",
        headers={"X-Road-Error": error.code},
    )


_ENVELOPE_DOC = {"text/xml": {"schema": {"type": "string", "description": "a SOAP 1.1 envelope"}}}
#: The SOAP route's answers in the OpenAPI document: an envelope, or a Fault (HTTP 500, as SOAP 1.1 requires).
OPENAPI_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the provider's answer, X-Road headers echoed, request hash added", "content": _ENVELOPE_DOC},
    "5XX": {
        "description": "a SOAP Fault: the gateway's refusal (its faultcode also in X-Road-Error) or the provider's own",
        "headers": errors.ERROR_HEADER_DOC,
        "content": _ENVELOPE_DOC,
    },
}


def _envelope(headers: list[etree._Element], body_children: list[etree._Element]) -> bytes:
    root = etree.Element(f"{{{SOAP11}}}Envelope", nsmap=NSMAP)
    header = etree.SubElement(root, f"{{{SOAP11}}}Header")
    for element in headers:
        header.append(element)
    body = etree.SubElement(root, f"{{{SOAP11}}}Body")
    for child in body_children:
        body.append(child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _without_xroad_headers(msg: SoapMessage) -> bytes:
    """The client's envelope as the agency system should see it: X-Road and purpose headers removed."""
    root = copy.deepcopy(msg.root)
    header = root.find(f"{{{SOAP11}}}Header")
    if header is not None:
        for element in list(header):
            if isinstance(element.tag, str) and etree.QName(element).namespace in (XROAD, PDU):
                header.remove(element)
        if len(header) == 0:
            root.remove(header)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _answer(msg: SoapMessage, request_hash: str, provider_root: etree._Element) -> bytes:
    """The provider's answer with the request's X-Road headers echoed and the request hash added."""
    echoed = [copy.deepcopy(e) for name, e in msg.headers.items() if name != "requestHash"]
    hash_element = etree.Element(f"{{{XROAD}}}requestHash")
    hash_element.set("algorithmId", SHA512_URI)
    hash_element.text = request_hash
    body = provider_root.find(f"{{{SOAP11}}}Body")
    children = [copy.deepcopy(c) for c in body] if body is not None else []
    return _envelope([*echoed, hash_element], children)


def read_message(data: bytes, request: Request, ex: Exchange, max_depth: int) -> SoapMessage:
    """The envelope and its X-Road headers, each checked, into the exchange."""
    check_headers(request)
    msg = read_envelope(data, request.headers.get("content-type", ""), max_depth)
    for required in ("client", "service", "id", "protocolVersion"):
        if required not in msg.headers:
            raise GatewayError(errors.MISSING_HEADER, f"the X-Road header {required} is required")
    ex.id = header_value(_text(msg, "id"), "id", required=True) or ""
    ex.protocol_version = _text(msg, "protocolVersion")
    if ex.protocol_version != PROTOCOL_VERSION:
        raise GatewayError(errors.INVALID_PROTOCOL_VERSION, f"protocolVersion must be {PROTOCOL_VERSION}")
    ex.client = read_client(msg.headers["client"])
    ex.service = read_service(msg.headers["service"])
    ex.user_id = header_value(_text(msg, "userId"), "userId")
    ex.issue = header_value(_text(msg, "issue"), "issue")
    return msg


def read_purpose(msg: SoapMessage, ex: Exchange) -> None:
    assert ex.service is not None
    ex.purpose = check_purpose(_text(msg, "purpose"), "the pdu:purpose header")
    ex.legal_basis = header_value(_text(msg, "legalBasis"), "legalBasis")
    ex.consent_reference = header_value(_text(msg, "consentReference"), "consentReference")
    if etree.QName(msg.body_element).localname != ex.service.code:
        raise GatewayError(errors.INCONSISTENT_HEADERS, "the Body's element must be named after the service code")


async def handle(request: Request, node: Node) -> Response:
    """A local client's SOAP exchange: a service hosted here, or one hosted by a peer gateway."""
    ex = Exchange(protocol="SOAP")
    server = node.settings.server
    pipeline = node.pipeline
    try:
        async with pipeline.recorded(ex):
            data = await read_body(request, server.max_body_bytes)
            ex.received(data)
            msg = read_message(data, request, ex, server.max_xml_depth)
            if len(request.headers.getlist(TOKEN_HEADER)) > 1:
                raise GatewayError(errors.INVALID_HEADER, "the X-Kiungo-Client-Token header is given more than once")
            token = request.headers.get(TOKEN_HEADER)
            assert ex.service is not None
            if ex.service.code in SOAP_METASERVICES:
                pipeline.authenticate(ex, token, peer_certificate(request.scope))
                return _metaservice(ex, msg, node)
            read_purpose(msg, ex)
            pipeline.authenticate(ex, token, peer_certificate(request.scope))
            if not pipeline.hosts(ex):
                return await _forward(request, ex, msg, data, node)
            service = pipeline.service(ex, "soap")
            content, status = await _provide(request, ex, msg, data, service, node)
            pipeline.commit(ex, status, content, data)
            return Response(content, status_code=status, media_type=XML)
    except GatewayError as error:
        return fault(error, ex.id or ex.request_id)
    except Exception:  # already recorded as an internal error by the pipeline
        return fault(errors.unexpected(ex.id or ex.request_id), ex.id or ex.request_id)


async def handle_peer(request: Request, node: Node) -> Response:
    """A peer gateway's SOAP exchange: its certificate, signature and freshness, then a local service."""
    ex = Exchange(protocol="SOAP")
    server = node.settings.server
    federation = node.federation
    assert federation is not None
    try:
        async with node.pipeline.recorded(ex):
            data = await read_body(request, server.max_body_bytes)
            ex.received(data)
            msg = read_message(data, request, ex, server.max_xml_depth)
            read_purpose(msg, ex)
            assert ex.client is not None
            member = str(ex.client.member)
            directory = federation.directory.current(errors.OUTDATED_GLOBAL_CONF)
            await federation.verifier.authenticate(peer_certificate(request.scope), member, directory)
            request_hash = soap_request_hash(data)
            federation.accept_signed(request.headers, request_hash, member, ex.id, directory)
            service = node.pipeline.service(ex, "soap")
            content, status = await _provide(request, ex, msg, data, service, node)
            signed_at = now_ms()
            signature = federation.signer.sign(response_payload(request_hash, status, XML, content, signed_at))
            ex.request_signature = request.headers.get(SIGNATURE_HEADER)
            ex.response_signature = signature
            node.pipeline.commit(ex, status, content, data)
            headers = {TIMESTAMP_HEADER: str(signed_at), SIGNATURE_HEADER: signature}
            return Response(content, status_code=status, media_type=XML, headers=headers)
    except GatewayError as error:
        return fault(error, ex.id or ex.request_id)
    except Exception:  # already recorded as an internal error by the pipeline
        return fault(errors.unexpected(ex.id or ex.request_id), ex.id or ex.request_id)


async def _provide(
    request: Request, ex: Exchange, msg: SoapMessage, data: bytes, service: LocalService, node: Node
) -> tuple[bytes, int]:
    """Decide by the agreements (and consent), call the system, echo the X-Road headers, cut to agreed fields."""
    decision = node.enforcement.decide(ex, service, None, None)
    subjects = service.subjects.soap_all(msg.body_element)
    node.mark_subjects(ex, subjects)
    named: list[str | None] = [*subjects] or [None]
    for subject in named:  # a batch needs every subject's consent (where consent is the basis)
        node.enforcement.check_consent(ex, decision, subject)
    forwarded = ServiceRequest(
        operation=service.operation,
        method="POST",
        body=_without_xroad_headers(msg),
        headers={"SOAPAction": request.headers.get("soapaction", '""')},
        timeout=node.pipeline.provider_timeout,
        passthrough=True,
    )
    answer = await node.pipeline.call(ex, service, forwarded)
    try:
        provider_root = parse(answer.content, max_depth=node.settings.server.max_xml_depth)
    except XmlRejected as exc:
        raise GatewayError(errors.INVALID_RESPONSE, f"the provider's answer is not acceptable: {exc}") from None
    if provider_root.tag != f"{{{SOAP11}}}Envelope":
        raise GatewayError(errors.INVALID_RESPONSE, "the provider's answer is not a SOAP 1.1 envelope")
    if provider_root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault") is not None:
        return answer.content, answer.status  # the provider's own Fault reaches the client unchanged
    if decision is not None and decision.fields is not None:
        body = provider_root.find(f"{{{SOAP11}}}Body")
        for answer_element in body if body is not None else []:
            policies.minimise_xml(answer_element, decision.fields)
    content = _answer(msg, soap_request_hash(data), provider_root)
    ex.response_size = len(content)
    return content, 200


async def _forward(request: Request, ex: Exchange, msg: SoapMessage, data: bytes, node: Node) -> Response:
    """Send the envelope to the provider's gateway, signed, and check its signed answer."""
    federation, directory, peer = resolve_peer(ex, node.federation, "soap")
    assert ex.service is not None
    provider = ex.service.provider
    finder = peer.finder(provider.subsystem or "", ex.service.code)
    node.mark_subjects(ex, finder.soap_all(msg.body_element) if finder else [])
    request_hash = soap_request_hash(data)
    signed_at = now_ms()
    headers = {
        "content-type": "text/xml; charset=utf-8",
        "soapaction": request.headers.get("soapaction", '""'),
        TIMESTAMP_HEADER: str(signed_at),
        SIGNATURE_HEADER: federation.signer.sign(request_payload(request_hash, signed_at)),
    }
    ex.request_out_ts = now_ms()
    answer = await federation.send(peer, "POST", "/", headers, data)
    ex.response_in_ts = now_ms()
    ex.status_code = answer.status_code
    ex.response_size = len(answer.content)
    ex.request_signature = headers[SIGNATURE_HEADER]
    if "x-road-error" in answer.headers:  # the provider's gateway refused: its Fault reaches the client
        ex.remote_fault = answer.headers["x-road-error"]
        node.pipeline.commit(ex, answer.status_code, answer.content, data)
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=XML,
            headers={"X-Road-Error": answer.headers["x-road-error"]},
        )
    check_answer(answer, request_hash, str(provider.member), directory)
    ex.response_signature = answer.headers.get(SIGNATURE_HEADER)
    node.pipeline.commit(ex, answer.status_code, answer.content, data)
    return Response(answer.content, status_code=answer.status_code, media_type=XML)


def _metaservice(ex: Exchange, msg: SoapMessage, node: Node) -> Response:
    assert ex.client is not None
    assert ex.service is not None
    only_allowed = ex.service.code == "allowedMethods"
    services = node.meta.services(ex.service.provider, ex.client if only_allowed else None, "soap")
    response = etree.Element(f"{{{XROAD}}}{ex.service.code}Response", nsmap={"xroad": XROAD, "id": IDENT})
    for service in services:
        response.append(identifier_element(f"{{{XROAD}}}service", service.id))
    echoed = [copy.deepcopy(e) for name, e in msg.headers.items() if name != "requestHash"]
    content = _envelope(echoed, [response])
    ex.status_code = 200
    ex.response_size = len(content)
    return Response(content, media_type=XML)
