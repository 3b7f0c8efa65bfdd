"""The consumer side's client for peer gateways: mutual TLS 1.3, the provider's certificate pinned.

The CA check happens in the handshake; the pin (the certificate the directory lists for the
provider's gateway) is checked on the connection before the answer is read.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import httpx
from cryptography import x509

import certs
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
        self._client = httpx.AsyncClient(
            verify=context,
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self, peer: MemberEntry, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> httpx.Response:
        """Send to the peer's gateway and read its whole answer, or refuse with the consumer-side code."""
        request = self._client.build_request(method, peer.address + target, headers=dict(headers), content=body)
        try:
            response = await self._client.send(request, stream=True)
            try:
                self._check_pin(response, peer)
                received = bytearray()  # not bytes +=: a large answer in many chunks would be copied again each time
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) > MAX_ANSWER:
                        raise GatewayError(errors.INVALID_RESPONSE, "the provider's gateway answered too much")
                content = bytes(received)
            finally:
                await response.aclose()
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
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

    @staticmethod
    def _check_pin(response: httpx.Response, peer: MemberEntry) -> None:
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise GatewayError(errors.SSL_AUTH_CLIENT, f"the gateway of {peer.id} presented no certificate")
        if certs.fingerprint(x509.load_der_x509_certificate(der)) != peer.tls_fingerprint:
            raise GatewayError(
                errors.SSL_AUTH_CLIENT, f"the gateway of {peer.id} is not the one the federation directory lists"
            )
