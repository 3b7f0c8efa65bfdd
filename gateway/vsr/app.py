"""The registry's HTTP API, served to the gateway only (the gateway is its one client).

Every request arrives through the exchange layer, so the gateway has already authenticated the
caller, checked the agreement and logged the exchange; the registry reads the purpose, end user and
exchange id from the X-Road headers the gateway passes on, and refuses a request without them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway import problems
from gateway.vsr import crosscheck, dci, oversight
from gateway.vsr.bulk import UNFINISHED
from gateway.vsr.errors import JobError, QueryError, VsrError
from gateway.vsr.registry import Answer, VirtualRegistry
from gateway.vsr.service import OVERSIGHT_KIND, VsrService, error_status
from gateway.xroadclient import CallContext

NDJSON = "application/x-ndjson"
RESPONSES = problems.responses("vsr")


#: A programme's name as a request gives it (names are short; an unknown one is named back in the refusal).
Programme = Annotated[str, Field(min_length=1, max_length=100)]


class PersonQuery(BaseModel):
    """A person, by national ID, by civil registry record, or by demographics when there is no ID."""

    model_config = ConfigDict(extra="forbid")

    national_id: str | None = Field(None, examples=["9000000001"])
    record_id: str | None = Field(None, description="civil registry record number, e.g. CRA900000001")
    given_name: str | None = None
    second_name: str | None = None
    surname: str | None = None
    sex: str | None = Field(None, pattern="^[MF]$")
    birth_date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    birth_year: int | None = Field(None, ge=1850, le=2200)
    mother_name: str | None = None
    district: str | None = None

    def plain(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class EligibilityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    programme: str = Field(min_length=1, max_length=100, examples=["old-age-grant"])
    person: PersonQuery


class Beneficiary(PersonQuery):
    """A beneficiary as the programme's list holds her: its number, and who she is."""

    beneficiary_no: str | None = Field(None, max_length=64)


class CrosscheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    programme: Programme
    beneficiaries: list[Beneficiary] = Field(max_length=1_000_000)


class OversightRequest(BaseModel):
    """Oversight statistics for a programme over some districts: aggregates only, small cells suppressed."""

    model_config = ConfigDict(extra="forbid")

    programme: Programme
    districts: list[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,10}$")]] = Field(min_length=1, max_length=500)


class BulkRequest(BaseModel):
    """A bulk decision: a list of people, or everyone living in a district (emergency top-ups)."""

    model_config = ConfigDict(extra="forbid")

    programme: Programme
    people: list[PersonQuery] | None = Field(None, max_length=100_000)
    district: str | None = Field(None, pattern=r"^[A-Z0-9]{1,10}$")


def context(request: Request) -> CallContext:
    """Purpose, end user and exchange id, as the gateway passes them on."""
    headers = request.headers
    purpose = headers.get("x-road-pdu-purpose")
    if not purpose:
        raise QueryError("the registry is reached through the gateway: the X-Road-PDU-Purpose header is missing")
    return CallContext(
        purpose=purpose,
        user_id=headers.get("x-road-userid"),
        issue=headers.get("x-road-id"),
        client=headers.get("x-road-client"),
    )


def create_vsr_app(service: VsrService) -> FastAPI:
    app = FastAPI(
        title="Kiungo virtual social registry",
        version="1",
        description=(
            "Ask once, get what every agency knows about a person, and whether she is eligible for a "
            "programme, with reasons and provenance. Reached through the exchange layer as the services "
            "of the registry's subsystem; every look-up it makes is itself an ordinary, logged exchange."
        ),
        responses=RESPONSES,
    )
    registry = service.registry

    problems.install(app, "vsr", VsrError, error_status)

    @app.post("/v1/persons/query", summary="Who is this person, and what do the agencies know?")
    async def person_query(request: Request, query: PersonQuery) -> dict[str, Any]:
        answer = await registry.person(query.plain(), context(request))
        return answer.as_dict()

    @app.get("/v1/persons/{national_id}", summary="A person by national ID")
    async def person_by_id(
        request: Request, national_id: Annotated[str, Path(pattern=r"^\d{6,20}$")]
    ) -> dict[str, Any]:
        answer = await registry.person({"national_id": national_id}, context(request))
        return answer.as_dict()

    @app.post("/v1/eligibility", summary="Is this person eligible for the programme, and why?")
    async def eligibility(request: Request, body: EligibilityRequest) -> dict[str, Any]:
        answer = await registry.eligibility(body.person.plain(), body.programme, context(request))
        return answer.as_dict()

    @app.get("/v1/programmes", summary="Programmes and the rule versions in force")
    async def programmes() -> dict[str, Any]:
        today = registry.today()
        out = []
        for name in registry.rules.programmes():
            versions = registry.rules.versions(name)
            try:
                current = registry.rules.get(name, today).version
            except VsrError:
                current = None
            out.append(
                {
                    "programme": name,
                    "in_force": current,
                    "versions": [
                        {
                            "version": v.version,
                            "title": v.title,
                            "purpose": v.purpose,
                            "legal_reference": v.legal_reference,
                            "effective_from": v.effective_from.isoformat(),
                            "effective_until": v.effective_until.isoformat() if v.effective_until else None,
                            "summary": v.summary,
                            "requirements": [r.requirement for r in v.rules],
                        }
                        for v in versions
                    ],
                }
            )
        return {"as_of": today.isoformat(), "programmes": out}

    @app.post("/v1/bulk", status_code=202, summary="Decide for many people; results stream as they arrive")
    async def bulk(request: Request, body: BulkRequest) -> dict[str, Any]:
        people = [p.plain() for p in body.people] if body.people is not None else None
        status = await service.submit(body.programme, people, body.district, context(request))
        return status.as_dict()

    @app.post("/v1/crosscheck", status_code=202, summary="Cross-check a beneficiary list (a bulk job)")
    async def crosscheck_submit(request: Request, body: CrosscheckRequest) -> dict[str, Any]:
        beneficiaries = [b.model_dump(exclude_none=True) for b in body.beneficiaries]
        status = await service.submit_crosscheck(body.programme, beneficiaries, context(request))
        return status.as_dict()

    @app.get(
        "/v1/crosscheck/{job_id}/report",
        summary="The cross-check's report: flags with evidence, marks for review, a summary",
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    async def crosscheck_report(
        request: Request,
        job_id: str,
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
        offset: Annotated[int, Query(ge=0, description="the first beneficiary of this page (0-based)")] = 0,
        limit: Annotated[int, Query(ge=0, le=2000, description="beneficiaries per page (0: the summary only)")] = 1000,
    ) -> Response:
        """The summary covers the whole list; the beneficiaries come a page at a time (a report of 100,000
        beneficiaries is far larger than one answer through the gateway may be)."""
        service.job(job_id, context(request))
        document = service.crosscheck_report(job_id)
        rows = document["beneficiaries"]
        page = {**document, "beneficiaries": rows[offset : offset + limit]}
        page["page"] = {"offset": offset, "limit": limit, "total": len(rows)}
        if format == "csv":
            return Response(crosscheck.to_csv(page, header=offset == 0), media_type="text/csv; charset=utf-8")
        return JSONResponse(page)

    @app.post("/v1/oversight", status_code=202, summary="Compute oversight statistics (a bulk job)")
    async def oversight_submit(request: Request, body: OversightRequest) -> dict[str, Any]:
        status = await service.submit_oversight(body.programme, body.districts, context(request))
        return status.as_dict()

    @app.get(
        "/v1/oversight/{job_id}/report",
        summary="The published aggregates: counts with small cells suppressed, their date, sources and rules",
        responses={200: {"content": {"application/json": {}, "text/csv": {}, "image/png": {}}}},
    )
    async def oversight_report(
        request: Request,
        job_id: str,
        format: Annotated[str, Query(pattern="^(json|csv|png)$")] = "json",
        threshold: Annotated[int, Query(ge=5, le=1000, description="counts under it are suppressed")] = 10,
    ) -> Response:
        service.job(job_id, context(request))
        document = service.oversight_report(job_id, threshold)
        if format == "csv":
            return Response(oversight.to_csv(document), media_type="text/csv; charset=utf-8")
        if format == "png":
            return Response(oversight.chart(document), media_type="image/png")
        return JSONResponse(document)

    @app.get("/v1/oversight", summary="Trends: the headline figures of every finished run of a programme")
    async def oversight_trends(
        request: Request,
        programme: Annotated[str, Query(min_length=1, max_length=100)],
        threshold: Annotated[int, Query(ge=5, le=1000)] = 10,
    ) -> dict[str, Any]:
        return {"programme": programme, "runs": service.oversight_trends(programme, context(request), threshold)}

    @app.get("/v1/bulk/{job_id}", summary="A bulk job's progress")
    async def bulk_status(request: Request, job_id: str) -> dict[str, Any]:
        return service.job(job_id, context(request)).as_dict()

    @app.post("/v1/bulk/{job_id}/cancel", summary="Stop a bulk job (decisions made so far are kept)")
    async def bulk_cancel(request: Request, job_id: str) -> dict[str, Any]:
        service.job(job_id, context(request))
        return service.jobs.cancel(job_id).as_dict()

    @app.get(
        "/v1/bulk/{job_id}/results",
        summary="Results as NDJSON, in the order they were decided, from a cursor",
        response_class=StreamingResponse,
        responses={200: {"content": {NDJSON: {}}}},
    )
    async def bulk_results(
        request: Request,
        job_id: str,
        after: Annotated[int, Query(ge=0, description="the last `seq` already read")] = 0,
        follow: Annotated[bool, Query(description="keep the stream open until the job ends")] = False,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many results (without follow)")] = 1000,
    ) -> Response:
        if service.job(job_id, context(request)).kind == OVERSIGHT_KIND:
            raise JobError("an oversight job publishes aggregates only: read its report")
        page = service.jobs.results(job_id, after=after, limit=limit)  # unknown job, bad cursor: refused now
        if follow:
            return StreamingResponse(service.jobs.stream(job_id, after=after, follow=follow), media_type=NDJSON)
        lines = [json.dumps(r.as_dict(), separators=(",", ":")) for r in page]
        status = service.jobs.status(job_id)
        if len(page) < limit and status.state not in UNFINISHED:
            lines.append(json.dumps({"type": "end", "status": status.as_dict()}, separators=(",", ":")))
        return Response("".join(line + "\n" for line in lines), media_type=NDJSON)

    sender = service.settings.client

    @app.post("/registry/sync/search", summary="DCI synchronous search (social registry API)")
    async def dci_search(request: Request, envelope: Annotated[Any, Body()]) -> dict[str, Any]:
        ctx = context(request)
        try:
            parsed = dci.parse_search_request(envelope)
        except dci.DciError as exc:
            return dci.error_response(_header(envelope), exc.reason_code, exc.message, sender_id=sender)
        results = [await _search_item(registry, item, ctx) for item in parsed.items]
        return dci.search_response(parsed, results, sender_id=sender)

    @app.post("/registry/sync/enrolled", summary="DCI (IBR) synchronous enrolment check")
    async def dci_enrolled(request: Request, envelope: Annotated[Any, Body()]) -> dict[str, Any]:
        ctx = context(request)
        try:
            header, transaction_id, queries = dci.parse_enrolled_request(envelope)
        except dci.DciError as exc:
            return dci.error_response(_header(envelope), exc.reason_code, exc.message, sender_id=sender)
        results: list[dci.ItemResult | tuple[str, Sequence[Mapping[str, Any]]]] = []
        for query in queries:
            try:
                answer = await registry.person(query.criteria.as_query(), ctx, scope="enrolments")
            except QueryError as exc:
                results.append(dci.ItemResult.reject(query.reference_id, dci.RJCT_CRITERIA, str(exc)))
                continue
            unanswered = _unanswered(answer)
            if unanswered is not None:  # never "not enrolled" for a question nobody could answer
                results.append(dci.ItemResult.reject(query.reference_id, *unanswered))
                continue
            items = answer.gathered.enrolments.items if answer.gathered.enrolments else []
            active = [
                e
                for e in items
                if e.get("status") == "active" and (query.programme is None or e.get("programme") == query.programme)
            ]
            results.append((query.reference_id, active))
        return dci.enrolled_response(header, transaction_id, results, sender_id=sender)

    return app


def _unanswered(answer: Answer) -> tuple[str, str] | None:
    """Why an enrolment question has no answer: the person unknown or unclear, or a source down."""
    g = answer.gathered
    status = g.identity.status
    if status == "unavailable" or g.outcomes["programmes"].status == "failed":
        return "err.service.unavailable", "a source did not answer; ask again later"
    if status == "ambiguous":
        return dci.RJCT_TOO_MANY_RECORDS, "several people could be this person; give a national ID"
    if status == "not_found":
        return "err.request.not_found", "the civil registry has no such person"
    return None


def _header(envelope: Any) -> dict[str, Any] | None:
    header = envelope.get("header") if isinstance(envelope, dict) else None
    return header if isinstance(header, dict) else None


async def _search_item(registry: VirtualRegistry, item: dci.SearchItem, ctx: CallContext) -> dci.ItemResult:
    """One DCI search item: the resolved person, or every plausible candidate (never one chosen silently)."""
    try:
        answer = await registry.person(item.criteria.as_query(), ctx, scope="identity")
    except QueryError as exc:
        return dci.ItemResult.reject(item.reference_id, dci.RJCT_CRITERIA, str(exc))
    identity = answer.gathered.identity
    if identity.status == "unavailable":
        # not in the item enum of the bundle, which has no code for a source that is down
        return dci.ItemResult.reject(item.reference_id, "err.service.unavailable", "the civil registry did not answer")
    view = answer.as_dict(with_facts=False)
    if identity.status == "resolved":
        return dci.ItemResult.success(item.reference_id, [dci.person_record(view["person"])])
    candidates = [
        dci.person_record(
            {
                "identifier": [{"identifier_type": "CRA_RECORD", "identifier_value": c["record_id"]}],
                "name": c["name"],
                "sex": c.get("sex"),
                "birth_date": c.get("birth_date"),
                "birth_year": c.get("birth_year"),
                "address": {"district": c.get("district")} if c.get("district") else {},
            }
        )
        for c in identity.candidates
    ]
    if not candidates:
        return dci.ItemResult.success(item.reference_id, [])
    # plausible candidates, none confident: all of them, and the message says so
    message = f"ambiguous: {len(candidates)} candidate(s), none a confident match; {identity.note}"
    return dci.ItemResult(item.reference_id, "succ", None, message, candidates)
