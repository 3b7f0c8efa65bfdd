"""The X-Road SOAP protocol through a real gateway in front of the sandbox's civil registry."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
import requests
import zeep
from lxml import etree

from gateway.soap import IDENT, PDU, SOAP11, XROAD
from sandbox import federation
from tests.gateway.conftest import MAX_BODY, Gateway

CRA_NS = "urn:zz:cra:civreg:1"
NS = {"s": SOAP11, "x": XROAD, "id": IDENT, "cra": CRA_NS}


def envelope(
    *,
    service: str = "GetPersonByNationalId",
    body: str | None = None,
    version: str | None = "4.0",
    purpose: str | None = "old-age-grant-eligibility",
    client: str = federation.PROGRAMME_MIS,
    provider: str = "civreg",
    extra_header: str = "",
    message_id: str = "msg-1",
) -> bytes:
    inst, cls, code, sub = client.split("/")
    body = body if body is not None else f"<cra:{service}><cra:nationalId>9000000001</cra:nationalId></cra:{service}>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:xroad="{XROAD}" xmlns:id="{IDENT}" xmlns:pdu="{PDU}"
    xmlns:cra="{CRA_NS}">
  <soapenv:Header>
    <xroad:client id:objectType="SUBSYSTEM"><id:xRoadInstance>{inst}</id:xRoadInstance>
      <id:memberClass>{cls}</id:memberClass><id:memberCode>{code}</id:memberCode>
      <id:subsystemCode>{sub}</id:subsystemCode></xroad:client>
    <xroad:service id:objectType="SERVICE"><id:xRoadInstance>ZZ</id:xRoadInstance>
      <id:memberClass>GOV</id:memberClass><id:memberCode>CRA</id:memberCode>
      <id:subsystemCode>{provider}</id:subsystemCode><id:serviceCode>{service}</id:serviceCode></xroad:service>
    <xroad:id>{message_id}</xroad:id>
    <xroad:userId>ZZ-officer-7</xroad:userId>
    {f"<xroad:protocolVersion>{version}</xroad:protocolVersion>" if version is not None else ""}
    {f"<pdu:purpose>{purpose}</pdu:purpose>" if purpose is not None else ""}
    {extra_header}
  </soapenv:Header>
  <soapenv:Body>{body}</soapenv:Body>
</soapenv:Envelope>""".encode()


def post(gw: Gateway, http: httpx.Client, data: bytes, content_type: str = "text/xml; charset=utf-8") -> httpx.Response:
    headers = {"Content-Type": content_type, "X-Kiungo-Client-Token": gw.tokens[federation.PROGRAMME_MIS]}
    return http.post(gw.url + "/", content=data, headers=headers)


def assert_fault(response: httpx.Response, code: str, message: str) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == code
    root = etree.fromstring(response.content)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None
    assert fault.findtext("faultcode") == code
    assert message in (fault.findtext("faultstring") or "")
    assert fault.findtext("detail/faultDetail")


def test_zeep_client_built_from_getwsdl_calls_through_the_gateway(gateway: Gateway, http: httpx.Client):
    params = {
        "xRoadInstance": "ZZ",
        "memberClass": "GOV",
        "memberCode": "CRA",
        "subsystemCode": "civreg",
        "serviceCode": "GetPersonByNationalId",
    }
    wsdl = http.get(gateway.url + "/wsdl", params=params)
    assert wsdl.status_code == 200, wsdl.text
    assert f'location="{gateway.url}/"' in wsdl.text
    session = requests.Session()
    session.headers["X-Kiungo-Client-Token"] = gateway.tokens[federation.PROGRAMME_MIS]
    client = zeep.Client(
        gateway.url + "/wsdl?" + str(httpx.QueryParams(params)), transport=zeep.Transport(session=session)
    )
    headers = etree.fromstring(envelope()).find("s:Header", NS)
    assert headers is not None
    person = client.service.GetPersonByNationalId(nationalId="9000000001", _soapheaders=list(headers))
    assert person.found is True
    assert person.person.surname == "Mwangi"
    assert person.person.givenName == "Amina"


def test_answer_echoes_headers_and_adds_the_request_hash(gateway: Gateway, http: httpx.Client):
    request = envelope()
    r = post(gateway, http, request)
    assert r.status_code == 200, r.text
    root = etree.fromstring(r.content)
    header = root.find("s:Header", NS)
    assert header is not None
    assert header.findtext("x:id", namespaces=NS) == "msg-1"
    assert header.findtext("x:protocolVersion", namespaces=NS) == "4.0"
    assert header.findtext("x:service/id:serviceCode", namespaces=NS) == "GetPersonByNationalId"
    assert header.findtext("x:client/id:subsystemCode", namespaces=NS) == "programme-mis"
    hash_element = header.find("x:requestHash", NS)
    assert hash_element is not None
    assert hash_element.get("algorithmId") == "http://www.w3.org/2001/04/xmlenc#sha512"
    assert hash_element.text == base64.b64encode(hashlib.sha512(request).digest()).decode()
    assert root.findtext("s:Body/cra:GetPersonByNationalIdResponse/cra:person/cra:surname", namespaces=NS) == "Mwangi"


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"version": None}, "Client.MissingHeader", "the X-Road header protocolVersion is required"),
        ({"version": "3.1"}, "Client.InvalidProtocolVersion", "protocolVersion must be 4.0"),
        ({"purpose": None}, "Client.MissingPurpose", "no purpose, no exchange"),
        ({"purpose": "a b"}, "Client.InvalidPurpose", "must be a purpose code"),
        ({"service": "GetNothing"}, "Server.ServerProxy.UnknownService", "ZZ/GOV/CRA/civreg/GetNothing is not offered"),
        ({"client": "ZZ/GOV/MSP/stranger"}, "Server.ClientProxy.UnknownClient", "is not registered"),
        (
            {"body": "<cra:GetHousehold><cra:nationalId>9000000001</cra:nationalId></cra:GetHousehold>"},
            "Client.InconsistentHeaders",
            "named after the service code",
        ),
        (
            {"extra_header": "<xroad:id>again</xroad:id>"},
            "Client.InvalidSoap",
            "duplicate header id",
        ),
    ],
)
def test_header_rules(gateway: Gateway, http: httpx.Client, kwargs: dict[str, str], code: str, message: str):
    assert_fault(post(gateway, http, envelope(**kwargs)), code, message)


def test_access_right_is_per_operation(gateway: Gateway, http: httpx.Client):
    headers = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": gateway.tokens[federation.TAX_CLIENT]}
    ok = http.post(gateway.url + "/", content=envelope(client=federation.TAX_CLIENT), headers=headers)
    assert ok.status_code == 200
    body = "<cra:GetHousehold><cra:nationalId>9000000001</cra:nationalId></cra:GetHousehold>"
    denied = http.post(
        gateway.url + "/",
        content=envelope(client=federation.TAX_CLIENT, service="GetHousehold", body=body),
        headers=headers,
    )
    assert_fault(denied, "Server.ServerProxy.AccessDenied", "may not call ZZ/GOV/CRA/civreg/GetHousehold")


def test_malformed_xml(gateway: Gateway, http: httpx.Client):
    assert_fault(post(gateway, http, b"<soapenv:Envelope><unclosed>"), "Client.InvalidSoap", "not well-formed XML")


def test_entity_expansion_is_refused_before_parsing(gateway: Gateway, http: httpx.Client):
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol3;</soapenv:Body>
</soapenv:Envelope>"""
    assert_fault(post(gateway, http, bomb), "Client.InvalidSoap", "DTDs) and entities are not allowed")


def test_external_entity_is_refused(gateway: Gateway, http: httpx.Client):
    xxe = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body>
</soapenv:Envelope>"""
    r = post(gateway, http, xxe)
    assert_fault(r, "Client.InvalidSoap", "not allowed")
    assert "root:" not in r.text


def test_soap_12_is_refused(gateway: Gateway, http: httpx.Client):
    assert_fault(
        post(gateway, http, envelope(), "application/soap+xml"), "Client.InvalidSoap", "SOAP 1.2 is not supported"
    )
    soap12 = envelope().replace(SOAP11.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    assert_fault(post(gateway, http, soap12), "Client.InvalidSoap", "SOAP 1.2 is not supported")


def test_wrong_namespace_and_non_utf8(gateway: Gateway, http: httpx.Client):
    other = envelope().replace(SOAP11.encode(), b"urn:not-soap")
    assert_fault(post(gateway, http, other), "Client.InvalidSoap", "not a SOAP 1.1 Envelope")
    latin = envelope().replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"')
    assert_fault(post(gateway, http, latin), "Client.InvalidSoap", "only UTF-8 documents are accepted")


def test_deep_nesting(gateway: Gateway, http: httpx.Client):
    deep = "<a>" * 100 + "</a>" * 100
    body = f"<cra:GetPersonByNationalId>{deep}</cra:GetPersonByNationalId>"
    assert_fault(post(gateway, http, envelope(body=body)), "Client.InvalidSoap", "nested deeper than 64 levels")


def test_oversized_message(gateway: Gateway, http: httpx.Client):
    body = f"<cra:GetPersonByNationalId><cra:nationalId>{'1' * MAX_BODY}</cra:nationalId></cra:GetPersonByNationalId>"
    assert_fault(post(gateway, http, envelope(body=body)), "Client.MessageTooLarge", "larger than")


def test_provider_fault_passes_through_unchanged(gateway: Gateway, http: httpx.Client):
    gateway.fault("cra", "error", count=1)
    r = post(gateway, http, envelope())
    assert r.status_code == 500
    assert "X-Road-Error" not in r.headers
    assert (etree.fromstring(r.content).findtext("s:Body/s:Fault/faultcode", namespaces=NS) or "").endswith("Server")


def test_provider_garbage_is_an_invalid_response(gateway: Gateway, http: httpx.Client):
    gateway.fault("cra", "garbage", count=1)
    assert_fault(post(gateway, http, envelope()), "Server.ServerProxy.InvalidResponse", "not acceptable")


def test_provider_timeout(gateway: Gateway, http: httpx.Client):
    gateway.fault("cra", "delay", seconds=3, count=1)
    r = post(gateway, http, envelope())
    assert_fault(r, "Server.ServerProxy.ServiceTimeout", "did not answer in time")
    assert "9000000001" not in r.text


def test_provider_down(gateway: Gateway, http: httpx.Client):
    r = post(gateway, http, envelope(provider="civreg-archive"))
    assert_fault(r, "Server.ServerProxy.NetworkError", "could not be reached")
