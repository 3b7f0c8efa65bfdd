"""Hostile SOAP through the federation: each case a clean SOAP Fault with its exact code, and no exchange.

`tests/gateway/test_soap.py` has the basic cases (a billion-laughs DTD, a SYSTEM entity, SOAP 1.2 by
content type and by namespace, a wrong envelope namespace, Latin-1, 100 levels in the Body, a body over
the limit with Content-Length, a duplicate `id`); these are the rest. A client of the ministry's gateway
asks for the civil registry's service, which lives behind the civil registry's gateway: a refusal must
be recorded at the ministry's gateway as that refusal, and the civil registry's gateway must never see
the exchange. The last cases come from a member's own gateway, straight to the civil registry's peer
listener (mutual TLS with the ministry's keys): the provider side refuses the same way.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from gateway.soap import IDENT, PDU, SOAP11, SOAP12, XROAD
from tests.gateway.hostile.conftest import CRA, MSP, Hostile, assert_refused_here, now_ms
from tests.gateway.test_soap import envelope

TEN_MIB = 10 * 1024 * 1024
NATIONAL_ID = "9000000001"


def post(
    hostile: Hostile, data: bytes | Iterator[bytes], content_type: str | None = "text/xml; charset=utf-8"
) -> httpx.Response:
    headers = {"X-Kiungo-Client-Token": hostile.token()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return httpx.post(hostile.url(MSP) + "/", content=data, headers=headers, timeout=60)


def refused(hostile: Hostile, response: httpx.Response, code: str, message: str, since: int) -> str:
    """A clean Fault: HTTP 500, X-Road-Error, faultcode, the message, the exchange id; and no exchange happened."""
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == code
    assert response.headers["content-type"].startswith("text/xml")
    fault = etree.fromstring(response.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None, response.text
    assert fault.findtext("faultcode") == code
    assert message in (fault.findtext("faultstring") or ""), fault.findtext("faultstring")
    exchange_id = fault.findtext("detail/faultDetail") or ""
    assert exchange_id
    assert NATIONAL_ID not in response.text  # the body's personal identifier is never echoed
    assert_refused_here(hostile, MSP, since, exchange_id, code)
    return exchange_id


def msg(**kwargs: str) -> bytes:
    return envelope(message_id=str(uuid.uuid4()), **kwargs)


# --- external entities, DTDs, XInclude ---------------------------------------------------------------


@pytest.fixture
def trap() -> Iterator[socket.socket]:
    """A listener nobody should ever connect to: the address an external entity or DTD points at."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.setblocking(False)
    yield sock
    sock.close()


def _never_called(trap: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        trap.accept()


@pytest.mark.parametrize(
    "prologue",
    [
        '<!DOCTYPE e [<!ENTITY % remote SYSTEM "http://{addr}/evil.dtd"> %remote;]>',  # parameter entity
        '<!DOCTYPE Envelope SYSTEM "http://{addr}/soap.dtd">',  # external DTD only
        '<!DoCtYpE e [<!ENTITY x SYSTEM "http://{addr}/x">]>',  # odd case, for parsers that allow it
        '<!ENTITY x SYSTEM "http://{addr}/x">',  # an entity declaration with no DOCTYPE around it
    ],
)
def test_external_entities_and_dtds_are_refused_unfetched(hostile: Hostile, trap: socket.socket, prologue: str):
    host, port = trap.getsockname()
    document = msg().replace(b"?>", b"?>" + prologue.format(addr=f"{host}:{port}").encode(), 1)
    since = now_ms()
    r = post(hostile, document)
    refused(hostile, r, "Client.InvalidSoap", "document type declarations (DTDs) and entities are not allowed", since)
    _never_called(trap)


def test_xinclude_is_refused(hostile: Hostile, trap: socket.socket):
    host, port = trap.getsockname()
    body = (
        f'<cra:GetPersonByNationalId xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<cra:nationalId><xi:include href="http://{host}:{port}/x" parse="text"/></cra:nationalId>'
        f"</cra:GetPersonByNationalId>"
    )
    since = now_ms()
    refused(hostile, post(hostile, msg(body=body)), "Client.InvalidSoap", "XInclude is not allowed", since)
    _never_called(trap)


@pytest.mark.parametrize(
    "data",
    [
        "<a/>".encode("utf-16"),  # with a byte-order mark
        "<a/>".encode("utf-16-le"),  # without one: NUL bytes
        b"\xef\xbb\xbf" + b"\x00" * 4 + b"<a/>",
        b'<?xml version="1.0" encoding="UTF-7"?><a/>',
        b"<?xml version='1.0' encoding = 'us-ascii'?><a/>",
    ],
)
def test_only_utf8(hostile: Hostile, data: bytes):
    since = now_ms()
    refused(hostile, post(hostile, data), "Client.InvalidSoap", "only UTF-8 documents are accepted", since)


def test_malformed_documents_do_not_echo_what_they_hold(hostile: Hostile):
    since = now_ms()
    broken = msg().replace(b"</cra:nationalId>", b"</cra:national>")
    refused(hostile, post(hostile, broken), "Client.InvalidSoap", "not well-formed XML (line", since)


# --- nesting and size --------------------------------------------------------------------------------


def _nested(levels: int) -> str:
    """A Body operation whose argument holds `levels` more elements: Envelope, Body, operation, then these."""
    return f"<cra:GetPersonByNationalId>{'<cra:x>' * levels}{'</cra:x>' * levels}</cra:GetPersonByNationalId>"


def test_depth_limit_is_exact(hostile: Hostile):
    """64 levels in all are read (the civil registry then refuses the odd argument itself); 65 are not."""
    ok = post(hostile, msg(body=_nested(61)))
    assert "X-Road-Error" not in ok.headers, ok.text  # the provider's own Fault, passed through
    assert "must be a simple value" in ok.text
    since = now_ms()
    refused(hostile, post(hostile, msg(body=_nested(62))), "Client.InvalidSoap", "nested deeper than 64 levels", since)


def test_deep_nesting_in_the_header(hostile: Hostile):
    deep = "<x:deep xmlns:x='urn:x'>" + "<x:d>" * 200 + "</x:d>" * 200 + "</x:deep>"
    since = now_ms()
    refused(hostile, post(hostile, msg(extra_header=deep)), "Client.InvalidSoap", "nested deeper than 64 levels", since)


def test_very_deep_nesting_far_beyond_the_parsers_own_limit(hostile: Hostile):
    levels = 100_000
    body = f"<cra:GetPersonByNationalId>{'<a>' * levels}{'</a>' * levels}</cra:GetPersonByNationalId>"
    since = now_ms()
    refused(hostile, post(hostile, msg(body=body)), "Client.InvalidSoap", "nested deeper than 64 levels", since)


def _huge(size: int) -> bytes:
    filler = f"<cra:nationalId>{NATIONAL_ID}</cra:nationalId><!--{'x' * size}-->"
    return msg(body=f"<cra:GetPersonByNationalId>{filler}</cra:GetPersonByNationalId>")


def test_huge_body_with_content_length(hostile: Hostile):
    since = now_ms()
    r = post(hostile, _huge(TEN_MIB))
    refused(hostile, r, "Client.MessageTooLarge", f"the message is larger than {TEN_MIB} bytes", since)


def test_huge_body_streamed_without_content_length(hostile: Hostile):
    data = _huge(TEN_MIB)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 1 << 16):
            yield data[start : start + (1 << 16)]

    since = now_ms()
    r = post(hostile, chunks())
    refused(hostile, r, "Client.MessageTooLarge", f"the message is larger than {TEN_MIB} bytes", since)


def test_wide_documents_within_the_limit_are_just_parsed(hostile: Hostile):
    """20,000 siblings under the size limit: the gateway parses and forwards them quickly; the civil registry's
    own rules then apply (one value per argument: it answers for the last), nothing fails."""
    body = "<cra:GetPersonByNationalId>" + f"<cra:nationalId>{NATIONAL_ID}</cra:nationalId>" * 20_000
    started = time.perf_counter()
    r = post(hostile, msg(body=body + "</cra:GetPersonByNationalId>"))
    assert time.perf_counter() - started < 10
    assert r.status_code == 200, r.text
    assert "X-Road-Error" not in r.headers


# --- namespaces and structure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        # the X-Road header block in a namespace that is not X-Road's
        ((XROAD, "http://x-road.eu/xsd/xroad-v6.xsd"), "Client.MissingHeader", "the X-Road header client is required"),
        # identifier parts in another namespace
        (
            (f'xmlns:id="{IDENT}"', 'xmlns:id="urn:not-identifiers"'),
            "Client.InvalidClientIdentifier",
            "client objectType must be MEMBER or SUBSYSTEM",
        ),
        # the purpose header in another namespace: no purpose
        ((PDU, "urn:kiungo:xsd:pdu:2"), "Client.MissingPurpose", "no purpose, no exchange"),
        (('id:objectType="SUBSYSTEM"', 'id:objectType="SERVICE"'), "Client.InvalidClientIdentifier", "MEMBER or"),
        (('id:objectType="SERVICE"', 'id:objectType="SUBSYSTEM"'), "Client.InvalidServiceIdentifier", "SERVICE"),
    ],
)
def test_wrong_namespaces(hostile: Hostile, change: tuple[str, str], code: str, message: str):
    document = msg().replace(change[0].encode(), change[1].encode(), 1)
    since = now_ms()
    refused(hostile, post(hostile, document), code, message, since)


def test_no_envelope_namespace_and_soap12_parts(hostile: Hostile):
    plain = msg().replace(
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11}"'.encode(), b'<soapenv:Envelope xmlns:soapenv="urn:none"'
    )
    since = now_ms()
    refused(hostile, post(hostile, plain), "Client.InvalidSoap", "the document is not a SOAP 1.1 Envelope", since)
    mixed = msg().replace(b"<soapenv:Header>", f'<s12:Header xmlns:s12="{SOAP12}">'.encode())
    mixed = mixed.replace(b"</soapenv:Header>", b"</s12:Header>")
    since = now_ms()
    refused(hostile, post(hostile, mixed), "Client.InvalidSoap", "exactly one Header with the X-Road headers", since)


@pytest.mark.parametrize(
    ("structure", "message"),
    [
        (lambda d: d.replace(b"<soapenv:Body>", b"<soapenv:Header/><soapenv:Body>"), "exactly one Header"),
        (lambda d: d.replace(b"</soapenv:Body>", b"</soapenv:Body><soapenv:Body/>"), "exactly one Body"),
        (lambda d: d.replace(b"</soapenv:Body>", b"<cra:Other/></soapenv:Body>"), "exactly one element"),
        (lambda d: d.split(b"<soapenv:Body>")[0] + b"<soapenv:Body/></soapenv:Envelope>", "exactly one element"),
    ],
)
def test_envelope_structure(hostile: Hostile, structure: object, message: str):
    assert callable(structure)
    since = now_ms()
    refused(hostile, post(hostile, structure(msg())), "Client.InvalidSoap", message, since)


# --- duplicate headers ---------------------------------------------------------------------------------

_SERVICE = (
    '<xroad:service id:objectType="SERVICE"><id:xRoadInstance>ZZ</id:xRoadInstance><id:memberClass>GOV'
    "</id:memberClass><id:memberCode>CRA</id:memberCode><id:subsystemCode>civreg</id:subsystemCode>"
    "<id:serviceCode>GetPersonByNationalId</id:serviceCode></xroad:service>"
)
_CLIENT = (
    '<xroad:client id:objectType="SUBSYSTEM"><id:xRoadInstance>ZZ</id:xRoadInstance><id:memberClass>GOV'
    "</id:memberClass><id:memberCode>MSP</id:memberCode><id:subsystemCode>programme-mis</id:subsystemCode>"
    "</xroad:client>"
)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (_CLIENT, "client"),
        (_SERVICE, "service"),
        ("<xroad:protocolVersion>4.0</xroad:protocolVersion>", "protocolVersion"),
        ("<xroad:userId>ZZ-officer-8</xroad:userId>", "userId"),
        ("<xroad:issue>a</xroad:issue><xroad:issue>b</xroad:issue>", "issue"),
        ("<pdu:purpose>old-age-grant-eligibility</pdu:purpose>", "purpose"),
        ("<pdu:legalBasis>a</pdu:legalBasis><pdu:legalBasis>b</pdu:legalBasis>", "legalBasis"),
    ],
)
def test_duplicate_headers(hostile: Hostile, extra: str, name: str):
    since = now_ms()
    refused(hostile, post(hostile, msg(extra_header=extra)), "Client.InvalidSoap", f"duplicate header {name}", since)


def test_duplicate_identifier_part(hostile: Hostile):
    document = msg().replace(b"<id:memberCode>MSP</id:memberCode>", b"<id:memberCode>MSP</id:memberCode>" * 2)
    since = now_ms()
    refused(hostile, post(hostile, document), "Client.InvalidClientIdentifier", "memberCode is given twice", since)


# --- SOAP 1.2, attachments, content types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ('application/soap+xml; charset=utf-8; action="urn:GetPersonByNationalId"', "SOAP 1.2 is not supported"),
        ("Application/SOAP+XML", "SOAP 1.2 is not supported"),
        ('multipart/related; type="application/xop+xml"; boundary=b', "attachments are not supported"),
        ("application/json", "Content-Type text/xml, not application/json"),
        (None, "Content-Type text/xml, not none"),
    ],
)
def test_content_types(hostile: Hostile, content_type: str | None, message: str):
    since = now_ms()
    refused(hostile, post(hostile, msg(), content_type), "Client.InvalidSoap", message, since)


def test_a_soap12_envelope_with_its_own_content_type(hostile: Hostile):
    soap12 = msg().replace(SOAP11.encode(), SOAP12.encode())
    since = now_ms()
    r = post(hostile, soap12, "application/soap+xml; charset=utf-8")
    refused(hostile, r, "Client.InvalidSoap", "SOAP 1.2 is not supported", since)


# --- header injection inside the envelope -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (("<xroad:id>", "<xroad:id>a&#13;&#10;Set-Cookie: x="), "Client.InvalidHeader", "id must be printable ASCII"),
        (("<xroad:id>", "<xroad:id>" + "x" * 300), "Client.InvalidHeader", "id must be printable ASCII of at most 255"),
        (
            ("<xroad:userId>ZZ-officer-7", "<xroad:userId>ZZ-officer-7&#10;X-Road-Client: ZZ/GOV/TAX/taxreg"),
            "Client.InvalidHeader",
            "userId must be printable ASCII",
        ),
        (("<xroad:userId>ZZ-officer-7", "<xroad:userId>\u00e9"), "Client.InvalidHeader", "userId must be printable"),
        (
            ("<id:subsystemCode>programme-mis", "<id:subsystemCode>programme-mis&#13;&#10;x"),
            "Client.InvalidClientIdentifier",
            "subsystem code may contain only letters, digits",
        ),
        (
            ("<id:subsystemCode>civreg", "<id:subsystemCode>civreg%0D%0Ax"),
            "Client.InvalidServiceIdentifier",
            "subsystem code may contain only letters, digits",
        ),
        (
            ("<id:memberCode>CRA", "<id:memberCode>../../CRA"),
            "Client.InvalidServiceIdentifier",
            "member code may contain only letters, digits",
        ),
        (
            ("<pdu:purpose>old-age-grant-eligibility", "<pdu:purpose>old-age&#10;grant"),
            "Client.InvalidPurpose",
            "must be a purpose code",
        ),
        (("4.0</xroad:protocolVersion>", "4.0&#0;</xroad:protocolVersion>"), "Client.InvalidSoap", "not well-formed"),
    ],
)
def test_injection_through_header_values(hostile: Hostile, change: tuple[str, str], code: str, message: str):
    document = msg().replace(change[0].encode(), change[1].encode(), 1)
    since = now_ms()
    refused(hostile, post(hostile, document), code, message, since)


# --- the provider side: a member's gateway sending hostile SOAP to the civil registry's gateway -----------


def _to_peer(hostile: Hostile, data: bytes, content_type: str = "text/xml; charset=utf-8") -> httpx.Response:
    with hostile.fed.peer_client(MSP) as http:
        return http.post(hostile.gateway(CRA)["peer_url"] + "/", content=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize(
    ("data", "content_type", "code", "message"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>',
            "text/xml",
            "Client.InvalidSoap",
            "(DTDs) and entities are not allowed",
        ),
        (envelope(body=_nested(100)), "text/xml", "Client.InvalidSoap", "nested deeper than 64 levels"),
        (envelope(), "application/soap+xml", "Client.InvalidSoap", "SOAP 1.2 is not supported"),
        (envelope(extra_header="<xroad:id>2</xroad:id>"), "text/xml", "Client.InvalidSoap", "duplicate header id"),
        (_huge(TEN_MIB), "text/xml", "Client.MessageTooLarge", "larger than"),
    ],
)
def test_provider_side_refuses_the_same(hostile: Hostile, data: bytes, content_type: str, code: str, message: str):
    since = now_ms()
    r = _to_peer(hostile, data, content_type)
    assert r.status_code == 500, r.text
    assert r.headers["X-Road-Error"] == code
    fault = etree.fromstring(r.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == code
    assert message in (fault.findtext("faultstring") or "")
    exchange_id = fault.findtext("detail/faultDetail") or ""
    assert_refused_here(hostile, CRA, since, exchange_id, code)
