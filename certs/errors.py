"""One exception tree for the federation PKI, so callers can fail closed on `CertsError` alone."""

from __future__ import annotations

from typing import Any


class CertsError(Exception):
    """Base of every error the `certs` package raises on purpose."""


class PassphraseError(CertsError):
    """No passphrase was given, or it does not open the key (the message says which, never the passphrase)."""


class KeyFileError(CertsError):
    """A key file is missing, unreadable, not a key, or not the kind of key expected."""


class CertificateError(CertsError):
    """A certificate is malformed, not issued by the CA, outside its validity window, or used for the wrong thing."""


class RevokedError(CertificateError):
    """The certificate is revoked; the message names the serial and where that was learned (CRL or OCSP)."""


class RevocationUnknownError(CertsError):
    """Revocation status cannot be established (stale, unsigned or unparseable CRL/OCSP, unknown certificate).

    Callers must treat it as a refusal: not knowing is not the same as not revoked.
    """


class DirectoryError(CertsError):
    """The signed federation directory is malformed."""


class DirectorySignatureError(DirectoryError):
    """The directory's signature does not verify against the configuration anchor, or it was tampered with."""


class DirectoryExpiredError(DirectoryError):
    """The directory's signature is valid but its `expires_at` is past.

    `content` holds the verified content, so a caller can still report what it was (never act on it).
    """

    def __init__(self, message: str = "directory expired", *, content: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.content: dict[str, Any] = content if content is not None else {}
