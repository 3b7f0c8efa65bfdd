"""Replay protection: a message id is accepted once within a window, and only with a recent timestamp.

The store is behind a one-method interface: in process for one node, Redis for replicas, so that a
message id replayed on the other replica is refused too.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

from gateway import errors
from gateway.errors import GatewayError


class NonceStore(Protocol):
    def add_if_absent(self, key: str, ttl_seconds: float) -> bool:
        """Remember `key` for `ttl_seconds`; False when it was already there."""
        ...


class MemoryNonceStore:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def add_if_absent(self, key: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            expiry = self._seen.get(key)
            if expiry is not None and expiry > now:
                return False
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                if len(self._seen) >= self._max:
                    raise GatewayError(errors.INTERNAL_ERROR, "replay store is full")
            self._seen[key] = now + ttl_seconds
            return True


class RedisNonceStore:
    """`SET NX PX` on a shared Redis: atomic across replicas. Unreachable Redis refuses (fail closed)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}:nonce:"

    def add_if_absent(self, key: str, ttl_seconds: float) -> bool:
        try:
            added = self._redis.set(self._prefix + key, b"1", nx=True, px=max(1, int(ttl_seconds * 1000)))
        except redis.RedisError:
            raise GatewayError(
                errors.STATE_UNAVAILABLE,
                "the shared replay store (Redis) is unreachable, so the message cannot be checked for replay; "
                "it is refused",
            ) from None
        return bool(added)


class ReplayGuard:
    def __init__(self, store: NonceStore, *, window_seconds: float, skew_seconds: float) -> None:
        self.store = store
        self.window = window_seconds
        self.skew = skew_seconds

    def check(self, client_member: str, message_id: str, timestamp_ms: int, now_ms: int | None = None) -> None:
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        if abs(now - timestamp_ms) > self.skew * 1000:
            raise GatewayError(
                errors.INVALID_TIMESTAMP,
                f"the message's timestamp is more than {self.skew:g} s from this gateway's clock",
            )
        if not self.store.add_if_absent(f"{client_member}|{message_id}", self.window + self.skew):
            raise GatewayError(errors.REPLAYED_MESSAGE, f"message id {message_id} was already received")
