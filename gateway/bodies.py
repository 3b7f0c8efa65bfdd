"""Reading a request body with a ceiling, so a client cannot make the gateway hold an unbounded message."""

from __future__ import annotations

from starlette.requests import Request

from gateway import errors
from gateway.errors import GatewayError


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(errors.BAD_REQUEST, "Content-Length is not a number")
        if int(declared) > limit:
            raise GatewayError(errors.MESSAGE_TOO_LARGE, f"the message is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(errors.MESSAGE_TOO_LARGE, f"the message is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


MAX_HEADER_BYTES = 32 * 1024
MAX_HEADER_COUNT = 100


def check_headers(request: Request) -> None:
    """Headers within bounds: the HTTP server reads any number of any size, and what is not the gateway's own
    would otherwise be passed on to the provider. Names and values together, as they arrived."""
    raw: list[tuple[bytes, bytes]] = request.scope.get("headers", [])
    if len(raw) > MAX_HEADER_COUNT:
        raise GatewayError(errors.INVALID_HEADER, f"the request has more than {MAX_HEADER_COUNT} headers")
    if sum(len(name) + len(value) for name, value in raw) > MAX_HEADER_BYTES:
        raise GatewayError(errors.INVALID_HEADER, f"the request's headers are larger than {MAX_HEADER_BYTES} bytes")
