"""Fixtures for the exchange log: a signer with a certificate, a local TSA on loopback, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.exchangelog import ExchangeLog, LogRecord, create_tsa_app
from gateway.exchangelog.tsa import make_tsa_certificate
from gateway.server import ServerThread, base_url, bind
from tests.postgres import database
from tests.schemas import migrate

PG_HOST, PG_PORT = "127.0.0.1", 5432
NODE = "ZZ/GOV/CRA"
T0 = 1_780_000_000_000  # ms epoch, a fixed day


def make_record(i: int, **changes: object) -> LogRecord:
    fields: dict[str, object] = {
        "exchange_id": f"ZZ-{i:08d}",
        "request_id": f"req-{i}",
        "side": "Producer" if i % 2 else "Client",
        "protocol": "REST",
        "client": f"ZZ/GOV/MSP/vsr{i % 3}",
        "service": "ZZ/GOV/CRA/civreg/getPerson",
        "user_id": "officer-7",
        "purpose": "old-age-grant-eligibility",
        "lawful_basis": "public-task",
        "agreement_id": "DSA-0001",
        "agreement_version": 2,
        "decision": "allowed",
        "outcome": "ok",
        "status_code": 200,
        "request_in_ts": T0 + i * 1000,
        "response_out_ts": T0 + i * 1000 + 40,
        "request_size": 120,
        "response_size": 900,
        "request_digest": f"{i:064x}",
        "response_digest": f"{i + 1:064x}",
        "subject_hash": f"{i % 10:064x}",
        "method": "GET",
        "path_template": "/persons/{id}",
    }
    fields.update(changes)
    return LogRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def signer() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ZZ/GOV/CRA log signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def tsa() -> Iterator[tuple[str, str]]:
    """A real RFC 3161 TSA on loopback: (url, its certificate PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make_tsa_certificate(key)
    sock = bind("127.0.0.1", 0)
    with ServerThread({"tsa": (create_tsa_app(key, cert), sock)}, lifespan="off"):
        yield base_url(sock) + "/", cert


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.sqlite"


@pytest.fixture
def log(log_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> Iterator[ExchangeLog]:
    key, cert = signer
    opened = ExchangeLog.open(migrate(f"sqlite:///{log_path}", "log"), node=NODE, signer=key, signer_cert_pem=cert)
    yield opened
    opened.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skipped (not in CI) when the server is absent."""
    with database("log") as url:
        yield url
