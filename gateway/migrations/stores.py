"""The durable stores Kiungo keeps, each with its own migration history and version table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.migrations.errors import UnknownStore

VERSIONS = Path(__file__).with_name("versions")


@dataclass(frozen=True)
class Store:
    name: str
    title: str

    @property
    def version_table(self) -> str:
        return f"kiungo_schema_{self.name}"

    @property
    def directory(self) -> Path:
        return VERSIONS / self.name


STORES: dict[str, Store] = {
    store.name: store
    for store in (
        Store("log", "exchange log"),
        Store("consent", "consent records"),
        Store("monitoring", "operational monitoring"),
        Store("jobs", "virtual registry bulk jobs"),
        Store("events", "vital-event subscriptions and deliveries"),
        Store("review", "matching review queue"),
        Store("crosswalk", "matching crosswalks"),
        Store("console", "console audit trail"),
    )
}


def store(name: str) -> Store:
    try:
        return STORES[name]
    except KeyError:
        raise UnknownStore(f"no store {name!r}; the stores are: {', '.join(STORES)}") from None
