"""Is a member certificate revoked? Answered from a CRL or an OCSP response, and only when the answer is fresh.

Anything short of a fresh answer signed by the CA raises `RevocationUnknownError`: the gateway fails closed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp

from certs.errors import RevocationUnknownError, RevokedError

# How far in the future a CRL or OCSP response may claim to have been made before it is distrusted.
CLOCK_SKEW = timedelta(minutes=5)


def _reason(reason: x509.ReasonFlags | None) -> str:
    return f", reason {reason.value}" if reason is not None and reason != x509.ReasonFlags.unspecified else ""


def issuer_hashes(ca_cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """The OCSP CertID issuer hashes (RFC 6960 4.1.1): of the CA's subject DER and of its public key bits."""
    key = ca_cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    elif isinstance(key, rsa.RSAPublicKey):
        bits = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        bits = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raise RevocationUnknownError(f"unsupported CA key type {type(key).__name__}")
    name_hash = hashes.Hash(algorithm)
    name_hash.update(ca_cert.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(bits)
    return name_hash.finalize(), key_hash.finalize()


def check_crl(
    cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    ca_cert: x509.Certificate,
    *,
    now: datetime | None = None,
    max_age: timedelta = timedelta(hours=24),
) -> None:
    """Raise `RevokedError` if the CRL lists the certificate, `RevocationUnknownError` if the CRL cannot be trusted."""
    now = now or datetime.now(UTC)
    serial = f"{cert.serial_number:x}"
    if crl.issuer != ca_cert.subject or cert.issuer != ca_cert.subject:
        raise RevocationUnknownError(f"the CRL is not from the issuer of certificate {serial}")
    try:
        signed = crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise RevocationUnknownError("the CRL is not signed by the CA")
    last, following = crl.last_update_utc, crl.next_update_utc
    if following is None:
        raise RevocationUnknownError("the CRL has no nextUpdate, so its freshness cannot be judged")
    if last > now + CLOCK_SKEW:
        raise RevocationUnknownError(f"the CRL claims to be issued in the future ({last.isoformat()})")
    if now > following:
        raise RevocationUnknownError(f"the CRL is stale: its nextUpdate {following.isoformat()} has passed")
    if now - last > max_age:
        raise RevocationUnknownError(f"the CRL is stale: issued {last.isoformat()}, older than {max_age}")
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is not None:
        try:
            reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = None
        raise RevokedError(
            f"certificate {serial} is revoked (CRL) since {entry.revocation_date_utc.isoformat()}{_reason(reason)}"
        )


def ocsp_request(cert: x509.Certificate, ca_cert: x509.Certificate) -> bytes:
    """A DER OCSP request for one certificate; the CertID uses SHA-1, as nearly every responder expects."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, ca_cert, hashes.SHA1())  # noqa: S303 - CertID, not a signature
    return builder.build().public_bytes(serialization.Encoding.DER)


def _signed_by(response: ocsp.OCSPResponse, ca_cert: x509.Certificate) -> bool:
    key = ca_cert.public_key()
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey) and algorithm is None:
            key.verify(response.signature, response.tbs_response_bytes)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def check_ocsp(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    response_der: bytes,
    *,
    now: datetime | None = None,
    max_age: timedelta = timedelta(hours=1),
) -> None:
    """Raise `RevokedError` on REVOKED, `RevocationUnknownError` on UNKNOWN or any doubt about the response."""
    now = now or datetime.now(UTC)
    serial = f"{cert.serial_number:x}"
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except (ValueError, TypeError) as exc:
        raise RevocationUnknownError(f"the OCSP response cannot be parsed: {exc}") from exc
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationUnknownError(f"the OCSP responder answered {response.response_status.name}")
    if not _signed_by(response, ca_cert):
        raise RevocationUnknownError("the OCSP response is not signed by the CA")
    single: ocsp.OCSPSingleResponse | None = None
    try:
        for candidate in response.responses:
            name_hash, key_hash = issuer_hashes(ca_cert, candidate.hash_algorithm)
            if (
                candidate.serial_number == cert.serial_number
                and candidate.issuer_name_hash == name_hash
                and candidate.issuer_key_hash == key_hash
            ):
                single = candidate
                break
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RevocationUnknownError(f"the OCSP response cannot be read: {exc}") from exc
    if single is None or cert.issuer != ca_cert.subject:
        raise RevocationUnknownError(f"the OCSP response says nothing about certificate {serial} of this CA")
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > now + CLOCK_SKEW:
        raise RevocationUnknownError(f"the OCSP response claims to be made in the future ({this_update.isoformat()})")
    if next_update is not None and now > next_update:
        raise RevocationUnknownError(f"the OCSP response is stale: its nextUpdate {next_update.isoformat()} has passed")
    if now - this_update > max_age:
        raise RevocationUnknownError(
            f"the OCSP response is stale: made {this_update.isoformat()}, older than {max_age}"
        )
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        when = single.revocation_time_utc
        since = f" since {when.isoformat()}" if when is not None else ""
        raise RevokedError(f"certificate {serial} is revoked (OCSP){since}{_reason(single.revocation_reason)}")
    if status != ocsp.OCSPCertStatus.GOOD:
        raise RevocationUnknownError(f"the OCSP responder does not know certificate {serial}")
