"""Databases for tests of one store, migrated as `kiungo db upgrade --store NAME --url URL` would."""

from __future__ import annotations

from gateway.migrations import STORES, upgrade
from gateway.migrations.nodedb import on_database


def migrate(url: str, *stores: str) -> str:
    """Bring each named store's schema in `url` to head; returns the URL for chaining."""
    for name in stores:
        on_database(url, STORES[name], upgrade)
    return url
