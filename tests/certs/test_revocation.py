from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certs import (
    CertificateAuthority,
    RevocationUnknownError,
    RevokedError,
    check_crl,
    check_ocsp,
    generate_key,
    load_private_key,
    ocsp_request,
)
from tests.certs.conftest import PASS

HOUR = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


# ---- CRL ----


def test_crl_good_and_revoked(ca: CertificateAuthority, auth_cert: x509.Certificate, sign_cert) -> None:
    check_crl(auth_cert, ca.crl(), ca.cert)
    ca.revoke(auth_cert.serial_number, x509.ReasonFlags.key_compromise)
    crl = ca.crl()
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    with pytest.raises(RevokedError, match=f"{auth_cert.serial_number:x} is revoked \\(CRL\\).*keyCompromise"):
        check_crl(auth_cert, crl, ca.cert)
    check_crl(sign_cert, crl, ca.cert)  # other certificates of the member stay good


def test_crl_freshness(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    crl = ca.crl(next_update=HOUR)
    check_crl(auth_cert, crl, ca.cert, now=_now() + timedelta(minutes=50))
    with pytest.raises(RevocationUnknownError, match=r"stale.*nextUpdate"):
        check_crl(auth_cert, crl, ca.cert, now=_now() + 2 * HOUR)
    long_lived = ca.crl(next_update=timedelta(days=7))
    with pytest.raises(RevocationUnknownError, match=r"stale.*older than"):
        check_crl(auth_cert, long_lived, ca.cert, now=_now() + 25 * HOUR)
    check_crl(auth_cert, long_lived, ca.cert, now=_now() + 25 * HOUR, max_age=48 * HOUR)
    with pytest.raises(RevocationUnknownError, match="future"):
        check_crl(auth_cert, crl, ca.cert, now=_now() - HOUR)


def test_crl_signed_by_another_ca(ca: CertificateAuthority, other_ca: CertificateAuthority, auth_cert) -> None:
    forged = other_ca.crl()
    assert forged.issuer == ca.cert.subject  # same names: only the signature gives it away
    with pytest.raises(RevocationUnknownError, match="not signed by the CA"):
        check_crl(auth_cert, forged, ca.cert)


def test_crl_of_another_issuer(ca: CertificateAuthority, auth_cert: x509.Certificate, tmp_path) -> None:
    stranger = CertificateAuthority.init(tmp_path / "xx", "XX", "Elsewhere", PASS)
    with pytest.raises(RevocationUnknownError, match="not from the issuer"):
        check_crl(auth_cert, stranger.crl(), stranger.cert)


# ---- OCSP ----


def _response(der: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(der)


def test_ocsp_good(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    der = ca.ocsp_response(ocsp_request(auth_cert, ca.cert))
    response = _response(der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert isinstance(response.hash_algorithm, hashes.SHA1)
    check_ocsp(auth_cert, ca.cert, der)


def test_ocsp_revoked(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    ca.revoke(auth_cert.serial_number, x509.ReasonFlags.key_compromise)
    der = ca.ocsp_response(ocsp_request(auth_cert, ca.cert))
    response = _response(der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.key_compromise
    assert response.revocation_time_utc is not None
    with pytest.raises(RevokedError, match=f"{auth_cert.serial_number:x} is revoked \\(OCSP\\).*keyCompromise"):
        check_ocsp(auth_cert, ca.cert, der)


def test_ocsp_unknown_serial(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    stranger = other_ca.issue("ZZ/GOV/CRA", "sign", generate_key().public_key())
    der = ca.ocsp_response(ocsp_request(stranger, ca.cert))
    assert _response(der).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    with pytest.raises(RevocationUnknownError, match="does not know"):
        check_ocsp(stranger, ca.cert, der)


def test_ocsp_freshness(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    request = ocsp_request(auth_cert, ca.cert)
    short = ca.ocsp_response(request, valid_for=timedelta(minutes=10))
    with pytest.raises(RevocationUnknownError, match=r"stale.*nextUpdate"):
        check_ocsp(auth_cert, ca.cert, short, now=_now() + timedelta(minutes=20))
    long = ca.ocsp_response(request, valid_for=timedelta(days=1))
    with pytest.raises(RevocationUnknownError, match=r"stale.*older than"):
        check_ocsp(auth_cert, ca.cert, long, now=_now() + 2 * HOUR)
    check_ocsp(auth_cert, ca.cert, long, now=_now() + 2 * HOUR, max_age=3 * HOUR)
    with pytest.raises(RevocationUnknownError, match="future"):
        check_ocsp(auth_cert, ca.cert, short, now=_now() - HOUR)


def test_ocsp_response_signed_by_another_ca(ca: CertificateAuthority, other_ca, auth_cert) -> None:
    impostor_key = load_private_key(other_ca.dir / "ca.key.pem", PASS)
    now = _now()
    forged = (
        ocsp.OCSPResponseBuilder()
        .add_response(auth_cert, ca.cert, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, now, now + HOUR, None, None)
        .responder_id(ocsp.OCSPResponderEncoding.NAME, other_ca.cert)  # same name as the real CA
        .sign(impostor_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    with pytest.raises(RevocationUnknownError, match="not signed by the CA"):
        check_ocsp(auth_cert, ca.cert, forged)


def test_ocsp_response_for_another_certificate(ca: CertificateAuthority, auth_cert, sign_cert) -> None:
    der = ca.ocsp_response(ocsp_request(sign_cert, ca.cert))
    with pytest.raises(RevocationUnknownError, match="says nothing"):
        check_ocsp(auth_cert, ca.cert, der)


def test_ocsp_malformed_request_and_response(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    der = ca.ocsp_response(b"\x30\x03garbage")
    assert _response(der).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    with pytest.raises(RevocationUnknownError, match="MALFORMED_REQUEST"):
        check_ocsp(auth_cert, ca.cert, der)
    with pytest.raises(RevocationUnknownError, match="cannot be parsed"):
        check_ocsp(auth_cert, ca.cert, b"not der at all")


def test_ocsp_request_for_another_issuer(ca: CertificateAuthority, tmp_path) -> None:
    stranger = CertificateAuthority.init(tmp_path / "xx", "XX", "Elsewhere", PASS)
    theirs = stranger.issue("XX/GOV/CRA", "sign", generate_key().public_key())
    der = ca.ocsp_response(ocsp_request(theirs, stranger.cert))
    assert _response(der).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_ocsp_sha256_cert_id_and_nonce(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    nonce = x509.OCSPNonce(b"0123456789abcdef")
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(auth_cert, ca.cert, hashes.SHA256())
        .add_extension(nonce, critical=False)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    der = ca.ocsp_response(request)
    response = _response(der)
    assert isinstance(response.hash_algorithm, hashes.SHA256)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value == nonce
    check_ocsp(auth_cert, ca.cert, der)
