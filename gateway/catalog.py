"""What a node hosts, resolved from its settings: local clients, subsystems and their services.

Lookups happen on every exchange, so identifiers are parsed once here and kept in dicts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from gateway import errors
from gateway.errors import GatewayError
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import NodeSettings

#: The HTTP header in which a local client subsystem presents its access token (never forwarded).
TOKEN_HEADER = "x-kiungo-client-token"  # noqa: S105 - a header name, not a secret


@dataclass(frozen=True, slots=True)
class LocalClient:
    id: ClientId
    name: str
    token_sha256: bytes

    def authenticate(self, token: str | None) -> bool:
        if not token:
            return False
        presented = hashlib.sha256(token.encode()).digest()
        return hmac.compare_digest(presented, self.token_sha256)


@dataclass(frozen=True, slots=True)
class LocalService:
    id: ServiceId
    system: str
    type: str
    operation: str
    openapi: str | None
    allow: frozenset[str]
    description: str

    def allows(self, client: ClientId) -> bool:
        return "*" in self.allow or str(client) in self.allow


@dataclass(frozen=True, slots=True)
class Subsystem:
    id: ClientId
    name: str
    services: dict[str, LocalService] = field(default_factory=dict)


class Catalog:
    def __init__(self, settings: NodeSettings) -> None:
        self.instance = settings.instance
        self.clients: dict[ClientId, LocalClient] = {
            ClientId.parse(k): LocalClient(ClientId.parse(k), v.name, bytes.fromhex(v.token_sha256))
            for k, v in settings.clients.items()
        }
        self.subsystems: dict[ClientId, Subsystem] = {
            ClientId.parse(k): Subsystem(ClientId.parse(k), v.name) for k, v in settings.subsystems.items()
        }
        for key, s in settings.services.items():
            sid = ServiceId.parse(key)
            service = LocalService(sid, s.system, s.type, s.operation, s.openapi, frozenset(s.allow), s.description)
            self.subsystems[sid.provider].services[sid.code] = service

    def client(self, cid: ClientId, token: str | None) -> LocalClient:
        """The registered local client, authenticated by its token, or the refusal to give it."""
        client = self.clients.get(cid)
        if client is None:
            raise GatewayError(errors.UNKNOWN_CLIENT, f"client {cid} is not registered on this gateway")
        if not client.authenticate(token):
            raise GatewayError(errors.CLIENT_AUTHENTICATION, f"client {cid} did not present a valid access token")
        return client

    def subsystem(self, provider: ClientId) -> Subsystem:
        found = self.subsystems.get(provider)
        if found is None:
            raise GatewayError(errors.UNKNOWN_MEMBER, f"subsystem {provider} is not known to this gateway")
        return found

    def service(self, sid: ServiceId) -> LocalService:
        found = self.subsystem(sid.provider).services.get(sid.code)
        if found is None or (sid.version is not None and sid.version != found.id.version):
            raise GatewayError(errors.UNKNOWN_SERVICE, f"service {sid} is not offered")
        return found
