"""Consent tests run on SQLite and on PostgreSQL: each test gets an empty, migrated database of either kind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from consent import ConsentRecord, ConsentStore
from gateway.database import make_engine
from tests.postgres import BACKENDS, backend_url, migrated, postgres_fixture

SECRET = b"consent-test-secret-0123456789ab"
SUBJECT = "9012345601"
CONTROLLER = "ZZ/GOV/TAX"
RECIPIENT = "ZZ/GOV/MSP/research"
PURPOSE = "research-poverty-2026"
NOW = datetime.now(UTC)


pg_database = postgres_fixture("consent")


@pytest.fixture(params=BACKENDS)
def consent_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty consent database, migrated as `kiungo db upgrade` does: an SQLite file or PostgreSQL."""
    url = backend_url(request, tmp_path, "consent.sqlite")
    migrated(url, "consent").dispose()
    return url


@pytest.fixture
def store(consent_url: str) -> Iterator[ConsentStore]:
    """A store on an engine made as the node makes it (WAL pragmas on SQLite)."""
    engine = make_engine(consent_url)
    with ConsentStore(engine, SECRET) as s:
        yield s
    engine.dispose()


@pytest.fixture(scope="session")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def grant(store: ConsentStore, **overrides: Any) -> ConsentRecord:
    """A typical grant: the tax authority's income data to the ministry's research subsystem."""
    args: dict[str, Any] = {
        "subject_id": SUBJECT,
        "controller": CONTROLLER,
        "recipients": [RECIPIENT],
        "purposes": [PURPOSE],
        "data_categories": ["income", "employer"],
        "valid_until": NOW + timedelta(days=365),
        "privacy_notice": "https://tax.zz.example/privacy/research",
        "actor": "clerk-17",
    }
    args.update(overrides)
    return store.grant(**args)
