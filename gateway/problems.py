"""Problem documents (RFC 9457) for the services the gateway hosts in process (registry, event service).

One shape and one set of handlers for all of them: every refusal is `{type, title, status}` under the
service's `urn:kiungo:<namespace>:` prefix, and a validation error names where a request is wrong,
never the value given (it may be a national ID).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

PROBLEM = "application/problem+json"

E = TypeVar("E", bound=Exception)


def responses(namespace: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI declaration: every 4XX and 5XX answer is a problem document."""
    schema = {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "description": f"urn:kiungo:{namespace}:<error>"},
            "title": {"type": "string", "description": "what is wrong; never the value given"},
            "status": {"type": "integer"},
            "errors": {"type": "array", "items": {"type": "object"}, "description": "where a request is invalid"},
        },
    }
    return {
        f"{digit}XX": {"description": "a problem document", "content": {PROBLEM: {"schema": schema}}}
        for digit in (4, 5)
    }


def install(app: FastAPI, namespace: str, error: type[E], status_of: Callable[[E], int]) -> None:
    """Answer validation errors, the HTTP layer's refusals and the service's own errors as problem documents."""

    def problem(kind: str, title: str, status: int, **extra: Any) -> dict[str, Any]:
        return {"type": f"urn:kiungo:{namespace}:{kind}", "title": title, "status": status, **extra}

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(problem("InvalidRequest", "invalid request", 422, errors=where), 422, media_type=PROBLEM)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        body = problem("HttpError", str(exc.detail), exc.status_code)
        return JSONResponse(body, exc.status_code, media_type=PROBLEM, headers=exc.headers)

    async def own(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, error)
        status = status_of(exc)
        return JSONResponse(problem(type(exc).__name__, str(exc), status), status, media_type=PROBLEM)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(error, own)
