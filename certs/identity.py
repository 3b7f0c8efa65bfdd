"""Who a certificate speaks for and what it may do, read from the certificate alone.

Subject layout (X-Road style): O=<member name>, CN=<member code>, serialNumber=<INSTANCE/CLASS/CODE>.
The serialNumber attribute carries the full member identifier, so a peer's identity needs no lookup.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import CertificateError, CertsError

_E = TypeVar("_E", bound=x509.ExtensionType)

USAGES = ("auth", "sign", "directory", "ca")

# Extended key usage that marks the directory signer. 2.25 is the UUID arc (ITU-T X.667): usable without
# registration, and no other software gives it a meaning.
DIRECTORY_SIGNING_OID = x509.ObjectIdentifier("2.25.199839486224617186466359735366592858001")

# X-Road identifier characters: letters, digits and '()+,-.=?  (no '/', which separates the parts).
_PART = re.compile(r"[A-Za-z0-9'()+,\-.=?]{1,255}")


def validate_instance(instance: str) -> str:
    """An instance code: one X-Road identifier part."""
    if not isinstance(instance, str) or not _PART.fullmatch(instance):
        raise CertsError(f"invalid instance code {instance!r}: use letters, digits and '()+,-.=?")
    return instance


def validate_member(member: str, instance: str | None = None) -> tuple[str, str, str]:
    """Split INSTANCE/CLASS/CODE, refusing anything a subject or a path could be confused by."""
    parts = member.split("/") if isinstance(member, str) else []
    if len(parts) != 3 or not all(_PART.fullmatch(p) for p in parts):
        raise CertsError(
            f"invalid member identifier {member!r}: expected INSTANCE/CLASS/CODE made of letters, digits and '()+,-.=?"
        )
    if instance is not None and parts[0] != instance:
        raise CertsError(f"member {member} is not in this federation (instance {instance})")
    return parts[0], parts[1], parts[2]


def member_subject(member: str, name: str | None = None) -> x509.Name:
    """The subject the CA gives a member's certificates."""
    _, _, code = validate_member(member)
    try:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name or code),
                x509.NameAttribute(NameOID.COMMON_NAME, code),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, member),
            ]
        )
    except ValueError as exc:  # e.g. a common name over the 64 characters X.509 allows
        raise CertsError(f"member {member} cannot be put in a certificate subject: {exc}") from exc


def make_csr(key: ec.EllipticCurvePrivateKey, member: str, name: str | None = None) -> x509.CertificateSigningRequest:
    """A member's own request: it proves possession of the key; the CA sets the real subject anyway."""
    return x509.CertificateSigningRequestBuilder().subject_name(member_subject(member, name)).sign(key, hashes.SHA256())


def member_of(cert: x509.Certificate) -> str:
    """The member identifier ("ZZ/GOV/CRA") the certificate was issued to."""
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1 or not isinstance(values[0].value, str) or not values[0].value:
        raise CertificateError(f"certificate {cert.serial_number:x} names no member (subject serialNumber)")
    return values[0].value


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # duplicate or unparseable extensions
        raise CertificateError(f"certificate {cert.serial_number:x} has malformed extensions: {exc}") from exc


def usage_of(cert: x509.Certificate) -> str:
    """ "auth" (TLS), "sign" (message signatures), "directory" (directory signer) or "ca", from the extensions."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        return "ca"
    eku = _extension(cert, x509.ExtendedKeyUsage)
    purposes = set(eku) if eku is not None else set()
    key_usage = _extension(cert, x509.KeyUsage)
    if DIRECTORY_SIGNING_OID in purposes:
        return "directory"
    if purposes & {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}:
        return "auth"
    if key_usage is not None and key_usage.content_commitment and key_usage.digital_signature:
        return "sign"
    raise CertificateError(f"certificate {cert.serial_number:x} has no usage Kiungo recognises")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, lowercase hex: what the directory lists for each member."""
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_issued_by(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    now: datetime | None = None,
    usage: str | None = None,
) -> None:
    """Check one link: signed by this CA, within its dates, and (when asked) meant for `usage`."""
    now = now or datetime.now(UTC)
    serial = f"{cert.serial_number:x}"
    constraints = _extension(ca_cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise CertificateError("the issuer certificate given is not a CA certificate (basicConstraints ca=False)")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except ValueError as exc:
        raise CertificateError(f"certificate {serial} was not issued by this CA: {exc}") from exc
    except InvalidSignature as exc:
        raise CertificateError(f"certificate {serial} does not carry a valid signature of this CA") from exc
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"certificate {serial} uses an unsupported signature: {exc}") from exc
    for what, c in (("certificate " + serial, cert), ("the CA certificate", ca_cert)):
        if now < c.not_valid_before_utc:
            raise CertificateError(f"{what} is not valid before {c.not_valid_before_utc.isoformat()}")
        if now > c.not_valid_after_utc:
            raise CertificateError(f"{what} expired at {c.not_valid_after_utc.isoformat()}")
    if usage is not None:
        if usage not in USAGES:
            raise CertsError(f"unknown usage {usage!r}; expected one of {', '.join(USAGES)}")
        actual = usage_of(cert)
        if actual != usage:
            raise CertificateError(f"certificate {serial} is a {actual} certificate, not {usage}")
