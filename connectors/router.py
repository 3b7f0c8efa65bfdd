"""Service codes routed to connectors, from a configuration file.

```toml
[systems.civreg]            # one agency system, reached by one connector
connector = "soap"
wsdl = "http://127.0.0.1:8001/civreg?wsdl"

[services.getPersonByNationalId]   # a service code this node offers
system = "civreg"
operation = "GetPersonByNationalId"

[services.getTaxpayer]
system = "tax"
method = "GET"
operation = "/v1/taxpayers/{tin}"
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from connectors import plugins
from connectors.connector import Connector, Param, ServiceRequest, ServiceResponse
from connectors.errors import ConfigurationError

_ROUTE_KEYS = frozenset({"system", "operation", "method", "description", "params"})


@dataclass(frozen=True, slots=True)
class Route:
    """Where a service code goes: which system, which operation or path, which method."""

    service: str
    system: str
    operation: str
    method: str = "GET"
    description: str = ""
    params: tuple[str, ...] = field(default_factory=tuple)


class Router:
    """Holds one connector per agency system and calls them by service code."""

    def __init__(self, connectors: Mapping[str, Connector], routes: Mapping[str, Route]) -> None:
        for route in routes.values():
            if route.system not in connectors:
                raise ConfigurationError(f"service {route.service!r} names unknown system {route.system!r}")
        self.connectors = dict(connectors)
        self.routes = dict(routes)

    @classmethod
    def from_file(cls, path: Path) -> Self:
        try:
            with path.open("rb") as f:
                config = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigurationError(f"no connector configuration at {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_mapping(config)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Self:
        systems = config.get("systems", {})
        services = config.get("services", {})
        if not isinstance(systems, dict) or not isinstance(services, dict):
            raise ConfigurationError("[systems] and [services] must be tables")
        connectors: dict[str, Connector] = {}
        for name, settings in systems.items():
            if not isinstance(settings, dict) or "connector" not in settings:
                raise ConfigurationError(f'system {name!r} needs a `connector` kind (e.g. "rest" or "soap")')
            rest = {k: v for k, v in settings.items() if k != "connector"}
            connectors[name] = plugins.load(str(settings["connector"])).from_config(name, rest)
        routes = {code: _route(code, spec) for code, spec in services.items()}
        return cls(connectors, routes)

    async def call(
        self,
        service: str,
        params: Mapping[str, Param] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> ServiceResponse:
        """Call a service by its code with structured parameters (or a raw body)."""
        route = self.routes.get(service)
        if route is None:
            raise ConfigurationError(f"unknown service {service!r}")
        request = ServiceRequest(
            operation=route.operation,
            method=route.method,
            params=dict(params or {}),
            headers=dict(headers or {}),
            body=body,
            timeout=timeout,
        )
        return await self.connectors[route.system].call(request)

    async def aclose(self) -> None:
        for connector in self.connectors.values():
            await connector.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def build_connectors(systems: Mapping[str, Any]) -> dict[str, Connector]:
    """One connector per `[systems.NAME]` table, each built by the kind its `connector` key names."""
    connectors: dict[str, Connector] = {}
    for name, settings in systems.items():
        if not isinstance(settings, Mapping) or "connector" not in settings:
            raise ConfigurationError(f'system {name!r} needs a `connector` kind (e.g. "rest" or "soap")')
        rest = {k: v for k, v in settings.items() if k != "connector"}
        connectors[name] = plugins.load(str(settings["connector"])).from_config(name, rest)
    return connectors


def _route(code: str, spec: Any) -> Route:
    if not isinstance(spec, dict):
        raise ConfigurationError(f"service {code!r} must be a table")
    unknown = sorted(set(spec) - _ROUTE_KEYS)
    if unknown:
        raise ConfigurationError(f"service {code!r}: unknown key(s) {', '.join(unknown)}")
    for key in ("system", "operation"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ConfigurationError(f"service {code!r} needs `{key}`")
    method = str(spec.get("method", "GET")).upper()
    if method not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
        raise ConfigurationError(f"service {code!r}: unsupported method {method!r}")
    return Route(
        service=code,
        system=spec["system"],
        operation=spec["operation"],
        method=method,
        description=str(spec.get("description", "")),
        params=tuple(spec.get("params", ())),
    )
