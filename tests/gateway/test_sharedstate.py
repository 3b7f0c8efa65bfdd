"""The fast state in process and in Redis: nonces, GCRA rate limits, circuit breakers; Redis down."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from gateway import errors
from gateway.breaker import CircuitBreakers, MemoryBreakerStore, RedisBreakerStore
from gateway.errors import GatewayError
from gateway.ratelimit import MemoryRateLimiter, RedisRateLimiter
from gateway.replay import MemoryNonceStore, RedisNonceStore
from gateway.settings import StateSettings
from gateway.sharedstate import open_state

REDIS = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    try:
        conn = redis.Redis.from_url(REDIS, socket_timeout=1)
        conn.ping()
    except redis.RedisError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Redis is required in CI but 127.0.0.1:6379 is unreachable")
        pytest.skip("Redis not reachable on 127.0.0.1:6379")
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    tag = f"kiungo-test-{uuid.uuid4().hex[:8]}"
    yield tag
    keys = list(client.scan_iter(f"{tag}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def dead() -> redis.Redis:
    """A Redis client pointed at a port nobody listens on."""
    return redis.Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_timeout=0.2, socket_connect_timeout=0.2)


def test_nonces_are_accepted_once_across_two_clients(client: redis.Redis, prefix: str) -> None:
    a = RedisNonceStore(client, prefix)
    b = RedisNonceStore(redis.Redis.from_url(REDIS), prefix)
    assert a.add_if_absent("ZZ/GOV/MSP|m1", 5)
    assert not b.add_if_absent("ZZ/GOV/MSP|m1", 5)
    assert b.add_if_absent("ZZ/GOV/MSP|m2", 5)
    assert 0 < client.pttl(f"{prefix}:nonce:ZZ/GOV/MSP|m1") <= 5000


def test_memory_and_redis_rate_limits_allow_the_same_burst(client: redis.Redis, prefix: str) -> None:
    shared = [RedisRateLimiter(client, prefix), RedisRateLimiter(redis.Redis.from_url(REDIS), prefix)]
    memory = MemoryRateLimiter()
    in_redis = [shared[i % 2].allow("DSA-1|client", 4, 60) for i in range(6)]
    in_memory = [memory.allow("DSA-1|client", 4, 60) for _ in range(6)]
    assert in_redis == in_memory == [True, True, True, True, False, False]
    assert shared[0].allow("DSA-1|other", 4, 60), "limits are per key"


def test_redis_down_refuses_replay_and_rate_checks(dead: redis.Redis) -> None:
    with pytest.raises(GatewayError) as replay:
        RedisNonceStore(dead, "kiungo").add_if_absent("k", 5)
    assert replay.value.kind == errors.STATE_UNAVAILABLE
    assert "replay store (Redis) is unreachable" in replay.value.message
    with pytest.raises(GatewayError) as rate:
        RedisRateLimiter(dead, "kiungo").allow("k", 1, 1)
    assert rate.value.kind == errors.STATE_UNAVAILABLE


def _breakers(store: MemoryBreakerStore | RedisBreakerStore) -> CircuitBreakers:
    return CircuitBreakers(store, failures=3, reset_seconds=0.3)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_circuit_opens_after_failures_in_a_row_and_a_trial_closes_it(
    kind: str, client: redis.Redis, prefix: str
) -> None:
    store = MemoryBreakerStore() if kind == "memory" else RedisBreakerStore(client, prefix)
    breakers = _breakers(store)
    breakers.failed("system:tax")
    breakers.succeeded("system:tax")  # a success in between: failures are counted in a row
    assert not breakers.failed("system:tax")
    assert not breakers.failed("system:tax")
    assert breakers.failed("system:tax")
    with pytest.raises(GatewayError) as refused:
        breakers.check("system:tax", errors.CIRCUIT_OPEN, "the provider's system")
    assert refused.value.kind == errors.CIRCUIT_OPEN
    assert "failed 3 times in a row" in refused.value.message
    assert "circuit open" in refused.value.message
    breakers.check("system:cra", errors.CIRCUIT_OPEN, "the provider's system")  # others are not affected
    import time

    time.sleep(0.35)
    breakers.check("system:tax", errors.CIRCUIT_OPEN, "the provider's system")  # the one trial
    with pytest.raises(GatewayError):
        breakers.check("system:tax", errors.CIRCUIT_OPEN, "the provider's system")  # not two at once
    breakers.succeeded("system:tax")
    breakers.check("system:tax", errors.CIRCUIT_OPEN, "the provider's system")
    breakers.check("system:tax", errors.CIRCUIT_OPEN, "the provider's system")


def test_a_circuit_opened_through_one_client_is_open_for_the_other(client: redis.Redis, prefix: str) -> None:
    one = _breakers(RedisBreakerStore(client, prefix))
    other = _breakers(RedisBreakerStore(redis.Redis.from_url(REDIS), prefix))
    for _ in range(3):
        one.failed("peer:ZZ/GOV/TAX")
    with pytest.raises(GatewayError):
        other.check("peer:ZZ/GOV/TAX", errors.CIRCUIT_OPEN_CLIENT, "the gateway of ZZ/GOV/TAX")


def test_breakers_fall_back_to_this_process_when_redis_is_down(dead: redis.Redis) -> None:
    breakers = _breakers(RedisBreakerStore(dead, "kiungo"))
    breakers.check("system:tax", errors.CIRCUIT_OPEN, "x")  # availability: not refused for Redis's sake
    for _ in range(3):
        breakers.failed("system:tax")
    with pytest.raises(GatewayError):
        breakers.check("system:tax", errors.CIRCUIT_OPEN, "x")


def test_state_defaults_to_the_process_and_takes_redis_by_url(client: redis.Redis) -> None:
    assert isinstance(open_state(StateSettings()).nonces, MemoryNonceStore)
    state = open_state(StateSettings(redis_url=REDIS))
    assert isinstance(state.nonces, RedisNonceStore)
    state.close()


def test_the_in_process_nonce_store_forgets_expired_ids_as_it_goes() -> None:
    import time

    store = MemoryNonceStore(max_entries=3)
    assert store.add_if_absent("a", 0.05)
    assert store.add_if_absent("b", 0.05)
    assert not store.add_if_absent("a", 0.05)
    time.sleep(0.06)
    assert store.add_if_absent("c", 10)
    assert len(store) == 1, "a and b left when their window ended"
    assert store.add_if_absent("a", 10)  # a again, after its window: accepted
    assert store.add_if_absent("d", 10)
    with pytest.raises(GatewayError) as full:
        store.add_if_absent("e", 10)
    assert full.value.kind == errors.STATE_UNAVAILABLE
    assert "more than 3 message ids within the replay window" in full.value.message
