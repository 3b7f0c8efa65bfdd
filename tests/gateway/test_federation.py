"""Gateway to gateway across the sandbox federation: mutual TLS, signatures, directory, revocation.

Every refusal is checked with its exact X-Road error code. Attackers are played by test code holding
real (stolen or foreign) keys and speaking to a provider's mutual-TLS listener directly.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import certs
from gateway import tls
from gateway.app import listeners
from gateway.errors import ConfigError
from gateway.exchange import now_ms
from gateway.requesthash import rest_request_hash
from gateway.rest import xroad_headers
from gateway.server import Listener, ServerThread, base_url, bind
from gateway.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, response_payload
from sandbox import federation
from sandbox.demo import soap_request
from tests.gateway.federation_setup import CRA, MSP, PURPOSE, TAX, TAXPAYER, Fed
from tests.gateway.nodes import migrated


@contextmanager
def extra_node(config: dict[str, Any]) -> Iterator[str]:
    """Another gateway process's worth of listeners (same member, other keys), for attacks from a node."""
    with ServerThread(listeners(migrated(config)), name="extra-node") as running:
        del running
        yield f"http://127.0.0.1:{config['server']['port']}"


def assert_refused(response: httpx.Response, code: str, message: str) -> None:
    assert response.headers.get("X-Road-Error") == code, response.text
    body = response.json()
    assert body["type"] == code
    assert message in body["message"], body["message"]


# ---- what works --------------------------------------------------------------------------------------------


def test_rest_across_the_federation(fed: Fed):
    r = fed.get(TAXPAYER)
    assert r.status_code == 200, r.text
    assert r.json()["tin"] == "TIN90000001"
    assert r.headers["X-Road-Service"] == "ZZ/GOV/TAX/taxreg/taxpayers"
    assert SIGNATURE_HEADER not in r.headers  # gateway business, not the client's


def test_soap_across_the_federation(fed: Fed):
    msp = fed.gateway(MSP)
    r = httpx.post(
        msp["base_url"] + "/",
        content=soap_request("9000000001", federation.PROGRAMME_MIS),
        headers={"Content-Type": "text/xml", "X-Kiungo-Client-Token": fed.plan.tokens[federation.PROGRAMME_MIS]},
    )
    assert r.status_code == 200, r.text
    assert b"<xroad:requestHash" in r.content
    assert b"Mwangi" in r.content


def test_both_gateways_record_the_exchange(fed: Fed):
    message_id = str(uuid.uuid4())
    assert fed.get(TAXPAYER, **{"X-Road-Id": message_id}).status_code == 200
    token = fed.plan.tokens["operator"]
    sides = {}
    for member in (MSP, TAX):
        records = httpx.get(
            fed.gateway(member)["base_url"] + "/api/operator/monitoring?limit=1000",
            headers={"Authorization": f"Bearer {token}"},
        ).json()["records"]
        [record] = [r for r in records if r["message_id"] == message_id]
        sides[member] = record["security_server_type"]
    assert sides == {MSP: "Client", TAX: "Producer"}


def test_health_shows_the_directory(fed: Fed):
    health = httpx.get(fed.gateway(MSP)["base_url"] + "/health").json()
    assert health["member"] == MSP
    assert health["directory"]["serial"] >= 1
    assert health["directory"]["expired"] is False


# ---- refusals on the consumer side -------------------------------------------------------------------------


def test_unknown_member(fed: Fed):
    r = fed.get("/r1/ZZ/GOV/XYZ/registry/people/v1/x")
    assert_refused(r, "Server.ClientProxy.UnknownMember", "member ZZ/GOV/XYZ is not in the federation directory")
    r = fed.get("/r1/ZZ/GOV/TAX/nothing/people/v1/x")
    assert_refused(r, "Server.ClientProxy.UnknownMember", "subsystem ZZ/GOV/TAX/nothing is not in the federation")
    r = fed.get("/r1/ZZ/GOV/TAX/taxreg/nothing/v1/x")
    assert_refused(r, "Server.ServerProxy.UnknownService", "service ZZ/GOV/TAX/taxreg/nothing is not offered")


def test_certificate_from_another_ca(fed: Fed, tmp_path: Path):
    rogue = certs.CertificateAuthority.init(tmp_path / "rogue", "ZZ", "Rogue authority", b"rogue-pass")
    creds = rogue.issue_member(MSP, tmp_path / "msp", fed.passphrase, hosts=["127.0.0.1"])
    # an attacker with a look-alike certificate is stopped in the handshake, before any HTTP
    with (
        fed.peer_client(MSP, cert=creds["auth_cert"], key=creds["auth_key"]) as http,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        http.get(fed.gateway(TAX)["peer_url"] + TAXPAYER)
    # a whole gateway run with such a certificate tells its client why it got nowhere
    config = copy.deepcopy(fed.plan.configs["msp"])
    config["federation"] |= {"auth_cert": str(creds["auth_cert"]), "auth_key": str(creds["auth_key"]), "port": 0}
    config["server"]["port"] = bind("127.0.0.1", 0).getsockname()[1]
    config["data_dir"] = str(tmp_path / "data")
    with extra_node(config) as url:
        r = httpx.get(url + TAXPAYER, headers=fed.client_headers(), timeout=15)
    assert_refused(r, "Server.ClientProxy.SslAuthenticationFailed", "TLS with the gateway of ZZ/GOV/TAX failed")


def test_fingerprint_not_in_the_directory(fed: Fed, tmp_path: Path):
    key = certs.generate_key()
    cert = fed.plan.ca.issue(MSP, "auth", key.public_key(), hosts=["127.0.0.1"])  # genuine, but not the listed one
    certs.save_private_key(key, tmp_path / "auth.key.pem", fed.passphrase)
    certs.save_certificate(cert, tmp_path / "auth.cert.pem")
    with fed.peer_client(MSP, cert=tmp_path / "auth.cert.pem", key=tmp_path / "auth.key.pem") as http:
        headers = {
            "x-road-client": federation.PROGRAMME_MIS,
            "x-road-id": str(uuid.uuid4()),
            "x-road-pdu-purpose": PURPOSE,
        }
        r = http.get(fed.gateway(TAX)["peer_url"] + TAXPAYER, headers=headers)
    assert_refused(r, "Server.ServerProxy.SslAuthenticationFailed", "is not the one the directory lists for ZZ/GOV/MSP")


def test_tls_identity_differs_from_the_message_identity(fed: Fed):
    r = fed.forged(tls_member=TAX, signer=MSP, provider=CRA, target="/r1/ZZ/GOV/CRA/civreg/GetHousehold")
    assert_refused(
        r, "Server.ServerProxy.SslAuthenticationFailed", "the TLS identity ZZ/GOV/TAX differs from the message's client"
    )


def test_signature_by_the_wrong_member(fed: Fed):
    r = fed.forged(tls_member=MSP, signer=TAX)
    assert_refused(r, "Server.ServerProxy.InvalidSignatureValue", "signed by member ZZ/GOV/TAX, not by ZZ/GOV/MSP")


def test_tampered_request_body(fed: Fed):
    r = fed.forged(method="POST", target=TAXPAYER, signed_body=b'{"amount": 10}', sent_body=b'{"amount": 10000}')
    assert_refused(r, "Server.ServerProxy.InvalidSignatureValue", "does not match the message")


def test_unsigned_request(fed: Fed):
    with fed.peer_client(MSP) as http:
        headers = {"x-road-client": federation.PROGRAMME_MIS, "x-road-id": "x1", "x-road-pdu-purpose": PURPOSE}
        r = http.get(fed.gateway(TAX)["peer_url"] + TAXPAYER, headers=headers | {TIMESTAMP_HEADER: str(now_ms())})
    assert_refused(r, "Server.ServerProxy.InvalidSignatureValue", "the message is not signed")


def test_replayed_message_id(fed: Fed):
    message_id = str(uuid.uuid4())
    assert fed.get(TAXPAYER, **{"X-Road-Id": message_id}).status_code == 200
    again = fed.get(TAXPAYER, **{"X-Road-Id": message_id})
    assert_refused(again, "Server.ServerProxy.ReplayedMessage", f"message id {message_id} was already received")
    stolen = fed.forged(message_id=message_id)  # a captured message sent again, even re-signed
    assert_refused(stolen, "Server.ServerProxy.ReplayedMessage", "was already received")


def test_timestamp_beyond_the_skew(fed: Fed):
    r = fed.forged(timestamp=now_ms() - 10 * 60 * 1000)
    assert_refused(r, "Server.ServerProxy.InvalidTimestamp", "more than 30 s from this gateway's clock")


def test_peer_listener_refuses_plain_clients(fed: Fed):
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)):
        httpx.get(fed.gateway(TAX)["peer_url"] + TAXPAYER, verify=False, timeout=5)


# ---- the directory -----------------------------------------------------------------------------------------


def test_tampered_response_body(fed: Fed):
    tax = fed.creds(TAX)
    signer = fed.signer(TAX)

    async def lying(request: Request) -> Response:
        query = request.scope.get("query_string", b"").decode()
        target = request.scope["raw_path"].decode() + (f"?{query}" if query else "")
        body = await request.body()
        request_hash = rest_request_hash(request.method, target, xroad_headers(dict(request.headers)), body)
        signed_at = now_ms()
        honest = b'{"tin": "TIN90000001", "income": 1}'
        signature = signer.sign(response_payload(request_hash, 200, "application/json", honest, signed_at))
        return Response(
            b'{"tin": "TIN90000001", "income": 999999}',
            media_type="application/json",
            headers={
                "X-Road-Request-Hash": request_hash,
                TIMESTAMP_HEADER: str(signed_at),
                SIGNATURE_HEADER: signature,
            },
        )

    context = tls.server_context(
        tax["auth_cert"],
        tax["auth_key"],
        fed.passphrase,
        client_cas=fed.plan.content["ca_certs"],
        require_client_cert=True,
    )
    sock = bind("127.0.0.1", 0)
    app = Starlette(routes=[Route("/{path:path}", lying, methods=["GET", "POST"])])
    with ServerThread({"liar": Listener(app, sock, context)}):
        fed.republish(lambda c: c["members"][TAX]["gateway"].update(address=base_url(sock, "https")))
        try:
            r = fed.get(TAXPAYER)
        finally:
            fed.restore()
    assert_refused(r, "Server.ClientProxy.InvalidSignatureValue", "does not verify")
    assert "999999" not in r.text


def test_provider_gateway_unreachable(fed: Fed):
    fed.republish(lambda c: c["members"][TAX]["gateway"].update(address="https://127.0.0.1:9"))
    try:
        r = fed.get(TAXPAYER)
    finally:
        fed.restore()
    assert_refused(r, "Server.ClientProxy.NetworkError", "the gateway of ZZ/GOV/TAX could not be reached")
    assert fed.get(TAXPAYER).status_code == 200


def test_expired_directory(fed: Fed):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)

    def expire(content: dict[str, Any]) -> None:
        content["issued_at"] = past.isoformat().replace("+00:00", "Z")
        content["expires_at"] = (past + dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")

    fed.republish(expire)
    try:
        r = fed.get(TAXPAYER)
        soap = httpx.post(
            fed.gateway(MSP)["base_url"] + "/",
            content=soap_request("9000000001", federation.PROGRAMME_MIS),
            headers={"Content-Type": "text/xml", "X-Kiungo-Client-Token": fed.plan.tokens[federation.PROGRAMME_MIS]},
        )
        health = httpx.get(fed.gateway(MSP)["base_url"] + "/health").json()
    finally:
        fed.restore()
    assert_refused(r, "Server.ClientProxy.OutdatedGlobalConf", "the federation directory expired")
    assert soap.headers["X-Road-Error"] == "Server.ClientProxy.OutdatedGlobalConf"
    assert health["status"] == "degraded"
    assert fed.get(TAXPAYER).status_code == 200


def test_tampered_directory_is_never_used(fed: Fed, tmp_path: Path):
    blob = fed.plan.directory_file.read_bytes()
    header, payload, signature = blob.split(b".")
    content = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    content["members"][MSP]["gateway"]["tls_cert_sha256"] = "0" * 64  # lock MSP out
    content["serial"] += 10
    forged_payload = base64.urlsafe_b64encode(json.dumps(content).encode()).rstrip(b"=")
    fed.plan.directory_file.write_bytes(header + b"." + forged_payload + b"." + signature)
    try:
        results = fed.refresh_all()
        assert all(not r["refreshed"] for r in results)
        assert all("Signature" in (r["last_error"] or "") or "signature" in (r["last_error"] or "") for r in results)
        assert fed.get(TAXPAYER).status_code == 200  # the last good directory stays in use
        config = copy.deepcopy(fed.plan.configs["msp"])
        config["data_dir"] = str(tmp_path / "data")
        with pytest.raises(ConfigError, match=r"federation\.directory: .*signature"):
            listeners(migrated(config))
    finally:
        fed.plan.directory_file.write_bytes(blob)
        fed.refresh_all()


# ---- revocation (last: it locks the ministry's gateway out) ------------------------------------------------


def test_revoked_certificate_is_refused_by_crl_and_by_ocsp(fed: Fed):
    serial = certs.load_certificate(fed.creds(MSP)["auth_cert"]).serial_number
    fed.plan.ca.revoke(serial)
    by_crl = fed.get(TAXPAYER)  # the tax authority's gateway checks the CRL
    assert_refused(by_crl, "Server.ServerProxy.SslAuthenticationFailed", "revoked (CRL)")
    by_ocsp = httpx.post(  # the civil registry's gateway asks the OCSP responder
        fed.gateway(MSP)["base_url"] + "/",
        content=soap_request("9000000001", federation.PROGRAMME_MIS),
        headers={"Content-Type": "text/xml", "X-Kiungo-Client-Token": fed.plan.tokens[federation.PROGRAMME_MIS]},
    )
    assert by_ocsp.headers["X-Road-Error"] == "Server.ServerProxy.SslAuthenticationFailed"
    assert b"revoked (OCSP)" in by_ocsp.content


def test_a_node_can_fetch_the_directory_from_the_authority(fed: Fed, tmp_path: Path):
    config = copy.deepcopy(fed.plan.configs["ssf"])
    config["federation"] |= {"directory": fed.manifest["authority"]["directory"], "port": 0}
    config["server"]["port"] = bind("127.0.0.1", 0).getsockname()[1]
    config["data_dir"] = str(tmp_path / "data")
    with extra_node(config) as url:
        health = httpx.get(url + "/health").json()
    assert health["directory"]["source"].startswith("http://")
    assert health["directory"]["serial"] >= 1
    assert health["directory"]["expired"] is False
