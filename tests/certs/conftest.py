"""Fixtures for the PKI tests: every key and certificate is made at run time, in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from certs import CertificateAuthority, generate_key

PASS = b"correct horse battery staple"
INSTANCE = "ZZ"
FEDERATION = "Sandbox federation authority"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "ca", INSTANCE, FEDERATION, PASS)


@pytest.fixture
def other_ca(tmp_path: Path) -> CertificateAuthority:
    """An impostor: same instance and name, so only keys and signatures tell the two apart."""
    return CertificateAuthority.init(tmp_path / "other-ca", INSTANCE, FEDERATION, PASS)


@pytest.fixture
def auth_cert(ca: CertificateAuthority) -> x509.Certificate:
    return ca.issue("ZZ/GOV/CRA", "auth", generate_key().public_key(), hosts=["127.0.0.1", "cra.example"])


@pytest.fixture
def sign_cert(ca: CertificateAuthority) -> x509.Certificate:
    return ca.issue("ZZ/GOV/CRA", "sign", generate_key().public_key(), name="Civil Registration Authority")
