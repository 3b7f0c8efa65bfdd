"""Circuit breakers per provider gateway and per agency system: stop calling what keeps failing.

After `failures` failures in a row a circuit opens: calls are refused at once, for `reset_seconds`,
instead of each waiting for its timeout. Then one trial call is let through (half-open); its success
closes the circuit, its failure opens it again. The state lives in process, or in Redis so that a
circuit opened by one replica is open on the other. Breakers guard availability, not integrity: when
Redis is unreachable they fall back to this process's own view rather than refuse.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import redis

from gateway.errors import ErrorKind, GatewayError

Verdict = Literal["closed", "trial", "open"]


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    retry_after: float = 0.0  # seconds until a trial, when open


class BreakerStore(Protocol):
    def check(self, name: str, reset_seconds: float) -> Check: ...

    def succeeded(self, name: str) -> None: ...

    def failed(self, name: str, failures: int, reset_seconds: float) -> bool:
        """Count a failure; True when this failure opened (or re-opened) the circuit."""
        ...


class MemoryBreakerStore:
    def __init__(self) -> None:
        self._fails: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._trial_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, name: str, reset_seconds: float) -> Check:
        now = time.monotonic()
        with self._lock:
            until = self._open_until.get(name)
            if until is None:
                return Check("closed")
            if now < until:
                return Check("open", until - now)
            if self._trial_until.get(name, 0.0) > now:
                return Check("open", self._trial_until[name] - now)
            self._trial_until[name] = now + reset_seconds
            return Check("trial")

    def knows(self, name: str) -> bool:
        """Whether this name has failures or an open circuit to forget."""
        return name in self._fails or name in self._open_until

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop(name, None)
            self._open_until.pop(name, None)
            self._trial_until.pop(name, None)

    def failed(self, name: str, failures: int, reset_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            count = self._fails.get(name, 0) + 1
            self._fails[name] = count
            if count >= failures:
                self._open_until[name] = now + reset_seconds
                self._trial_until.pop(name, None)
                return True
            return False


# The same three steps as the in-process store, each one atomic script with Redis's clock (ms).
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if untl == 0 then return {1, 0} end
if now < untl then return {0, untl - now} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return {2, 0} end
return {0, redis.call('PTTL', KEYS[2])}
"""
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 20 + 60000)
if fails >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
_VERDICTS: dict[int, Verdict] = {0: "open", 1: "closed", 2: "trial"}


class RedisBreakerStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}:breaker:"
        self._check = client.register_script(_CHECK)
        self._failed = client.register_script(_FAILED)
        self.local = MemoryBreakerStore()  # this process's own view, used while Redis is unreachable
        self._trials: set[str] = set()

    def _keys(self, name: str) -> list[str]:
        return [self._prefix + name, self._prefix + name + ":trial"]

    def check(self, name: str, reset_seconds: float) -> Check:
        try:
            code, wait_ms = self._check(keys=self._keys(name), args=[int(reset_seconds * 1000)])
        except redis.RedisError:
            return self.local.check(name, reset_seconds)
        verdict = _VERDICTS[int(code)]
        if verdict == "trial":
            self._trials.add(name)
        return Check(verdict, max(0, int(wait_ms)) / 1000)

    def succeeded(self, name: str) -> None:
        # Only a circuit with something to forget costs a round trip: the hot path of a healthy system is
        # one script call per exchange (the check), not two.
        known = self.local.knows(name) or name in self._trials
        self.local.succeeded(name)
        self._trials.discard(name)
        if known:
            with contextlib.suppress(redis.RedisError):
                self._redis.delete(*self._keys(name))

    def failed(self, name: str, failures: int, reset_seconds: float) -> bool:
        opened = self.local.failed(name, failures, reset_seconds)
        try:
            return bool(self._failed(keys=self._keys(name), args=[failures, int(reset_seconds * 1000)]))
        except redis.RedisError:
            return opened


class CircuitBreakers:
    """One breaker per name (`peer:ZZ/GOV/CRA`, `system:civreg`), all with the node's settings."""

    def __init__(
        self,
        store: BreakerStore,
        *,
        failures: int,
        reset_seconds: float,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.on_open = on_open  # e.g. count it in the node's metrics

    def check(self, name: str, kind: ErrorKind, what: str) -> None:
        """Refuse at once while the circuit is open (a half-open circuit lets this one call try)."""
        found = self.store.check(name, self.reset_seconds)
        if found.verdict == "open":
            raise GatewayError(
                kind,
                f"{what} failed {self.failures} times in a row, so this gateway stopped calling it for a while "
                f"(circuit open); next try in {max(1, round(found.retry_after))} s",
            )

    def succeeded(self, name: str) -> None:
        self.store.succeeded(name)

    def failed(self, name: str) -> bool:
        opened = self.store.failed(name, self.failures, self.reset_seconds)
        if opened and self.on_open is not None:
            self.on_open(name)
        return opened
