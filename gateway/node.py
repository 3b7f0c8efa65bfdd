"""A gateway node: its settings made into the parts that serve exchanges, and their lifecycle."""

from __future__ import annotations

from connectors import ConnectorError, build_connectors
from gateway.catalog import Catalog
from gateway.endpoints import EndpointCache
from gateway.errors import ConfigError
from gateway.exchange import Pipeline
from gateway.federation import Federation
from gateway.metaservices import Metaservices
from gateway.metrics import NodeMetrics
from gateway.monitoring import OperationalMonitor
from gateway.settings import NodeSettings


class Node:
    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings)
        try:
            self.connectors = build_connectors(settings.systems)
        except ConnectorError as exc:
            raise ConfigError(f"systems: {exc}") from None
        self.monitor = OperationalMonitor(settings.data_dir / "monitoring.sqlite")
        self.metrics = NodeMetrics()
        self.endpoints = EndpointCache()
        self.meta = Metaservices(self.catalog, self.connectors, self.endpoints)
        self.pipeline = Pipeline(
            self.catalog, self.connectors, self.monitor, self.metrics, settings.server.provider_timeout
        )
        self.federation = Federation(settings.federation) if settings.federation is not None else None

    def start(self) -> None:
        if self.federation is not None:
            self.federation.start()

    async def aclose(self) -> None:
        if self.federation is not None:
            await self.federation.aclose()
        for connector in self.connectors.values():
            await connector.aclose()
        self.monitor.close()
