"""listClients, listMethods, allowedMethods, getOpenAPI and getWsdl, in their X-Road forms."""

from __future__ import annotations

import httpx
from lxml import etree

from sandbox import federation
from tests.gateway.conftest import Gateway
from tests.gateway.test_soap import NS, envelope, post

TAXREG = "/r1/ZZ/GOV/TAX/taxreg"


def xpath(root: etree._Element, path: str) -> list[str]:
    return [str(v) for v in root.xpath(path, namespaces=NS)]  # type: ignore[union-attr]


def test_list_clients_json_and_xml(gateway: Gateway, http: httpx.Client):
    members = http.get(gateway.url + "/listClients").json()["member"]
    ids = {(m["id"]["object_type"], m["id"]["member_code"], m["id"].get("subsystem_code")) for m in members}
    assert ("MEMBER", "CRA", None) in ids
    assert ("SUBSYSTEM", "CRA", "civreg") in ids
    assert ("SUBSYSTEM", "MSP", "programme-mis") in ids
    xml = http.get(gateway.url + "/listClients", headers={"Accept": "text/xml"})
    root = etree.fromstring(xml.content)
    codes = xpath(root, "//id:subsystemCode/text()")
    assert "civreg" in codes


def test_list_methods_lists_rest_endpoints_from_openapi(gateway: Gateway, http: httpx.Client):
    r = http.get(gateway.url + f"{TAXREG}/listMethods", headers=gateway.client_headers(federation.TAX_CLIENT))
    assert r.status_code == 200, r.text
    by_code = {s["service_code"]: s for s in r.json()["service"]}
    assert set(by_code) == {"archive", "taxpayers"}  # listMethods lists all, allowed or not
    service = by_code["taxpayers"]
    assert service["service_type"] == "OPENAPI"
    assert service["xroad_instance"] == "ZZ"
    assert {"method": "GET", "path": "/v1/taxpayers/*"} in service["endpoint_list"]


def test_allowed_methods_only_lists_what_the_client_may_call(gateway: Gateway, http: httpx.Client):
    mine = http.get(gateway.url + f"{TAXREG}/allowedMethods", headers=gateway.client_headers())
    assert [s["service_code"] for s in mine.json()["service"]] == ["archive", "taxpayers"]
    theirs = http.get(gateway.url + f"{TAXREG}/allowedMethods", headers=gateway.client_headers(federation.TAX_CLIENT))
    assert theirs.json()["service"] == []


def test_metaservices_need_an_authenticated_client(gateway: Gateway, http: httpx.Client):
    r = http.get(gateway.url + f"{TAXREG}/listMethods", headers={"X-Road-Client": federation.PROGRAMME_MIS})
    assert r.status_code == 401
    assert r.headers["X-Road-Error"] == "Server.ClientProxy.ClientAuthenticationFailed"


def test_get_openapi(gateway: Gateway, http: httpx.Client):
    r = http.get(gateway.url + f"{TAXREG}/getOpenAPI?serviceCode=taxpayers", headers=gateway.client_headers())
    assert r.status_code == 200, r.text
    assert "/v1/taxpayers/{tin}" in r.json()["paths"]
    missing = http.get(gateway.url + f"{TAXREG}/getOpenAPI", headers=gateway.client_headers())
    assert missing.json()["type"] == "Client.BadRequest"
    denied = http.get(
        gateway.url + f"{TAXREG}/getOpenAPI?serviceCode=taxpayers",
        headers=gateway.client_headers(federation.TAX_CLIENT),
    )
    assert denied.json()["type"] == "Server.ServerProxy.AccessDenied"


def test_get_wsdl_errors(gateway: Gateway, http: httpx.Client):
    base = {"xRoadInstance": "ZZ", "memberClass": "GOV", "memberCode": "TAX", "subsystemCode": "taxreg"}
    r = http.get(gateway.url + "/wsdl", params=base | {"serviceCode": "taxpayers"})
    assert r.json()["type"] == "Client.InvalidServiceType"
    r = http.get(gateway.url + "/wsdl", params=base | {"serviceCode": "no<pe"})
    assert r.json()["type"] == "Client.InvalidServiceIdentifier"


def test_soap_list_and_allowed_methods(gateway: Gateway, http: httpx.Client):
    r = post(gateway, http, envelope(service="listMethods", body="<xroad:listMethods/>", purpose=None))
    assert r.status_code == 200, r.text
    codes = xpath(etree.fromstring(r.content), "//x:listMethodsResponse/x:service/id:serviceCode/text()")
    assert "GetPersonByNationalId" in codes
    assert "GetDeathsSince" in codes
    headers = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": gateway.tokens[federation.TAX_CLIENT]}
    body = envelope(
        service="allowedMethods", body="<xroad:allowedMethods/>", purpose=None, client=federation.TAX_CLIENT
    )
    r = http.post(gateway.url + "/", content=body, headers=headers)
    codes = xpath(etree.fromstring(r.content), "//x:allowedMethodsResponse/x:service/id:serviceCode/text()")
    assert codes == ["GetPersonByNationalId"]
