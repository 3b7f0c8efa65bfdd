"""Consent receipts: a signed JWT (ES256) after Kantara Consent Receipt 1.1 / ISO/IEC TS 27560.

A receipt lets the data subject, a DPO or another agency prove what was consented to without asking the
store: it verifies offline against the issuer's public key. It carries the subject's keyed hash and a
masked hint, never the plain identifier. Validity is in claims (`validFrom`, `validUntil`), not in JWT
`nbf`/`exp`: a receipt of a consent that has since expired is still a true statement about the grant.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from consent.errors import ReceiptError
from consent.model import ConsentRecord, iso

ALGORITHM: Final = "ES256"
#: The Kantara Consent Receipt version these claims follow.
RECEIPT_VERSION: Final = "KI-CR-v1.1.0"
_REQUIRED: Final = ("jti", "iss", "iat", "sub")


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 (hex) of the key's SubjectPublicKeyInfo DER: the same key always has the same id."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ReceiptError(f"ES256 needs a P-256 key, not {key.curve.name}")


class ReceiptSigner:
    """Signs consent receipts for one issuer (usually the controller member, e.g. ZZ/GOV/TAX)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ReceiptError("receipts are signed with an EC P-256 private key")
        _p256(key)
        if not issuer:
            raise ReceiptError("a receipt needs an issuer")
        self._key = key
        self.issuer = issuer
        self.kid = key_id(key.public_key())

    def claims(self, record: ConsentRecord, *, issued_at: datetime | None = None) -> dict[str, Any]:
        """The receipt's claims: JWT registered names plus Kantara CR 1.1 / 27560 names (docs/consent.md)."""
        iat = issued_at if issued_at is not None else datetime.now(UTC)
        return {
            "jti": record.record_id,
            "iss": self.issuer,
            "iat": int(iat.timestamp()),
            "sub": record.subject_hash,
            "version": RECEIPT_VERSION,
            "schemaVersion": record.schema_version,
            "consentTimestamp": int(record.given_at.timestamp()),
            "piiPrincipalHint": record.subject_hint,
            "controller": record.controller,
            "recipients": list(record.recipients),
            "purposes": list(record.purposes),
            "piiCategories": list(record.data_categories),
            "lawfulBasis": record.lawful_basis,
            "validFrom": iso(record.valid_from),
            "validUntil": iso(record.valid_until),
            "policyUrl": record.privacy_notice,
            "language": record.language,
        }

    def receipt(self, record: ConsentRecord) -> str:
        """A compact JWS (header `alg` ES256, `kid`, `typ` JWT) over the record's receipt claims."""
        return jwt.encode(self.claims(record), self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def public_key_pem(self) -> bytes:
        """The public key to hand to verifiers (SubjectPublicKeyInfo PEM)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_public_key(public_key: ec.EllipticCurvePublicKey | bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM bytes (or as given); ReceiptError when it is not one."""
    loaded: object = public_key
    if isinstance(public_key, bytes):
        try:
            loaded = serialization.load_pem_public_key(public_key)
        except (ValueError, TypeError) as exc:
            raise ReceiptError(f"the public key is not a PEM public key: {exc}") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ReceiptError("the public key is not an EC P-256 key")
    _p256(loaded)
    return loaded


def verify_receipt(token: str, public_key: ec.EllipticCurvePublicKey | bytes) -> dict[str, Any]:
    """The receipt's claims if it is an ES256 JWT signed by `public_key`; ReceiptError says why not."""
    key = load_public_key(public_key)
    if not isinstance(token, str) or token.count(".") != 2:
        raise ReceiptError("malformed receipt: not a compact JWT (three dot-separated parts)")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise ReceiptError(f"malformed receipt: {exc}") from exc
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise ReceiptError(f"wrong algorithm: the receipt is signed with {alg!r}, only {ALGORITHM} is accepted")
    kid = header.get("kid")
    if kid is not None and kid != key_id(key):
        raise ReceiptError("bad signature: the receipt was signed by another key (its kid does not match)")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": list(_REQUIRED), "verify_aud": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise ReceiptError("bad signature: the receipt was altered or signed by another key") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise ReceiptError(f"malformed receipt: {exc}") from exc
    except jwt.DecodeError as exc:
        raise ReceiptError(f"malformed receipt: {exc}") from exc
    except jwt.InvalidTokenError as exc:
        raise ReceiptError(f"receipt does not verify: {exc}") from exc
    return claims
