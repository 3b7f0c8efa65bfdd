"""The event service's errors, rooted in `EventsError`; its HTTP app and the operator API turn them into answers."""

from __future__ import annotations

from gateway.xroadclient import ExchangeFailed


class EventsError(Exception):
    """Anything the event service cannot do; messages never carry a personal identifier."""


class StoreError(EventsError):
    """The store cannot be opened or is not the event service's."""


class RequestError(EventsError):
    """A request did not come through the gateway as it must (X-Road headers missing, wrong purpose)."""


class DciError(EventsError):
    """A DCI message, or one item of it, is refused; `reason_code` is the spec's code for why.

    The message names fields and codes, never a value the client sent.
    """

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


class SubscriptionNotFound(EventsError):
    """No such subscription, or not the caller's (the two are not told apart)."""


class DeliveryNotFound(EventsError):
    """No dead letter with that id (unknown, delivered, pending or cancelled)."""


class ExchangeError(EventsError, ExchangeFailed):
    """A poll of the civil registry or a delivery to a subscriber gave no usable answer."""

    def __init__(self, service: str, code: str, message: str) -> None:
        ExchangeFailed.__init__(self, service, code, message)
