"""The registry's HTTP API, served to the gateway only (the gateway is its one client).

Every request arrives through the exchange layer, so the gateway has already authenticated the
caller, checked the agreement and logged the exchange; the registry reads the purpose, end user and
exchange id from the X-Road headers the gateway passes on, and refuses a request without them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.vsr.errors import QueryError, VsrError
from gateway.vsr.service import VsrService, error_status
from gateway.vsr.xroad import CallContext

NDJSON = "application/x-ndjson"


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

    programme: str = Field(examples=["old-age-grant"])
    person: PersonQuery


class BulkRequest(BaseModel):
    """A bulk decision: a list of people, or everyone living in a district (emergency top-ups)."""

    model_config = ConfigDict(extra="forbid")

    programme: str
    people: list[PersonQuery] | None = Field(None, max_length=100_000)
    district: str | None = Field(None, pattern=r"^[A-Z0-9]{1,10}$")


def context(request: Request) -> CallContext:
    """Purpose, end user and exchange id, as the gateway passes them on."""
    headers = request.headers
    purpose = headers.get("x-road-pdu-purpose")
    if not purpose:
        raise QueryError("the registry is reached through the gateway: the X-Road-PDU-Purpose header is missing")
    return CallContext(purpose=purpose, user_id=headers.get("x-road-userid"), issue=headers.get("x-road-id"))


def create_vsr_app(service: VsrService) -> FastAPI:
    app = FastAPI(
        title="Kiungo virtual social registry",
        version="1",
        description=(
            "Ask once, get what every agency knows about a person, and whether she is eligible for a "
            "programme, with reasons and provenance. Reached through the exchange layer as the services "
            "of the registry's subsystem; every look-up it makes is itself an ordinary, logged exchange."
        ),
    )
    registry = service.registry

    @app.exception_handler(VsrError)
    async def vsr_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VsrError)
        return JSONResponse(
            {"type": f"urn:kiungo:vsr:{type(exc).__name__}", "title": str(exc), "status": error_status(exc)},
            status_code=error_status(exc),
            media_type="application/problem+json",
        )

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

    @app.get("/v1/bulk/{job_id}", summary="A bulk job's progress")
    async def bulk_status(job_id: str) -> dict[str, Any]:
        return service.jobs.status(job_id).as_dict()

    @app.post("/v1/bulk/{job_id}/cancel", summary="Stop a bulk job (decisions made so far are kept)")
    async def bulk_cancel(job_id: str) -> dict[str, Any]:
        return service.jobs.cancel(job_id).as_dict()

    @app.get(
        "/v1/bulk/{job_id}/results",
        summary="Results as NDJSON, in the order they were decided, from a cursor",
        response_class=StreamingResponse,
        responses={200: {"content": {NDJSON: {}}}},
    )
    async def bulk_results(
        job_id: str,
        after: Annotated[int, Query(ge=0, description="the last `seq` already read")] = 0,
        follow: Annotated[bool, Query(description="keep the stream open until the job ends")] = False,
    ) -> Response:
        service.jobs.results(job_id, after=after, limit=1)  # unknown job or bad cursor: refused before any line
        return StreamingResponse(service.jobs.stream(job_id, after=after, follow=follow), media_type=NDJSON)

    @app.post("/registry/sync/search", summary="DCI synchronous search (social registry API)")
    async def dci_search(request: Request, envelope: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        from gateway.vsr.dcirouting import sync_search

        return await sync_search(service, envelope, context(request))

    @app.post("/registry/sync/enrolled", summary="DCI (IBR) synchronous enrolment check")
    async def dci_enrolled(request: Request, envelope: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        from gateway.vsr.dcirouting import sync_enrolled

        return await sync_enrolled(service, envelope, context(request))

    return app
