"""The signed federation directory (X-Road: global configuration).

The content is a JSON object with at least "instance", "issued_at" and "expires_at" (ISO 8601, UTC). It travels
as a JWS (compact, ES256) over its canonical JSON bytes. Gateways verify it against the configuration
anchor, the directory signer's certificate, which they received out of band; nothing in the blob itself is
trusted before that signature verifies.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import api_jws

from certs.errors import DirectoryError, DirectoryExpiredError, DirectorySignatureError

JWS_TYPE = "kiungo-directory+jws"
ALGORITHM = "ES256"
REQUIRED = ("instance", "issued_at", "expires_at")
# A directory stamped a little in the future (signer's clock ahead) is still accepted.
CLOCK_SKEW = timedelta(minutes=5)


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """One byte string per content, so signer and verifier (and a digest in a log) agree."""
    try:
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as exc:
        raise DirectoryError(f"directory content is not plain JSON: {exc}") from exc


def _timestamp(content: Mapping[str, Any], field: str) -> datetime:
    value = content.get(field)
    if not isinstance(value, str):
        raise DirectoryError(f"directory field {field!r} must be an ISO 8601 UTC timestamp string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DirectoryError(f"directory field {field!r} is not ISO 8601: {value!r}") from exc
    if when.tzinfo is None or when.utcoffset() != timedelta(0):
        raise DirectoryError(f"directory field {field!r} must be in UTC (end with Z or +00:00): {value!r}")
    return when.astimezone(UTC)


def _validate(content: Any) -> tuple[datetime, datetime]:
    if not isinstance(content, Mapping):
        raise DirectoryError("directory content must be a JSON object")
    missing = [f for f in REQUIRED if f not in content]
    if missing:
        raise DirectoryError(f"directory content lacks {', '.join(missing)}")
    if not isinstance(content["instance"], str) or not content["instance"]:
        raise DirectoryError("directory field 'instance' must be a non-empty string")
    issued_at, expires_at = _timestamp(content, "issued_at"), _timestamp(content, "expires_at")
    if expires_at <= issued_at:
        raise DirectoryError("directory expires_at must be after issued_at")
    return issued_at, expires_at


def _thumbprint(cert: x509.Certificate) -> str:
    """RFC 7515 x5t#S256: base64url SHA-256 of the DER certificate, unpadded."""
    return base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode("ascii")


def sign_directory(content: Mapping[str, Any], key: ec.EllipticCurvePrivateKey, signer_cert: x509.Certificate) -> bytes:
    """Sign the directory; refuses content a gateway would refuse, so a bad directory never leaves the CA."""
    _validate(content)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DirectoryError("the directory is signed with ES256, which needs a P-256 key")
    if key.public_key() != signer_cert.public_key():
        raise DirectoryError("the signing key does not belong to the signer certificate")
    headers = {"typ": JWS_TYPE, "x5t#S256": _thumbprint(signer_cert)}
    token = api_jws.encode(canonical_json(content), key, algorithm=ALGORITHM, headers=headers)
    return token.encode("ascii")


def _loads_strict(payload: bytes) -> Any:
    """JSON that refuses duplicate keys and NaN: two readers must never see two different directories."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for k, v in items:
            if k in result:
                raise DirectoryError(f"directory content repeats the key {k!r}")
            result[k] = v
        return result

    def constant(name: str) -> Any:
        raise DirectoryError(f"directory content holds {name}, which is not JSON")

    try:
        return json.loads(payload.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise DirectoryError(f"directory payload is not JSON: {exc}") from exc


def verify_directory(blob: bytes, anchor: x509.Certificate, *, now: datetime | None = None) -> dict[str, Any]:
    """The directory's content, but only if the anchor signed it and it has not expired."""
    now = now or datetime.now(UTC)
    blob = bytes(blob).strip()
    try:
        header = api_jws.get_unverified_header(blob)
    except (jwt.PyJWTError, ValueError, RecursionError) as exc:
        raise DirectoryError(f"the directory is not a JWS: {exc}") from exc
    if header.get("typ") != JWS_TYPE:
        raise DirectoryError(f"the JWS is not a Kiungo directory (typ {header.get('typ')!r})")
    if header.get("alg") != ALGORITHM or "crit" in header or "b64" in header:
        raise DirectorySignatureError(f"the directory must be signed with plain {ALGORITHM}")
    if header.get("x5t#S256") != _thumbprint(anchor):
        raise DirectorySignatureError("the directory was not signed by the anchor's key (x5t#S256 differs)")
    anchor_key = anchor.public_key()
    if not isinstance(anchor_key, ec.EllipticCurvePublicKey) or not isinstance(anchor_key.curve, ec.SECP256R1):
        raise DirectorySignatureError("the anchor's key is not P-256, so it cannot verify an ES256 directory")
    try:
        decoded = api_jws.decode_complete(blob, key=anchor_key, algorithms=[ALGORITHM])
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as exc:
        raise DirectorySignatureError(f"the directory signature does not verify against the anchor: {exc}") from exc
    except (jwt.PyJWTError, ValueError) as exc:
        raise DirectoryError(f"the directory is not a valid JWS: {exc}") from exc
    content = _loads_strict(decoded["payload"])
    issued_at, expires_at = _validate(content)
    if issued_at > now + CLOCK_SKEW:
        raise DirectoryError(f"the directory is issued in the future ({content['issued_at']}); check the clocks")
    if now > expires_at:
        raise DirectoryExpiredError(f"the directory expired at {content['expires_at']}", content=content)
    result: dict[str, Any] = content
    return result


def directory_digest(blob: bytes) -> str:
    """SHA-256 hex of the blob as received: names one directory version in logs."""
    return hashlib.sha256(blob).hexdigest()
