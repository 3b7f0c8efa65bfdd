"""The event service as the gateway hosts it: built from settings, started and stopped with the node.

Two background tasks run on the node's event loop: the poller (every `poll_seconds`, for the event
types someone subscribed to) and the deliverer (whatever is due, `deliver_concurrency` at a time).
Both start from the store, so a restart resumes polling from the stored cursor and delivers what was
pending; a delivery in flight at a stop is given back, due at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from gateway.events import dci
from gateway.events.delivery import Deliverer, backoff
from gateway.events.errors import (
    DciError,
    DeliveryNotFound,
    EventsError,
    ExchangeError,
    RequestError,
    StoreError,
    SubscriptionNotFound,
)
from gateway.events.poller import Poller
from gateway.events.store import DeliveryView, EventStore, Progress, Subscription
from gateway.settings import EventsSettings
from gateway.xroadclient import XRoadClient

_log = logging.getLogger("kiungo.events")
LEASE_MARGIN_SECONDS = 5.0  # a claim outlives the exchange's timeout by this much


class EventService:
    def __init__(
        self,
        settings: EventsSettings,
        data_dir: Path,
        transport: httpx.AsyncBaseTransport | None,
        *,
        url: str | None = None,
    ) -> None:
        self.settings = settings
        try:
            token = settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EventsError(f"events.token_file: {exc.strerror}") from None
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = EventStore(url or settings.url or f"sqlite:///{data_dir / 'events.sqlite'}")
        self.client = XRoadClient(
            settings.client,
            token,
            transport=transport,
            timeout=settings.exchange_timeout,
            failure=ExchangeError,
        )
        self.poller = Poller(
            self.store,
            self.client,
            source=settings.source,
            namespace=settings.source_namespace,
            purpose=settings.purpose,
            since=dt.date.fromisoformat(settings.since) if settings.since else None,
        )
        self.deliverer = Deliverer(
            self.store,
            self.client,
            purpose=settings.purpose,
            concurrency=settings.deliver_concurrency,
            max_attempts=settings.max_attempts,
            delay=backoff(settings.retry_base_seconds, settings.retry_max_seconds),
            lease_seconds=settings.exchange_timeout + LEASE_MARGIN_SECONDS,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._poll_forever(), name="events-poller"),
            loop.create_task(self.deliverer.run(), name="events-deliverer"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.client.aclose()
        self.store.close()

    async def _poll_forever(self) -> None:
        while True:
            try:
                report = await self.poller.poll()
                if any(report.new_deliveries.values()):
                    self.deliverer.wake.set()
                for failure in report.failures.values():
                    _log.warning("events: polling %s failed (%s)", failure.service, failure.code)
            except Exception as exc:  # the store or a bug: try again at the next poll, never stop polling
                _log.warning("events: a poll failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.settings.poll_seconds)

    # -- subscriptions -------------------------------------------------------------------------------

    def subscribe(self, subscriber: str, items: Sequence[dci.SubscribeItem]) -> list[dci.ItemResult]:
        """A subscription per item; an item asking what the subscriber already has in force is refused with it."""
        results: list[dci.ItemResult] = []
        for item in items:
            sub, created = self.store.subscribe(subscriber, item.criteria)
            if created:
                results.append(dci.accepted(item.reference_id, sub))
            else:
                results.append(
                    dci.rejected(
                        item.reference_id,
                        dci.RJCT_ALREADY_SUBSCRIBED,
                        f"subscription {sub.code} already asks for this",
                        sub,
                    )
                )
        return results

    def unsubscribe(self, subscriber: str, codes: Sequence[str]) -> list[tuple[str, bool]]:
        """Cancel the subscriber's subscriptions, all or none: each code, and whether it is cancelled now."""
        found = {code: self.store.subscription(code) for code in codes}
        if any(sub is None for sub in found.values()):
            raise DciError(dci.RJCT_SUBSCRIPTION_CODE, "no subscription with one of these codes")
        if any(sub is not None and sub.subscriber != subscriber for sub in found.values()):
            raise DciError(dci.RJCT_REQUESTER, "only the subscriber may cancel a subscription")
        if all(sub is not None and not sub.active for sub in found.values()):
            raise DciError(dci.RJCT_ALREADY_UNSUBSCRIBED, "these subscriptions are already cancelled")
        self.store.cancel(list(codes))
        return [(code, True) for code in codes]

    def status(self, code: str, subscriber: str | None = None) -> dict[str, Any]:
        """One subscription's state and deliveries; another subscriber's is not found."""
        sub = self.store.subscription(code)
        if sub is None or (subscriber is not None and sub.subscriber != subscriber):
            raise SubscriptionNotFound("no such subscription")
        return status_view(sub, self.store.progress([code])[code])

    def subscriptions(
        self, subscriber: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        subs = self.store.subscriptions(subscriber, limit=limit, offset=offset)
        progress = self.store.progress([s.code for s in subs])
        return [status_view(s, progress[s.code]) for s in subs]

    # -- dead letters (the operator's) ---------------------------------------------------------------

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeliveryView]:
        return self.store.dead_letters(limit=limit, offset=offset)

    def replay(self, delivery_id: str) -> DeliveryView:
        view = self.store.replay(delivery_id)
        self.deliverer.wake.set()
        return view

    def replay_all(self) -> int:
        count = self.store.replay_all()
        self.deliverer.wake.set()
        return count


def status_view(sub: Subscription, progress: Progress) -> dict[str, Any]:
    """A subscription as its subscriber and the operator see it: no personal data."""
    return {
        "subscription_code": sub.code,
        "subscriber": sub.subscriber,
        "status": sub.status,
        "created_at": sub.created_at,
        "cancelled_at": sub.cancelled_at,
        "reg_event_type": sub.event_type,
        "filter": dci.filter_view(sub.districts),
        "callback": {"service": sub.callback_service, "path": sub.callback_path},
        "delivered": progress.delivered,
        "pending": progress.pending,
        "dead_letters": progress.dead_letters,
        "last_delivered_at": progress.last_delivered_at,
        "last_error": progress.last_error,
    }


def error_status(exc: EventsError) -> int:
    """The HTTP status of an event service error (the app's only mapping)."""
    if isinstance(exc, RequestError | DciError):
        return 400
    if isinstance(exc, SubscriptionNotFound | DeliveryNotFound):
        return 404
    if isinstance(exc, ExchangeError):
        return 502
    if isinstance(exc, StoreError):
        return 503
    return 500
