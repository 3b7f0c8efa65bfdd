"""Bulk eligibility jobs: many people decided at once, persisted so that an interruption loses nothing.

A job is its submitted items plus one stored result per item. Each result is committed as soon as its
worker returns, with the next completion sequence number (`seq`, dense from 1 per job); that number is
the cursor clients read on from, so a dropped connection or a restarted process costs nothing already
done. Running a job again only hands the worker the items that have no result yet.

Worker calls are bounded by a fixed pool of tasks that pull items from the database page by page, so a
million-item job keeps a page in memory, not the whole list. Items and results carry personal data:
nothing here logs them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)

from gateway.database import make_engine
from gateway.migrations.errors import MigrationError
from gateway.migrations.runner import require_current
from gateway.migrations.stores import STORES
from gateway.vsr.errors import JobError

Worker = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
CANCELLED: Final = "cancelled"
FAILED: Final = "failed"
UNFINISHED: Final = (QUEUED, RUNNING)

_INSERT_CHUNK = 10_000  # rows per executemany: bounds the parameter lists built for a huge job
_PAGE = 500  # pending items read per query while running

metadata = MetaData()

jobs_table = Table(
    "vsr_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

items_table = Table(
    "vsr_job_items",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("item", Text, nullable=False),
    Column("seq", Integer, nullable=True),
    Column("result", Text, nullable=True),
    # Unique: a second runner of the same job (another process) fails loudly instead of reusing a seq.
    Index("ix_vsr_job_items_seq", "job_id", "seq", unique=True),
    sqlite_with_rowid=False,
)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Where a job stands; `done` counts items with a result, `failed` those of them whose worker raised."""

    job_id: str
    kind: str
    params: dict[str, Any]
    state: str
    total: int
    done: int
    failed: int
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "params": self.params,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class JobResult:
    """One item's outcome; `seq` is the read cursor, `index` maps it back to the client's list."""

    seq: int
    index: int
    result: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "index": self.index, "result": self.result}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ndjson(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


def _error_result(exc: BaseException) -> dict[str, Any]:
    return {"error": {"type": type(exc).__name__, "message": str(exc)}}


class _Run:
    """One `run` in progress: its connection, stop signal (set by `cancel`) and the counters progress reports."""

    def __init__(self, conn: Connection, status: JobStatus, next_seq: int) -> None:
        self.conn = conn
        self.status = status
        self.next_seq = next_seq
        self.stop = asyncio.Event()


def _hot_sql(dialect: str) -> dict[str, str]:
    """The per-result statements; only the driver's placeholder is interpolated, values are parameters."""
    p = "%s" if dialect == "postgresql" else "?"
    return {
        "store": f"UPDATE vsr_job_items SET seq = {p}, result = {p} WHERE job_id = {p} AND idx = {p} AND seq IS NULL",  # noqa: S608
        "count": f"UPDATE vsr_jobs SET done = done + 1, failed = failed + {p}, updated_at = {p} WHERE id = {p}",  # noqa: S608
    }


class BulkJobs:
    """Bulk jobs in SQLite or PostgreSQL; one process runs a given job at a time (guarded in-process)."""

    def __init__(self, url: str, *, max_items: int = 1_000_000) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self.engine = make_engine(url)
        try:
            require_current(self.engine, STORES["jobs"])
        except MigrationError as exc:
            self.engine.dispose()
            raise JobError(f"bulk jobs: {exc}") from None
        self._sql = _hot_sql(self.engine.dialect.name)
        self._runs: dict[str, _Run] = {}

    def close(self) -> None:
        self.engine.dispose()

    # -- creating and reading ----------------------------------------------------------------------

    def create(self, kind: str, params: dict[str, Any], items: Sequence[dict[str, Any]]) -> JobStatus:
        """Store a job and all its items in one transaction, so a job never exists half-submitted."""
        if not kind or len(kind) > 64:
            raise JobError("bulk job kind must be 1 to 64 characters")
        if len(items) == 0:
            raise JobError("bulk job has no items")
        if len(items) > self.max_items:
            raise JobError(f"bulk job has {len(items)} items, more than the maximum of {self.max_items}")
        try:
            params_json = json.dumps(params, allow_nan=False)
        except (TypeError, ValueError):
            raise JobError("bulk job params are not JSON") from None
        job_id = str(uuid.uuid4())
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                jobs_table.insert().values(
                    id=job_id,
                    kind=kind,
                    params=params_json,
                    state=QUEUED,
                    total=len(items),
                    done=0,
                    failed=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            rows: list[dict[str, Any]] = []
            for idx, item in enumerate(items):
                rows.append({"job_id": job_id, "idx": idx, "item": _item_json(idx, item)})
                if len(rows) == _INSERT_CHUNK:
                    conn.execute(items_table.insert(), rows)
                    rows = []
            if rows:
                conn.execute(items_table.insert(), rows)
        return JobStatus(job_id, kind, params, QUEUED, len(items), 0, 0, now, now)

    def status(self, job_id: str) -> JobStatus:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).first()
        if row is None:
            raise JobError(f"no bulk job {job_id!r}")
        return _status(row)

    def list(self, limit: int = 50) -> builtins.list[JobStatus]:
        """Newest first."""
        query = select(jobs_table).order_by(jobs_table.c.created_at.desc(), jobs_table.c.id).limit(max(limit, 0))
        with self.engine.connect() as conn:
            return [_status(row) for row in conn.execute(query)]

    def unfinished(self) -> builtins.list[str]:
        """Jobs to resume after a restart: queued, or running when the last process stopped."""
        query = select(jobs_table.c.id).where(jobs_table.c.state.in_(UNFINISHED)).order_by(jobs_table.c.created_at)
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def results(self, job_id: str, *, after: int = 0, limit: int = 1000) -> builtins.list[JobResult]:
        """Results in completion order after the cursor `after` (the last `seq` the client has)."""
        status = self.status(job_id)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= status.total:
            raise JobError(f"invalid cursor {after!r} for bulk job {job_id!r} (0 to {status.total})")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise JobError(f"invalid limit {limit!r}: must be a positive integer")
        c = items_table.c
        query = select(c.seq, c.idx, c.result).where(c.job_id == job_id, c.seq > after).order_by(c.seq).limit(limit)
        with self.engine.connect() as conn:
            return [JobResult(row.seq, row.idx, json.loads(row.result)) for row in conn.execute(query)]

    async def stream(
        self, job_id: str, *, after: int = 0, follow: bool = True, poll: float = 0.2
    ) -> AsyncIterator[bytes]:
        """NDJSON result lines from the cursor on; the end line comes only once nothing more can arrive.

        With `follow` the stream waits (polling the database, so a runner in another process counts
        too) until the job is finished; without it, it stops at what is stored now, and ends with the
        end line only if the job is already finished.
        """
        cursor = after
        self.results(job_id, after=cursor, limit=1)  # unknown job or bad cursor: fail before the first line
        while True:
            finished = self.status(job_id).state not in UNFINISHED
            # Read after the state: results committed before the job finished are all seen below.
            while batch := self.results(job_id, after=cursor, limit=1000):
                for res in batch:
                    yield _ndjson(res.as_dict())
                cursor = batch[-1].seq
            if finished:
                yield _ndjson({"type": "end", "status": self.status(job_id).as_dict()})
                return
            if not follow:
                return
            await asyncio.sleep(poll)

    # -- running -----------------------------------------------------------------------------------

    async def run(
        self,
        job_id: str,
        worker: Worker,
        *,
        concurrency: int = 8,
        on_progress: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Give every item without a result to `worker`, at most `concurrency` at once, storing each result.

        A done or cancelled job is returned as it is; a failed one (storage or callback error) resumes.
        If this coroutine is cancelled, the items in flight are abandoned (they get no result, so the next
        run does them) and the job stays "running", listed by `unfinished`.
        """
        if concurrency < 1:
            raise JobError("concurrency must be at least 1")
        if job_id in self._runs:
            raise JobError(f"bulk job {job_id} is already running in this process")
        status = self.status(job_id)
        if status.state in (DONE, CANCELLED):
            return status
        conn = self.engine.connect()
        try:
            with conn.begin():
                conn.execute(
                    jobs_table.update()
                    .where(jobs_table.c.id == job_id, jobs_table.c.state.not_in((DONE, CANCELLED)))
                    .values(state=RUNNING, updated_at=_now())
                )
                row = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).one()
                last_seq = conn.execute(
                    select(func.max(items_table.c.seq)).where(items_table.c.job_id == job_id)
                ).scalar()
            active = self._runs[job_id] = _Run(conn, _status(row), (last_seq or 0) + 1)
            try:
                if active.status.state != RUNNING:  # cancelled in the meantime, by another process
                    return active.status
                await self._pool(job_id, worker, active, concurrency, on_progress)
            except Exception:
                self._mark_failed(job_id)
                raise
            finally:
                del self._runs[job_id]
            if not active.stop.is_set():
                with conn.begin():
                    conn.execute(
                        jobs_table.update()
                        .where(
                            jobs_table.c.id == job_id,
                            jobs_table.c.state == RUNNING,
                            jobs_table.c.done == jobs_table.c.total,
                        )
                        .values(state=DONE, updated_at=_now())
                    )
        finally:
            conn.close()
        return self.status(job_id)

    def cancel(self, job_id: str) -> JobStatus:
        """Stop taking new items; a runner's items in flight still finish and are stored."""
        self.status(job_id)
        with self.engine.begin() as conn:
            conn.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id, jobs_table.c.state.in_(UNFINISHED))
                .values(state=CANCELLED, updated_at=_now())
            )
        running = self._runs.get(job_id)
        if running is not None:
            running.stop.set()
        return self.status(job_id)

    async def _pool(
        self,
        job_id: str,
        worker: Worker,
        active: _Run,
        concurrency: int,
        on_progress: Callable[[JobStatus], None] | None,
    ) -> None:
        """A fixed pool of tasks sharing one pending-items iterator; any failure or cancellation stops all."""
        pending = self._pending(job_id, active)
        size = max(1, min(concurrency, active.status.total - active.status.done))
        tasks = [asyncio.create_task(self._drain(job_id, pending, worker, active, on_progress)) for _ in range(size)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _mark_failed(self, job_id: str) -> None:
        """Best effort after an error that is not an item's (storage, progress callback): run again to resume."""
        with contextlib.suppress(Exception), self.engine.begin() as conn:  # the original error is the one to report
            conn.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id, jobs_table.c.state == RUNNING)
                .values(state=FAILED, updated_at=_now())
            )

    def _pending(self, job_id: str, active: _Run) -> Iterator[tuple[int, str]]:
        """Items without a result, a page at a time; the job's state is re-read per page (cancel elsewhere).

        A plain generator shared by all pool tasks: it never awaits, so on one event loop no two tasks
        can be inside it at once, and each item is handed out exactly once.
        """
        c = items_table.c
        conn = active.conn
        last = -1
        while not active.stop.is_set():
            with conn.begin():
                state = conn.execute(select(jobs_table.c.state).where(jobs_table.c.id == job_id)).scalar()
                page = conn.execute(
                    select(c.idx, c.item)
                    .where(c.job_id == job_id, c.idx > last, c.seq.is_(None))
                    .order_by(c.idx)
                    .limit(_PAGE)
                ).all()
            if state != RUNNING:
                active.stop.set()
                return
            for row in page:
                yield row.idx, row.item
            if len(page) < _PAGE:
                return
            last = page[-1].idx

    async def _drain(
        self,
        job_id: str,
        pending: Iterator[tuple[int, str]],
        worker: Worker,
        active: _Run,
        on_progress: Callable[[JobStatus], None] | None,
    ) -> None:
        """One pool task: take an item, await its worker, store the outcome; until none is left or stopped."""
        while not active.stop.is_set():
            taken = next(pending, None)
            if taken is None:
                return
            idx, item_json = taken
            try:
                result = await worker(json.loads(item_json))
                if not isinstance(result, dict):
                    raise TypeError(f"worker returned {type(result).__name__}, not a JSON object")
                result_json = json.dumps(result, allow_nan=False)
                error = False
            except Exception as exc:  # the item's outcome, never the job's: it is stored and counted
                result_json = json.dumps(_error_result(exc))
                error = True
            self._store(job_id, idx, result_json, error, active)
            if on_progress is not None:
                on_progress(active.status)

    def _store(self, job_id: str, idx: int, result_json: str, error: bool, active: _Run) -> None:
        """One short transaction per result (no await inside: a cancelled run never leaves half of one).

        Driver-level statements on the run's own connection: Core's per-statement overhead was most of
        the cost of a result.
        """
        now = _now()
        conn = active.conn
        with conn.begin():
            stored = conn.exec_driver_sql(self._sql["store"], (active.next_seq, result_json, job_id, idx)).rowcount
            if stored != 1:  # already has a result: not ours to count
                return
            conn.exec_driver_sql(self._sql["count"], (int(error), now, job_id))
        active.next_seq += 1
        s = active.status
        active.status = JobStatus(
            s.job_id, s.kind, s.params, s.state, s.total, s.done + 1, s.failed + int(error), s.created_at, now
        )


def _item_json(idx: int, item: Any) -> str:
    if not isinstance(item, dict):
        raise JobError(f"bulk job item {idx} is not a JSON object")
    try:
        return json.dumps(item, allow_nan=False)
    except (TypeError, ValueError):
        raise JobError(f"bulk job item {idx} is not valid JSON") from None


def _status(row: Any) -> JobStatus:
    return JobStatus(
        job_id=row.id,
        kind=row.kind,
        params=json.loads(row.params),
        state=row.state,
        total=row.total,
        done=row.done,
        failed=row.failed,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
