"""Redis unreachable (`[state] redis_url` through a `FaultyTcp`): refused, or silent.

Replay checks and agreements' rate limits cannot be made without it, so exchanges needing them are
refused (fail closed: integrity, a policy decision); circuit breakers fall back to the node's own view
(availability only), so everything else goes on and failing systems are still cut off. The stores'
own tests with a dead Redis are in tests/gateway/test_sharedstate.py; replicas sharing Redis in
tests/gateway/replicas.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.sharedstate import REDIS_TIMEOUT
from sandbox import federation
from sandbox.servers import SandboxServers
from tests.gateway.faults.conftest import BREAKER, TAXPAYER, MiniFed, without_hosted_services
from tests.gateway.faults.harness import (
    FaultyTcp,
    Mode,
    RunningNode,
    assert_rest_error,
    fault,
    hits,
    require,
    running,
    wait_until,
    within,
)

REDIS = ("127.0.0.1", 6379)
RESET = BREAKER["breaker_reset_seconds"]
EMERGENCY = "/r1/ZZ/GOV/SSF/contributions/members/v1/members?national_id=9000000001"  # rate-limited agreement
REPLAY = ("Server.ServerProxy.StateUnavailable", "the shared replay store (Redis) is unreachable")
RATE = ("Server.ServerProxy.StateUnavailable", "the shared rate-limit store (Redis) is unreachable")
OPEN = ("Server.ServerProxy.ServiceUnavailable", "circuit open")
# with Redis silent, the first exchange waits for its Redis calls' timeouts; later ones do not (see docs/faults.md)
BOUND = 3 * REDIS_TIMEOUT


@dataclass
class Shared:
    redis: FaultyTcp
    prefix: str
    url: str


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    require("Redis", *REDIS)
    import redis

    prefix = f"kiungo-test-faults-{uuid.uuid4().hex[:8]}"
    with FaultyTcp(REDIS, name="redis-path") as path:
        yield Shared(path, prefix, f"redis://127.0.0.1:{path.port}/0")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def single(shared: Shared, sandbox: SandboxServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """One node, no federation: local clients, an agreement with a rate limit, the system's circuit in Redis."""
    config, tokens = federation.gateway_config(sandbox.manifest["systems"], tmp_path_factory.mktemp("redis-node"))
    without_hosted_services(config)
    config["server"]["provider_timeout"] = 2.0
    config["state"] = dict(BREAKER) | {"redis_url": shared.url, "redis_prefix": shared.prefix + "-single"}
    with running(config, "redis-node", tokens) as node:
        yield node


@pytest.fixture(autouse=True)
def _redis_back(shared: Shared) -> Iterator[None]:
    yield
    shared.redis.set("forward")


def emergency(node: RunningNode) -> httpx.Response:
    return httpx.get(
        node.url + EMERGENCY, headers=node.client_headers(**{"X-Road-PDU-Purpose": "emergency-top-up-2026"}), timeout=30
    )


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_redis_down_refuses_rate_limited_exchanges_and_the_rest_go_on(
    shared: Shared, single: RunningNode, mode: Mode
) -> None:
    assert single.get(TAXPAYER).status_code == 200
    with shared.redis.broken(mode):
        with within(BOUND):
            limited = emergency(single)
        assert_rest_error(limited, 503, *RATE)  # fail closed: the agreement's limit cannot be applied
        with within(BOUND):
            plain = single.get(TAXPAYER)
        assert plain.status_code == 200, plain.text  # no replay check, no rate limit: availability
        with within(0.5):  # Redis is not waited on again at every call (gateway.sharedstate.GuardedRedis)
            assert single.get(TAXPAYER).status_code == 200
            assert_rest_error(emergency(single), 503, *RATE)
        health = single.health()
        assert health["shared_state"] == "unreachable"
        assert health["status"] == "degraded"
    wait_until(lambda: emergency(single).status_code == 200, 10, "rate-limited exchanges once Redis is back")
    assert single.health()["shared_state"] == "ok"
    single.assert_idle()


def test_circuits_open_and_close_without_redis(shared: Shared, single: RunningNode, sandbox: SandboxServers) -> None:
    """Breakers guard availability only: without Redis each node keeps its own view, and still cuts a failing
    system off (a circuit opened meanwhile is this replica's alone)."""
    tax = sandbox.base_url("tax")
    with shared.redis.broken("refuse"):
        fault(tax, "unavailable")
        try:
            for _ in range(2):
                assert single.get(TAXPAYER).status_code == 503
            calls = hits(tax)
            with within(0.0):
                assert_rest_error(single.get(TAXPAYER), 503, *OPEN)
            assert hits(tax) == calls
        finally:
            fault(tax, "none")
        time.sleep(RESET + 0.1)
        assert single.get(TAXPAYER).status_code == 200, "and closes again"
    single.assert_idle()


@pytest.fixture(scope="module")
def pair(shared: Shared, mini: MiniFed) -> Iterator[tuple[RunningNode, RunningNode]]:
    """The ministry's and the tax authority's gateways, both with their fast state in Redis."""
    state = {"redis_url": shared.url, "redis_prefix": shared.prefix}
    with (
        mini.node("tax", mini.config("tax", state=state)) as provider,
        mini.node("msp", mini.config("msp", state=state)) as consumer,
    ):
        yield consumer, provider


@pytest.mark.parametrize("mode", ["refuse", pytest.param("hang", marks=pytest.mark.slow)])
def test_redis_down_refuses_federated_exchanges_the_replay_check_needs_it(
    shared: Shared, pair: tuple[RunningNode, RunningNode], mode: Mode
) -> None:
    consumer, provider = pair
    assert consumer.get(TAXPAYER).status_code == 200
    with shared.redis.broken(mode):
        with within(2 * BOUND):
            refused = consumer.get(TAXPAYER)
        assert_rest_error(refused, 503, *REPLAY)  # the provider's refusal, passed on by the consumer's gateway
        assert "TIN90000001" not in refused.text
        with within(2 * BOUND):
            assert_rest_error(consumer.get(TAXPAYER), 503, *REPLAY)
    wait_until(lambda: consumer.get(TAXPAYER).status_code == 200, 10, "federated exchanges once Redis is back")
    consumer.assert_idle()
    provider.assert_idle()
