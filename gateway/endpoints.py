"""A REST service's endpoints, read from the OpenAPI document its system publishes.

They serve listMethods and allowedMethods, and let the monitoring record a request's path as its
template (`/v1/taxpayers/{tin}`) rather than the path itself, which would carry an identifier.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from connectors import Connector, ConnectorError, ServiceRequest

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_TTL = 300.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # X-Road form: placeholders shown as `*`
    template: str  # OpenAPI form, relative to the service's base path
    pattern: re.Pattern[str]


def endpoints_of(document: dict[str, object], base_path: str) -> list[Endpoint]:
    """Endpoints under `base_path`, relative to it, from an OpenAPI document."""
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return []
    base = base_path.rstrip("/")
    out: list[Endpoint] = []
    for path, item in paths.items():
        if not isinstance(path, str) or not isinstance(item, dict) or not path.startswith(base):
            continue
        rel = path[len(base) :] or "/"
        if not rel.startswith("/"):
            continue
        regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(rel)) + "$"
        star = re.sub(r"\{[^/]+?\}", "*", rel)
        for method in HTTP_METHODS:
            if method in item:
                out.append(Endpoint(method.upper(), star, rel, re.compile(regex)))
    return out


class EndpointCache:
    """OpenAPI-derived endpoints per service, fetched through the service's own connector, kept a while."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, list[Endpoint], bytes]] = {}

    def cached(self, key: str) -> list[Endpoint] | None:
        entry = self._entries.get(key)
        return entry[1] if entry else None

    async def document(self, key: str, connector: Connector, openapi_path: str, base_path: str) -> bytes | None:
        """The raw OpenAPI document (refreshing the endpoints), or None when the system cannot give it."""
        entry = self._entries.get(key)
        if entry and time.monotonic() - entry[0] < _TTL:
            return entry[2]
        try:
            answer = await connector.call(ServiceRequest(operation=openapi_path, passthrough=True, timeout=10))
        except ConnectorError:
            return entry[2] if entry else None
        if answer.status != 200:
            return entry[2] if entry else None
        try:
            parsed = json.loads(answer.content)
        except ValueError:
            return entry[2] if entry else None
        found = endpoints_of(parsed, base_path) if isinstance(parsed, dict) else []
        self._entries[key] = (time.monotonic(), found, answer.content)
        return answer.content

    def template(self, key: str, method: str, path: str) -> str | None:
        for endpoint in self.cached(key) or ():
            if endpoint.method == method and endpoint.pattern.match(path):
                return endpoint.template
        return None
