"""PostgreSQL for the tests: a fresh database per test module on the server on this machine.

Skipped, saying why, when the server is unreachable; a failure instead in CI (CI=true), where a missing
server means the PostgreSQL path went untested. Stores are tested the same way on SQLite and PostgreSQL:
`backend_url` gives a migrated, empty database of either kind for each test.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.database import make_engine
from gateway.migrations import STORES, upgrade

PG_HOST, PG_PORT = "127.0.0.1", 5432
ADMIN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
BACKENDS = ("sqlite", "postgresql")


def reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip the test when PostgreSQL is absent, except in CI, where that fails it."""
    if reachable():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI but {PG_HOST}:{PG_PORT} is unreachable")
    pytest.skip(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}")


@contextmanager
def database(store: str) -> Iterator[str]:
    """A new database `kiungo_test_<store>_<random>` (its URL), dropped afterwards even if still in use."""
    require_postgres()
    import psycopg

    name = f"kiungo_test_{store}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clear(url: str) -> None:
    """Every table, trigger and function of a test database gone (append-only tables cannot be emptied)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        # a session a previous test left open (idle in a transaction) would hold locks the DROP waits on
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def migrated(url: str, store: str) -> Engine:
    """An engine on `url` (as the node makes it) with `store`'s schema at head."""
    engine = make_engine(url)
    upgrade(engine, STORES[store])
    return engine


def postgres_fixture(store: str) -> Any:
    """A module-scoped fixture: one PostgreSQL database for the module's tests of `store`."""

    @pytest.fixture(scope="module")
    def pg_database() -> Iterator[str]:
        with database(store) as url:
            yield url

    return pg_database


def backend_url(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    """An empty database of the parametrised backend: an SQLite file that does not exist yet, or the
    module's PostgreSQL database cleared (needs the `pg_database` fixture from `postgres_fixture`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    url: str = request.getfixturevalue("pg_database")
    clear(url)
    return url
