"""One exchange as the log keeps it: the record whose canonical JSON is a Merkle leaf's content."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False).encode

SIDES = ("Client", "Producer")


@dataclass(frozen=True)
class LogRecord:
    """What one gateway saw of one exchange. No bodies and no subject id: digests and a keyed hash only."""

    exchange_id: str
    request_id: str
    side: str
    protocol: str
    client: str | None = None
    service: str | None = None
    user_id: str | None = None
    purpose: str | None = None
    lawful_basis: str | None = None
    agreement_id: str | None = None
    agreement_version: int | None = None
    consent_record: str | None = None
    decision: str | None = None
    outcome: str = "ok"
    status_code: int | None = None
    fault_code: str | None = None
    request_in_ts: int = 0
    request_out_ts: int | None = None
    response_in_ts: int | None = None
    response_out_ts: int | None = None
    request_size: int | None = None
    response_size: int | None = None
    request_digest: str | None = None
    response_digest: str | None = None
    request_signature: str | None = None
    response_signature: str | None = None
    subject_hash: str | None = None
    method: str | None = None
    path_template: str | None = None
    issue: str | None = None  # X-Road-Issue: e.g. the registry query that caused this exchange
    subject_hashes: list[str] | None = None  # every subject of a batch look-up (subject_hash is the first)

    def canonical(self) -> bytes:
        """Sorted keys, no whitespace, UTF-8: the same record always hashes to the same leaf.

        Fields added after the first format are left out while empty, so older records keep their leaves.
        """
        return _ENCODE(self.to_dict()).encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in FIELD_NAMES}
        for name in ADDED_FIELDS:
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogRecord:
        """Strict: unknown or missing fields are an error, so a bundle cannot smuggle extra content."""
        names = FIELD_NAMES
        if not set(names) - set(ADDED_FIELDS) <= set(data) <= set(names):
            raise ValueError("record fields do not match the log record format")
        return cls(**data)

    @classmethod
    def from_canonical(cls, content: bytes | str) -> LogRecord:
        data = json.loads(content)
        if not isinstance(data, dict):
            raise ValueError("a record is a JSON object")
        return cls.from_dict(data)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LogRecord))
#: Fields added since the first record format: optional, and absent from the canonical form while empty.
ADDED_FIELDS: tuple[str, ...] = ("issue", "subject_hashes")


def canonical_json(data: dict[str, Any]) -> bytes:
    """Canonical JSON of any object (signed tree head payloads use the same rules)."""
    return _ENCODE(data).encode("utf-8")
