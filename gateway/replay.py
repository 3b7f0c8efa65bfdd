"""Replay protection: a message id is accepted once within a window, and only with a recent timestamp.

The store is behind a one-method interface: in process for one node, Redis for replicas, so that a
message id replayed on the other replica is refused too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

import redis

from gateway import errors
from gateway.errors import GatewayError


class NonceStore(Protocol):
    def add_if_absent(self, key: str, ttl_seconds: float) -> bool:
        """Remember `key` for `ttl_seconds`; False when it was already there."""
        ...


class MemoryNonceStore:
    """Message ids in arrival order: expired ones leave from the front at every insert, so memory holds one
    replay window's worth (rate x window), levels off there, and never needs a sweep that stops the world."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._seen)

    def add_if_absent(self, key: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._order and self._order[0][0] <= now:
                until, old = self._order.popleft()
                if self._seen.get(old) == until:
                    del self._seen[old]
            known = self._seen.get(key)
            if known is not None and known > now:
                return False
            if len(self._seen) >= self._max:
                raise GatewayError(
                    errors.STATE_UNAVAILABLE,
                    f"more than {self._max:,} message ids within the replay window: this gateway refuses until "
                    "some expire (shorten replay_window_seconds, or share the load with a replica on Redis)",
                )
            self._seen[key] = now + ttl_seconds
            self._order.append((now + ttl_seconds, key))
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
