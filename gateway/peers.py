"""The consumer side's client for peer gateways: mutual TLS 1.3, the provider's certificate pinned.

The CA check happens in the handshake; the pin (the certificate the directory lists for the
provider's gateway) is checked on the connection before the answer is read. Calls go out on
aiohttp's pool (connectors.transport): httpx's own pool cost more CPU than the rest of the exchange.
A pooled connection the provider closed before answering (it restarted, or a replica drained) is
tried once more on a new one: the provider refuses a message id it has seen, so nothing runs twice.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Mapping

import httpx

from connectors.limits import ResponseTooLarge
from connectors.transport import HttpClient
from gateway import errors
from gateway.directory import MemberEntry
from gateway.errors import GatewayError

MAX_ANSWER = 50 * 1024 * 1024


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class PeerClient:
    def __init__(self, context: ssl.SSLContext, *, timeout: float) -> None:
        self._http = HttpClient(
            timeout=timeout,
            connect_timeout=min(5.0, timeout),  # a host that drops packets fails within peer_timeout
            max_connections=100,
            keepalive_expiry=15.0,  # the peer listener keeps idle connections longer (gateway.server)
            ssl_context=context,
            decompress=False,  # the provider signed the bytes it sent
            retry_closed=True,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self, peer: MemberEntry, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> httpx.Response:
        """Send to the peer's gateway and read its whole answer, or refuse with the consumer-side code."""
        try:
            answer = await self._http.send(
                method,
                peer.address + target,
                headers=headers,
                content=body,
                max_bytes=MAX_ANSWER,
                check=lambda ssl_object: self._check_pin(ssl_object, peer),
            )
        except ResponseTooLarge:
            raise GatewayError(errors.INVALID_RESPONSE, "the provider's gateway answered too much") from None
        except httpx.TimeoutException:
            raise GatewayError(errors.PEER_TIMEOUT, f"the gateway of {peer.id} did not answer in time") from None
        except httpx.TransportError as exc:
            failure = _tls_failure(exc)
            if failure is not None:
                reason = getattr(failure, "reason", None) or type(failure).__name__
                raise GatewayError(
                    errors.SSL_AUTH_CLIENT, f"TLS with the gateway of {peer.id} failed ({reason})"
                ) from None
            if isinstance(exc, httpx.RemoteProtocolError):
                # with TLS 1.3 a peer that refuses our certificate often just closes the connection
                raise GatewayError(
                    errors.SSL_AUTH_CLIENT,
                    f"TLS with the gateway of {peer.id} failed (it closed the connection without answering; "
                    "it may not accept this gateway's certificate)",
                ) from None
            raise GatewayError(
                errors.PEER_NETWORK_ERROR, f"the gateway of {peer.id} could not be reached ({type(exc).__name__})"
            ) from None
        return httpx.Response(answer.status, headers=list(answer.raw_headers), content=answer.content)

    @staticmethod
    def _check_pin(ssl_object: ssl.SSLObject | None, peer: MemberEntry) -> None:
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise GatewayError(errors.SSL_AUTH_CLIENT, f"the gateway of {peer.id} presented no certificate")
        # certs.fingerprint: SHA-256 of the DER encoding, in hex; hashed here without parsing the certificate
        if hashlib.sha256(der).hexdigest() != peer.tls_fingerprint:
            raise GatewayError(
                errors.SSL_AUTH_CLIENT, f"the gateway of {peer.id} is not the one the federation directory lists"
            )
