"""RFC 9457 problem details, the error answers of the sandbox's REST agency systems.

Every error a REST agency gives, including FastAPI's own validation errors and unknown paths, is an
`application/problem+json` body, so connectors meet one consistent, realistic error shape.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.faults import Canned, FaultInjection, is_rest_metadata

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:zz:problem:"

#: Slug of the problem type, and its title, by the situations the agencies report.
NOT_FOUND = "not-found"
INVALID_IDENTIFIER = "invalid-identifier"
INVALID_REQUEST = "invalid-request"
MISSING_CRITERIA = "missing-criteria"
INTERNAL_ERROR = "internal-error"
INJECTED_FAULT = "injected-fault"

TITLES: dict[str, str] = {
    NOT_FOUND: "Not found",
    INVALID_IDENTIFIER: "Malformed identifier",
    INVALID_REQUEST: "Invalid request",
    MISSING_CRITERIA: "Missing search criteria",
    INTERNAL_ERROR: "Internal error",
    INJECTED_FAULT: "Internal error",
    "method-not-allowed": "Method not allowed",
    "http-error": "HTTP error",
}

log = logging.getLogger("sandbox.problems")


class ProblemDetails(BaseModel):
    """The problem+json body, for the OpenAPI documents."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


def _doc(description: str) -> dict[str, Any]:
    return {"model": ProblemDetails, "description": description, "content": {MEDIA_TYPE: {}}}


#: OpenAPI `responses` for an endpoint looking a record up by an identifier in its path.
LOOKUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Malformed identifier"),
    404: _doc("No such record"),
    422: _doc("Invalid parameters"),
}
#: OpenAPI `responses` for a search endpoint.
SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Malformed identifier or missing criteria"),
    422: _doc("Invalid parameters"),
}


class Problem(Exception):
    """Raised by an endpoint to answer a problem; `extra` adds extension members to the body."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra


def body(status: int, slug: str, detail: str, instance: str | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": TITLES.get(slug, slug.replace("-", " ").capitalize()),
        "status": status,
        "detail": detail,
    }
    if instance:
        doc["instance"] = instance
    doc.update(extra)
    return doc


def response(status: int, slug: str, detail: str, instance: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(body(status, slug, detail, instance, **extra), status_code=status, media_type=MEDIA_TYPE)


def not_found(what: str) -> Problem:
    return Problem(404, NOT_FOUND, f"No {what} with this identifier.")


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return response(exc.status, exc.slug, exc.detail, request.url.path, **exc.extra)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    """Pattern mismatches are malformed identifiers (400); anything else is an invalid request (422).

    The input values are left out of the answer: they may be personal identifiers.
    """
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    kinds = {err.get("type") for err in exc.errors()}
    if kinds == {"string_pattern_mismatch"}:
        names = ", ".join(e["location"].rsplit(".", 1)[-1] for e in errors)
        return response(
            400,
            INVALID_IDENTIFIER,
            f"Malformed identifier: {names} does not have the documented format.",
            request.url.path,
            errors=errors,
        )
    return response(422, INVALID_REQUEST, "The request's parameters are not valid.", request.url.path, errors=errors)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: NOT_FOUND, 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = "No such resource." if exc.status_code == 404 else str(exc.detail)
    return response(exc.status_code, slug, detail, request.url.path)


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    # The route's template, never the concrete path: the path may carry a personal identifier.
    route = getattr(request.scope.get("route"), "path", "?")
    log.error("internal error on %s %s: %s", request.method, route, type(exc).__name__)
    return response(500, INTERNAL_ERROR, "The system could not answer; try again later.", request.url.path)


def install(app: FastAPI) -> None:
    """Make every error the app can give a problem+json answer."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    # A database failure is expected in operation: answered and logged in one line. Anything else is a
    # bug, answered the same way but also logged with its traceback by the server.
    app.add_exception_handler(sqlite3.Error, _on_crash)
    app.add_exception_handler(Exception, _on_crash)


INJECTED_ERROR = Canned(
    500,
    MEDIA_TYPE,
    json.dumps(body(500, INJECTED_FAULT, "The system could not answer; try again later.")).encode(),
)
INJECTED_GARBAGE = Canned(200, "application/json", b'{"items": [{"id": "00')


def rest_app(title: str, description: str) -> FastAPI:
    """A FastAPI app answering every error as problem+json."""
    app = FastAPI(title=title, description=description, version="1.0.0")
    install(app)
    return app


def with_faults(app: FastAPI) -> FaultInjection:
    """Put the sandbox's fault injection in front of a REST app (OpenAPI and docs stay untouched)."""
    return FaultInjection(app, error=INJECTED_ERROR, garbage=INJECTED_GARBAGE, exempt=is_rest_metadata)
