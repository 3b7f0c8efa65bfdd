"""TLS for the node: contexts for its listeners and its peer client, and the peer's certificate in the ASGI scope.

Stock uvicorn does not hand the client certificate to the app; a protocol subclass puts it in
`scope["extensions"]["tls"]` (the ASGI TLS extension), where the exchange code reads it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class PeerCertificateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the TLS peer certificate added to each request's scope.

    Read once per connection (TLS 1.3 has no renegotiation: the peer's certificate cannot change on
    it), not for each of the many requests a peer gateway sends over one kept-alive connection.
    """

    _tls: dict[object, object] | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        tls = self._tls
        if tls is None:
            ssl_object = self.transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            der = ssl_object.getpeercert(binary_form=True)
            tls = self._tls = {
                "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
                "client_cert_der": der,
                "tls_version": ssl_object.version(),
            }
        self.scope["extensions"] = {"tls": dict(tls)}  # a copy: the app may change its scope


def peer_certificate(scope: Scope) -> bytes | None:
    """The DER certificate the TLS peer presented, or None (plain HTTP, or no certificate)."""
    tls: dict[str, Any] = scope.get("extensions", {}).get("tls", {})
    der = tls.get("client_cert_der")
    return der if isinstance(der, bytes) and der else None


def server_context(
    cert: Path, key: Path, passphrase: bytes, *, client_cas: Iterable[str] = (), require_client_cert: bool
) -> ssl.SSLContext:
    """A TLS 1.3 server context; client certificates must chain to `client_cas` (PEM strings)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key, password=passphrase)
    cas = "\n".join(client_cas)
    if cas:
        ctx.load_verify_locations(cadata=cas)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("a listener that requires client certificates needs the CAs to check them against")
    return ctx


def client_context(cert: Path, key: Path, passphrase: bytes, *, server_cas: Iterable[str]) -> ssl.SSLContext:
    """A TLS 1.3 client context presenting the node's authentication certificate to peer gateways."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cadata="\n".join(server_cas))
    ctx.load_cert_chain(cert, key, password=passphrase)
    return ctx
