"""Reading an answer without letting an agency system fill the gateway's memory."""

from __future__ import annotations

import httpx


class ResponseTooLarge(Exception):
    """Internal signal: the answer passed the configured size; connectors turn it into their own error."""


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The whole body of a streamed response, or ResponseTooLarge once it passes `limit` bytes."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
