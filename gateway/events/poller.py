"""Reading new vital events from the civil registry, through the gateway, into the store.

The registry answers "registered on or after a date", so each poll re-reads the last day it saw (a
death registered later that day has a record id anywhere in the day's order): the event id decides what
is new. Each poll is an ordinary exchange of the event service's client with the civil registry, under
the event service's purpose, with the poll's id in X-Road-Issue, logged like any other.

An event registered on a future day (a data error in the registry) is not delivered before its day,
and the cursor never passes today: one bad date must not hide the days before it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from lxml import etree

from gateway.events.store import Event, EventStore, iso
from gateway.xroadclient import CallContext, ExchangeFailed, XRoadClient

OPERATIONS: Final = {"death": "GetDeathsSince", "birth": "GetBirthsSince"}
PAGE: Final = 500  # records per exchange (the registry allows 1..1000)
MAX_PAGES: Final = 200  # per event type and poll: a backlog is worked off over several polls


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one poll did, per event type: records read, new events, new deliveries, or the failure's code."""

    poll_id: str
    read: dict[str, int] = field(default_factory=dict)
    new_events: dict[str, int] = field(default_factory=dict)
    new_deliveries: dict[str, int] = field(default_factory=dict)
    failures: dict[str, ExchangeFailed] = field(default_factory=dict)


class Poller:
    def __init__(
        self,
        store: EventStore,
        client: XRoadClient,
        *,
        source: str,
        namespace: str,
        purpose: str,
        since: dt.date | None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.source = source
        self.namespace = namespace
        self.purpose = purpose
        self.since = since or store.created_on
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())

    async def poll(self) -> PollReport:
        """Read every event type some subscription wants, from its cursor; one type failing stops no other."""
        poll_id = str(uuid.uuid4())
        ctx = CallContext(purpose=self.purpose, issue=poll_id)
        report = PollReport(poll_id)
        for kind, first_wanted in sorted(self.store.wanted().items()):
            since = max(self.store.cursor(kind) or self.since, first_wanted, self.since)
            try:
                await self._poll_type(kind, since, ctx, report)
            except ExchangeFailed as exc:  # the cursor stays: the next poll reads the same days again
                report.failures[kind] = exc
        return report

    async def _poll_type(self, kind: str, since: dt.date, ctx: CallContext, report: PollReport) -> None:
        service = f"{self.source}/{OPERATIONS[kind]}"
        today = self._today()
        latest = since
        offset = 0
        report.read[kind] = report.new_events[kind] = report.new_deliveries[kind] = 0
        for _ in range(MAX_PAGES):
            arguments: dict[str, str | int] = {"since": since.isoformat(), "offset": offset, "limit": PAGE}
            answer = await self.client.soap(service, ctx, arguments, self.namespace)
            seen_at = iso(dt.datetime.now(dt.UTC))
            records = [_record(element) for element in answer.data if _local(element) == kind]
            events: list[Event] = []
            for record in records:
                registered = _date(record.get("registeredOn"))
                if not record.get("recordId") or registered is None or registered > today:
                    continue
                latest = max(latest, registered)
                events.append(Event(f"{kind}:{record['recordId']}", kind, registered.isoformat(), record, seen_at))
            new_events, new_deliveries = self.store.record(events)
            report.read[kind] += len(records)
            report.new_events[kind] += new_events
            report.new_deliveries[kind] += new_deliveries
            if answer.data.findtext(f"{{{self.namespace}}}hasMore") != "true" or not records:
                break
            offset += len(records)
        self.store.advance(kind, min(latest, today))


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _record(element: etree._Element) -> dict[str, str]:
    """A registry record as {field: text}, by the registry's own field names; empty fields left out."""
    out: dict[str, str] = {}
    for child in element:
        name = _local(child)
        if name and child.text is not None and child.text.strip():
            out[name] = child.text.strip()
    return out


def _date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None
