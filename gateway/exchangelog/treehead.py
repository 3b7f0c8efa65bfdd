"""Tree heads and signed tree heads: a JWS (ES256) over canonical {node, size, root, timestamp}.

The JWS header names the signer certificate by its SHA-256 thumbprint (`x5t#S256`), so a verifier with
several certificates knows which one to use and a replaced certificate shows as a mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.exchangelog.errors import TamperError
from gateway.exchangelog.record import canonical_json


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: str  # hex
    timestamp: int  # ms epoch


@dataclass(frozen=True)
class SignedTreeHead:
    node: str
    size: int
    root: str
    timestamp: int
    jws: str
    tsa_token: bytes | None = None
    tsa_error: str | None = None

    def payload(self) -> bytes:
        return sth_payload(self.node, self.size, self.root, self.timestamp)

    def tsa_digest(self) -> bytes:
        """What the time-stamp authority stamps: SHA-256 of the compact JWS, signature included."""
        return hashlib.sha256(self.jws.encode("ascii")).digest()


def sth_payload(node: str, size: int, root: str, timestamp: int) -> bytes:
    return canonical_json({"node": node, "size": size, "root": root, "timestamp": timestamp})


def cert_thumbprint(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """Stands in for a certificate when a log signs without one (tests, sandbox)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign_payload(payload: bytes, key: ec.EllipticCurvePrivateKey, cert_pem: str | None) -> str:
    headers: dict[str, Any] = {"typ": "kiungo-sth+jwt"}
    if cert_pem is not None:
        headers["x5t#S256"] = cert_thumbprint(cert_pem)
    return jwt.api_jws.encode(payload, key, algorithm="ES256", headers=headers)


def verify_sth(sth: SignedTreeHead, cert_pem: str | None, public_key: ec.EllipticCurvePublicKey | None = None) -> None:
    """Signature valid, signed by this certificate, and saying what the stored columns say; else TamperError."""
    key: ec.EllipticCurvePublicKey
    if public_key is not None:
        key = public_key
    elif cert_pem is not None:
        loaded = (
            x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
            if "CERTIFICATE" in cert_pem
            else serialization.load_pem_public_key(cert_pem.encode())
        )
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise TamperError("signature", None, "the signer certificate does not hold an EC key")
        key = loaded
    else:
        raise TamperError("signature", None, "no signer certificate to check signed tree heads against")
    try:
        header = jwt.get_unverified_header(sth.jws)
        payload = jwt.api_jws.decode(sth.jws, key, algorithms=["ES256"])
    except jwt.PyJWTError as exc:
        raise TamperError("signature", None, f"signed tree head of size {sth.size}: bad signature") from exc
    if (
        cert_pem is not None
        and "CERTIFICATE" in cert_pem
        and header.get("x5t#S256") not in (None, cert_thumbprint(cert_pem))
    ):
        raise TamperError("signature", None, f"signed tree head of size {sth.size}: signed by another certificate")
    if payload != sth.payload():
        try:
            said = json.loads(payload)
        except ValueError:
            said = {}
        raise TamperError(
            "tree-head",
            None,
            f"signed tree head row of size {sth.size} does not match its signed payload (size {said.get('size')})",
        )
