"""The consent store: records and their history in SQL, looked up by a keyed hash of the subject.

SQLAlchemy 2 Core on SQLite (the embedded default) or PostgreSQL (gateway replicas share one database).
The schema is created by migrations (`kiungo db upgrade --store consent`), never by the store: it only
checks, when it opens, that the schema is there and current.

Privacy by default: the plain subject identifier never reaches the database. The store keeps
HMAC-SHA256(secret, normalised id) and a masked hint; every lookup by subject hashes at query time, so
whoever copies the database without the secret cannot tell whose consents it holds (nor test a guess).

History is append-only: a withdrawal appends an event, nothing is updated or deleted (triggers refuse it,
on both backends). Expiry is derived, not written: a record past `valid_until` is expired at check time,
and records read from the store show a derived `expired` event at `valid_until` (actor
`kiungo:validity`), so a check never has to write and two readers never race to record the same expiry.
Nothing is cached in the process: each check reads the database, so a withdrawal written by one replica
holds for every other one from its next check on.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from consent.errors import ConsentError, ConsentNotFound, InvalidConsent, StoreNotMigrated
from consent.model import (
    EVENT_EXPIRED,
    EVENT_GIVEN,
    EVENT_TYPES,
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

#: The migration this code was written for, and where Alembic records a database's (gateway.migrations).
SCHEMA_REVISION: Final = "consent_0001"
VERSION_TABLE: Final = "kiungo_schema_consent"

metadata = MetaData()

meta_table = Table(
    "consent_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

records_table = Table(
    "consent_records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False),
    Column("schema_version", String(32), nullable=False),
    Column("subject_hash", String(64), nullable=False),
    Column("subject_hint", String(64), nullable=False),
    Column("controller", Text, nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list, in the granted order
    Column("purposes", Text, nullable=False),  # JSON list
    Column("data_categories", Text, nullable=False),  # JSON list
    Column("lawful_basis", String(32), nullable=False),
    Column("privacy_notice", Text, nullable=False),
    Column("language", String(64), nullable=False),
    Column("valid_from", String(32), nullable=False),  # fixed-width UTC text: sorts as it reads
    Column("valid_until", String(32), nullable=False),
    UniqueConstraint("record_id", name="uq_consent_records_record_id"),
    Index("ix_consent_records_subject", "subject_hash", "seq"),
    sqlite_autoincrement=True,
)

events_table = Table(
    "consent_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False),
    Column("time", String(32), nullable=False),
    Column("type", String(16), nullable=False),
    Column("actor", Text, nullable=False),
    ForeignKeyConstraint(["record_id"], ["consent_records.record_id"], name="fk_consent_events_record"),
    CheckConstraint(
        "type IN (" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + ")",
        name="ck_consent_events_type",
    ),
    Index("ix_consent_events_record", "record_id", "seq"),
    sqlite_autoincrement=True,
)

_RECORD_COLUMNS = tuple(
    records_table.c[name]
    for name in (
        "record_id",
        "schema_version",
        "subject_hash",
        "subject_hint",
        "controller",
        "recipients",
        "purposes",
        "data_categories",
        "lawful_basis",
        "privacy_notice",
        "language",
        "valid_from",
        "valid_until",
    )
)
# Records with their events in one round trip: in SQLAlchemy for a withdrawal's transaction, and as
# plain SQL for the reads, which go straight to the driver (the check runs on every consent-based exchange).
_WITH_EVENTS = (
    select(*_RECORD_COLUMNS, events_table.c.time, events_table.c.type, events_table.c.actor)
    .select_from(records_table.outerjoin(events_table, events_table.c.record_id == records_table.c.record_id))
    .order_by(records_table.c.seq.desc(), events_table.c.seq)
)


def _read_sql(dialect: str, key: str) -> str:
    """The read of `_WITH_EVENTS` by record id or subject hash, in the driver's placeholder style."""
    mark = "%s" if dialect == "postgresql" else "?"
    columns = ", ".join(f"r.{c.name}" for c in _RECORD_COLUMNS)
    return (
        f"SELECT {columns}, e.time, e.type, e.actor FROM consent_records r "  # noqa: S608 - constant names only
        f"LEFT OUTER JOIN consent_events e ON e.record_id = r.record_id "
        f"WHERE r.{key} = {mark} ORDER BY r.seq DESC, e.seq"
    )


def _stamp(when: datetime) -> str:
    """Fixed-width UTC text, so stored times sort as strings."""
    return utc(when).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def open_engine(db: str | Path | Engine) -> tuple[Engine, bool]:
    """The engine to use and whether the store owns it (and disposes of it on close).

    An Engine is used as given (the node makes it); a Path is an SQLite file, a str a database URL
    (`postgresql://` gets the psycopg 3 driver). SQLite runs in WAL mode with a busy timeout, as the node's.
    """
    if isinstance(db, Engine):
        return db, False
    if isinstance(db, str) and "://" not in db:
        raise ConsentError(f"{db!r} is not a database URL (sqlite:///PATH, postgresql://...); give a file as a Path")
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True), True
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    except (ArgumentError, ImportError) as exc:
        raise ConsentError(f"the consent store URL is not usable ({type(exc).__name__})") from None

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine, True


def where(engine: Engine) -> str:
    """The database's URL as it may be shown: never its password."""
    return engine.url.render_as_string(hide_password=True)


def _sqlite_file_missing(engine: Engine) -> bool:
    """An SQLite file that is not there: opening it would leave an empty file behind."""
    name = engine.url.database
    return engine.dialect.name == "sqlite" and name not in (None, "", ":memory:") and not Path(str(name)).exists()


def require_schema(engine: Engine) -> None:
    """Refuse a database without the consent tables, or at another revision, naming the command that fixes it."""
    fix = f"run `kiungo db upgrade --store consent --url {where(engine)}`"
    if _sqlite_file_missing(engine):
        raise StoreNotMigrated(f"{where(engine)} has no consent tables: {fix}")
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if not {t.name for t in metadata.sorted_tables} <= tables:
            raise StoreNotMigrated(f"{where(engine)} has no consent tables: {fix}")
        found = (
            conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()  # noqa: S608 - a constant
            if VERSION_TABLE in tables
            else []
        )
    if found != [SCHEMA_REVISION]:
        at = ", ".join(found) or "no recorded revision"
        raise StoreNotMigrated(
            f"the consent tables in {where(engine)} are at {at}, this Kiungo needs {SCHEMA_REVISION}: {fix}"
        )


def _insert_missing(conn: Connection, table: Table, values: dict[str, Any]) -> None:
    """INSERT unless the key is there: replicas opening a new store at once both succeed."""
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())


class ConsentStore:
    """Consent records in an SQLite file or a PostgreSQL database.

    Thread-safe: writes take a connection from the engine's pool, reads share one kept connection.
    """

    def __init__(self, db: str | Path | Engine, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
            raise ConsentError(f"the consent store needs a secret of at least {MIN_SECRET} bytes")
        self._secret = secret
        self.engine, self._owned = open_engine(db)
        dialect = self.engine.dialect.name
        self._sql = {key: _read_sql(dialect, key) for key in ("record_id", "subject_hash")}
        self._reader: Any = None  # a DBAPI connection kept for the reads
        self._reader_lock = threading.Lock()
        try:
            require_schema(self.engine)
            self._check_secret()
        except SQLAlchemyError as exc:
            self._dispose()
            raise ConsentError(f"cannot open the consent store {where(self.engine)} ({type(exc).__name__})") from None
        except ConsentError:
            self._dispose()
            raise

    def _check_secret(self) -> None:
        """Refuse a secret other than the store's first: every lookup by subject would silently find nothing."""
        probe = hmac.new(self._secret, _SECRET_PROBE, hashlib.sha256).hexdigest()
        with self.engine.begin() as conn:
            _insert_missing(conn, meta_table, {"key": "secret_check", "value": probe})
            _insert_missing(conn, meta_table, {"key": "schema_version", "value": SCHEMA_VERSION})
            stored = conn.execute(select(meta_table.c.value).where(meta_table.c.key == "secret_check")).scalar_one()
        if not hmac.compare_digest(stored, probe):
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
        row = {
            "record_id": record.record_id,
            "schema_version": record.schema_version,
            "subject_hash": record.subject_hash,
            "subject_hint": record.subject_hint,
            "controller": record.controller,
            "recipients": json.dumps(record.recipients),
            "purposes": json.dumps(record.purposes),
            "data_categories": json.dumps(record.data_categories),
            "lawful_basis": record.lawful_basis,
            "privacy_notice": record.privacy_notice,
            "language": record.language,
            "valid_from": _stamp(record.valid_from),
            "valid_until": _stamp(record.valid_until),
        }
        with self.engine.begin() as conn:
            conn.execute(records_table.insert().values(**row))
            conn.execute(
                events_table.insert().values(
                    record_id=record.record_id, time=_stamp(now), type=EVENT_GIVEN, actor=actor
                )
            )
        return record

    def withdraw(self, record_id: str, *, actor: str = "", when: datetime | None = None) -> ConsentRecord:
        """Append a `withdrawn` event; withdrawing again changes nothing (the first withdrawal stands).

        The record is locked first (SQLite: the write lock; PostgreSQL: its row), so two replicas
        withdrawing it at once append one withdrawal, not two.
        """
        actor = check_text("actor", actor, MAX_ACTOR)
        at = check_time("when", when) if when is not None else datetime.now(UTC)
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                lock = select(records_table.c.seq).where(records_table.c.record_id == record_id).with_for_update()
                conn.execute(lock).first()
            record = self._load(conn, record_id)
            if record is None:
                raise ConsentNotFound(f"no consent record {record_id!r}")
            if record.withdrawn_at is not None:
                return record
            if at < record.given_at:
                raise InvalidConsent("when: a withdrawal cannot precede the consent it withdraws", field="when")
            conn.execute(
                events_table.insert().values(record_id=record_id, time=_stamp(at), type=EVENT_WITHDRAWN, actor=actor)
            )
            withdrawn = self._load(conn, record_id)
        assert withdrawn is not None  # written in this very transaction
        return withdrawn

    # --- reading ---------------------------------------------------------------------------------------

    def get(self, record_id: str) -> ConsentRecord:
        """The record with this id, with its full history; ConsentNotFound otherwise."""
        records = self._read("record_id", record_id)
        if not records:
            raise ConsentNotFound(f"no consent record {record_id!r}")
        return records[0]

    def list_by_subject(self, subject_id: str) -> list[ConsentRecord]:
        """Every record of this subject, newest first (hashing the id now: the store never saw it)."""
        return self._read("subject_hash", self.subject_hash(subject_id))

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
            found = self._read("record_id", reference)
            record = found[0] if found else None
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

        records = self._read("subject_hash", subject)
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
        """Release the database (an engine the store was given is left to its owner)."""
        with self._reader_lock:
            self._drop_reader()
        self._dispose()

    def _dispose(self) -> None:
        if self._owned:
            self.engine.dispose()

    def __enter__(self) -> ConsentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------------------

    def _load(self, conn: Connection, record_id: str) -> ConsentRecord | None:
        rows = conn.execute(_WITH_EVENTS.where(records_table.c.record_id == record_id)).all()
        records = _hydrate(rows)
        return records[0] if records else None

    def _read(self, key: str, value: str) -> list[ConsentRecord]:
        """Records by `key`, newest first, through the kept connection: one round trip, no SQL compiling.

        Each read sees every write committed before it (SQLite in WAL outside a transaction; PostgreSQL in
        autocommit, so READ COMMITTED per statement): a withdrawal by another replica counts at once. A
        connection the database dropped (a restart) is replaced once; a second failure is raised.
        """
        with self._reader_lock:
            for attempt in (1, 2):
                try:
                    if self._reader is None:
                        self._reader = self._open_reader()
                    cursor = self._reader.cursor()
                    try:
                        cursor.execute(self._sql[key], (value,))
                        rows = cursor.fetchall()
                    finally:
                        cursor.close()
                    return _hydrate(rows)
                except Exception:
                    self._drop_reader()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_reader(self) -> Any:
        raw = self.engine.raw_connection()
        if self.engine.dialect.name == "postgresql":
            raw.rollback()  # idle, so that autocommit may be switched on
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            raw.detach()  # it leaves the pool for good: autocommit must not leak to other users
        return raw

    def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):  # already failing or closing; nothing more to do
                reader.close()


def _hydrate(rows: Sequence[Sequence[Any]]) -> list[ConsentRecord]:
    """Records from rows of (record columns..., event time, type, actor), newest record first, events in order."""
    grouped: dict[str, tuple[Sequence[Any], list[ConsentEvent]]] = {}
    for row in rows:
        _, events = grouped.setdefault(row[0], (row, []))
        if row[13] is not None:
            events.append(ConsentEvent(_parse(row[13]), row[14], row[15]))
    return [_record(row, events) for row, events in grouped.values()]


def _record(row: Sequence[Any], events: list[ConsentEvent]) -> ConsentRecord:
    """A record from the columns of `_RECORD_COLUMNS`, in their order, and its events."""
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
