"""Hostile input for the federation authority (directory, CRL, OCSP): it has no OpenAPI document, so by hand.

Nothing the authority answers is trusted because of where it came from (gateways verify the directory
against the anchor and OCSP answers against the CA), so the cases here are about the authority itself:
bounded reads, odd bodies answered in OCSP's own terms, and no file served but the three it publishes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.x509 import ocsp

from gateway.authority import MAX_OCSP_REQUEST
from tests.gateway.hostile.conftest import Hostile


def authority(hostile: Hostile) -> str:
    return str(hostile.servers.manifest["federation"]["authority"]["base_url"])


@pytest.mark.parametrize("body", [b"", b"\x30\x80garbage", b"\x00" * 1000, b"\x30" * MAX_OCSP_REQUEST])
def test_odd_ocsp_requests_get_an_ocsp_error(hostile: Hostile, body: bytes):
    r = httpx.post(authority(hostile) + "/ocsp", content=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(r.content).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_an_ocsp_request_over_the_limit_is_not_read(hostile: Hostile):
    r = httpx.post(authority(hostile) + "/ocsp", content=b"\x30" * (MAX_OCSP_REQUEST + 1), timeout=10)
    assert r.status_code == 413

    def endless() -> Iterator[bytes]:  # no Content-Length: the authority stops reading at the limit
        for _ in range(1024):
            yield b"\x30" * 65536

    r = httpx.post(authority(hostile) + "/ocsp", content=endless(), timeout=30)
    assert r.status_code == 413


@pytest.mark.parametrize(
    "path",
    [
        "/directory/../passphrase",
        "/directory%2F..%2Fpassphrase",
        "/..%2F..%2Fetc%2Fpasswd",
        "/ca/..%2Fca%2Fca.key.pem",
        "/crl%00",
    ],
)
def test_nothing_but_the_published_files(hostile: Hostile, path: str):
    r = httpx.get(authority(hostile) + path, timeout=10)
    assert r.status_code == 404, r.text
    assert b"PRIVATE KEY" not in r.content


@pytest.mark.parametrize(("method", "path"), [("GET", "/ocsp"), ("POST", "/directory"), ("DELETE", "/crl")])
def test_other_methods(hostile: Hostile, method: str, path: str):
    assert httpx.request(method, authority(hostile) + path, timeout=10).status_code == 405
