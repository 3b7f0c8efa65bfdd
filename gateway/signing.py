"""Signed messages between gateways: JWS (ES256) with a detached payload over a canonical digest.

The request's payload is its request hash (which covers the request line, the X-Road headers and
the body) plus a timestamp; the response's payload binds status, content type and body to that
request hash. Each side signs with its member's signing key; `kid` is the signing certificate's
SHA-256 fingerprint, looked up in the federation directory by the verifier.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import ErrorKind, GatewayError

ALGORITHM = "ES256"
SIGNATURE_HEADER = "X-Kiungo-Signature"
TIMESTAMP_HEADER = "X-Kiungo-Timestamp"


class SignatureInvalid(ValueError):
    """The signature does not verify, or names no certificate the verifier knows."""


def canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_payload(request_hash: str, timestamp_ms: int) -> bytes:
    return canonical({"kind": "request", "request_hash": request_hash, "ts": timestamp_ms})


def response_payload(request_hash: str, status: int, content_type: str, body: bytes, timestamp_ms: int) -> bytes:
    return canonical(
        {
            "kind": "response",
            "request_hash": request_hash,
            "status": status,
            "content_type": content_type,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "ts": timestamp_ms,
        }
    )


@dataclass(frozen=True)
class Signer:
    """A member's signing key and the fingerprint of its certificate."""

    key: ec.EllipticCurvePrivateKey
    kid: str

    def sign(self, payload: bytes) -> str:
        return jwt.api_jws.encode(
            payload, self.key, algorithm=ALGORITHM, headers={"kid": self.kid}, is_payload_detached=True
        )


def signer_kid(token: str) -> str:
    """The `kid` a signature names, read without verifying (to find the certificate that will verify it)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise SignatureInvalid("the signature is not a JWS") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") != ALGORITHM:
        raise SignatureInvalid(f"the signature must be {ALGORITHM} and name its certificate (kid)")
    return kid


def verify(token: str, payload: bytes, cert: x509.Certificate) -> None:
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SignatureInvalid("the signing certificate does not hold an EC key")
    try:
        jwt.api_jws.decode_complete(token, public, algorithms=[ALGORITHM], detached_payload=payload)
    except jwt.PyJWTError:
        raise SignatureInvalid("the signature does not match the message") from None


def parse_timestamp(value: str | None, kind: ErrorKind) -> int:
    """The signed timestamp header (ms since the epoch), or the refusal `kind`."""
    if value is None or not value.isdigit() or len(value) > 16:
        raise GatewayError(kind, f"the {TIMESTAMP_HEADER} header must be milliseconds since the epoch")
    return int(value)
