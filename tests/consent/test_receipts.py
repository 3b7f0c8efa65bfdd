from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from consent import ConsentRecord, ConsentStore, ReceiptError, ReceiptSigner, verify_receipt
from tests.consent.conftest import SUBJECT, grant


@pytest.fixture
def record(store: ConsentStore) -> ConsentRecord:
    return grant(store)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_receipt_verifies_offline(key: ec.EllipticCurvePrivateKey, record: ConsentRecord) -> None:
    signer = ReceiptSigner(key, "ZZ/GOV/TAX")
    token = signer.receipt(record)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert header["kid"] == signer.kid == hashlib.sha256(der).hexdigest()

    for public in (signer.public_key_pem(), key.public_key()):
        claims = verify_receipt(token, public)
        assert claims["jti"] == record.record_id
        assert claims["iss"] == "ZZ/GOV/TAX"
        assert claims["sub"] == record.subject_hash
        assert claims["piiPrincipalHint"] == "90******01"
        assert claims["controller"] == "ZZ/GOV/TAX"
        assert claims["recipients"] == ["ZZ/GOV/MSP/research"]
        assert claims["purposes"] == ["research-poverty-2026"]
        assert claims["piiCategories"] == ["income", "employer"]
        assert claims["lawfulBasis"] == "consent"
        assert claims["validUntil"] == record.as_json()["valid_until"]
        assert claims["policyUrl"] == "https://tax.zz.example/privacy/research"
        assert claims["language"] == "en"
        assert claims["version"] == "KI-CR-v1.1.0"
    assert SUBJECT not in json.dumps(claims)
    assert SUBJECT.encode() not in _unb64(token.split(".")[1])


def test_tampered_receipt_fails(key: ec.EllipticCurvePrivateKey, record: ConsentRecord) -> None:
    signer = ReceiptSigner(key, "ZZ/GOV/TAX")
    head, body, sig = signer.receipt(record).split(".")
    claims = json.loads(_unb64(body))
    claims["purposes"].append("marketing")
    forged = ".".join((head, _b64(json.dumps(claims).encode()), sig))
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(forged, signer.public_key_pem())


def test_receipt_from_another_key_fails(key: ec.EllipticCurvePrivateKey, record: ConsentRecord) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = ReceiptSigner(other, "ZZ/GOV/TAX").receipt(record)
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(token, key.public_key())
    # the same, with the kid header stripped: the signature itself is what fails
    no_kid = jwt.encode(jwt.decode(token, options={"verify_signature": False}), other, algorithm="ES256")
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(no_kid, key.public_key())


def test_wrong_algorithm_and_malformed(key: ec.EllipticCurvePrivateKey, record: ConsentRecord) -> None:
    public = key.public_key()
    claims = ReceiptSigner(key, "ZZ/GOV/TAX").claims(record)
    hs = jwt.encode(claims, "a-shared-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    with pytest.raises(ReceiptError, match="wrong algorithm"):
        verify_receipt(hs, public)
    unsigned = _b64(b'{"alg":"none","typ":"JWT"}') + "." + _b64(json.dumps(claims).encode()) + "."
    with pytest.raises(ReceiptError, match="wrong algorithm"):
        verify_receipt(unsigned, public)
    for junk in ("", "not-a-jwt", "a.b.c", "a.b"):
        with pytest.raises(ReceiptError, match="malformed"):
            verify_receipt(junk, public)
    missing = jwt.encode({"iss": "ZZ/GOV/TAX"}, key, algorithm="ES256")
    with pytest.raises(ReceiptError, match="malformed"):
        verify_receipt(missing, public)


def test_bad_keys_are_refused(record: ConsentRecord) -> None:
    with pytest.raises(ReceiptError, match="P-256"):
        ReceiptSigner(ec.generate_private_key(ec.SECP384R1()), "ZZ/GOV/TAX")
    with pytest.raises(ReceiptError, match="not a PEM public key"):
        verify_receipt("a.b.c", b"not a key")
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = ed.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ReceiptError, match="EC P-256"):
        verify_receipt("a.b.c", pem)
