"""Databases for tests of one store, migrated as `kiungo db upgrade --store NAME --url URL` would."""

from __future__ import annotations

from gateway.database import make_engine
from gateway.migrations import STORES, upgrade


def migrate(url: str, *stores: str) -> str:
    """Bring each named store's schema in `url` to head; returns the URL for chaining."""
    engine = make_engine(url)
    try:
        for name in stores:
            upgrade(engine, STORES[name])
    finally:
        engine.dispose()
    return url
