"""Kiungo's federation PKI: the CA, member certificates, CSRs, CRL/OCSP, and the signed directory.

Imports no other Kiungo package: identifiers cross the border as strings ("ZZ/GOV/CRA"), keys and
certificates as `cryptography` objects, files as paths. See docs/pki.md.
"""

from certs.authority import CertificateAuthority
from certs.directory import directory_digest, sign_directory, verify_directory
from certs.errors import (
    CertificateError,
    CertsError,
    DirectoryError,
    DirectoryExpiredError,
    DirectorySignatureError,
    KeyFileError,
    PassphraseError,
    RevocationUnknownError,
    RevokedError,
)
from certs.identity import fingerprint, make_csr, member_of, usage_of, verify_issued_by
from certs.keys import (
    PASSPHRASE_ENV,
    generate_key,
    load_certificate,
    load_private_key,
    passphrase_from,
    save_certificate,
    save_private_key,
)
from certs.revocation import check_crl, check_ocsp, ocsp_request

__all__ = [
    "PASSPHRASE_ENV",
    "CertificateAuthority",
    "CertificateError",
    "CertsError",
    "DirectoryError",
    "DirectoryExpiredError",
    "DirectorySignatureError",
    "KeyFileError",
    "PassphraseError",
    "RevocationUnknownError",
    "RevokedError",
    "check_crl",
    "check_ocsp",
    "directory_digest",
    "fingerprint",
    "generate_key",
    "load_certificate",
    "load_private_key",
    "make_csr",
    "member_of",
    "ocsp_request",
    "passphrase_from",
    "save_certificate",
    "save_private_key",
    "sign_directory",
    "usage_of",
    "verify_directory",
    "verify_issued_by",
]
