"""Many look-ups, few exchanges: single questions asked at about the same time travel together.

A bulk job decides for hundreds of people at once; asking each agency once per person would cost
several exchanges per person through two gateways. The registry's workers still ask one person at a
time; a `Batcher` holds each question for a few milliseconds (or until a batch is full) and asks the
agency once for all of them, then hands each worker its own answer. A failed batch fails each of its
questions, exactly as a failed single exchange would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batcher(Generic[K, V]):
    """Coalesces `load(key)` calls into `fetch(keys)` calls of at most `size` distinct keys."""

    def __init__(
        self, fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]], *, size: int = 100, wait: float = 0.01
    ) -> None:
        if size < 1:
            raise ValueError("a batch holds at least one key")
        self._fetch = fetch
        self.size = size
        self.wait = wait
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def load(self, key: K) -> V | None:
        """The answer for one key (None when the source knows nothing of it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._pending.setdefault(key, []).append(future)
        if len(self._pending) >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        while self._pending:
            keys = list(self._pending)[: self.size]
            batch = {k: self._pending.pop(k) for k in keys}
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if len(self._pending) < self.size:
                break
        if self._pending:
            self._timer = loop.call_later(self.wait, self._flush)

    async def _run(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except Exception as exc:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        except asyncio.CancelledError:
            for futures in batch.values():
                for future in futures:
                    future.cancel()
            raise
        for key, futures in batch.items():
            for future in futures:
                if not future.done():  # a waiter that gave up (its own timeout) is left alone
                    future.set_result(found.get(key))

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._running):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
