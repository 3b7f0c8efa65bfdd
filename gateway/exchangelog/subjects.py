"""The keyed hash of a data subject's id: the log stores it, never the id (DESIGN: no identifiers in logs)."""

from __future__ import annotations

import hashlib
import hmac


def subject_hash(secret: bytes, subject_id: str) -> str:
    """HMAC-SHA256(secret, id.strip().upper()), hex: the same rule the gateway applies when it logs."""
    return hmac.new(secret, subject_id.strip().upper().encode("utf-8"), hashlib.sha256).hexdigest()
