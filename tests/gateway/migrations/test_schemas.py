"""Every store's migrations build exactly the schema its code declares, on SQLite and on PostgreSQL.

For each store: upgrade a fresh database, compare it with the store's MetaData (Alembic's autogenerate
comparison: tables, columns, types, nullability, keys, indexes), upgrade again (nothing may change),
then downgrade to base (every table, trigger and function of the store gone).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, inspect, text

from gateway.database import make_engine
from gateway.migrations import STORES, Store, state, upgrade
from tests.postgres import BACKENDS, database

#: Where each store declares its tables (module:attribute).
METADATA = {
    "log": "gateway.exchangelog.store:metadata",
    "consent": "consent.store:metadata",
    "monitoring": "gateway.monitoring:metadata",
    "jobs": "gateway.vsr.bulk:metadata",
    "events": "gateway.events.store:metadata",
    "review": "matching.review:metadata",
    "crosswalk": "matching.link:metadata",
    "console": "gateway.console.audit:metadata",
}
#: Indexes the migrations make that MetaData cannot declare: expressions over the log's canonical JSON.
EXPRESSION_INDEXES = ("ix_log_record_",)
#: Which code checks the revision it needs itself (the packages that cannot import the gateway).
REVISIONS = {
    "consent": "consent.store:SCHEMA_REVISION",
    "review": "matching.review:SCHEMA_REVISION",
    "crosswalk": "matching.link:SCHEMA_REVISION",
}


def _attribute(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _store_metadata(store: Store) -> MetaData:
    """The store's MetaData; a store without a migration yet (the console's, while it is written) skips."""
    if not list(store.directory.glob(f"{store.name}_0001_*.py")):
        pytest.skip(f"{store.name}: {store.directory} has no migration yet")
    try:
        found = _attribute(METADATA[store.name])
    except (ImportError, AttributeError):
        pytest.skip(f"{store.name}: {METADATA[store.name]} does not exist yet")
    assert isinstance(found, MetaData)
    return found


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A database that has never seen a migration: a new SQLite file, or a new PostgreSQL database."""
    store: str = request.node.callspec.params["name"]
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / f'{store}.sqlite'}")
        yield engine
        engine.dispose()
        return
    with database(f"schema_{store}") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _include(store: Store) -> Any:
    def include(_obj: Any, name: str | None, kind: str, reflected: bool, _compare_to: Any) -> bool:
        if kind == "table" and name == store.version_table:
            return False
        return not (kind == "index" and reflected and name is not None and name.startswith(EXPRESSION_INDEXES))

    return include


def _differences(engine: Engine, store: Store, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _include(store), "version_table": store.version_table}
        )
        return list(compare_metadata(context, metadata))


def _snapshot(engine: Engine) -> dict[str, Any]:
    """Everything an upgrade could change: tables with their columns, keys and rows; indexes (expressions
    too), triggers and functions as the database itself lists them."""
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in sorted(inspector.get_table_names()):
            found[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "fks": sorted(str(fk) for fk in inspector.get_foreign_keys(table)),
                "rows": conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one(),
            }
        if engine.dialect.name == "sqlite":
            listed = "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name"
            found["objects"] = [tuple(r) for r in conn.execute(text(listed))]
            found["functions"] = []
        else:
            indexes = "SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            triggers = "SELECT 'trigger', tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
            found["objects"] = sorted(tuple(r) for q in (indexes, triggers) for r in conn.execute(text(q)))
            functions = (
                "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' ORDER BY proname"
            )
            found["functions"] = [r[0] for r in conn.execute(text(functions))]
    return found


def _downgrade_to_base(engine: Engine, store: Store) -> None:
    """Alembic driven as gateway.migrations.upgrade drives it, the other way."""
    script = ScriptDirectory(str(store.directory), version_locations=[str(store.directory)])

    def steps(revision: Any, _context: MigrationContext) -> Any:
        return script._downgrade_revs("base", revision)

    with engine.begin() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": store.version_table, "script": script, "fn": steps}
        )
        with Operations.context(context):
            context.run_migrations()


def test_every_store_is_covered() -> None:
    assert set(METADATA) == set(STORES)


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.parametrize("name", list(STORES))
def test_migrations_build_the_declared_schema(name: str, fresh: Engine) -> None:
    store = STORES[name]
    metadata = _store_metadata(store)

    first = upgrade(fresh, store)
    assert first.is_current, first.describe()
    assert _differences(fresh, store, metadata) == []
    tables = {t.name for t in metadata.sorted_tables}
    assert tables <= set(inspect(fresh).get_table_names())

    before = _snapshot(fresh)
    again = upgrade(fresh, store)  # a no-op: same revision, same schema, same rows
    assert again.current == first.current
    assert _snapshot(fresh) == before

    _downgrade_to_base(fresh, store)
    assert state(fresh, store).current == ()
    left = _snapshot(fresh)
    assert set(left) - {"objects", "functions"} <= {store.version_table}  # Alembic's own table stays, empty
    assert [o for o in left["objects"] if o[0] == "trigger" or store.version_table not in f"{o[1]} {o[2]}"] == []
    assert left["functions"] == []

    assert upgrade(fresh, store).is_current  # and back up from base
    assert _differences(fresh, store, metadata) == []


@pytest.mark.parametrize("name", sorted(REVISIONS))
def test_packages_that_check_their_own_revision_name_the_head(name: str) -> None:
    store = STORES[name]
    heads = ScriptDirectory(str(store.directory), version_locations=[str(store.directory)]).get_heads()
    assert [_attribute(REVISIONS[name])] == heads
    assert store.version_table == f"kiungo_schema_{name}"


def test_consent_version_table_is_the_stores() -> None:
    assert _attribute("consent.store:VERSION_TABLE") == STORES["consent"].version_table
