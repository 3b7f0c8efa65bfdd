"""Alembic driven from code: no alembic.ini or env.py to ship, one history and version table per store.

An upgrade runs in one transaction (PostgreSQL DDL is transactional) under an advisory lock, so
replicas started together migrate once and the others wait, then find nothing to do.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.migrations.errors import MigrationError, SchemaNotCurrent
from gateway.migrations.stores import Store


@dataclass(frozen=True)
class SchemaState:
    store: Store
    where: str  # the database, password hidden
    current: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def is_current(self) -> bool:
        return set(self.current) == set(self.head)

    def describe(self) -> str:
        at = ", ".join(self.current) or "no schema"
        return f"{self.store.title} ({self.store.name}) in {self.where}: at {at}, needs {', '.join(self.head)}"


def _script(store: Store) -> ScriptDirectory:
    return ScriptDirectory(str(store.directory), version_locations=[str(store.directory)])


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _context(conn: Connection, store: Store, **opts: Any) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table": store.version_table, **opts})


def state(engine: Engine, store: Store) -> SchemaState:
    script = _script(store)
    try:
        with engine.connect() as conn:
            current = _context(conn, store).get_current_heads()
    except SQLAlchemyError as exc:
        raise MigrationError(
            f"cannot read the schema of {store.title} in {_where(engine)}: {type(exc).__name__}"
        ) from None
    return SchemaState(store, _where(engine), tuple(current), tuple(script.get_heads()))


def require_current(engine: Engine, store: Store, *, fix: str = "kiungo db upgrade -c NODE.toml") -> None:
    """Refuse to use a database whose schema is not the one this Kiungo was written for."""
    found = state(engine, store)
    if not found.is_current:
        raise SchemaNotCurrent(f"{found.describe()}; run `{fix}`")


def upgrade(engine: Engine, store: Store) -> SchemaState:
    """Bring one store's schema to head (idempotent); returns the state it ends in."""
    script = _script(store)

    def steps(revision: Any, _context: MigrationContext) -> Any:
        return script._upgrade_revs("heads", revision)

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(store.version_table.encode())}
                )
            context = _context(conn, store, script=script, fn=steps)
            with Operations.context(context):
                context.run_migrations()
    except SQLAlchemyError as exc:
        raise MigrationError(
            f"cannot migrate {store.title} in {_where(engine)}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None
    return state(engine, store)
