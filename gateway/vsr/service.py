"""The registry as the gateway hosts it: built from settings, started and stopped with the node.

Bulk jobs run in background tasks on the node's event loop; a job left unfinished by a stop or a
crash is resumed when the node starts again (items already decided are not asked again).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

import matching
from gateway.settings import VsrSettings
from gateway.vsr import crosscheck, oversight
from gateway.vsr.bulk import UNFINISHED, BulkJobs, JobStatus, Worker
from gateway.vsr.eligibility import RuleBook
from gateway.vsr.errors import IdentityError, JobError, QueryError, RulesError, SourceFailed, VsrError
from gateway.vsr.identity import MatchPolicy
from gateway.vsr.registry import VirtualRegistry, sources_for
from gateway.vsr.sources import BatchedSources, Sources, SourceServices
from gateway.xroadclient import CallContext, XRoadClient

BULK_KIND = "eligibility"
CROSSCHECK_KIND = "crosscheck"
OVERSIGHT_KIND = "oversight"
BULK_SOURCE_TIMEOUT = 120.0  # seconds a bulk job's question may wait for its batch or its turn, and be answered
REPORTS_KEPT = 3  # finished cross-check reports kept in memory for paging
BATCHES_IN_FLIGHT = 8  # batches' worth of people a bulk job keeps in progress (measured: 2 -> 118/s, 8 -> 288/s)
DISTRICT_PAGE = 1000


class VsrService:
    def __init__(
        self,
        settings: VsrSettings,
        data_dir: Path,
        transport: httpx.AsyncBaseTransport | None,
        *,
        jobs_url: str | None = None,
    ) -> None:
        self.settings = settings
        try:
            token = settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise VsrError(f"vsr.token_file: {exc.strerror}") from None
        self.rules = RuleBook.load(settings.rules)
        model = None
        if settings.model is not None:
            try:
                model = matching.TrainedModel.load(settings.model)
            except matching.MatchingError as exc:
                raise IdentityError(f"vsr.model: {exc}") from None
        self.client = XRoadClient(
            settings.client,
            token,
            base_url=settings.gateway_url or "http://gateway.local",
            transport=None if settings.gateway_url else transport,
            timeout=settings.source_timeout + 1,
            failure=SourceFailed,
        )
        src = settings.sources
        self.sources = Sources(
            self.client, SourceServices(src.civil_registry, src.tax, src.social_security, src.programmes)
        )
        self.registry = VirtualRegistry(
            self.sources,
            self.rules,
            model,
            registry_size=settings.registry_size,
            source_timeout=settings.source_timeout,
            as_of=dt.date.fromisoformat(settings.as_of) if settings.as_of else None,
            policy=MatchPolicy(threshold=settings.match_threshold, margin=settings.match_margin),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        self.jobs = BulkJobs(
            jobs_url or settings.jobs_url or f"sqlite:///{data_dir / 'vsr-jobs.sqlite'}",
            max_items=settings.bulk_max_items,
        )
        self._tasks: dict[str, asyncio.Task[JobStatus]] = {}
        self._reports: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        """Resume what a stop or a crash interrupted, and what a storage failure stopped."""
        failed = [j.job_id for j in self.jobs.list(limit=1000) if j.state == "failed"]
        for job_id in dict.fromkeys([*self.jobs.unfinished(), *failed]):
            self._launch(job_id)

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, VsrError):
                await task
        await self.client.aclose()
        self.jobs.close()

    # -- bulk ----------------------------------------------------------------------------------------

    async def submit(
        self, programme: str, people: list[dict[str, Any]] | None, district: str | None, ctx: CallContext
    ) -> JobStatus:
        """A bulk job: the listed people, or everyone the civil registry lists as living in a district."""
        version = self.registry.programme(programme)
        if ctx.purpose != version.purpose:
            raise QueryError(f"bulk decisions for {programme!r} need the purpose {version.purpose!r}")
        if (people is None) == (district is None):
            raise QueryError("give either people (a list of person queries) or a district")
        if district is not None:
            people = await self._residents(district, ctx)
            if not people:
                raise QueryError("the civil registry lists nobody living in this district")
        assert people is not None
        params = {
            "programme": programme,
            "purpose": ctx.purpose,
            "user_id": ctx.user_id,
            "client": ctx.client,
            "district": district,
        }
        status = self.jobs.create(BULK_KIND, params, [{"person": p} for p in people])
        self._launch(status.job_id)
        return status

    async def _residents(self, district: str, ctx: CallContext, *, status: str = "alive") -> list[dict[str, Any]]:
        people: list[dict[str, Any]] = []
        offset = 0
        while True:
            page, more = await self.sources.residents(district, ctx, offset=offset, limit=DISTRICT_PAGE, status=status)
            for person in page:  # by national ID where there is one: those look-ups travel in batches
                if person.national_id:
                    people.append({"national_id": person.national_id})
                elif person.data.get("record_id"):
                    people.append({"record_id": person.data["record_id"]})
            if not more:
                return people
            offset += DISTRICT_PAGE

    async def submit_crosscheck(
        self, programme: str, beneficiaries: list[dict[str, Any]], ctx: CallContext
    ) -> JobStatus:
        """A beneficiary list to cross-check, item by item, under the list-maintenance purpose."""
        self.registry.programme(programme)  # unknown programme: refused before any work
        if ctx.purpose != crosscheck.PURPOSE:
            raise QueryError(f"a list cross-check is made for the purpose {crosscheck.PURPOSE!r}")
        if not beneficiaries:
            raise QueryError("the beneficiary list is empty")
        items = [{"beneficiary_no": b.pop("beneficiary_no", None), "person": b} for b in beneficiaries]
        params = {"programme": programme, "purpose": ctx.purpose, "user_id": ctx.user_id, "client": ctx.client}
        status = self.jobs.create(CROSSCHECK_KIND, params, items)
        self._launch(status.job_id)
        return status

    async def submit_oversight(self, programme: str, districts: list[str], ctx: CallContext) -> JobStatus:
        """Everyone living (or recorded as having lived) in the districts, decided and counted, never listed."""
        self.registry.programme(programme)
        if ctx.purpose != oversight.PURPOSE:
            raise QueryError(f"oversight statistics are computed for the purpose {oversight.PURPOSE!r}")
        if not districts:
            raise QueryError("name at least one district")
        people: list[dict[str, Any]] = []
        for district in dict.fromkeys(districts):
            people.extend(await self._residents(district, ctx, status="all"))
        if not people:
            raise QueryError("the civil registry lists nobody in these districts")
        params = {
            "programme": programme,
            "purpose": ctx.purpose,
            "user_id": ctx.user_id,
            "client": ctx.client,
            "districts": sorted(set(districts)),
        }
        status = self.jobs.create(OVERSIGHT_KIND, params, [{"person": p} for p in people])
        self._launch(status.job_id)
        return status

    def oversight_report(self, job_id: str, threshold: int = 10) -> dict[str, Any]:
        """The published aggregates of an oversight job (so far, while it runs)."""
        status = self.jobs.status(job_id)
        if status.kind != OVERSIGHT_KIND:
            raise JobError(f"bulk job {job_id!r} is not an oversight job")
        results: list[dict[str, Any]] = []
        after = 0
        while page := self.jobs.results(job_id, after=after, limit=5000):
            results.extend(r.result for r in page)
            after = page[-1].seq
        programme = self.registry.programme(str(status.params["programme"]))
        services = self.sources.services
        asked = [services.civil_registry, services.programmes]
        asked += [services.social_security] if "ssf" in sources_for(programme) else []
        asked += [services.tax] if "tax" in sources_for(programme) else []
        return oversight.report(
            results, programme=programme, threshold=threshold, as_of=self.registry.today(), sources=asked,
            job=status.as_dict(), districts=status.params.get("districts") or [],
        )  # fmt: skip

    def oversight_trends(self, programme: str, ctx: CallContext, threshold: int = 10) -> list[dict[str, Any]]:
        """The headline figures of every finished oversight run of a programme, oldest first."""
        runs = [
            j
            for j in self.jobs.list(limit=1000)
            if j.kind == OVERSIGHT_KIND and j.state == "done" and j.params.get("programme") == programme
        ]
        out = []
        for job in sorted(runs, key=lambda j: j.created_at):
            document = self.oversight_report(job.job_id, threshold)
            total: dict[str, Any] = next((r for r in document["tables"]["coverage"]["rows"] if r["row"] == "total"), {})
            out.append(
                {
                    "job_id": job.job_id,
                    "run_at": job.updated_at,
                    "districts": job.params.get("districts"),
                    "as_of": document["as_of"],
                    "rules_version": document["rules_version"],
                    "totals": {k: v for k, v in total.items() if k not in ("row", "suppressed")},
                }
            )
        return out

    def crosscheck_report(self, job_id: str) -> dict[str, Any]:
        """The cross-check's report so far (complete once the job is done), duplicates included.

        A finished job's report is kept (the last few), so that reading it page by page costs one build.
        """
        status = self.jobs.status(job_id)
        if status.kind != CROSSCHECK_KIND:
            raise JobError(f"bulk job {job_id!r} is not a cross-check")
        cached = self._reports.get(job_id)
        if cached is not None:
            return cached
        results: list[tuple[int, dict[str, Any]]] = []
        after = 0
        while page := self.jobs.results(job_id, after=after, limit=5000):
            results.extend((r.index, r.result) for r in page)
            after = page[-1].seq
        document = crosscheck.report(results)
        document["job"] = status.as_dict()
        if status.state not in UNFINISHED:
            self._reports[job_id] = document
            while len(self._reports) > REPORTS_KEPT:
                self._reports.pop(next(iter(self._reports)))
        return document

    async def _run(self, job_id: str, worker: Worker, concurrency: int, batched: BatchedSources | None) -> JobStatus:
        try:
            return await self.jobs.run(job_id, worker, concurrency=concurrency)
        finally:
            if batched is not None:
                await batched.aclose()

    def job(self, job_id: str, ctx: CallContext) -> JobStatus:
        """A job, for the client that submitted it only (others are told it does not exist)."""
        status = self.jobs.status(job_id)
        owner = status.params.get("client")
        if owner is not None and owner != ctx.client:
            raise JobError(f"no bulk job {job_id!r}")
        return status

    def _launch(self, job_id: str) -> None:
        status = self.jobs.status(job_id)
        params = status.params
        ctx = CallContext(purpose=str(params["purpose"]), user_id=params.get("user_id"), issue=job_id)
        programme = str(params["programme"])
        registry, concurrency = self.registry, self.settings.bulk_concurrency
        batched: BatchedSources | None = None
        if self.settings.batch_size > 0:
            # many people in flight, so that their questions fill several batches at a time: a decision
            # waits on a chain of batch exchanges, and throughput is people in flight over that wait
            batched = BatchedSources(self.client, self.sources.services, ctx, size=self.settings.batch_size)
            registry = self.registry.with_sources(batched, source_timeout=BULK_SOURCE_TIMEOUT)
            concurrency = max(concurrency, BATCHES_IN_FLIGHT * self.settings.batch_size)

        async def check(item: dict[str, Any]) -> dict[str, Any]:
            answer = await registry.eligibility(
                item["person"], programme, ctx, purpose=crosscheck.PURPOSE, also=crosscheck.SOURCES
            )
            return crosscheck.check(answer, registry.programme(programme), item.get("beneficiary_no"))

        async def count(item: dict[str, Any]) -> dict[str, Any]:
            answer = await registry.eligibility(
                item["person"], programme, ctx, purpose=oversight.PURPOSE, also=oversight.SOURCES
            )
            return oversight.classify(answer, registry.programme(programme))

        async def decide(item: dict[str, Any]) -> dict[str, Any]:
            answer = await registry.eligibility(item["person"], programme, ctx)
            decision = answer.decision
            assert decision is not None
            out = answer.as_dict()
            return {
                "identity": out["identity"],
                "outcome": decision.outcome,
                "decision": out["decision"],
                "complete": out["complete"],
                "missing_sources": out["missing_sources"],
            }

        task = asyncio.get_running_loop().create_task(
            self._run(
                job_id, {CROSSCHECK_KIND: check, OVERSIGHT_KIND: count}.get(status.kind, decide), concurrency, batched
            ),
            name=f"vsr-bulk-{job_id}",
        )
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))


def check_settings(settings: VsrSettings) -> list[str]:
    """Every problem with the registry's settings at once: rule files, matching model, token file."""
    problems: list[str] = []
    try:
        RuleBook.load(settings.rules)
    except RulesError as exc:
        problems.append(f"vsr.rules: {exc}")
    if settings.model is not None:
        try:
            matching.TrainedModel.load(settings.model)
        except matching.MatchingError as exc:
            problems.append(f"vsr.model: {exc}")
    try:
        if not settings.token_file.read_text(encoding="utf-8").strip():
            problems.append(f"vsr.token_file: {settings.token_file} is empty")
    except OSError as exc:
        problems.append(f"vsr.token_file: {settings.token_file}: {exc.strerror}")
    if settings.as_of is not None:
        try:
            dt.date.fromisoformat(settings.as_of)
        except ValueError:
            problems.append(f"vsr.as_of: {settings.as_of!r} is not an ISO date")
    return problems


def error_status(exc: VsrError) -> int:
    """The HTTP status of a registry error (the app's only mapping)."""
    if isinstance(exc, IdentityError):
        return 501  # a capability this registry is not configured for (e.g. matching without a model)
    if isinstance(exc, QueryError | JobError | RulesError):
        return 404 if "no bulk job" in str(exc) or "unknown programme" in str(exc) else 400
    if isinstance(exc, SourceFailed):
        return 502
    return 500


def summary(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
