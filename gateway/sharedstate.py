"""The node's fast state, chosen by `[state] redis_url`: in process for one node, Redis for replicas.

Replay nonces, rate limits, circuit breakers and the answer cache all go to the same place, so replicas behind one
address act as one gateway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from gateway.breaker import BreakerStore, CircuitBreakers, MemoryBreakerStore, RedisBreakerStore
from gateway.cache import CacheStore, MemoryCacheStore, RedisCacheStore
from gateway.errors import ConfigError
from gateway.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from gateway.replay import MemoryNonceStore, NonceStore, RedisNonceStore
from gateway.settings import StateSettings

#: Seconds a Redis call may take before the gateway gives up on it (and refuses, or falls back).
REDIS_TIMEOUT = 0.5
#: After Redis failed to answer, calls fail at once for this long (doubling while it stays down, up to the max).
REDIS_RETRY_MIN, REDIS_RETRY_MAX = 0.5, 5.0


class GuardedRedis(redis.Redis):
    """A Redis client that, once Redis failed to answer, fails at once for a short back-off.

    Its calls run on the gateway's event loop: without this, a Redis that accepts connections and never
    answers would cost every call its whole timeout, and an exchange makes several (breaker, replay, rate
    limit). Callers see the same errors as from a dead Redis: replay and rate checks refuse, breakers fall
    back to this process's view. The first call after the back-off tries Redis again.
    """

    _retry_at = 0.0
    _backoff = 0.0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if time.monotonic() < self._retry_at:
            raise redis.ConnectionError("Redis did not answer moments ago; not tried again yet")
        started = time.monotonic()
        try:
            result = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError):
            now = time.monotonic()
            self._backoff = min(max(self._backoff * 2, REDIS_RETRY_MIN, now - started), REDIS_RETRY_MAX)
            self._retry_at = now + self._backoff
            raise
        self._backoff = 0.0
        return result


@dataclass
class SharedState:
    nonces: NonceStore
    limiter: RateLimiter
    breakers: CircuitBreakers
    answers: CacheStore
    redis: redis.Redis | None = None

    def health(self) -> str:
        """`in-process`, `ok` or `unreachable` (replay and rate checks then refuse: fail closed)."""
        if self.redis is None:
            return "in-process"
        try:
            self.redis.ping()
        except redis.RedisError:
            return "unreachable"
        return "ok"

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()


def open_state(settings: StateSettings) -> SharedState:
    client: redis.Redis | None = None
    if settings.redis_url is None:
        nonces: NonceStore = MemoryNonceStore()
        limiter: RateLimiter = MemoryRateLimiter()
        breakers: BreakerStore = MemoryBreakerStore()
        answers: CacheStore = MemoryCacheStore()
    else:
        try:
            client = GuardedRedis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                health_check_interval=30,
            )
        except ValueError as exc:
            raise ConfigError(f"state.redis_url: {exc}") from None
        nonces = RedisNonceStore(client, settings.redis_prefix)
        limiter = RedisRateLimiter(client, settings.redis_prefix)
        breakers = RedisBreakerStore(client, settings.redis_prefix)
        answers = RedisCacheStore(client, settings.redis_prefix)
    return SharedState(
        nonces,
        limiter,
        CircuitBreakers(breakers, failures=settings.breaker_failures, reset_seconds=settings.breaker_reset_seconds),
        answers,
        client,
    )
