"""When a call may be tried again: only idempotent ones, only after failures a retry can cure."""

from __future__ import annotations

import asyncio

#: HTTP methods whose repetition changes nothing on the agency's side.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers that say "not now" rather than "no": bad gateway, unavailable, gateway timeout.
RETRY_STATUSES = frozenset({502, 503, 504})


async def backoff(base: float, attempt: int) -> None:
    """Wait before try `attempt + 2`: base, then doubling."""
    await asyncio.sleep(base * (2**attempt))
