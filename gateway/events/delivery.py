"""Sending events to subscribers: at least once, a few at a time, with backoff, then dead letters.

Each delivery is one DCI notify message in one exchange of the event service's client with the
subscriber's callback service, through the gateway: signed, checked against the agreements and logged on
both gateways. A 2xx answer delivers it. Anything else (a gateway's refusal, a timeout, a 5xx, a 404)
counts an attempt and schedules the next after `min(base * 2**attempts, max)` seconds, jittered so that
many deliveries failing together do not retry together; after `max_attempts` the delivery is a dead
letter, until an operator replays it.

At least once: a crash between the subscriber's 2xx and its storing sends the message again when the
claim's lease runs out. The message id stays the delivery id and the reference id the event id on every
attempt, so the receiver can tell a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable

from gateway.events import dci
from gateway.events.errors import ExchangeError
from gateway.events.store import DEAD, Delivery, EventStore
from gateway.xroadclient import CallContext, ExchangeFailed, XRoadClient

_log = logging.getLogger("kiungo.events")
IDLE_SECONDS = 1.0  # the longest wait between looks at the store when nothing is due


def backoff(base: float, ceiling: float, jitter: Callable[[], float] = random.random) -> Callable[[int], float]:
    """Seconds before the next attempt after `attempts` failures: exponential, capped, with equal jitter."""

    def delay(attempts: int) -> float:
        full = min(base * 2.0**attempts, ceiling)
        return full / 2 + jitter() * full / 2

    return delay


class Deliverer:
    def __init__(
        self,
        store: EventStore,
        client: XRoadClient,
        *,
        purpose: str,
        concurrency: int,
        max_attempts: int,
        delay: Callable[[int], float],
        lease_seconds: float,
    ) -> None:
        self.store = store
        self.client = client
        self.purpose = purpose
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.delay = delay
        self.lease_seconds = lease_seconds
        self.wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Until cancelled: claim what is due (up to the free slots), send each in its own task, wait."""
        try:
            while True:
                self.wake.clear()
                free = self.concurrency - len(self._inflight)
                try:
                    for delivery in self.store.claim(free, self.lease_seconds, exclude=self._inflight):
                        task = asyncio.get_running_loop().create_task(
                            self._send(delivery), name=f"events-delivery-{delivery.delivery_id}"
                        )
                        self._inflight[delivery.delivery_id] = task
                        task.add_done_callback(functools.partial(self._done, delivery.delivery_id))
                    wait = self.store.next_due()
                except Exception as exc:  # the store is unavailable: look again later
                    _log.warning("events: cannot read the delivery queue (%s)", type(exc).__name__)
                    wait = IDLE_SECONDS
                if len(self._inflight) >= self.concurrency or wait is None:
                    wait = IDLE_SECONDS
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=min(max(wait, 0.01), IDLE_SECONDS))
        finally:
            await self._stop()

    def _done(self, delivery_id: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(delivery_id, None)
        self.wake.set()

    async def _stop(self) -> None:
        """Cancel what is in flight and give it back, due at once for the next start."""
        tasks = dict(self._inflight)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            self.store.release(list(tasks))

    async def _send(self, delivery: Delivery) -> None:
        sub = delivery.subscription
        envelope = dci.notify_envelope(
            delivery_id=delivery.delivery_id, subscription=sub, event=delivery.event, sender_id=self.client.client_id
        )
        ctx = CallContext(purpose=self.purpose, issue=sub.code)
        try:
            answer = await self.client.rest(sub.callback_service, sub.callback_path, ctx, method="POST", body=envelope)
            if not 200 <= answer.status < 300:
                raise ExchangeError(sub.callback_service, f"HTTP{answer.status}", "the subscriber did not accept it")
        except ExchangeFailed as exc:
            self._failed(delivery, exc.code)
            return
        except Exception as exc:  # a fault of ours: counted like a failed attempt, so it cannot loop for ever
            _log.warning("events: delivery %s failed inside the service (%s)", delivery.delivery_id, type(exc).__name__)
            self._failed(delivery, "InternalError")
            return
        try:
            self.store.delivered(delivery.delivery_id, answer.provenance.exchange_id)
        except Exception as exc:  # delivered but not stored: sent again when the lease runs out
            _log.warning("events: delivery %s not stored as delivered (%s)", delivery.delivery_id, type(exc).__name__)

    def _failed(self, delivery: Delivery, code: str) -> None:
        try:
            state = self.store.failed(delivery.delivery_id, code, max_attempts=self.max_attempts, delay=self.delay)
        except Exception as exc:  # not counted: tried again when the lease runs out
            _log.warning("events: attempt of %s not stored (%s)", delivery.delivery_id, type(exc).__name__)
            return
        if state == DEAD:
            _log.warning("events: delivery %s is a dead letter (%s)", delivery.delivery_id, code)
