"""Hostile REST through the federation: oversize and injected headers, malformed identifiers, path traversal.

`tests/gateway/test_rest.py` has the basic cases (a missing client header, three bad client ids, three bad
service ids, `%2e%2e` segments, a 300-character user id, a body over the limit); these are the rest. The
programme MIS asks its gateway (the ministry's) for the tax authority's service, which lives behind the
tax authority's gateway: each refusal must be the exact X-Road error, recorded at the ministry's gateway
as that refusal, never seen by the tax authority's gateway, and the tax authority's system never called.
Requests an HTTP parser must refuse (a line break inside a header) are sent over a raw socket, since
HTTP clients will not send them.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.bodies import MAX_HEADER_BYTES, MAX_HEADER_COUNT
from sandbox import federation
from tests.gateway.hostile.conftest import MSP, TAX, Hostile, assert_refused_here, now_ms

TAXPAYER = "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/TIN90000001"
NATIONAL_ID = "9000000004"


@pytest.fixture
def tax_untouched(hostile: Hostile) -> Iterator[None]:
    """The tax authority's system is not called while the test runs."""
    before = hostile.hits("tax")
    yield
    assert hostile.hits("tax") == before, "a refused request reached the tax authority's system"


def refused(
    hostile: Hostile, response: httpx.Response, status: int, code: str, message: str, since: int
) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["X-Road-Error"] == code
    body = response.json()
    assert body["type"] == code
    assert message in body["message"], body["message"]
    assert body["detail"]
    assert NATIONAL_ID not in response.text
    assert_refused_here(hostile, MSP, since, body["detail"], code)
    return body  # type: ignore[no-any-return]


def get(hostile: Hostile, path: str = TAXPAYER, headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    return httpx.get(hostile.url(MSP) + path, headers=headers or list(hostile.client_headers().items()), timeout=30)


def with_header(hostile: Hostile, name: str, value: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in hostile.client_headers().items() if k.lower() != name.lower()] + [(name, value)]


# --- oversize ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "code", "message"),
    [
        ("X-Road-Client", "ZZ/GOV/MSP/" + "p" * 250, "Client.InvalidHeader", "X-Road-Client must be printable ASCII"),
        ("X-Road-Id", "i" * 256, "Client.InvalidHeader", "X-Road-Id must be printable ASCII of at most 255"),
        ("X-Road-Issue", "i" * 256, "Client.InvalidHeader", "X-Road-Issue must be printable ASCII"),
        ("X-Road-Represented-Party", "r" * 256, "Client.InvalidHeader", "X-Road-Represented-Party must be"),
        ("X-Road-PDU-Legal-Basis", "l" * 256, "Client.InvalidHeader", "X-Road-PDU-Legal-Basis must be"),
        ("X-Road-PDU-Consent-Reference", "c" * 256, "Client.InvalidHeader", "X-Road-PDU-Consent-Reference must"),
        ("X-Road-PDU-Purpose", "p" * 129, "Client.InvalidPurpose", "at most 128 characters"),
        ("X-Filler", "f" * (MAX_HEADER_BYTES + 1), "Client.InvalidHeader", f"larger than {MAX_HEADER_BYTES} bytes"),
    ],
)
def test_oversize_headers(hostile: Hostile, tax_untouched: None, name: str, value: str, code: str, message: str):
    since = now_ms()
    refused(hostile, get(hostile, headers=with_header(hostile, name, value)), 400, code, message, since)


def test_too_many_headers(hostile: Hostile, tax_untouched: None):
    headers = list(hostile.client_headers().items()) + [(f"X-Filler-{i}", "f") for i in range(MAX_HEADER_COUNT)]
    since = now_ms()
    refused(hostile, get(hostile, headers=headers), 400, "Client.InvalidHeader", f"more than {MAX_HEADER_COUNT}", since)


def test_oversize_path(hostile: Hostile, tax_untouched: None):
    since = now_ms()
    r = get(hostile, TAXPAYER + "/" + "a" * 4096)
    refused(hostile, r, 400, "Client.BadRequest", "the request path is longer than 4096 characters", since)


def test_oversize_body_streamed_without_content_length(hostile: Hostile, tax_untouched: None):
    def chunks() -> Iterator[bytes]:
        for _ in range(161):
            yield b"x" * (1 << 16)

    since = now_ms()
    r = httpx.post(hostile.url(MSP) + TAXPAYER, headers=hostile.client_headers(), content=chunks(), timeout=60)
    refused(hostile, r, 413, "Client.MessageTooLarge", "the message is larger than 10485760 bytes", since)


# --- injected line breaks and other bytes a header must not hold ----------------------------------------------


def raw_request(hostile: Hostile, head: bytes) -> bytes:
    """Send a request exactly as given (HTTP clients refuse to), and read the answer until the server closes."""
    url = urlsplit(hostile.url(MSP))
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            length = re.search(rb"\r\ncontent-length: *(\d+)", answer, re.I)
            if length and len(answer.partition(b"\r\n\r\n")[2]) >= int(length.group(1)):
                break
    return answer


def _head(hostile: Hostile, extra: bytes, path: bytes = TAXPAYER.encode()) -> bytes:
    lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in hostile.client_headers().items())
    return b"GET " + path + b" HTTP/1.1\r\nHost: kiungo\r\n" + lines + extra + b"Connection: close\r\n\r\n"


@pytest.mark.parametrize(
    "extra",
    [
        b"X-Road-UserId: officer\r\n X-Road-Client: ZZ/GOV/MSP/research\r\n",  # obsolete line folding
        b"X-Road-UserId: officer\nX-Road-Client: ZZ/GOV/MSP/research\r\n",  # a bare line feed
        b"X-Road-UserId: officer\rX-Road-Client: ZZ/GOV/MSP/research\r\n",  # a bare carriage return
        b"X-Road-UserId: officer\x00X-Road-Client: ZZ/GOV/MSP/research\r\n",  # a NUL byte
        b"X-Road-Client : ZZ/GOV/MSP/research\r\n",  # white space before the colon (request smuggling)
        b"X-Road-UserId: officer\x7f\r\n",  # DEL
    ],
)
def test_line_breaks_inside_headers_never_reach_the_gateway(hostile: Hostile, tax_untouched: None, extra: bytes):
    """The HTTP server refuses these before the gateway sees a request: a plain 400, the connection closed, and
    nothing in any log (there was no exchange to record)."""
    since = now_ms()
    answer = raw_request(hostile, _head(hostile, extra))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
    assert answer.endswith(b"Invalid HTTP request received."), answer[-200:]
    for member in (MSP, TAX):
        assert hostile.log_records(member, since) == []


@pytest.mark.parametrize("value", [b"officer\x85", b"officer\xc3\xa9", b"officer\tX"])
def test_bytes_outside_printable_ascii(hostile: Hostile, tax_untouched: None, value: bytes):
    since = now_ms()
    answer = raw_request(hostile, _head(hostile, b"X-Road-UserId: " + value + b"\r\n"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"\r\nx-road-error: Client.InvalidHeader" in head
    detail = httpx.Response(400, content=body).json()
    assert detail["message"] == "X-Road-UserId must be printable ASCII of at most 255 characters"
    assert_refused_here(hostile, MSP, since, detail["detail"], "Client.InvalidHeader")


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ("ZZ/GOV/MSP/programme-mis%0D%0ASet-Cookie:%20a=b", "subsystem code may contain only letters, digits"),
        ("ZZ/GOV/MSP/programme-mis%00", "subsystem code may contain only letters, digits"),
        ("ZZ/GOV/M%2553P/programme-mis", "member code may contain only letters, digits"),  # decoded once only
        ("ZZ/GOV/%2E%2E/programme-mis", "member code may contain only letters, digits"),
        ("ZZ/GOV/MSP/programme-mis/", "expected INSTANCE/CLASS/CODE/SUBSYSTEM, got 5 parts"),
        ("ZZ/GOV/MSP/programme%2Fmis", "subsystem code may contain only letters, digits"),
        ("ZZ/GOV/MSP/progr%D0%B0mme-mis", "subsystem code may contain only letters, digits"),  # a Cyrillic a
        ("ZZ/GOV/MSP/*", "subsystem code may contain only letters, digits"),
    ],
)
def test_malformed_client_identifiers(hostile: Hostile, tax_untouched: None, client: str, message: str):
    since = now_ms()
    r = get(hostile, headers=with_header(hostile, "X-Road-Client", client))
    refused(hostile, r, 400, "Client.InvalidClientIdentifier", message, since)


# --- duplicate headers: read once, forwarded once -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "second"),
    [
        ("X-Road-Client", federation.RESEARCH),  # authenticated as one subsystem, forwarded as another
        ("X-Road-PDU-Purpose", federation.RESEARCH_PURPOSE),  # checked for one purpose, logged for another
        ("X-Road-Id", str(uuid.uuid4())),
        ("X-Road-UserId", "someone-else"),
        ("X-Kiungo-Client-Token", "another-token"),
    ],
)
def test_duplicate_xroad_headers(hostile: Hostile, tax_untouched: None, name: str, second: str):
    first = {"X-Road-UserId": "ZZ-officer-7", "X-Road-Id": str(uuid.uuid4())}
    headers = [*hostile.client_headers(**first).items(), (name, second)]
    since = now_ms()
    refused(
        hostile, get(hostile, headers=headers), 400, "Client.InvalidHeader", f"the {name} header is given more", since
    )


# --- path traversal and malformed service paths ---------------------------------------------------------------

TAXPAYERS = "/r1/ZZ/GOV/TAX/taxreg/taxpayers"


@pytest.mark.parametrize(
    "tail",
    [
        "/v1/..%3B/_sandbox/hits",  # ..; : a dot segment to Java servers
        "/v1/%2e%2e;jsessionid=1/_sandbox/hits",
        "/v1/%252e%252e/_sandbox/hits",  # decoded twice behind the provider
        "/v1/%25252E%25252E/_sandbox/hits",  # three times
        "/v1/.%2E/_sandbox/hits",
        "/v1/..%5C..%5C_sandbox",  # a backslash: a separator to some servers
        "/v1/taxpayers/TIN90000001%00.json",  # a NUL ends a path in C
        "/v1/taxpayers/TIN90000001%0DX-Injected:%20yes",  # a header line to a naive provider
        "/v1/taxpayers/TIN90000001%250D%250A",
        "/v1/taxpayers/TIN90000001%7F",
    ],
)
def test_path_traversal_and_control_characters(hostile: Hostile, tax_untouched: None, tail: str):
    since = now_ms()
    r = get(hostile, TAXPAYERS + tail)
    refused(hostile, r, 400, "Client.BadRequest", "must not contain '.', '..' or '\\' segments", since)


@pytest.mark.parametrize(
    "path",
    [
        b"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/../../../_sandbox/hits",  # raw dot segments (clients normalise them)
        b"/r1/ZZ/GOV/TAX/taxreg/taxpayers/./v1/taxpayers",
        b"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/..\\..\\_sandbox",
    ],
)
def test_raw_dot_segments(hostile: Hostile, tax_untouched: None, path: bytes):
    since = now_ms()
    answer = raw_request(hostile, _head(hostile, b"", path))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    detail = httpx.Response(400, content=body).json()
    assert detail["type"] == "Client.BadRequest"
    assert "must not contain '.', '..'" in detail["message"]
    assert_refused_here(hostile, MSP, since, detail["detail"], "Client.BadRequest")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/r1/ZZ/GOV/T%2541X/taxreg/taxpayers/v1/taxpayers", "member code may contain only"),  # T%41X, not TAX
        ("/r1/ZZ/GOV/TAX/taxreg/..%2Ftaxpayers/v1", "service code may contain only"),
        ("/r1/ZZ/GOV/TAX/taxreg/tax%0Dpayers/v1", "service code may contain only"),
        ("/r1/ZZ/GOV/TAX/%20taxreg/taxpayers", "subsystem code may contain only"),
        ("/r1/ZZ/GOV/TAX//taxpayers", "subsystem code is empty"),
        ("/r1/%5A%5A/GOV/TAX/taxreg/taxpayers/v1/taxpayers/TIN90000001", ""),  # each part decoded: ZZ, accepted
    ],
)
def test_service_identifiers_in_the_path(hostile: Hostile, path: str, message: str):
    since = now_ms()
    r = get(hostile, path)
    if not message:
        assert r.status_code == 200, r.text
        return
    refused(hostile, r, 400, "Client.InvalidServiceIdentifier", message, since)


def test_a_line_feed_in_the_path_matches_no_route(hostile: Hostile, tax_untouched: None):
    """A decoded line feed matches no route (`/r1/{target:path}` is one line): refused before any exchange."""
    since = now_ms()
    for path in (TAXPAYERS + "/v1/taxpayers/TIN90000001%0AX-Injected:%20yes", "/r1/ZZ/GOV/TAX/tax%0Areg/taxpayers"):
        r = get(hostile, path)
        assert r.status_code == 404, r.text
        assert r.headers["X-Road-Error"] == "Client.NotFound"
        assert "X-Injected" not in r.headers
    for member in (MSP, TAX):
        assert hostile.log_records(member, since) == []


# --- errors say where, never what: no personal identifier in any refusal ----------------------------------


def test_refusals_do_not_echo_identifiers(hostile: Hostile, tax_untouched: None):
    since = now_ms()
    r = get(
        hostile,
        f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers?national_id={NATIONAL_ID}",
        with_header(hostile, "X-Road-PDU-Purpose", f"x {NATIONAL_ID}"),
    )
    refused(hostile, r, 400, "Client.InvalidPurpose", "must be a purpose code", since)
    grant = {
        "subject_id": NATIONAL_ID * 7,
        "recipients": [federation.RESEARCH],
        "purposes": ["p"],
        "data_categories": ["income"],
        "valid_until": "2030-01-01T00:00:00Z",
    }
    r = httpx.post(hostile.url(TAX) + "/api/consent/records", json=grant, headers=hostile.operator(TAX), timeout=10)
    assert r.status_code == 422, r.text
    assert r.headers["X-Road-Error"] == "Client.InvalidRequest"
    assert r.json()["message"] == "invalid request: body.subject_id: String should have at most 64 characters"
    assert NATIONAL_ID not in r.text
    search = {"subject_id": NATIONAL_ID, "limit": 10**30}
    r = httpx.post(hostile.url(TAX) + "/api/log/records/search", json=search, headers=hostile.operator(TAX), timeout=10)
    assert r.status_code == 422, r.text
    assert NATIONAL_ID not in r.text


# --- the HTTP layer's own refusals are X-Road errors too ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("POST", "/api/log/records/search", b"{not json", 422, "Client.InvalidRequest", "body.1: JSON decode error"),
        ("POST", "/api/log/records/search", b'"\xc3\x28"', 400, "Client.BadRequest", "error parsing the body"),
        ("POST", "/api/log/records/search", b"[" * 100_000, 400, "Client.BadRequest", "error parsing the body"),
        ("GET", "/no/such/route", None, 404, "Client.NotFound", "there is no such route on this gateway"),
        ("DELETE", "/health", None, 405, "Client.MethodNotAllowed", "the route does not take this method"),
        (
            "GET",
            "/api/operator/monitoring?after_seq=99999999999999999999",
            None,
            422,
            "Client.InvalidRequest",
            "after_seq",
        ),
        ("GET", "/api/operator/monitoring?since=-1", None, 422, "Client.InvalidRequest", "query.since"),
    ],
)
def test_http_layer_refusals(
    hostile: Hostile, method: str, path: str, body: bytes | None, status: int, code: str, message: str
):
    headers = hostile.operator(MSP) | {"Content-Type": "application/json"}
    r = httpx.request(method, hostile.url(MSP) + path, content=body, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["X-Road-Error"] == code
    assert message in r.json()["message"]
    if status == 405:
        assert r.headers["Allow"] == "GET"


def test_json_nested_past_the_stack(hostile: Hostile):
    """findUsage reads its small JSON body itself: 4,000 opening brackets are a bad request, not a crash."""
    headers = hostile.client_headers(federation.PORTAL, purpose=None) | {"Content-Type": "application/json"}
    since = now_ms()
    r = httpx.post(
        hostile.url(MSP) + f"/r1/{federation.PROGRAMME_MIS}/findUsage", content=b"[" * 4000, headers=headers, timeout=10
    )
    refused(hostile, r, 400, "Client.BadRequest", "findUsage takes a JSON body", since)
