"""What a node hosts, resolved from its settings: local clients, subsystems and their services.

Lookups happen on every exchange, so identifiers are parsed once here and kept in dicts.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from gateway import errors
from gateway.errors import ConfigError, GatewayError
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import NodeSettings
from gateway.subjects import SubjectFinder

#: The HTTP header in which a local client subsystem presents its access token (never forwarded).
TOKEN_HEADER = "x-kiungo-client-token"  # noqa: S105 - a header name, not a secret


@dataclass(frozen=True, slots=True)
class LocalClient:
    id: ClientId
    name: str
    token_sha256: bytes | None
    cert_sha256: bytes | None  # the registered TLS client certificate's fingerprint
    cert_pem: str | None

    def authenticate(self, token: str | None, cert_der: bytes | None) -> bool:
        if cert_der is not None and self.cert_sha256 is not None:
            return hmac.compare_digest(hashlib.sha256(cert_der).digest(), self.cert_sha256)
        if not token or self.token_sha256 is None:
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
    subjects: SubjectFinder

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
        self.clients: dict[ClientId, LocalClient] = {}
        for key, client in settings.clients.items():
            pem = _read_pem(client.tls_cert, key) if client.tls_cert else None
            self.clients[ClientId.parse(key)] = LocalClient(
                ClientId.parse(key),
                client.name,
                bytes.fromhex(client.token_sha256) if client.token_sha256 else None,
                hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest() if pem else None,
                pem,
            )
        self.subsystems: dict[ClientId, Subsystem] = {
            ClientId.parse(k): Subsystem(ClientId.parse(k), v.name) for k, v in settings.subsystems.items()
        }
        for key, s in settings.services.items():
            sid = ServiceId.parse(key)
            service = LocalService(
                sid,
                s.system,
                s.type,
                s.operation,
                s.openapi,
                frozenset(s.allow),
                s.description,
                SubjectFinder(s.subject),
            )
            self.subsystems[sid.provider].services[sid.code] = service

    def client(self, cid: ClientId, token: str | None, cert_der: bytes | None = None) -> LocalClient:
        """The registered local client, authenticated by its TLS certificate or its token, or the refusal."""
        client = self.clients.get(cid)
        if client is None:
            raise GatewayError(errors.UNKNOWN_CLIENT, f"client {cid} is not registered on this gateway")
        if not client.authenticate(token, cert_der):
            if cert_der is not None and client.cert_sha256 is not None:
                raise GatewayError(
                    errors.CLIENT_AUTHENTICATION, f"the TLS certificate presented is not the one registered for {cid}"
                )
            raise GatewayError(errors.CLIENT_AUTHENTICATION, f"client {cid} did not present a valid access token")
        return client

    def client_certificates(self) -> list[str]:
        """PEM certificates of the clients that authenticate with TLS (the client listener trusts these)."""
        return [c.cert_pem for c in self.clients.values() if c.cert_pem]

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


def _read_pem(path: Path, client: str) -> str:
    try:
        text = path.read_text()
        ssl.PEM_cert_to_DER_cert(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"clients.{client}.tls_cert: cannot read a PEM certificate at {path} ({exc})") from None
    return text
