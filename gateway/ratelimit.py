"""Rate limits of agreements, per client: GCRA (a leaky bucket kept as one timestamp per key).

In process for one node; in Redis for replicas, where one Lua script reads and moves the timestamp
atomically with Redis's own clock, so both replicas count against one budget.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

from gateway import errors
from gateway.errors import GatewayError


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


# KEYS[1]: the key; ARGV[1]: interval between events (µs); ARGV[2]: the period (µs). Returns 1 or 0.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > period - interval then return 0 end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(period / 1000) + 1000)
return 1
"""


class RedisRateLimiter:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}:rate:"
        self._script = client.register_script(_GCRA)

    def allow(self, key: str, count: int, per_seconds: float) -> bool:
        period = int(per_seconds * 1_000_000)
        try:
            return bool(self._script(keys=[self._prefix + key], args=[period // count, period]))
        except redis.RedisError:
            raise GatewayError(
                errors.STATE_UNAVAILABLE,
                "the shared rate-limit store (Redis) is unreachable, so the agreement's rate limit cannot be "
                "applied; the exchange is refused",
            ) from None
