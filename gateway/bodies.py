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
