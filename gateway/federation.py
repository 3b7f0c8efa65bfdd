"""The node as a member of a federation: directory, keys, peer trust, replay guard, and the peer client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import httpx
from cryptography.hazmat.primitives import serialization

import certs
from gateway import errors, tls
from gateway.breaker import CircuitBreakers
from gateway.directory import Directory, DirectoryClient, MemberEntry
from gateway.errors import ConfigError, GatewayError
from gateway.exchange import Exchange
from gateway.peers import PeerClient
from gateway.replay import MemoryNonceStore, NonceStore, ReplayGuard
from gateway.settings import FederationSettings
from gateway.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, Signer, parse_timestamp, request_payload
from gateway.trust import PeerVerifier, RevocationChecker, check_signature


class Federation:
    def __init__(
        self, settings: FederationSettings, *, nonces: NonceStore | None = None, breakers: CircuitBreakers | None = None
    ) -> None:
        self.settings = settings
        self.breakers = breakers
        self.member = settings.member
        try:
            passphrase = certs.passphrase_from(file=settings.passphrase_file)
            sign_cert = certs.load_certificate(settings.sign_cert)
            sign_key = certs.load_private_key(settings.sign_key, passphrase)
            auth_cert = certs.load_certificate(settings.auth_cert)
            certs.load_private_key(settings.auth_key, passphrase)  # fail at start, not at the first handshake
        except certs.CertsError as exc:
            raise ConfigError(f"federation keys: {exc}") from None
        for what, cert in (("auth_cert", auth_cert), ("sign_cert", sign_cert)):
            if certs.member_of(cert) != self.member:
                raise ConfigError(f"federation.{what} belongs to {certs.member_of(cert)}, not to {self.member}")
        self.directory = DirectoryClient(settings.directory, settings.anchor, refresh_seconds=settings.refresh_seconds)
        directory = self.directory.load_initial()
        self.signer = Signer(sign_key, certs.fingerprint(sign_cert))
        self.sign_key = sign_key
        self.sign_cert_pem = sign_cert.public_bytes(serialization.Encoding.PEM).decode()
        self.auth_fingerprint = certs.fingerprint(auth_cert)
        self.server_ssl = tls.server_context(
            settings.auth_cert, settings.auth_key, passphrase, client_cas=directory.ca_pems, require_client_cert=True
        )
        self.peers = PeerClient(
            tls.client_context(settings.auth_cert, settings.auth_key, passphrase, server_cas=directory.ca_pems),
            timeout=settings.peer_timeout,
        )
        self.verifier = PeerVerifier(
            RevocationChecker(
                settings.revocation,
                cache_seconds=settings.revocation_cache_seconds,
                max_age_seconds=settings.revocation_max_age_seconds,
            )
        )
        self.replay = ReplayGuard(
            nonces or MemoryNonceStore(),
            window_seconds=settings.replay_window_seconds,
            skew_seconds=settings.clock_skew_seconds,
        )
        self._refresher: asyncio.Task[None] | None = None

    def accept_signed(
        self, headers: Mapping[str, str], request_hash: str, member: str, message_id: str, directory: Directory
    ) -> None:
        """A peer's request is signed by its member, unaltered, fresh, and not seen before."""
        timestamp = parse_timestamp(headers.get(TIMESTAMP_HEADER), errors.INVALID_TIMESTAMP)
        check_signature(
            headers.get(SIGNATURE_HEADER),
            request_payload(request_hash, timestamp),
            member,
            directory,
            errors.INVALID_SIGNATURE,
        )
        self.replay.check(member, message_id, timestamp)

    async def send(
        self, peer: MemberEntry, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> httpx.Response:
        """Send to a peer's gateway through its circuit breaker: a gateway that keeps failing is not waited on."""
        breakers = self.breakers
        if breakers is None:
            return await self.peers.send(peer, method, target, headers, body)
        name = f"peer:{peer.id}"
        breakers.check(name, errors.CIRCUIT_OPEN_CLIENT, f"the gateway of {peer.id}")
        try:
            answer = await self.peers.send(peer, method, target, headers, body)
        except GatewayError as exc:
            if exc.kind in (errors.PEER_NETWORK_ERROR, errors.PEER_TIMEOUT):
                breakers.failed(name)
            raise
        breakers.succeeded(name)
        return answer

    def start(self) -> None:
        """Refresh the directory on a schedule for as long as the node runs."""
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever(), name="directory-refresh")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            await self.directory.refresh()

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.peers.aclose()
        await self.verifier.revocation.aclose()


def resolve_peer(
    ex: Exchange, federation: Federation | None, service_type: str
) -> tuple[Federation, Directory, MemberEntry]:
    """For a service this node does not host: the provider's gateway, from a current directory."""
    assert ex.service is not None
    provider = ex.service.provider
    if federation is None:
        raise GatewayError(errors.UNKNOWN_MEMBER, f"subsystem {provider} is not known to this gateway")
    ex.side = "Client"
    directory = federation.directory.current(errors.OUTDATED_GLOBAL_CONF_CLIENT)
    peer = directory.members.get(str(provider.member))
    if peer is None:
        raise GatewayError(errors.UNKNOWN_MEMBER, f"member {provider.member} is not in the federation directory")
    offered = peer.services.get(provider.subsystem or "")
    if offered is None:
        raise GatewayError(errors.UNKNOWN_MEMBER, f"subsystem {provider} is not in the federation directory")
    kind = offered.get(ex.service.code)
    if kind is None:
        raise GatewayError(errors.UNKNOWN_SERVICE, f"service {ex.service} is not offered")
    if kind != service_type:
        raise GatewayError(errors.INVALID_SERVICE_TYPE, f"service {ex.service} is a {kind.upper()} service")
    ex.resolved = True
    return federation, directory, peer
