"""Operational monitoring: one record per exchange with X-Road's fields, in SQLite or PostgreSQL.

These records are for operators (volumes, latency, failures), not for auditing who saw whose data:
that is the exchange log's job. They hold no personal identifier: the REST path is kept as the
matched endpoint template (`/v1/taxpayers/{tin}`) or with identifier-like segments masked.

A record is written once per exchange, on the hot path, so the insert skips SQLAlchemy: one prepared
driver-level INSERT on a connection the monitor keeps (on PostgreSQL in autocommit, one round trip).
Writing is best effort, as X-Road's monitoring buffer is: a record that cannot be written is counted in
`dropped` and logged (without its contents), and the exchange goes on; the exchange log is what fails
closed. Writes run on the gateway's event loop, so they are bounded as the log's are (`WriteGuard`): a
database that stops answering breaks the write after a few seconds, and while it cannot be reached
records are dropped at once instead of each waiting for a connection. The schema comes from migrations
(`kiungo db upgrade`); only the in-memory monitor migrates itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.pool import StaticPool

from gateway.database import make_engine
from gateway.exchangelog.log import WriteGuard
from gateway.migrations.runner import require_current, upgrade
from gateway.migrations.stores import STORES

_log = logging.getLogger("kiungo.monitoring")
#: Seconds a monitoring record may take to write: it is one small insert, and best effort.
MONITOR_WRITE_TIMEOUT = 1.0


@dataclass(slots=True)
class OperationalRecord:
    message_id: str
    request_id: str
    security_server_type: str  # "Client" (consumer side) or "Producer" (provider side), as X-Road says
    protocol: str  # "REST" or "SOAP"
    request_in_ts: int  # milliseconds since the epoch
    request_out_ts: int | None = None
    response_in_ts: int | None = None
    response_out_ts: int | None = None
    client_id: str | None = None
    service_id: str | None = None
    message_user_id: str | None = None
    message_issue: str | None = None
    message_protocol_version: str | None = None
    purpose: str | None = None
    rest_method: str | None = None
    rest_path: str | None = None
    request_size: int | None = None
    response_size: int | None = None
    status_code: int | None = None
    succeeded: bool = False
    fault_code: str | None = None
    fault_string: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = [f.name for f in fields(OperationalRecord)]
_REQUIRED = ("message_id", "request_id", "security_server_type", "protocol", "request_in_ts", "succeeded")


def _type(name: str) -> Any:
    if name.endswith(("_ts", "_size")):
        return BigInteger
    if name == "status_code":
        return Integer
    if name == "succeeded":
        return Boolean
    return Text


metadata = MetaData()

records_table = Table(
    "monitoring_record",
    metadata,
    # BIGSERIAL on PostgreSQL; on SQLite the rowid (INTEGER PRIMARY KEY), which is 64-bit anyway
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    *(Column(name, _type(name), nullable=name not in _REQUIRED) for name in _COLUMNS),
    Index("ix_monitoring_record_time", "request_in_ts"),
)


def insert_sql(dialect: str) -> str:
    """The hot-path INSERT in the driver's own placeholder style (values always travel as parameters)."""
    mark = "%s" if dialect == "postgresql" else "?"
    return f"INSERT INTO monitoring_record ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})"  # noqa: S608


class OperationalMonitor:
    """Append records as exchanges end; query them for the operator API. Thread-safe.

    `db` is an Engine (the node's, left open on close), a database URL, or None for a monitor in memory
    (gone with the process; migrated here, since nothing else can reach it).
    """

    def __init__(self, db: str | Engine | None) -> None:
        store = STORES["monitoring"]
        self._owned = not isinstance(db, Engine)
        if db is None:
            self.engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
            upgrade(self.engine, store)
        elif isinstance(db, str):
            self.engine = make_engine(db)
            try:
                require_current(
                    self.engine, store, fix=f"kiungo db upgrade --store monitoring --url {_where(self.engine)}"
                )
            except Exception:
                self.engine.dispose()
                raise
        else:
            self.engine = db
        # one connection in memory: reads must not interleave with the writer's statements
        self._shared = isinstance(self.engine.pool, StaticPool)
        self._dialect = self.engine.dialect.name
        self._insert = insert_sql(self._dialect)
        self._lock = threading.Lock()
        self._conn: Any = None  # the writer's DBAPI connection, kept between records
        self._guard = WriteGuard(MONITOR_WRITE_TIMEOUT)
        self.dropped = 0  # records that could not be written

    def add(self, record: OperationalRecord) -> None:
        """Write one record (one commit); a failure is retried once on a new connection, then dropped, at once
        while the database is unreachable."""
        values = [getattr(record, c) for c in _COLUMNS]
        with self._lock:
            if self._guard.wait() > 0:
                self._dropped("the database is unreachable")
                return
            for attempt in (1, 2):
                self._guard.begin()
                try:
                    self._write(values)
                    self._guard.reachable()
                    return
                except Exception as exc:  # a broken connection, a full disk, a database restart: all alike
                    self._drop_connection()
                    if self._guard.fired:
                        self._guard.unreachable()
                    if attempt == 2 or self._guard.wait() > 0:
                        self._dropped(type(exc).__name__)
                        return

    def _dropped(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:  # a warning, not a flood of them
            _log.warning("operational monitoring: %d records dropped so far (%s)", self.dropped, why)

    def _write(self, values: list[Any]) -> None:
        if self._conn is None:
            try:
                raw = self.engine.raw_connection()
            except Exception:
                self._guard.unreachable()
                raise
            with self._guard.guard(raw):
                if self._dialect == "postgresql":
                    raw.rollback()  # idle, so that autocommit may be switched on
                    raw.driver_connection.autocommit = True  # type: ignore[union-attr]
                    cursor = raw.cursor()
                    # no wait for the WAL flush: a server crash may lose the last moment's records, which
                    # best-effort monitoring accepts (the exchange log keeps synchronous commits)
                    cursor.execute("SET synchronous_commit = off")
                    cursor.close()
                    raw.detach()  # it leaves the pool for good: autocommit must not leak to other users
            self._conn = raw
        with self._guard.guard(self._conn):
            cursor = self._conn.cursor()
            try:
                cursor.execute(self._insert, values)
            finally:
                cursor.close()
            if self._dialect != "postgresql":
                self._conn.commit()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already failing; the original error is what matters
                conn.rollback()
                conn.close()

    def query(
        self,
        *,
        since: int | None = None,
        until: int | None = None,
        client: str | None = None,
        service: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Records oldest first; `after_seq` pages through them (each record carries its `seq`)."""
        t = records_table.c
        stmt = select(records_table).where(t.seq > after_seq)
        if since is not None:
            stmt = stmt.where(t.request_in_ts >= since)
        if until is not None:
            stmt = stmt.where(t.request_in_ts < until)
        if client is not None:
            stmt = stmt.where(t.client_id == client)
        if service is not None:
            stmt = stmt.where(t.service_id == service)
        stmt = stmt.order_by(t.seq).limit(limit)
        with self._lock if self._shared else contextlib.nullcontext(), self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [{**row, "succeeded": bool(row["succeeded"])} for row in rows]

    def close(self) -> None:
        """Release the writer's connection; dispose of the engine only if the monitor made it."""
        with self._lock:
            self._drop_connection()
            self._guard.stop()
            if self._owned:
                self.engine.dispose()


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
