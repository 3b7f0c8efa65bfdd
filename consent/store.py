"""The consent store: records and their history in SQLite, looked up by a keyed hash of the subject.

Privacy by default: the plain subject identifier never reaches the database. The store keeps
HMAC-SHA256(secret, normalised id) and a masked hint; every lookup by subject hashes at query time, so
whoever copies the file without the secret cannot tell whose consents it holds (nor test a guess).

History is append-only: a withdrawal appends an event, nothing is updated or deleted (triggers refuse it).
Expiry is derived, not written: a record past `valid_until` is expired at check time, and records read
from the store show a derived `expired` event at `valid_until` (actor `kiungo:validity`), so a check
never has to write and two readers never race to record the same expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from consent.errors import ConsentError, ConsentNotFound, InvalidConsent
from consent.model import (
    EVENT_EXPIRED,
    EVENT_GIVEN,
    EVENT_WITHDRAWN,
    EXPIRY_ACTOR,
    LAWFUL_BASIS_CONSENT,
    MAX_ACTOR,
    MAX_NOTICE,
    SCHEMA_VERSION,
    STATE_ACTIVE,
    STATE_EXPIRED,
    STATE_PENDING,
    STATE_WITHDRAWN,
    ConsentCheck,
    ConsentEvent,
    ConsentRecord,
    check_code,
    check_identifier,
    check_language,
    check_list,
    check_subject,
    check_text,
    check_time,
    mask,
    utc,
)

MIN_SECRET = 16
_SECRET_PROBE: Final = b"kiungo-consent-secret-check"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_records (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id       TEXT NOT NULL UNIQUE,
    schema_version  TEXT NOT NULL,
    subject_hash    TEXT NOT NULL,
    subject_hint    TEXT NOT NULL,
    controller      TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    purposes        TEXT NOT NULL,
    data_categories TEXT NOT NULL,
    lawful_basis    TEXT NOT NULL,
    privacy_notice  TEXT NOT NULL,
    language        TEXT NOT NULL,
    valid_from      TEXT NOT NULL,
    valid_until     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_records_subject ON consent_records (subject_hash, seq);
CREATE TABLE IF NOT EXISTS consent_events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL REFERENCES consent_records (record_id),
    time      TEXT NOT NULL,
    type      TEXT NOT NULL CHECK (type IN ('given', 'withdrawn', 'expired')),
    actor     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_events_record ON consent_events (record_id, seq);
CREATE TRIGGER IF NOT EXISTS consent_records_no_update BEFORE UPDATE ON consent_records
BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS consent_records_no_delete BEFORE DELETE ON consent_records
BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
"""

_COLUMNS = (
    "record_id, schema_version, subject_hash, subject_hint, controller, recipients, purposes, data_categories, "
    "lawful_basis, privacy_notice, language, valid_from, valid_until"
)


def _stamp(when: datetime) -> str:
    """Fixed-width UTC text, so stored times sort as strings."""
    return utc(when).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class ConsentStore:
    """Consent records in one SQLite file (WAL) or in memory; one connection behind a lock, so thread-safe."""

    def __init__(self, path: Path | None, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
            raise ConsentError(f"the consent store needs a secret of at least {MIN_SECRET} bytes")
        self._secret = secret
        self._lock = threading.Lock()
        target = ":memory:" if path is None else str(path)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30)
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._check_secret()
        except sqlite3.Error as exc:
            raise ConsentError(f"cannot open the consent store {target}: {exc}") from exc

    def _check_secret(self) -> None:
        """Refuse a secret other than the store's first: every lookup by subject would silently find nothing."""
        probe = hmac.new(self._secret, _SECRET_PROBE, hashlib.sha256).hexdigest()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO consent_meta (key, value) VALUES ('secret_check', ?)", (probe,))
            self._db.execute(
                "INSERT OR IGNORE INTO consent_meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
            row = self._db.execute("SELECT value FROM consent_meta WHERE key = 'secret_check'").fetchone()
        if not hmac.compare_digest(row[0], probe):
            self._db.close()
            raise ConsentError("this consent store was created with another secret; refusing to open it")

    # --- hashing ---------------------------------------------------------------------------------------

    def subject_hash(self, subject_id: str) -> str:
        """HMAC-SHA256 (hex) of the normalised id (stripped, upper-case): the only form the store keeps."""
        normalised = subject_id.strip().upper()
        return hmac.new(self._secret, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    # --- writing ---------------------------------------------------------------------------------------

    def grant(
        self,
        *,
        subject_id: str,
        controller: str,
        recipients: Sequence[str],
        purposes: Sequence[str],
        data_categories: Sequence[str],
        valid_until: datetime,
        valid_from: datetime | None = None,
        privacy_notice: str = "",
        language: str = "en",
        actor: str = "",
    ) -> ConsentRecord:
        """Record a consent given now (valid from `valid_from`, default now); InvalidConsent names a bad field."""
        now = datetime.now(UTC)
        normalised = check_subject(subject_id)
        controller = check_identifier("controller", controller, member_only=True)
        recipient_ids = check_list("recipients", recipients, check_identifier)
        purpose_codes = check_list("purposes", purposes, check_code)
        categories = check_list("data_categories", data_categories, check_code)
        until = check_time("valid_until", valid_until)
        start = check_time("valid_from", valid_from) if valid_from is not None else now
        if until <= start:
            raise InvalidConsent("valid_until: must be later than valid_from", field="valid_until")
        privacy_notice = check_text("privacy_notice", privacy_notice, MAX_NOTICE)
        language = check_language(language)
        actor = check_text("actor", actor, MAX_ACTOR)
        record = ConsentRecord(
            record_id=str(uuid.uuid4()),
            schema_version=SCHEMA_VERSION,
            subject_hash=self.subject_hash(normalised),
            subject_hint=mask(normalised),
            controller=controller,
            recipients=recipient_ids,
            purposes=purpose_codes,
            data_categories=categories,
            lawful_basis=LAWFUL_BASIS_CONSENT,
            privacy_notice=privacy_notice,
            language=language,
            valid_from=start,
            valid_until=until,
            events=(ConsentEvent(now, EVENT_GIVEN, actor),),
        )
        row = (
            record.record_id,
            record.schema_version,
            record.subject_hash,
            record.subject_hint,
            record.controller,
            json.dumps(record.recipients),
            json.dumps(record.purposes),
            json.dumps(record.data_categories),
            record.lawful_basis,
            record.privacy_notice,
            record.language,
            _stamp(record.valid_from),
            _stamp(record.valid_until),
        )
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(f"INSERT INTO consent_records ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", row)  # noqa: S608 - constant columns
            self._db.execute(
                "INSERT INTO consent_events (record_id, time, type, actor) VALUES (?, ?, ?, ?)",
                (record.record_id, _stamp(now), EVENT_GIVEN, actor),
            )
        return record

    def withdraw(self, record_id: str, *, actor: str = "", when: datetime | None = None) -> ConsentRecord:
        """Append a `withdrawn` event; withdrawing again changes nothing (the first withdrawal stands)."""
        actor = check_text("actor", actor, MAX_ACTOR)
        at = check_time("when", when) if when is not None else datetime.now(UTC)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            record = self._load(record_id)
            if record is None:
                raise ConsentNotFound(f"no consent record {record_id!r}")
            if record.withdrawn_at is not None:
                return record
            if at < record.given_at:
                raise InvalidConsent("when: a withdrawal cannot precede the consent it withdraws", field="when")
            self._db.execute(
                "INSERT INTO consent_events (record_id, time, type, actor) VALUES (?, ?, ?, ?)",
                (record_id, _stamp(at), EVENT_WITHDRAWN, actor),
            )
            withdrawn = self._load(record_id)
        assert withdrawn is not None  # written in this very transaction
        return withdrawn

    # --- reading ---------------------------------------------------------------------------------------

    def get(self, record_id: str) -> ConsentRecord:
        """The record with this id, with its full history; ConsentNotFound otherwise."""
        with self._lock:
            record = self._load(record_id)
        if record is None:
            raise ConsentNotFound(f"no consent record {record_id!r}")
        return record

    def list_by_subject(self, subject_id: str) -> list[ConsentRecord]:
        """Every record of this subject, newest first (hashing the id now: the store never saw it)."""
        with self._lock:
            return self._by_hash(self.subject_hash(subject_id))

    def check(
        self,
        *,
        subject_id: str,
        recipient: str,
        purpose: str,
        data_categories: Sequence[str],
        reference: str | None = None,
        controller: str | None = None,
        now: datetime | None = None,
    ) -> ConsentCheck:
        """May `recipient` receive this subject's `data_categories` for `purpose`? Never raises for a refusal.

        With a `reference` (a record id the client names) only that record counts; without one, any active
        record of the subject that covers the request allows it, and a refusal gives the most telling reason.
        """
        at = utc(now) if now is not None else datetime.now(UTC)
        if isinstance(data_categories, str):
            data_categories = [data_categories]
        subject = self.subject_hash(subject_id)

        def gap_of(record: ConsentRecord) -> str | None:
            return record.uncovered(
                recipient=recipient, purpose=purpose, data_categories=data_categories, controller=controller
            )

        if reference is not None:
            with self._lock:
                record = self._load(reference)
            if record is None or not hmac.compare_digest(record.subject_hash, subject):
                return ConsentCheck(
                    False,
                    "consent_missing",
                    "the consent reference does not match a consent record of this data subject",
                    None,
                )
            state = record.state(at)
            if state != STATE_ACTIVE:
                return _refusal(state, record.record_id)
            gap = gap_of(record)
            if gap is not None:
                return ConsentCheck(
                    False, "consent_does_not_cover", f"the referenced consent does not cover {gap}", record.record_id
                )
            return _allowed(record.record_id)

        with self._lock:
            records = self._by_hash(subject)
        if not records:
            return ConsentCheck(False, "consent_missing", "no consent of this data subject is on record", None)
        covering = [r for r in records if gap_of(r) is None]
        by_state: dict[str, ConsentRecord] = {}
        for record in covering:  # newest first: keep the newest of each state
            by_state.setdefault(record.state(at), record)
        if STATE_ACTIVE in by_state:
            return _allowed(by_state[STATE_ACTIVE].record_id)
        for state in (STATE_WITHDRAWN, STATE_EXPIRED, STATE_PENDING):
            if state in by_state:
                return _refusal(state, by_state[state].record_id)
        gaps = sorted({gap for r in records if (gap := gap_of(r)) is not None})
        return ConsentCheck(
            False,
            "consent_does_not_cover",
            f"no consent of this data subject covers {' or '.join(gaps)}",
            None,
        )

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ConsentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals (callers hold the lock) -------------------------------------------------------------

    def _load(self, record_id: str) -> ConsentRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM consent_records WHERE record_id = ?",  # noqa: S608 - constant columns
            (record_id,),
        ).fetchone()
        return None if row is None else self._hydrate(row)

    def _by_hash(self, subject_hash: str) -> list[ConsentRecord]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM consent_records WHERE subject_hash = ? ORDER BY seq DESC",  # noqa: S608
            (subject_hash,),
        ).fetchall()
        return [self._hydrate(row) for row in rows]

    def _hydrate(self, row: tuple[str, ...]) -> ConsentRecord:
        events = [
            ConsentEvent(_parse(time), kind, actor)
            for time, kind, actor in self._db.execute(
                "SELECT time, type, actor FROM consent_events WHERE record_id = ? ORDER BY seq", (row[0],)
            )
        ]
        valid_until = _parse(row[12])
        withdrawn = next((e.time for e in events if e.type == EVENT_WITHDRAWN), None)
        stored_expiry = any(e.type == EVENT_EXPIRED for e in events)
        if not stored_expiry and valid_until <= datetime.now(UTC) and (withdrawn is None or withdrawn > valid_until):
            given = next((e.time for e in events if e.type == EVENT_GIVEN), valid_until)
            events.append(ConsentEvent(max(valid_until, given), EVENT_EXPIRED, EXPIRY_ACTOR))
            events.sort(key=lambda e: e.time)
        return ConsentRecord(
            record_id=row[0],
            schema_version=row[1],
            subject_hash=row[2],
            subject_hint=row[3],
            controller=row[4],
            recipients=tuple(json.loads(row[5])),
            purposes=tuple(json.loads(row[6])),
            data_categories=tuple(json.loads(row[7])),
            lawful_basis=row[8],
            privacy_notice=row[9],
            language=row[10],
            valid_from=_parse(row[11]),
            valid_until=valid_until,
            events=tuple(events),
        )


def _allowed(record_id: str) -> ConsentCheck:
    return ConsentCheck(True, "ok", "an active consent covers this recipient, purpose and data", record_id)


def _refusal(state: str, record_id: str) -> ConsentCheck:
    if state == STATE_WITHDRAWN:
        return ConsentCheck(False, "consent_withdrawn", "the data subject withdrew the consent", record_id)
    if state == STATE_EXPIRED:
        return ConsentCheck(False, "consent_expired", "the consent has expired", record_id)
    if state == STATE_PENDING:
        return ConsentCheck(False, "consent_missing", "the consent is not in force yet (pending)", record_id)
    raise AssertionError(f"not a refusal state: {state}")  # pragma: no cover
