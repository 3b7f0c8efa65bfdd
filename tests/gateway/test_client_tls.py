"""Local clients may authenticate with a TLS client certificate registered for their subsystem."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import certs
from gateway.app import listeners
from gateway.server import ServerThread, base_url, bind
from gateway.settings import from_mapping
from sandbox import federation
from sandbox.servers import SandboxServers
from tests.gateway.nodes import migrated

PASSPHRASE = b"test-only-passphrase"
TAXPAYER = "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/TIN90000001"


def self_signed(name: str, out: Path, *, ip: str | None = None) -> tuple[Path, Path]:
    """A self-signed certificate and its unencrypted key, as a client information system would make."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = out / f"{name}.cert.pem", out / f"{name}.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def node(sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("client-tls")
    server_cert, server_key_plain = self_signed("gateway", tmp, ip="127.0.0.1")
    key = serialization.load_pem_private_key(server_key_plain.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    certs.save_private_key(key, tmp / "gateway.key.enc.pem", PASSPHRASE)
    (tmp / "passphrase").write_bytes(PASSPHRASE)
    client_cert, client_key = self_signed("programme-mis", tmp)
    other_cert, other_key = self_signed("tax-case-system", tmp)
    config, tokens = federation.gateway_config(sandbox.manifest["systems"], tmp / "data", policy=False)
    config["server"] |= {
        "tls_cert": str(server_cert),
        "tls_key": str(tmp / "gateway.key.enc.pem"),
        "passphrase_file": str(tmp / "passphrase"),
    }
    config["clients"][federation.PROGRAMME_MIS] = {"name": "MIS", "tls_cert": str(client_cert)}
    config["clients"][federation.TAX_CLIENT]["tls_cert"] = str(other_cert)
    sock = bind("127.0.0.1", 0)
    with ServerThread(listeners(migrated(config), client_sock=sock)):
        yield {
            "url": base_url(sock, "https"),
            "verify": str(server_cert),
            "client": (str(client_cert), str(client_key)),
            "other": (str(other_cert), str(other_key)),
            "tokens": tokens,
        }


def client(node: dict[str, Any], cert: tuple[str, str] | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=node["verify"])
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.Client(verify=context)


HEADERS = {"X-Road-Client": federation.PROGRAMME_MIS, "X-Road-PDU-Purpose": "old-age-grant-eligibility"}


def test_the_registered_certificate_authenticates_without_a_token(node: dict[str, Any]):
    with client(node, node["client"]) as http:
        r = http.get(node["url"] + TAXPAYER, headers=HEADERS)
    assert r.status_code == 200, r.text


def test_another_clients_certificate_does_not(node: dict[str, Any]):
    with client(node, node["other"]) as http:
        r = http.get(node["url"] + TAXPAYER, headers=HEADERS)
    assert r.status_code == 401
    assert r.headers["X-Road-Error"] == "Server.ClientProxy.ClientAuthenticationFailed"
    assert "not the one registered for ZZ/GOV/MSP/programme-mis" in r.json()["message"]


def test_no_certificate_and_no_token(node: dict[str, Any]):
    with client(node) as http:
        r = http.get(node["url"] + TAXPAYER, headers=HEADERS)
    assert r.status_code == 401
    assert r.headers["X-Road-Error"] == "Server.ClientProxy.ClientAuthenticationFailed"


def test_an_unregistered_certificate_is_refused_in_the_handshake(node: dict[str, Any], tmp_path: Path):
    stranger = self_signed("stranger", tmp_path)
    with (
        client(node, (str(stranger[0]), str(stranger[1]))) as http,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        http.get(node["url"] + TAXPAYER, headers=HEADERS)


def test_a_client_needs_some_credential(sandbox: SandboxServers, tmp_path: Path):
    config, _ = federation.gateway_config(sandbox.manifest["systems"], tmp_path, policy=False)
    config["clients"][federation.PROGRAMME_MIS] = {"name": "MIS"}
    with pytest.raises(Exception, match="a client needs token_sha256 or tls_cert"):
        from_mapping(config)
