"""Rate limits of agreements, per client: GCRA (a leaky bucket kept as one timestamp per key).

Behind a one-method interface so replicas can share limits through Redis later; in-process here.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class RateLimiter(Protocol):
    def allow(self, key: str, count: int, per_seconds: float) -> bool:
        """Whether one more event under `key` fits `count` per `per_seconds` (and record it if so)."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}  # theoretical arrival time of the next event, per key
        self._lock = threading.Lock()

    def allow(self, key: str, count: int, per_seconds: float) -> bool:
        interval = per_seconds / count
        now = time.monotonic()
        with self._lock:
            tat = max(self._tat.get(key, now), now)
            if tat - now > per_seconds - interval:
                return False
            self._tat[key] = tat + interval
            return True
