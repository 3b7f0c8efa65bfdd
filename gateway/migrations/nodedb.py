"""Which databases a node keeps, by its settings, so that `kiungo db upgrade` and the node agree on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from gateway.database import make_engine
from gateway.migrations.errors import SchemaNotCurrent
from gateway.migrations.runner import SchemaState, state, upgrade
from gateway.migrations.stores import STORES, Store
from gateway.settings import NodeSettings


@dataclass(frozen=True)
class NodeDatabase:
    store: Store
    url: str


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_parent(url: str) -> None:
    """An SQLite file's directory, made when missing: migrating a new store should not need a mkdir first."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def node_databases(settings: NodeSettings) -> list[NodeDatabase]:
    """Each store the node uses and its URL: its own setting, else `[state] url`, else a file in data_dir.

    The exchange log never falls back to `[state] url`: each gateway (each replica) keeps its own chain.
    """
    data = settings.data_dir
    shared = settings.state.url
    urls: dict[str, str] = {
        "log": settings.log.url or _sqlite(data / "log.sqlite"),
        "monitoring": shared or _sqlite(data / "monitoring.sqlite"),
    }
    if settings.policy is not None:
        consent = settings.consent
        own = (consent.url if consent else None) or (_sqlite(consent.db) if consent and consent.db else None)
        urls["consent"] = own or shared or _sqlite(data / "consent.sqlite")
    if settings.vsr is not None:
        urls["jobs"] = settings.vsr.jobs_url or shared or _sqlite(data / "vsr-jobs.sqlite")
    if settings.events is not None:
        urls["events"] = settings.events.url or shared or _sqlite(data / "events.sqlite")
    if settings.console is not None:
        urls["console"] = settings.console.url or shared or _sqlite(data / "console.sqlite")
    return [NodeDatabase(STORES[name], url) for name, url in urls.items()]


Step = Callable[[Engine, Store], SchemaState]


def on_database(url: str, store: Store, step: Step) -> SchemaState:
    """One step (`upgrade` or `state`) on one database, with an engine of its own for the while."""
    if step is upgrade:
        sqlite_parent(url)
    engine = make_engine(url)
    try:
        return step(engine, store)
    finally:
        engine.dispose()


def upgrade_node(settings: NodeSettings) -> list[SchemaState]:
    """Migrate every database of the node to head (what `kiungo db upgrade -c NODE.toml` does)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return [on_database(db.url, db.store, upgrade) for db in node_databases(settings)]


def node_states(settings: NodeSettings) -> list[SchemaState]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return [on_database(db.url, db.store, state) for db in node_databases(settings)]


def check_node(settings: NodeSettings) -> None:
    """Refuse to start on a database whose schema is not current, naming each and the command to run."""
    behind = [found for found in node_states(settings) if not found.is_current]
    if behind:
        lines = "\n  - ".join(found.describe() for found in behind)
        raise SchemaNotCurrent(
            f"the node's databases are not migrated:\n  - {lines}\nrun `kiungo db upgrade -c NODE.toml` "
            "(the same settings and environment as the node)"
        )
