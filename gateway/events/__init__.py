"""The civil registry's event service, hosted on its gateway: programmes subscribe to registered deaths
and births (DCI subscribe/notify) and each event reaches them through the exchange layer, at least once."""

from gateway.events.app import create_events_app
from gateway.events.errors import (
    DciError,
    DeliveryNotFound,
    EventsError,
    ExchangeError,
    RequestError,
    StoreError,
    SubscriptionNotFound,
)
from gateway.events.service import EventService
from gateway.events.store import DeliveryView, Event, EventStore, Subscription

__all__ = [
    "DciError",
    "DeliveryNotFound",
    "DeliveryView",
    "Event",
    "EventService",
    "EventStore",
    "EventsError",
    "ExchangeError",
    "RequestError",
    "StoreError",
    "Subscription",
    "SubscriptionNotFound",
    "create_events_app",
]
