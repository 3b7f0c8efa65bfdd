"""The node's fast state, chosen by `[state] redis_url`: in process for one node, Redis for replicas.

Replay nonces, rate limits, circuit breakers and the answer cache all go to the same place, so replicas behind one
address act as one gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from gateway.breaker import BreakerStore, CircuitBreakers, MemoryBreakerStore, RedisBreakerStore
from gateway.cache import CacheStore, MemoryCacheStore, RedisCacheStore
from gateway.errors import ConfigError
from gateway.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from gateway.replay import MemoryNonceStore, NonceStore, RedisNonceStore
from gateway.settings import StateSettings

#: Seconds a Redis call may take before the gateway gives up on it (and refuses, or falls back).
REDIS_TIMEOUT = 0.5


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
            client = redis.Redis.from_url(
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
