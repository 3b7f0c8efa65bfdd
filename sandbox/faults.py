"""Fault injection for the agency systems, driven over HTTP by tests and the demo.

Connectors must cope with slow, failing and broken agencies; tests make an agency misbehave on
purpose with `POST /_sandbox/fault` and count the requests it received (retries included) with
`GET /_sandbox/hits`. It is a pure ASGI middleware, so that it sits in front of any app (the SOAP
app as much as the REST ones) and a delay sleeps without blocking the event loop.

Control endpoints, never faulted nor counted:
- `POST /_sandbox/fault` `{"mode": "none"|"delay"|"error"|"unavailable"|"garbage", "seconds": float,
  "count": int|null}`: apply `mode` to the next `count` agency requests (null: until cleared); resets
  the hit counter. `error` answers 500, `unavailable` 503 (what a retry may cure), `garbage` a broken
  body, `delay` sleeps `seconds` first.
- `GET /_sandbox/fault`: the fault in force. `GET /_sandbox/hits`: `{"hits": n}`.
- `GET /_sandbox/health`: `{"status": "ok"}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_sandbox/"
MODES = ("none", "delay", "error", "unavailable", "garbage")
MAX_DELAY = 600.0
_MAX_CONTROL_BODY = 4096


@dataclass(frozen=True)
class Canned:
    """A ready-made answer: status, content type and body."""

    status: int
    content_type: str
    body: bytes


class FaultState:
    """The fault in force for one agency system and its hit counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.mode = "none"
        self.seconds = 0.0
        self.remaining: int | None = None
        self.hits = 0

    def set(self, mode: str, seconds: float, count: int | None) -> None:
        with self._lock:
            self.mode = "none" if count == 0 else mode
            self.seconds = seconds
            self.remaining = None if self.mode == "none" else count
            self.hits = 0

    def take(self) -> tuple[str, float]:
        """Count one agency request and say which fault applies to it."""
        with self._lock:
            self.hits += 1
            mode, seconds = self.mode, self.seconds
            if mode != "none" and self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode, self.remaining = "none", None
            return mode, seconds

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"mode": self.mode, "seconds": self.seconds, "count": self.remaining, "hits": self.hits}


def parse_fault(raw: bytes) -> tuple[str, float, int | None]:
    """Check a fault request; raises ValueError with a message fit for the caller."""
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        raise ValueError("body is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    mode = doc.get("mode")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    seconds = doc.get("seconds", 0.0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_DELAY
    ):
        raise ValueError(f"seconds must be a number from 0 to {MAX_DELAY:g}")
    if mode == "delay" and "seconds" not in doc:
        raise ValueError("mode delay needs seconds")
    count = doc.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError("count must be a non-negative integer or null")
    return mode, float(seconds), count


def _never(scope: Scope) -> bool:
    return False


_REST_METADATA = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def is_rest_metadata(scope: Scope) -> bool:
    """The OpenAPI document and its viewers describe the system; they are not agency requests."""
    return scope["method"] == "GET" and scope["path"] in _REST_METADATA


class FaultInjection:
    """ASGI middleware: answers the control endpoints and applies the fault in force to agency requests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        error: Canned,
        garbage: Canned,
        exempt: Callable[[Scope], bool] = _never,
        state: FaultState | None = None,
    ) -> None:
        self.app = app
        self.error = error
        self.garbage = garbage
        self.exempt = exempt
        self.state = state or FaultState()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(CONTROL_PREFIX):
            await self._control(scope, receive, send)
            return
        if self.exempt(scope):
            await self.app(scope, receive, send)
            return
        mode, seconds = self.state.take()
        if mode == "error":
            await _send(send, self.error)
            return
        if mode == "unavailable":
            await _send(send, dataclasses.replace(self.error, status=503))
            return
        if mode == "garbage":
            await _send(send, self.garbage)
            return
        if mode == "delay":
            await asyncio.sleep(seconds)
        await self.app(scope, receive, send)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"][len(CONTROL_PREFIX) :]
        if path == "fault" and method == "POST":
            try:
                raw = await _read_body(receive, _MAX_CONTROL_BODY)
                mode, seconds, count = parse_fault(raw)
            except ValueError as exc:
                await _send_json(send, 400, {"error": str(exc)})
                return
            self.state.set(mode, seconds, count)
            await _send_json(send, 200, self.state.describe())
        elif path == "fault" and method == "GET":
            await _send_json(send, 200, self.state.describe())
        elif path == "hits" and method == "GET":
            await _send_json(send, 200, {"hits": self.state.describe()["hits"]})
        elif path == "health" and method == "GET":
            await _send_json(send, 200, {"status": "ok"})
        else:
            await _send_json(send, 404, {"error": "unknown sandbox control endpoint"})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ValueError("body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, canned: Canned) -> None:
    headers = [
        (b"content-type", canned.content_type.encode("latin-1")),
        (b"content-length", str(len(canned.body)).encode("ascii")),
    ]
    await send({"type": "http.response.start", "status": canned.status, "headers": headers})
    await send({"type": "http.response.body", "body": canned.body})


async def _send_json(send: Send, status: int, doc: dict[str, Any]) -> None:
    await _send(send, Canned(status, "application/json", json.dumps(doc).encode()))
