"""What the console asks of the exchange log beyond `ExchangeLog`'s own API: newest-first search with an
outcome filter, aggregate counts for the charts, and the values seen (for the filters' choices).

Everything reads the records' canonical JSON through the same expressions as the log's indexes
(`store.field`); `outcome` and `exchange_id`, which have no index, are read the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, literal_column, or_, select

from gateway.exchangelog import ExchangeLog, LogRecord, SignedTreeHead, store

DAY_MS = 86_400_000
Outcome = Literal["ok", "refused"]


def _field(dialect: str, name: str) -> ColumnElement[Any]:
    """A record field out of the canonical JSON: indexed ones exactly as their index is spelled."""
    if name in store.INDEXED or name in store.UNINDEXED:
        return store.field(dialect, name)
    if not name.isidentifier():
        raise ValueError("not a record field")
    if dialect == "postgresql":
        return literal_column(f"(content::jsonb ->> '{name}')")
    return literal_column(f"json_extract(content, '$.{name}')")


@dataclass(frozen=True)
class ExchangeFilter:
    """Search criteria; every one given must match. `until_ms` is exclusive."""

    subject_hash: str | None = None
    client: str | None = None
    service: str | None = None
    purpose: str | None = None
    decision: str | None = None
    outcome: Outcome | None = None
    issue: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def search(log: ExchangeLog, f: ExchangeFilter, *, limit: int, offset: int = 0) -> list[tuple[int, LogRecord]]:
    """Matching records, newest first."""
    d = log.engine.dialect.name
    q = select(store.records.c.idx, store.records.c.content)
    if f.subject_hash is not None:
        among = select(store.subjects.c.idx).where(store.subjects.c.subject_hash == f.subject_hash)
        q = q.where(or_(_field(d, "subject_hash") == f.subject_hash, store.records.c.idx.in_(among)))
    for name in ("client", "service", "purpose", "decision", "issue"):
        value = getattr(f, name)
        if value is not None:
            q = q.where(_field(d, name) == value)
    if f.outcome == "ok":
        q = q.where(_field(d, "outcome") == "ok")
    elif f.outcome == "refused":
        q = q.where(_field(d, "outcome") != "ok")
    if f.since_ms is not None:
        q = q.where(_field(d, "request_in_ts") >= f.since_ms)
    if f.until_ms is not None:
        q = q.where(_field(d, "request_in_ts") < f.until_ms)
    q = q.order_by(store.records.c.idx.desc()).limit(limit).offset(offset)
    with log.engine.connect() as conn:
        return [(int(idx), LogRecord.from_canonical(content)) for idx, content in conn.execute(q)]


def record(log: ExchangeLog, index: int) -> LogRecord | None:
    with log.engine.connect() as conn:
        content = conn.execute(select(store.records.c.content).where(store.records.c.idx == index)).scalar_one_or_none()
    return None if content is None else LogRecord.from_canonical(content)


def latest_heads(log: ExchangeLog, limit: int) -> tuple[list[SignedTreeHead], int]:
    """The newest signed tree heads, newest first, and how many there are (a node signs one a minute:
    reading them all for a page would grow without bound)."""
    t = store.tree_heads.c
    q = select(t.size, t.root, t.timestamp, t.jws, t.tsa_token, t.tsa_error).order_by(t.id.desc()).limit(limit)
    with log.engine.connect() as conn:
        rows = conn.execute(q).all()
        count = int(conn.execute(select(func.count()).select_from(store.tree_heads)).scalar_one())
    heads = [SignedTreeHead(log.node, r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
    return heads, count


@dataclass(frozen=True)
class Counts:
    """Exchanges (distinct exchange ids) in a period, per day, purpose and client; refusals by reason."""

    per_day: list[tuple[str, int]]
    per_purpose: list[tuple[str, int]]
    per_client: list[tuple[str, int]]
    refusals: list[tuple[str, int]]
    total: int


def counts(log: ExchangeLog, since_ms: int, until_ms: int) -> Counts:
    d = log.engine.dialect.name
    ts = _field(d, "request_in_ts")
    exchange = func.count(func.distinct(_field(d, "exchange_id")))
    window = (ts >= since_ms, ts < until_ms)
    day: ColumnElement[Any] = literal_column(f"({store.field_sql(d, 'request_in_ts')}) / {DAY_MS}")
    reason = func.coalesce(_field(d, "decision"), _field(d, "outcome"))

    def grouped(key: ColumnElement[Any], *extra: ColumnElement[bool]) -> list[tuple[Any, int]]:
        q = select(key, exchange).select_from(store.records).where(*window, *extra).group_by(key)
        with log.engine.connect() as conn:
            return [(k, int(n)) for k, n in conn.execute(q)]

    by_day = {int(k): n for k, n in grouped(day)}
    first, last = since_ms // DAY_MS, (until_ms - 1) // DAY_MS
    per_day = [
        (datetime.fromtimestamp(k * 86_400, UTC).date().isoformat(), by_day.get(k, 0)) for k in range(first, last + 1)
    ]
    with log.engine.connect() as conn:
        total = int(conn.execute(select(exchange).select_from(store.records).where(*window)).scalar_one())

    def ranked(rows: Sequence[tuple[Any, int]]) -> list[tuple[str, int]]:
        return sorted(((str(k) if k is not None else "(none)", n) for k, n in rows), key=lambda r: (-r[1], r[0]))

    return Counts(
        per_day=per_day,
        per_purpose=ranked(grouped(_field(d, "purpose"))),
        per_client=ranked(grouped(_field(d, "client"))),
        refusals=ranked(grouped(reason, _field(d, "outcome") != "ok")),
        total=total,
    )


class KnownValues:
    """Clients, services, purposes and decisions the log holds: the filters' choices (cached a minute).

    Filters choose from these, so a value typed into the wrong box (a national ID as a purpose) is
    refused instead of being searched for and written to the console trail.
    """

    TTL = 60.0

    def __init__(self, log: ExchangeLog) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, list[str]]] | None = None

    def get(self) -> dict[str, list[str]]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.TTL:
                return self._cached[1]
        d = self.log.engine.dialect.name
        values: dict[str, list[str]] = {}
        with self.log.engine.connect() as conn:
            for name in ("client", "service", "purpose", "decision"):
                column = _field(d, name)
                q = select(column).select_from(store.records).where(column.is_not(None)).distinct().limit(1000)
                values[name] = sorted(str(v) for (v,) in conn.execute(q))
        with self._lock:
            self._cached = (time.monotonic(), values)
        return values
