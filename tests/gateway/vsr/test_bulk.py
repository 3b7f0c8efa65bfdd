"""Bulk jobs against real SQLite files (and PostgreSQL when reachable), with plain async workers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.vsr.bulk import BulkJobs, JobStatus
from gateway.vsr.errors import JobError
from tests.gateway.exchangelog import conftest as exchangelog_fixtures
from tests.schemas import migrate

pytestmark = pytest.mark.anyio

# The exchange log's throw-away PostgreSQL database: skipped when the server is absent, failed in CI.
pg_url = exchangelog_fixtures.pg_url


class Probe:
    """A worker that records what it was given and how many calls overlapped; fails for chosen items."""

    def __init__(self, delay: float = 0.002, fail_every: int = 0) -> None:
        self.delay = delay
        self.fail_every = fail_every
        self.active = 0
        self.peak = 0
        self.seen: list[int] = []

    async def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        n = item["n"]
        self.seen.append(n)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        if self.fail_every and n % self.fail_every == 0:
            raise ValueError(f"no answer for {n}")
        return {"n": n, "square": n * n}


def people(count: int) -> list[dict[str, Any]]:
    return [{"n": i, "national_id": f"ZZ{i:09d}"} for i in range(count)]


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    async def loop() -> None:
        while not condition():
            await asyncio.sleep(0.002)

    await asyncio.wait_for(loop(), timeout)


def all_results(jobs: BulkJobs, job_id: str) -> list[dict[str, Any]]:
    return [r.as_dict() for r in jobs.results(job_id, limit=100_000)]


def assert_complete(jobs: BulkJobs, job_id: str, total: int) -> list[dict[str, Any]]:
    """Every index has exactly one result, and the cursor numbers are dense from 1."""
    results = all_results(jobs, job_id)
    assert sorted(r["index"] for r in results) == list(range(total))
    assert [r["seq"] for r in results] == list(range(1, total + 1))
    return results


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bulk.sqlite'}"


@pytest.fixture
def jobs(db_url: str) -> Iterator[BulkJobs]:
    store = BulkJobs(migrate(db_url, "jobs"))
    yield store
    store.close()


async def check_basic_run(jobs: BulkJobs) -> None:
    created = jobs.create("eligibility", {"programme": "old-age-grant"}, people(200))
    assert (created.state, created.total, created.done, created.failed) == ("queued", 200, 0, 0)
    assert jobs.unfinished() == [created.job_id]
    probe = Probe()
    progress: list[JobStatus] = []

    final = await jobs.run(created.job_id, probe, concurrency=5, on_progress=progress.append)

    assert (final.state, final.total, final.done, final.failed) == ("done", 200, 200, 0)
    assert final.params == {"programme": "old-age-grant"}
    assert probe.peak == 5
    assert sorted(probe.seen) == list(range(200))
    assert [p.done for p in progress] == list(range(1, 201))
    results = assert_complete(jobs, created.job_id, 200)
    assert all(r["result"] == {"n": r["index"], "square": r["index"] ** 2} for r in results)
    assert jobs.status(created.job_id) == final
    assert jobs.unfinished() == []
    assert [s.job_id for s in jobs.list()] == [created.job_id]


async def test_run_bounded_concurrency_every_item_once(jobs: BulkJobs) -> None:
    await check_basic_run(jobs)


async def test_run_on_postgresql(pg_url: str) -> None:
    store = BulkJobs(migrate(pg_url, "jobs"))
    try:
        await check_basic_run(store)
        await check_resume(store, pg_url)
    finally:
        store.close()


async def test_worker_errors_are_results_and_the_job_still_finishes(jobs: BulkJobs) -> None:
    created = jobs.create("eligibility", {}, people(50))
    final = await jobs.run(created.job_id, Probe(delay=0, fail_every=7), concurrency=4)

    failing = [n for n in range(50) if n % 7 == 0]
    assert (final.state, final.done, final.failed) == ("done", 50, len(failing))
    by_index = {r["index"]: r["result"] for r in assert_complete(jobs, created.job_id, 50)}
    for n in failing:
        assert by_index[n] == {"error": {"type": "ValueError", "message": f"no answer for {n}"}}
    assert by_index[1] == {"n": 1, "square": 1}


async def test_worker_returning_a_non_object_is_an_error_result(jobs: BulkJobs) -> None:
    async def wrong(item: dict[str, Any]) -> Any:
        return [item["n"]]

    created = jobs.create("eligibility", {}, people(3))
    final = await jobs.run(created.job_id, wrong)
    assert (final.state, final.failed) == ("done", 3)
    assert jobs.results(created.job_id)[0].result["error"]["type"] == "TypeError"


async def test_a_failing_progress_callback_fails_the_job_and_a_rerun_resumes(jobs: BulkJobs) -> None:
    created = jobs.create("eligibility", {}, people(10))

    def breaks_at_three(status: JobStatus) -> None:
        if status.done == 3:
            raise RuntimeError("progress display broke")

    with pytest.raises(RuntimeError, match="progress display broke"):
        await jobs.run(created.job_id, Probe(delay=0), concurrency=1, on_progress=breaks_at_three)
    assert (jobs.status(created.job_id).state, jobs.status(created.job_id).done) == ("failed", 3)
    probe = Probe(delay=0)
    assert (await jobs.run(created.job_id, probe)).state == "done"
    assert sorted(probe.seen) == list(range(3, 10))
    assert_complete(jobs, created.job_id, 10)


async def check_resume(jobs: BulkJobs, url: str) -> None:
    """Interrupt a run (task cancelled, store closed), reopen the database, and finish the job."""
    total, first, concurrency = 60, 20, 4
    created = jobs.create("emergency-top-up", {"district": "D7"}, people(total))
    blocked = asyncio.Event()  # never set: items after the first `first` hang until the run is cancelled
    started: list[int] = []

    async def stalls(item: dict[str, Any]) -> dict[str, Any]:
        started.append(item["n"])
        if len(started) > first:
            await blocked.wait()
        return {"n": item["n"]}

    task = asyncio.create_task(jobs.run(created.job_id, stalls, concurrency=concurrency))
    await wait_for(lambda: len(started) == first + concurrency)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    interrupted = jobs.status(created.job_id)
    assert (interrupted.state, interrupted.done) == ("running", first)
    completed = {r["index"] for r in all_results(jobs, created.job_id)}
    assert len(completed) == first
    jobs.close()

    reopened = BulkJobs(migrate(url, "jobs"))
    try:
        assert created.job_id in reopened.unfinished()
        probe = Probe(delay=0)
        final = await reopened.run(created.job_id, probe, concurrency=concurrency)
        assert (final.state, final.done, final.failed) == ("done", total, 0)
        assert not completed & set(probe.seen)
        assert sorted(probe.seen) == sorted(set(range(total)) - completed)
        assert_complete(reopened, created.job_id, total)
        assert created.job_id not in reopened.unfinished()
    finally:
        reopened.close()


async def test_resume_after_interruption_in_a_new_process(jobs: BulkJobs, db_url: str) -> None:
    await check_resume(jobs, db_url)


async def test_cancel_stops_taking_items_and_keeps_those_in_flight(jobs: BulkJobs) -> None:
    created = jobs.create("eligibility", {}, people(100))
    release = asyncio.Event()
    started: list[int] = []

    async def slow_after_ten(item: dict[str, Any]) -> dict[str, Any]:
        started.append(item["n"])
        if item["n"] >= 10:
            await release.wait()
        return {"n": item["n"]}

    task = asyncio.create_task(jobs.run(created.job_id, slow_after_ten, concurrency=4))
    await wait_for(lambda: len(started) == 14)  # ten done, four in flight
    assert jobs.cancel(created.job_id).state == "cancelled"
    release.set()
    final = await task

    assert len(started) == 14
    assert (final.state, final.done, final.failed) == ("cancelled", 14, 0)
    assert sorted(r["index"] for r in all_results(jobs, created.job_id)) == sorted(started)
    assert jobs.unfinished() == []
    assert (await jobs.run(created.job_id, slow_after_ten)).done == 14  # a cancelled job is not run again
    assert len(started) == 14


async def test_cancel_before_run(jobs: BulkJobs) -> None:
    created = jobs.create("eligibility", {}, people(5))
    jobs.cancel(created.job_id)
    probe = Probe()
    assert (await jobs.run(created.job_id, probe)).state == "cancelled"
    assert probe.seen == []


async def test_stream_follows_the_run_and_resumes_from_a_cursor(jobs: BulkJobs) -> None:
    total = 50
    created = jobs.create("eligibility", {}, people(total))
    assert [line async for line in jobs.stream(created.job_id, follow=False)] == []  # queued: nothing yet

    task = asyncio.create_task(jobs.run(created.job_id, Probe(delay=0.003), concurrency=4))
    raw = [line async for line in jobs.stream(created.job_id, poll=0.01)]
    await task

    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in raw)
    assert raw[0].startswith(b'{"seq":1,"index":')
    lines = [json.loads(line) for line in raw]
    *results, end = lines
    assert [r["seq"] for r in results] == list(range(1, total + 1))
    assert sorted(r["index"] for r in results) == list(range(total))
    assert end["type"] == "end"
    assert (end["status"]["state"], end["status"]["done"], end["status"]["job_id"]) == ("done", total, created.job_id)

    resumed = [json.loads(line) async for line in jobs.stream(created.job_id, after=20, follow=False)]
    assert resumed[:-1] == results[20:]
    assert resumed[-1]["type"] == "end"
    assert [json.loads(line) async for line in jobs.stream(created.job_id, after=total)] == [end]

    page1 = jobs.results(created.job_id, after=0, limit=20)
    page2 = jobs.results(created.job_id, after=page1[-1].seq, limit=20)
    page3 = jobs.results(created.job_id, after=page2[-1].seq, limit=20)
    assert [r.as_dict() for r in page1 + page2 + page3] == results
    assert [len(page1), len(page2), len(page3)] == [20, 20, 10]
    assert jobs.results(created.job_id, after=total) == []


async def test_errors(jobs: BulkJobs, db_url: str) -> None:
    for call in (jobs.status, jobs.cancel, jobs.results):
        with pytest.raises(JobError, match=r"^no bulk job 'nope'$"):
            call("nope")
    with pytest.raises(JobError, match=r"^no bulk job 'nope'$"):
        await jobs.run("nope", Probe())
    with pytest.raises(JobError, match=r"^no bulk job 'nope'$"):
        await anext(jobs.stream("nope"))
    with pytest.raises(JobError, match=r"^bulk job has no items$"):
        jobs.create("eligibility", {}, [])
    with pytest.raises(JobError, match=r"^bulk job item 1 is not a JSON object$"):
        jobs.create("eligibility", {}, [{"n": 0}, [1], {"n": 2}])  # type: ignore[list-item]
    with pytest.raises(JobError, match=r"^bulk job item 0 is not valid JSON$"):
        jobs.create("eligibility", {}, [{"n": float("nan")}])
    small = BulkJobs(migrate(db_url, "jobs"), max_items=3)
    try:
        with pytest.raises(JobError, match=r"^bulk job has 4 items, more than the maximum of 3$"):
            small.create("eligibility", {}, people(4))
    finally:
        small.close()
    assert jobs.list() == []  # nothing half-created

    created = jobs.create("eligibility", {}, people(3))
    for bad in (-1, 4):
        with pytest.raises(JobError, match=rf"^invalid cursor {bad} for bulk job '{created.job_id}' \(0 to 3\)$"):
            jobs.results(created.job_id, after=bad)
        with pytest.raises(JobError, match=r"^invalid cursor"):
            await anext(jobs.stream(created.job_id, after=bad))

    release = asyncio.Event()

    async def waits(item: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {}

    first = asyncio.create_task(jobs.run(created.job_id, waits))
    await asyncio.sleep(0.01)
    with pytest.raises(JobError, match=rf"^bulk job {created.job_id} is already running in this process$"):
        await jobs.run(created.job_id, waits)
    release.set()
    assert (await first).state == "done"


def test_create_many_items_is_one_quick_transaction(jobs: BulkJobs) -> None:
    items = people(100_000)
    started = time.perf_counter()
    created = jobs.create("eligibility", {}, items)
    assert time.perf_counter() - started < 10  # about 1 s here
    assert jobs.status(created.job_id).total == 100_000
    assert jobs.results(created.job_id) == []
