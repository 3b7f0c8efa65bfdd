"""The event service's HTTP API, served to the gateway only (the gateway is its one client).

Every request arrives through the exchange layer, so the gateway has already authenticated the caller,
checked the agreement and logged the exchange; the service takes the subscriber from the X-Road-Client
header the gateway passes on (a subscriber sees and cancels only its own subscriptions) and refuses a
request without it, or made for another purpose than the service's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query, Request

from gateway import problems
from gateway.events import dci
from gateway.events.errors import DciError, EventsError, RequestError
from gateway.events.service import EventService, error_status
from gateway.identifiers import ClientId, IdentifierError

Code = Annotated[str, Path(min_length=1, max_length=99)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]  # the store's integers: a larger one is refused, not a crash
RESPONSES = problems.responses("events")


def subscriber(request: Request, purpose: str) -> str:
    """The calling subsystem, as the gateway passes it on, asking for the service's purpose."""
    headers = request.headers
    client = headers.get("x-road-client")
    if not client:
        raise RequestError("the event service is reached through the gateway: the X-Road-Client header is missing")
    try:
        ClientId.parse(client, require_subsystem=True)
    except IdentifierError:
        raise RequestError("X-Road-Client is not a subsystem identifier") from None
    if headers.get("x-road-pdu-purpose") != purpose:
        raise RequestError(f"the event service is asked for the purpose {purpose!r}")
    return client


def create_events_app(service: EventService) -> FastAPI:
    app = FastAPI(
        title="Kiungo vital event service",
        version="1",
        description=(
            "Subscribe to deaths and births registered by the civil registry (DCI subscribe/notify). Each "
            "event is delivered to the subscriber's callback service as a DCI notify message, through the "
            "exchange layer, at least once; the event id (`reference_id`) tells a repeat."
        ),
        responses=RESPONSES,
    )
    purpose = service.settings.purpose
    sender = service.settings.client

    problems.install(app, "events", EventsError, error_status)

    @app.post("/registry/subscribe", summary="DCI subscribe: deaths or births, all or by district")
    async def subscribe(request: Request, envelope: Annotated[Any, Body()]) -> dict[str, Any]:
        caller = subscriber(request, purpose)
        try:
            parsed = dci.parse_subscribe(envelope, caller)
        except DciError as exc:
            return dci.error_response(
                _header(envelope), exc.reason_code, exc.message, action="on-subscribe", sender_id=sender
            )
        return dci.subscribe_response(parsed, service.subscribe(caller, parsed.items), sender_id=sender)

    @app.post("/registry/unsubscribe", summary="DCI unsubscribe: the caller's own subscriptions, all or none")
    async def unsubscribe(request: Request, envelope: Annotated[Any, Body()]) -> dict[str, Any]:
        caller = subscriber(request, purpose)
        try:
            parsed = dci.parse_unsubscribe(envelope)
        except DciError as exc:
            return dci.error_response(
                _header(envelope), exc.reason_code, exc.message, action="on-unsubscribe", sender_id=sender
            )
        try:
            statuses = service.unsubscribe(caller, parsed.codes)
        except DciError as exc:
            return dci.unsubscribe_response(parsed, [], sender_id=sender, reason=(exc.reason_code, exc.message))
        return dci.unsubscribe_response(parsed, statuses, sender_id=sender)

    @app.get("/registry/subscriptions", summary="The caller's subscriptions, oldest first")
    async def subscriptions(request: Request, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
        caller = subscriber(request, purpose)
        return {"subscriptions": service.subscriptions(caller, limit=limit, offset=offset)}

    @app.get("/registry/subscriptions/{code}", summary="One of the caller's subscriptions and its deliveries")
    async def subscription(request: Request, code: Code) -> dict[str, Any]:
        return service.status(code, subscriber(request, purpose))

    return app


def _header(envelope: Any) -> dict[str, Any] | None:
    header = envelope.get("header") if isinstance(envelope, dict) else None
    return header if isinstance(header, dict) else None
