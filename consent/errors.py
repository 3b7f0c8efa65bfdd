"""One exception tree for consent, so the gateway can fail closed on `ConsentError` alone."""

from __future__ import annotations


class ConsentError(Exception):
    """Base of every error the `consent` package raises on purpose."""


class StoreNotMigrated(ConsentError):
    """The database has no consent tables, or not the revision this code needs; the message names the fix."""


class ConsentNotFound(ConsentError):
    """No consent record has the given id."""


class InvalidConsent(ConsentError):
    """Bad input to `grant` (or `withdraw`): the message starts with the field's name, `field` holds it too."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReceiptError(ConsentError):
    """A consent receipt does not verify or is malformed; the message says why, never the token itself."""
