"""Answers an agreement lets the provider's gateway reuse for a short while (`cache_seconds`).

Only GET answers that succeeded, only under the agreement, client, purpose and exact request that
produced them: the policy decision and the consent check still run on every exchange, and every
exchange is still logged; a hit only spares the agency system. Cached answers carry personal data, so
they are encrypted (AES-GCM, a key derived from the node's subject secret, which replicas share) and
filed under keyed hashes: whoever reads Redis learns neither whose data nor what it says. A cache that
fails is a miss, never an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connectors import ServiceRequest, ServiceResponse

MAX_ENTRY = 256 * 1024  # larger answers are not cached: a cache is for bursts of small look-ups


class CacheStore(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_seconds: float) -> None: ...


class MemoryCacheStore:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[0] <= time.monotonic():
                del self._entries[key]
                return None
            return found[1]

    def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class RedisCacheStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}:cache:"

    def get(self, key: str) -> bytes | None:
        try:
            value = self._redis.get(self._prefix + key)
        except redis.RedisError:
            return None
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        try:
            self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)))
        except redis.RedisError:
            return


class AnswerCache:
    def __init__(self, store: CacheStore, secret: bytes) -> None:
        self.store = store
        self._name_key = hmac.new(secret, b"kiungo answer cache: names", hashlib.sha256).digest()
        self._aead = AESGCM(hmac.new(secret, b"kiungo answer cache: contents", hashlib.sha256).digest())

    def _key(self, parts: tuple[str, ...], request: ServiceRequest) -> tuple[str, bytes]:
        name = "\x1f".join((*parts, request.method, request.operation, request.path, request.query))
        key = hmac.new(self._name_key, name.encode(), hashlib.sha256).hexdigest()
        return key, key.encode()

    def get(self, parts: tuple[str, ...], request: ServiceRequest) -> ServiceResponse | None:
        key, aad = self._key(parts, request)
        blob = self.store.get(key)
        if blob is None or len(blob) < 13:
            return None
        try:
            doc = json.loads(self._aead.decrypt(blob[:12], blob[12:], aad))
        except (InvalidTag, ValueError):
            return None
        return ServiceResponse(
            status=int(doc["status"]),
            headers=dict(doc["headers"]),
            content=base64.b64decode(doc["content"]),
            media_type=str(doc.get("media_type", "")),
        )

    def put(self, parts: tuple[str, ...], request: ServiceRequest, response: ServiceResponse, ttl: float) -> None:
        if not response.ok or len(response.content) > MAX_ENTRY:
            return
        key, aad = self._key(parts, request)
        doc = {
            "status": response.status,
            "headers": dict(response.headers),
            "content": base64.b64encode(response.content).decode(),
            "media_type": response.media_type,
        }
        nonce = os.urandom(12)
        self.store.put(key, nonce + self._aead.encrypt(nonce, json.dumps(doc).encode(), aad), ttl)
