"""The one interface every connector implements, and the messages it takes and gives.

Like an httpx transport: one call method and a close. A connector knows how to reach one agency
system; which service code maps to which operation is the router's business, not the connector's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

Param = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """One call to an agency system.

    `operation` is a SOAP operation name or a REST path template (`/v1/taxpayers/{tin}`); errors name
    it, never the filled-in path. Structured calls give `params` (path placeholders, then query or
    JSON body, or SOAP elements) and get parsed `data` back; upstream failures raise.

    A `passthrough` call is what an X-Road-style gateway makes: `path` is appended to the operation
    (REST), `query` is the raw query string, `body` and `headers` go as they are (for SOAP, `body` is
    a whole envelope), and the answer comes back unparsed, upstream errors included, so the gateway
    can hand the provider's own answer to the client unchanged.
    """

    operation: str
    method: str = "GET"
    params: Mapping[str, Param] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    path: str = ""
    query: str = ""
    timeout: float | None = None
    passthrough: bool = False


@dataclass(frozen=True, slots=True)
class ServiceResponse:
    """The agency system's answer: raw bytes as received, and `data` parsed into plain Python."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    data: Any = None
    media_type: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@runtime_checkable
class Connector(Protocol):
    """How a gateway reaches one agency system."""

    name: str

    async def call(self, request: ServiceRequest) -> ServiceResponse: ...

    async def aclose(self) -> None: ...


class ConnectorFactory(Protocol):
    """What a `kiungo.connectors` entry point must be: a class (or callable) built from settings."""

    def from_config(self, name: str, settings: Mapping[str, Any]) -> Connector: ...


class AsyncCloseContext:
    """Mixin: `async with connector:` closes it."""

    async def aclose(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
