"""The certificates must work where the gateway uses them: Python's ssl (OpenSSL), mutual TLS, CRL checking."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certs import CertificateAuthority, load_certificate
from tests.certs.conftest import PASS


def _context(side: int, paths: dict[str, Path], ca_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(side)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(paths["auth_cert"], paths["auth_key"], password=PASS)
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> ssl.SSLObject:
    """A full TLS handshake in memory: no sockets, no threads."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, side in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3 sends the server's verdict on the client certificate after its handshake completes.
            s.write(b"x")
            c_in.write(s_out.read())
            c.read(1)
            return s
    raise AssertionError("handshake did not finish")


@pytest.fixture
def gateways(ca: CertificateAuthority, tmp_path: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    cra = ca.issue_member("ZZ/GOV/CRA", tmp_path / "cra", PASS, hosts=["127.0.0.1"])
    tax = ca.issue_member("ZZ/GOV/TAX", tmp_path / "tax", PASS, hosts=["tax.example"])
    return cra, tax


def test_mutual_tls_with_member_certificates(ca: CertificateAuthority, gateways) -> None:
    cra, tax = gateways
    server = _context(ssl.PROTOCOL_TLS_SERVER, cra, cra["ca_cert"])
    client = _context(ssl.PROTOCOL_TLS_CLIENT, tax, tax["ca_cert"])
    served = _handshake(client, server, "127.0.0.1")
    peer = served.getpeercert(binary_form=True)
    assert peer is not None
    assert peer == load_certificate(tax["auth_cert"]).public_bytes(serialization.Encoding.DER)
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _handshake(client, server, "127.0.0.2")


def test_openssl_rejects_a_revoked_client_with_our_crl(ca: CertificateAuthority, gateways, tmp_path: Path) -> None:
    cra, tax = gateways
    client = _context(ssl.PROTOCOL_TLS_CLIENT, tax, tax["ca_cert"])

    def server_with_crl() -> ssl.SSLContext:
        crl_file = tmp_path / "crl.pem"
        crl_file.write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
        server = _context(ssl.PROTOCOL_TLS_SERVER, cra, cra["ca_cert"])
        server.load_verify_locations(crl_file)
        server.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        return server

    _handshake(client, server_with_crl(), "127.0.0.1")
    ca.revoke(load_certificate(tax["auth_cert"]).serial_number)
    with pytest.raises(ssl.SSLError, match="revoked"):
        _handshake(client, server_with_crl(), "127.0.0.1")
