from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from consent import ConsentRecord, ConsentStore

SECRET = b"consent-test-secret-0123456789ab"
SUBJECT = "9012345601"
CONTROLLER = "ZZ/GOV/TAX"
RECIPIENT = "ZZ/GOV/MSP/research"
PURPOSE = "research-poverty-2026"
NOW = datetime.now(UTC)


@pytest.fixture
def store() -> Iterator[ConsentStore]:
    with ConsentStore(None, SECRET) as s:
        yield s


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[ConsentStore]:
    with ConsentStore(tmp_path / "consent.sqlite", SECRET) as s:
        yield s


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
