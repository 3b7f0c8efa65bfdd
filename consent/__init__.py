"""Consent records, receipts, withdrawal and the consent check (docs/consent.md).

Imports nothing from the other Kiungo packages: identifiers and purposes arrive as plain strings.
"""

from consent.errors import ConsentError, ConsentNotFound, InvalidConsent, ReceiptError, StoreNotMigrated
from consent.model import LAWFUL_BASIS_CONSENT, ConsentCheck, ConsentEvent, ConsentRecord
from consent.receipts import ReceiptSigner, verify_receipt
from consent.store import ConsentStore

__all__ = [
    "LAWFUL_BASIS_CONSENT",
    "ConsentCheck",
    "ConsentError",
    "ConsentEvent",
    "ConsentNotFound",
    "ConsentRecord",
    "ConsentStore",
    "InvalidConsent",
    "ReceiptError",
    "ReceiptSigner",
    "StoreNotMigrated",
    "verify_receipt",
]
