"""Consent records shaped after ISO/IEC TS 27560, the events in their history, and the answer of a check.

Plain frozen dataclasses: they cross package borders (the gateway, the CLI, receipts) and carry no
plain subject identifier, only its keyed hash and a masked hint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from consent.errors import InvalidConsent

SCHEMA_VERSION: Final = "kiungo-27560-1"
LAWFUL_BASIS_CONSENT: Final = "consent"

EVENT_GIVEN: Final = "given"
EVENT_WITHDRAWN: Final = "withdrawn"
EVENT_EXPIRED: Final = "expired"
EVENT_TYPES: Final = (EVENT_GIVEN, EVENT_WITHDRAWN, EVENT_EXPIRED)

STATE_ACTIVE: Final = "active"
STATE_WITHDRAWN: Final = "withdrawn"
STATE_EXPIRED: Final = "expired"
STATE_PENDING: Final = "pending"

#: Actor of the derived "expired" event: nobody acted, the validity ran out.
EXPIRY_ACTOR: Final = "kiungo:validity"

MAX_PART = 255
MAX_ITEMS = 256
MAX_SUBJECT = 64
MAX_ACTOR = 256
MAX_NOTICE = 2048
_PART = re.compile(r"[A-Za-z0-9'()+,\-.=?]+")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}")


def utc(when: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already (the store only ever writes UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the form JSON consumers parse without surprises."""
    return utc(when).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One step in a record's history (27560 `event`): given, withdrawn or expired, when, and by whom."""

    time: datetime
    type: str
    actor: str

    def as_json(self) -> dict[str, Any]:
        return {"time": iso(self.time), "type": self.type, "actor": self.actor}


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A data subject's consent for one controller's data to reach some recipients, for some purposes.

    Field names follow ISO/IEC TS 27560 loosely (see docs/consent.md for the mapping); the PII principal
    is only present as `subject_hash` (HMAC-SHA256 under the store's secret) and a masked `subject_hint`.
    """

    record_id: str
    schema_version: str
    subject_hash: str
    subject_hint: str
    controller: str
    recipients: tuple[str, ...]
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    lawful_basis: str
    privacy_notice: str
    language: str
    valid_from: datetime
    valid_until: datetime
    events: tuple[ConsentEvent, ...]

    @property
    def given_at(self) -> datetime:
        """When consent was given (the first `given` event), `valid_from` if the history lacks one."""
        return next((e.time for e in self.events if e.type == EVENT_GIVEN), self.valid_from)

    @property
    def withdrawn_at(self) -> datetime | None:
        """When consent was withdrawn (the first `withdrawn` event), None while it stands."""
        return next((e.time for e in self.events if e.type == EVENT_WITHDRAWN), None)

    def state(self, now: datetime | None = None) -> str:
        """The state at `now` (default: the current time): a withdrawal wins, then pending, expired, active.

        Computed from the times, not from stored events, so a check at any instant (past or future) is right
        whether or not an `expired` event has been written.
        """
        at = utc(now) if now is not None else datetime.now(UTC)
        withdrawn = self.withdrawn_at
        if withdrawn is not None and withdrawn <= at:
            return STATE_WITHDRAWN
        if at < self.valid_from:
            return STATE_PENDING
        if at >= self.valid_until:
            return STATE_EXPIRED
        return STATE_ACTIVE

    def uncovered(
        self, *, recipient: str, purpose: str, data_categories: Sequence[str], controller: str | None = None
    ) -> str | None:
        """None when the record covers the request, else a short phrase naming what it does not cover.

        A recipient is covered when it is listed, or when its member (the first three parts) is listed;
        a controller given as a subsystem matches a record of its member.
        """
        if controller is not None and self.controller not in (controller, member_of(controller)):
            return "this controller"
        if recipient not in self.recipients and member_of(recipient) not in self.recipients:
            return "this recipient"
        if purpose not in self.purposes:
            return "this purpose"
        missing = [c for c in dict.fromkeys(data_categories) if c not in self.data_categories]
        if missing:
            return "the data categories " + ", ".join(sorted(missing))
        return None

    def as_json(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-able form with ISO dates and the state at `now`; lists keep the granted order."""
        return {
            "record_id": self.record_id,
            "schema_version": self.schema_version,
            "subject_hash": self.subject_hash,
            "subject_hint": self.subject_hint,
            "controller": self.controller,
            "recipients": list(self.recipients),
            "purposes": list(self.purposes),
            "data_categories": list(self.data_categories),
            "lawful_basis": self.lawful_basis,
            "privacy_notice": self.privacy_notice,
            "language": self.language,
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until),
            "state": self.state(now),
            "events": [e.as_json() for e in self.events],
        }


@dataclass(frozen=True, slots=True)
class ConsentCheck:
    """The answer to "may this recipient get this subject's data for this purpose?".

    `reason` is a stable code for machines, `message` a sentence for people; neither holds personal data.
    """

    allowed: bool
    reason: str
    message: str
    record_id: str | None


def member_of(identifier: str) -> str:
    """The member part (`INSTANCE/CLASS/CODE`) of a subsystem identifier; a member is its own member."""
    parts = identifier.split("/")
    return "/".join(parts[:3]) if len(parts) == 4 else identifier


def mask(normalised: str) -> str:
    """A hint a person can recognise (`90******01`) that does not give the identifier away."""
    n = len(normalised)
    if n >= 8:
        return normalised[:2] + "*" * (n - 4) + normalised[-2:]
    if n >= 4:
        return normalised[:1] + "*" * (n - 2) + normalised[-1:]
    return "*" * n


# --- validation: every message starts with the field's name -------------------------------------------


def _fail(field: str, problem: str) -> InvalidConsent:
    return InvalidConsent(f"{field}: {problem}", field=field)


def check_subject(subject_id: object) -> str:
    """The normalised subject id (stripped, upper-case), or InvalidConsent; the value is never echoed."""
    if not isinstance(subject_id, str):
        raise _fail("subject_id", "must be a string")
    value = subject_id.strip().upper()
    if not value:
        raise _fail("subject_id", "is empty")
    if len(value) > MAX_SUBJECT:
        raise _fail("subject_id", f"is longer than {MAX_SUBJECT} characters")
    if not value.isprintable():
        raise _fail("subject_id", "may contain only printable characters")
    return value


def check_identifier(field: str, value: object, *, member_only: bool = False) -> str:
    """An X-Road identifier `INSTANCE/CLASS/CODE[/SUBSYSTEM]` (a member when `member_only`)."""
    if not isinstance(value, str) or not value:
        raise _fail(field, "must be a non-empty identifier such as ZZ/GOV/MSP/research")
    parts = value.split("/")
    allowed = (3,) if member_only else (3, 4)
    if len(parts) not in allowed:
        form = "INSTANCE/CLASS/CODE" if member_only else "INSTANCE/CLASS/CODE[/SUBSYSTEM]"
        raise _fail(field, f"{value!r} is not of the form {form}")
    for part in parts:
        if not part or len(part) > MAX_PART or not _PART.fullmatch(part) or part in (".", ".."):
            raise _fail(
                field,
                f"{value!r}: each part must be 1..{MAX_PART} letters, digits or '()+,-.=? characters",
            )
    return value


def check_code(field: str, value: object) -> str:
    """A purpose or data-category code: a letter or digit, then up to 127 of letters, digits and `._:-`."""
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise _fail(field, f"{value!r} is not a code of the form [A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}")
    return value


def check_list(field: str, values: object, item: Any) -> tuple[str, ...]:
    """A non-empty list of valid items, duplicates dropped, order kept."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise _fail(field, "must be a list, not a single string")
    if not values:
        raise _fail(field, "must not be empty")
    if len(values) > MAX_ITEMS:
        raise _fail(field, f"has more than {MAX_ITEMS} entries")
    return tuple(dict.fromkeys(item(field, v) for v in values))


def check_text(field: str, value: object, limit: int) -> str:
    """Free text of printable characters up to `limit` (privacy notice, actor)."""
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    if len(value) > limit:
        raise _fail(field, f"is longer than {limit} characters")
    if not value.isprintable():
        raise _fail(field, "may contain only printable characters")
    return value


def check_language(value: object) -> str:
    """A BCP 47-like language tag (`en`, `sw`, `fr-CA`)."""
    if not isinstance(value, str) or not _LANGUAGE.fullmatch(value):
        raise _fail("language", f"{value!r} is not a language tag such as en or sw")
    return value


def check_time(field: str, value: object) -> datetime:
    """An aware datetime, in UTC: a naive one would silently mean the server's zone."""
    if not isinstance(value, datetime):
        raise _fail(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(field, "must carry a time zone (e.g. UTC)")
    return value.astimezone(UTC)
