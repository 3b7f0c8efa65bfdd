"""The consumer gateway's peer client (gateway.peers) against a real TLS listener: pin, limits, failures.

The provider here is uvicorn on the node's own TLS listener setup (gateway.server, gateway.tls) with
a small app; the PKI is a fresh federation CA. The federation tests cover the same client inside
whole exchanges; these pin down what it does on its own, including the repeat after a provider
closed a pooled connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from starlette.types import Receive, Scope, Send

import certs
from certs import CertificateAuthority
from gateway import errors, peers, server, tls
from gateway.directory import MemberEntry
from gateway.errors import GatewayError
from gateway.peers import PeerClient
from gateway.server import Listener, ServerThread, bind

pytestmark = pytest.mark.anyio

PASSPHRASE = b"test-passphrase-123"
PROVIDER, CONSUMER = "ZZ/GOV/TAX", "ZZ/GOV/MSP"


@dataclass(frozen=True)
class Pki:
    server: ssl.SSLContext
    client: ssl.SSLContext
    stranger: ssl.SSLContext  # a client certificate from another federation's CA
    provider_fingerprint: str
    consumer_fingerprint: str


def _ca(root: Path, name: str) -> tuple[CertificateAuthority, str]:
    ca = CertificateAuthority.init(root / name, "ZZ", name, PASSPHRASE)
    return ca, ca.cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("peers-pki")
    ca, pem = _ca(root, "federation")
    other, other_pem = _ca(root, "elsewhere")
    provider = ca.issue_member(PROVIDER, root / "tax", PASSPHRASE, hosts=["127.0.0.1"])
    consumer = ca.issue_member(CONSUMER, root / "msp", PASSPHRASE, hosts=["127.0.0.1"])
    stranger = other.issue_member(CONSUMER, root / "stranger", PASSPHRASE, hosts=["127.0.0.1"])
    return Pki(
        server=tls.server_context(
            provider["auth_cert"], provider["auth_key"], PASSPHRASE, client_cas=[pem], require_client_cert=True
        ),
        client=tls.client_context(consumer["auth_cert"], consumer["auth_key"], PASSPHRASE, server_cas=[pem]),
        stranger=tls.client_context(
            stranger["auth_cert"], stranger["auth_key"], PASSPHRASE, server_cas=[pem, other_pem]
        ),
        provider_fingerprint=certs.fingerprint(certs.load_certificate(provider["auth_cert"])),
        consumer_fingerprint=certs.fingerprint(certs.load_certificate(consumer["auth_cert"])),
    )


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Says who called (certificate, client port) and what came; /slow waits, /big answers 64 KB."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(2)
    der = tls.peer_certificate(scope)
    content = (
        b"x" * 65_536
        if scope["path"] == "/big"
        else json.dumps(
            {
                "client_cert": hashlib.sha256(der).hexdigest() if der else None,
                "client_port": scope["client"][1],
                "body": body.decode(),
            }
        ).encode()
    )
    headers = [(b"content-type", b"application/json"), (b"x-road-request-hash", b"abc")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class Provider:
    def __init__(self, pki: Pki) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.thread = ServerThread({"peers": Listener(app, self.sock, pki.server)}, name="provider")
        self.thread.start()
        port = self.sock.getsockname()[1]
        self.entry = MemberEntry(PROVIDER, "Tax", f"https://127.0.0.1:{port}", pki.provider_fingerprint, {}, {})


@pytest.fixture
def provider(pki: Pki) -> Iterator[Provider]:
    p = Provider(pki)
    yield p
    p.thread.stop()


async def send(client: PeerClient, peer: MemberEntry, target: str = "/x", body: bytes = b"") -> dict[str, str]:
    answer = await client.send(peer, "POST", target, {"content-type": "text/plain"}, body)
    assert answer.status_code == 200
    assert answer.headers["X-Road-Request-Hash"] == "abc"
    return json.loads(answer.content)  # type: ignore[no-any-return]


def refused(caught: pytest.ExceptionInfo[GatewayError], kind: errors.ErrorKind, words: str) -> None:
    assert caught.value.kind == kind
    assert words in caught.value.message


async def test_an_answer_over_mutual_tls_from_the_listed_gateway(pki: Pki, provider: Provider):
    client = PeerClient(pki.client, timeout=5)
    try:
        first = await send(client, provider.entry, body=b"one")
        second = await send(client, provider.entry, body=b"two")
    finally:
        await client.aclose()
    assert first["client_cert"] == pki.consumer_fingerprint  # the provider saw this gateway's certificate
    assert second["body"] == "two"
    assert second["client_port"] == first["client_port"]  # one kept-alive connection


async def test_a_gateway_other_than_the_listed_one_is_refused(pki: Pki, provider: Provider):
    impostor = MemberEntry(PROVIDER, "Tax", provider.entry.address, "00" * 32, {}, {})
    client = PeerClient(pki.client, timeout=5)
    try:
        with pytest.raises(GatewayError) as caught:
            await send(client, impostor)
    finally:
        await client.aclose()
    refused(caught, errors.SSL_AUTH_CLIENT, "is not the one the federation directory lists")


async def test_too_large_an_answer_is_refused(pki: Pki, provider: Provider, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(peers, "MAX_ANSWER", 10_000)
    client = PeerClient(pki.client, timeout=5)
    try:
        with pytest.raises(GatewayError) as caught:
            await send(client, provider.entry, "/big")
    finally:
        await client.aclose()
    refused(caught, errors.INVALID_RESPONSE, "answered too much")


async def test_timeouts_and_unreachable_gateways(pki: Pki, provider: Provider):
    client = PeerClient(pki.client, timeout=0.3)
    gone = MemberEntry(PROVIDER, "Tax", "https://127.0.0.1:9", pki.provider_fingerprint, {}, {})
    try:
        with pytest.raises(GatewayError) as caught:
            await send(client, provider.entry, "/slow")
        refused(caught, errors.PEER_TIMEOUT, f"the gateway of {PROVIDER} did not answer in time")
        with pytest.raises(GatewayError) as caught:
            await send(client, gone)
        refused(caught, errors.PEER_NETWORK_ERROR, f"the gateway of {PROVIDER} could not be reached (ConnectError)")
    finally:
        await client.aclose()


async def test_a_provider_that_refuses_this_gateways_certificate(pki: Pki, provider: Provider):
    client = PeerClient(pki.stranger, timeout=5)
    try:
        with pytest.raises(GatewayError) as caught:
            await send(client, provider.entry)
    finally:
        await client.aclose()
    refused(caught, errors.SSL_AUTH_CLIENT, f"TLS with the gateway of {PROVIDER} failed (")


async def test_a_pooled_connection_the_provider_closed_is_tried_once_more(pki: Pki, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(server, "TLS_KEEP_ALIVE_SECONDS", 1)  # a provider that closes idle connections soon
    provider = Provider(pki)
    client = PeerClient(pki.client, timeout=5)
    try:
        first = await send(client, provider.entry, body=b"one")
        # blocking, on purpose: the provider closes the idle connection while this event loop cannot
        # notice, so the next request goes out on it, as when a provider restarts under load
        time.sleep(1.6)
        second = await send(client, provider.entry, body=b"two")
    finally:
        await client.aclose()
        provider.thread.stop()
    assert second["body"] == "two"
    assert second["client_port"] != first["client_port"]  # on a new connection


async def test_a_new_connection_closed_before_any_answer_is_not_tried_again(pki: Pki):
    connections = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=pki.server)
    port = listener.sockets[0].getsockname()[1]
    peer = MemberEntry(PROVIDER, "Tax", f"https://127.0.0.1:{port}", pki.provider_fingerprint, {}, {})
    client = PeerClient(pki.client, timeout=5)
    try:
        with pytest.raises(GatewayError) as caught:
            await send(client, peer)
    finally:
        await client.aclose()
        listener.close()
        await listener.wait_closed()
    refused(caught, errors.SSL_AUTH_CLIENT, "it closed the connection without answering")
    assert connections == 1
