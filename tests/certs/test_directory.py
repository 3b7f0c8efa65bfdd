from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt import api_jws

from certs import (
    CertificateAuthority,
    DirectoryError,
    DirectoryExpiredError,
    DirectorySignatureError,
    directory_digest,
    generate_key,
    load_private_key,
    sign_directory,
    verify_directory,
)
from certs.directory import canonical_json
from tests.certs.conftest import PASS


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _content(hours: float = 24, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "instance": "ZZ",
        "issued_at": _iso(now),
        "expires_at": _iso(now + timedelta(hours=hours)),
        "members": [{"id": "ZZ/GOV/CRA", "name": "Civil Registration Authority — Kenya", "gateway": "127.0.0.1"}],
        **extra,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key(ca: CertificateAuthority):
    return load_private_key(ca.dir / "directory.key.pem", PASS)


def test_round_trip(ca: CertificateAuthority) -> None:
    content = _content()
    blob = sign_directory(content, _key(ca), ca.directory_cert)
    assert verify_directory(blob, ca.directory_cert) == content
    assert ca.sign_directory(content).count(b".") == 2
    header = api_jws.get_unverified_header(blob)
    assert header["typ"] == "kiungo-directory+jws"
    assert header["alg"] == "ES256"
    assert header["x5t#S256"] == _b64(ca.directory_cert.fingerprint(hashes.SHA256()))
    payload = blob.split(b".")[1]
    assert base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)) == canonical_json(content)
    assert canonical_json(content) == json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_digest(ca: CertificateAuthority) -> None:
    blob = ca.sign_directory(_content())
    digest = directory_digest(blob)
    assert len(digest) == 64
    assert digest == directory_digest(blob)
    assert digest == digest.lower()


def test_tampered_payload(ca: CertificateAuthority) -> None:
    header, _, signature = ca.sign_directory(_content()).split(b".")
    evil = _content(members=[{"id": "ZZ/GOV/EVIL", "gateway": "203.0.113.66"}])
    tampered = b".".join([header, _b64(canonical_json(evil)).encode(), signature])
    with pytest.raises(DirectorySignatureError, match="does not verify"):
        verify_directory(tampered, ca.directory_cert)


def test_tampered_signature(ca: CertificateAuthority) -> None:
    header, payload, signature = ca.sign_directory(_content()).split(b".")
    raw = bytearray(base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4)))
    raw[5] ^= 0xFF
    with pytest.raises(DirectorySignatureError):
        verify_directory(b".".join([header, payload, _b64(bytes(raw)).encode()]), ca.directory_cert)


def test_signed_by_another_key(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    with pytest.raises(DirectorySignatureError, match="x5t#S256"):
        verify_directory(other_ca.sign_directory(_content()), ca.directory_cert)
    # An impostor claiming the anchor's thumbprint is caught by the signature itself.
    headers = {"typ": "kiungo-directory+jws", "x5t#S256": _b64(ca.directory_cert.fingerprint(hashes.SHA256()))}
    forged = api_jws.encode(canonical_json(_content()), _key(other_ca), algorithm="ES256", headers=headers)
    with pytest.raises(DirectorySignatureError, match="does not verify"):
        verify_directory(forged.encode(), ca.directory_cert)


def test_other_algorithms_are_refused(ca: CertificateAuthority) -> None:
    headers = {"typ": "kiungo-directory+jws", "x5t#S256": _b64(ca.directory_cert.fingerprint(hashes.SHA256()))}
    hmac = api_jws.encode(canonical_json(_content()), b"k" * 32, algorithm="HS256", headers=headers)
    with pytest.raises(DirectorySignatureError, match="ES256"):
        verify_directory(hmac.encode(), ca.directory_cert)


def test_expired(ca: CertificateAuthority) -> None:
    content = _content(hours=1)
    blob = ca.sign_directory(content)
    with pytest.raises(DirectoryExpiredError, match="expired") as info:
        verify_directory(blob, ca.directory_cert, now=datetime.now(UTC) + timedelta(hours=2))
    assert info.value.content == content
    assert isinstance(info.value, DirectoryError)


def test_issued_in_the_future(ca: CertificateAuthority) -> None:
    blob = ca.sign_directory(_content())
    with pytest.raises(DirectoryError, match="future"):
        verify_directory(blob, ca.directory_cert, now=datetime.now(UTC) - timedelta(hours=1))


@pytest.mark.parametrize(
    "blob",
    [b"", b"not a jws", b"a.b.c", b"eyJ9.e30.AA", b"...", "é.é.é".encode()],
)
def test_malformed(ca: CertificateAuthority, blob: bytes) -> None:
    with pytest.raises(DirectoryError):
        verify_directory(blob, ca.directory_cert)


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2]",
        b"not json",
        b'{"instance": "ZZ"}',
        b'{"instance": "ZZ", "instance": "XX", "issued_at": "2026-01-01T00:00:00Z", '
        b'"expires_at": "2999-01-01T00:00:00Z"}',
        b'{"instance": "ZZ", "issued_at": NaN, "expires_at": "2999-01-01T00:00:00Z"}',
        b"\xff\xfe",
    ],
)
def test_signed_but_malformed_content(ca: CertificateAuthority, payload: bytes) -> None:
    headers = {"typ": "kiungo-directory+jws", "x5t#S256": _b64(ca.directory_cert.fingerprint(hashes.SHA256()))}
    blob = api_jws.encode(payload, _key(ca), algorithm="ES256", headers=headers).encode()
    with pytest.raises(DirectoryError) as info:
        verify_directory(blob, ca.directory_cert)
    assert not isinstance(info.value, DirectorySignatureError | DirectoryExpiredError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instance": ""}, "instance"),
        ({"issued_at": None}, "issued_at"),
        ({"expires_at": "tomorrow"}, "ISO 8601"),
        ({"expires_at": "2999-01-01T00:00:00"}, "UTC"),
        ({"expires_at": "2999-01-01T00:00:00+03:00"}, "UTC"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, "after issued_at"),
        ({"members": {1, 2}}, "not plain JSON"),
        ({"score": float("nan")}, "not plain JSON"),
    ],
)
def test_sign_refuses_bad_content(ca: CertificateAuthority, change: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        ca.sign_directory({**_content(), **change})


def test_sign_refuses_missing_fields_and_foreign_keys(ca: CertificateAuthority) -> None:
    with pytest.raises(DirectoryError, match="lacks expires_at"):
        ca.sign_directory({"instance": "ZZ", "issued_at": _iso(datetime.now(UTC))})
    with pytest.raises(DirectoryError, match="does not belong"):
        sign_directory(_content(), generate_key(), ca.directory_cert)


@pytest.fixture(scope="module")
def shared_anchor(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, bytes]:
    ca = CertificateAuthority.init(tmp_path_factory.mktemp("fuzz") / "ca", "ZZ", "Fuzz", PASS)
    return ca, ca.sign_directory(_content())


_SEGMENT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(_SEGMENT, _SEGMENT, _SEGMENT).map(lambda t: ".".join(t).encode()),
        st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255)),
    )
)
def test_random_input_only_raises_directory_errors(
    shared_anchor: tuple[CertificateAuthority, bytes], data: bytes | tuple[int, int]
) -> None:
    ca, valid = shared_anchor
    if isinstance(data, tuple):  # one byte of a valid directory changed
        position, value = data
        mutated = bytearray(valid)
        mutated[position % len(mutated)] = value
        data = bytes(mutated)
    with contextlib.suppress(DirectoryError):
        verify_directory(data, ca.directory_cert)
