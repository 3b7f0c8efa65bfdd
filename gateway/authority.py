"""The federation authority's node: it publishes the signed directory, the CRL, and answers OCSP.

Like X-Road's central server, it is not on the path of any exchange: gateways fetch the directory and
revocation status from it, and verify both themselves (the directory against the anchor, CRL and
OCSP answers against the CA), so it needs no TLS of its own to be trusted.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import certs
from gateway.bodies import read_body
from gateway.errors import GatewayError

MAX_OCSP_REQUEST = 16 * 1024


def create_authority_app(ca: certs.CertificateAuthority, directory_file: Path) -> Starlette:
    async def directory(request: Request) -> Response:
        try:
            blob = directory_file.read_bytes()
        except OSError:
            return JSONResponse({"error": "no directory has been published"}, status_code=503)
        return Response(blob, media_type="application/jose")

    async def crl(request: Request) -> Response:
        pem = ca.crl().public_bytes(serialization.Encoding.PEM)
        return Response(pem, media_type="application/pkix-crl")

    async def ocsp(request: Request) -> Response:
        try:  # read with a ceiling: a client must not make the authority hold an unbounded request
            body = await read_body(request, MAX_OCSP_REQUEST)
        except GatewayError as exc:  # too large (413), or a Content-Length that is not a number (400)
            return Response(b"", status_code=exc.status)
        return Response(ca.ocsp_response(body), media_type="application/ocsp-response")

    async def ca_cert(request: Request) -> Response:
        return Response(ca.cert.public_bytes(serialization.Encoding.PEM), media_type="application/x-pem-file")

    return Starlette(
        routes=[
            Route("/directory", directory, methods=["GET"]),
            Route("/crl", crl, methods=["GET"]),
            Route("/ocsp", ocsp, methods=["POST"]),
            Route("/ca", ca_cert, methods=["GET"]),
        ]
    )
