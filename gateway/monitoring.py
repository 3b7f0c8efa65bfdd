"""Operational monitoring: one record per exchange with X-Road's fields, kept in SQLite.

These records are for operators (volumes, latency, failures), not for auditing who saw whose data:
that is the exchange log's job. They hold no personal identifier: the REST path is kept as the
matched endpoint template (`/v1/taxpayers/{tin}`) or with identifier-like segments masked.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


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
_INTEGER = ("_ts", "_size", "status_code", "succeeded")
_DDL = f"""
CREATE TABLE IF NOT EXISTS operational_record (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {'INTEGER' if c.endswith(_INTEGER) else 'TEXT'}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS opmon_time ON operational_record(request_in_ts);
"""


class OperationalMonitor:
    """Append records as exchanges end; query them for the operator API."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_DDL)
        self._lock = threading.Lock()
        marks = ", ".join("?" * len(_COLUMNS))
        self._insert = f"INSERT INTO operational_record ({', '.join(_COLUMNS)}) VALUES ({marks})"  # noqa: S608

    def add(self, record: OperationalRecord) -> None:
        values = [getattr(record, c) for c in _COLUMNS]
        with self._lock, self._conn:
            self._conn.execute(self._insert, values)

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
        where = ["seq > ?"]
        args: list[Any] = [after_seq]
        for clause, value in (
            ("request_in_ts >= ?", since),
            ("request_in_ts < ?", until),
            ("client_id = ?", client),
            ("service_id = ?", service),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        # only our own column names and fixed clauses are formatted in; every value is a parameter
        columns = ", ".join(_COLUMNS)
        sql = f"SELECT seq, {columns} FROM operational_record WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
        out = []
        for row in rows:
            item = dict(zip(["seq", *_COLUMNS], row, strict=True))
            item["succeeded"] = bool(item["succeeded"])
            out.append(item)
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()
