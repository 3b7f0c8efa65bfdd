"""Everything the event service must not forget across a restart: subscriptions, the poll cursor per
event type, the events seen (by event id, so a day read twice is stored once) and one delivery per
subscription and event (the outbox), with its attempts and dead letters.

SQLAlchemy Core on SQLite (the default, in WAL mode) or PostgreSQL by URL. Each method is one short
transaction with no await inside, so a cancelled task never leaves half of one. A delivery is claimed
by pushing its next attempt a lease ahead: a process that dies while sending leaves it to be sent
again when the lease runs out (at least once), and two processes on one database never send it at once.

Events carry personal data (the registry's record); the record is kept only while a delivery of it is
outstanding, then cleared: the event id stays, for the duplicate check.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    exists,
    func,
    select,
)
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gateway.database import make_engine
from gateway.events.dci import Criteria
from gateway.events.errors import DeliveryNotFound, StoreError
from gateway.migrations.errors import MigrationError
from gateway.migrations.runner import require_current
from gateway.migrations.stores import STORES

ACTIVE: Final = "active"
CANCELLED: Final = "cancelled"
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
DEAD: Final = "dead"
OUTSTANDING: Final = (PENDING, DEAD)  # deliveries that still need the event's record

metadata = MetaData()

meta_table = Table(
    "events_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

cursors_table = Table(
    "events_cursors",
    metadata,
    Column("event_type", String(16), primary_key=True),
    Column("since", String(10), nullable=False),  # ISO date: the registration day the next poll starts from
    Column("polled_at", String(32), nullable=False),
)

subscriptions_table = Table(
    "events_subscriptions",
    metadata,
    Column("code", String(36), primary_key=True),
    Column("subscriber", String(255), nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("districts", Text, nullable=False),  # JSON list; empty: every district
    Column("callback_service", String(1024), nullable=False),
    Column("callback_path", String(1024), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_on", String(10), nullable=False),  # the UTC day: events registered from then on
    Column("cancelled_at", String(32), nullable=True),
    Index("ix_events_subscriptions_subscriber", "subscriber", "created_at"),
    Index("ix_events_subscriptions_type", "event_type", "status"),
)

events_table = Table(
    "events_events",
    metadata,
    Column("event_id", String(64), primary_key=True),  # death:{recordId}, birth:{recordId}
    Column("event_type", String(16), nullable=False),
    Column("registered_on", String(10), nullable=False),
    Column("record", Text, nullable=True),  # JSON; cleared once no delivery needs it
    Column("seen_at", String(32), nullable=False),
)

deliveries_table = Table(
    "events_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subscription_code", String(36), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # ms since the epoch; a claim pushes it a lease ahead
    Column("created_at", String(32), nullable=False),
    Column("last_attempt_at", String(32), nullable=True),
    Column("last_error", String(128), nullable=True),  # an error code, never a message
    Column("delivered_at", String(32), nullable=True),
    Column("exchange_id", String(255), nullable=True),  # X-Road-Id of the delivering exchange
    UniqueConstraint("subscription_code", "event_id", name="uq_events_deliveries_subscription_event"),
    Index("ix_events_deliveries_due", "state", "next_attempt_at"),
    Index("ix_events_deliveries_subscription", "subscription_code", "state"),
    Index("ix_events_deliveries_event", "event_id", "state"),
)


@dataclass(frozen=True, slots=True)
class Subscription:
    code: str
    subscriber: str
    event_type: str
    districts: tuple[str, ...]
    callback_service: str
    callback_path: str
    status: str
    created_at: str
    created_on: str
    cancelled_at: str | None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def matches(self, event: Event) -> bool:
        """Whether the event is this subscription's: its type, registered from the day it was made, its districts."""
        if event.event_type != self.event_type or event.registered_on < self.created_on:
            return False
        return not self.districts or str(event.record.get("districtCode", "")).upper() in self.districts


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event_type: str
    registered_on: str  # ISO date
    record: Mapping[str, str]  # as the civil registry names its fields
    seen_at: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed delivery: what to send, to whom."""

    delivery_id: str
    subscription: Subscription
    event: Event
    attempts: int


@dataclass(frozen=True, slots=True)
class Progress:
    """A subscription's deliveries, counted (no personal data)."""

    delivered: int = 0
    pending: int = 0
    dead_letters: int = 0
    last_delivered_at: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery as the operator sees it: which subscription, how it went; not whose record it carries."""

    delivery_id: str
    subscription_code: str
    subscriber: str
    callback_service: str
    event_type: str
    state: str
    attempts: int
    created_at: str
    last_attempt_at: str | None
    last_error: str | None
    delivered_at: str | None
    exchange_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "subscription_code": self.subscription_code,
            "subscriber": self.subscriber,
            "callback_service": self.callback_service,
            "event_type": self.event_type,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
            "exchange_id": self.exchange_id,
        }


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


class EventStore:
    def __init__(self, url: str, *, now: Callable[[], dt.datetime] | None = None) -> None:
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        try:
            self.engine = make_engine(url)
        except (ArgumentError, ImportError) as exc:
            raise StoreError(f"events store URL: {type(exc).__name__}") from None
        try:
            require_current(self.engine, STORES["events"])
            with self.engine.begin() as conn:
                created = conn.execute(select(meta_table.c.value).where(meta_table.c.key == "created_on")).scalar()
                if created is None:
                    created = self._now().date().isoformat()
                    conn.execute(meta_table.insert().values(key="created_on", value=created))
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(f"the events store cannot be opened ({type(exc).__name__})") from None
        except MigrationError as exc:
            self.engine.dispose()
            raise StoreError(f"events store: {exc}") from None
        self.created_on = dt.date.fromisoformat(created)

    def close(self) -> None:
        self.engine.dispose()

    # -- subscriptions -------------------------------------------------------------------------------

    def subscribe(self, subscriber: str, criteria: Criteria) -> tuple[Subscription, bool]:
        """A new subscription, or (with False) the subscriber's active one that asks exactly the same."""
        c = subscriptions_table.c
        districts = json.dumps(list(criteria.districts))
        now = self._now()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(subscriptions_table).where(
                    c.subscriber == subscriber,
                    c.status == ACTIVE,
                    c.event_type == criteria.event_type,
                    c.districts == districts,
                    c.callback_service == criteria.callback_service,
                    c.callback_path == criteria.callback_path,
                )
            ).first()
            if row is not None:
                return _subscription(row), False
            values = {
                "code": str(uuid.uuid4()),
                "subscriber": subscriber,
                "event_type": criteria.event_type,
                "districts": districts,
                "callback_service": criteria.callback_service,
                "callback_path": criteria.callback_path,
                "status": ACTIVE,
                "created_at": iso(now),
                "created_on": now.date().isoformat(),
                "cancelled_at": None,
            }
            conn.execute(subscriptions_table.insert().values(**values))
        return _subscription(values), True

    def subscription(self, code: str) -> Subscription | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscriptions_table).where(subscriptions_table.c.code == code)).first()
        return _subscription(row) if row is not None else None

    def subscriptions(self, subscriber: str | None = None, *, limit: int = 100, offset: int = 0) -> list[Subscription]:
        """Oldest first; everyone's when no subscriber is named (the operator's view)."""
        c = subscriptions_table.c
        query = select(subscriptions_table).order_by(c.created_at, c.code).limit(max(limit, 0)).offset(max(offset, 0))
        if subscriber is not None:
            query = query.where(c.subscriber == subscriber)
        with self.engine.connect() as conn:
            return [_subscription(row) for row in conn.execute(query)]

    def cancel(self, codes: Sequence[str]) -> list[str]:
        """Cancel these subscriptions and everything they still had to deliver; the codes newly cancelled."""
        c = subscriptions_table.c
        d = deliveries_table.c
        when = iso(self._now())
        with self.engine.begin() as conn:
            newly = [
                row.code for row in conn.execute(select(c.code).where(c.code.in_(list(codes)), c.status == ACTIVE))
            ]
            if newly:
                conn.execute(
                    subscriptions_table.update().where(c.code.in_(newly)).values(status=CANCELLED, cancelled_at=when)
                )
                events = [
                    row.event_id
                    for row in conn.execute(
                        select(d.event_id).where(d.subscription_code.in_(newly), d.state.in_(OUTSTANDING))
                    )
                ]
                conn.execute(
                    deliveries_table.update()
                    .where(d.subscription_code.in_(newly), d.state.in_(OUTSTANDING))
                    .values(state=CANCELLED)
                )
                self._clear_records(conn, events)
        return newly

    def progress(self, codes: Sequence[str]) -> dict[str, Progress]:
        """Per subscription: deliveries by state, the last delivery and the last error."""
        d = deliveries_table.c
        out: dict[str, dict[str, Any]] = {code: {} for code in codes}
        if not codes:
            return {}
        with self.engine.connect() as conn:
            counts = conn.execute(
                select(d.subscription_code, d.state, func.count(), func.max(d.delivered_at))
                .where(d.subscription_code.in_(list(codes)))
                .group_by(d.subscription_code, d.state)
            )
            for code, state, count, last in counts:
                entry = out[code]
                entry[state] = count
                if state == DELIVERED:
                    entry["last_delivered_at"] = last
            errors = conn.execute(
                select(d.subscription_code, d.last_error, d.last_attempt_at)
                .where(d.subscription_code.in_(list(codes)), d.last_error.is_not(None), d.state.in_(OUTSTANDING))
                .order_by(d.last_attempt_at)
            )
            for code, error, _when in errors:
                out[code]["last_error"] = error  # ordered: the latest wins
        return {
            code: Progress(
                delivered=e.get(DELIVERED, 0),
                pending=e.get(PENDING, 0),
                dead_letters=e.get(DEAD, 0),
                last_delivered_at=e.get("last_delivered_at"),
                last_error=e.get("last_error"),
            )
            for code, e in out.items()
        }

    # -- polling -------------------------------------------------------------------------------------

    def wanted(self) -> dict[str, dt.date]:
        """Event types some active subscription wants, each with the first day any of them wants."""
        c = subscriptions_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.event_type, func.min(c.created_on)).where(c.status == ACTIVE).group_by(c.event_type)
            )
            return {kind: dt.date.fromisoformat(first) for kind, first in rows}

    def cursor(self, event_type: str) -> dt.date | None:
        with self.engine.connect() as conn:
            since = conn.execute(select(cursors_table.c.since).where(cursors_table.c.event_type == event_type)).scalar()
        return dt.date.fromisoformat(since) if since else None

    def advance(self, event_type: str, since: dt.date) -> None:
        """Move the cursor forward (never back) to the registration day the next poll starts from."""
        c = cursors_table.c
        now = iso(self._now())
        with self.engine.begin() as conn:
            current = conn.execute(select(c.since).where(c.event_type == event_type)).scalar()
            if current is None:
                conn.execute(
                    cursors_table.insert().values(event_type=event_type, since=since.isoformat(), polled_at=now)
                )
            elif since.isoformat() >= current:
                conn.execute(
                    cursors_table.update()
                    .where(c.event_type == event_type)
                    .values(since=since.isoformat(), polled_at=now)
                )

    def record(self, events: Sequence[Event]) -> tuple[int, int]:
        """Store the events not seen before and one pending delivery per matching active subscription.

        Answers (new events, new deliveries). Events seen before are ignored, whatever their content:
        the event id is the duplicate check.
        """
        if not events:
            return 0, 0
        e = events_table.c
        now = self._now()
        with self.engine.begin() as conn:
            ids = list(dict.fromkeys(ev.event_id for ev in events))
            known = {row.event_id for row in conn.execute(select(e.event_id).where(e.event_id.in_(ids)))}
            fresh: dict[str, Event] = {}
            for ev in events:
                if ev.event_id not in known and ev.event_id not in fresh:
                    fresh[ev.event_id] = ev
            if not fresh:
                return 0, 0
            kinds = {ev.event_type for ev in fresh.values()}
            subs = [
                _subscription(row)
                for row in conn.execute(
                    select(subscriptions_table).where(
                        subscriptions_table.c.status == ACTIVE, subscriptions_table.c.event_type.in_(kinds)
                    )
                )
            ]
            event_rows: list[dict[str, Any]] = []
            delivery_rows: list[dict[str, Any]] = []
            for ev in fresh.values():
                matching = [s for s in subs if s.matches(ev)]
                event_rows.append(
                    {
                        "event_id": ev.event_id,
                        "event_type": ev.event_type,
                        "registered_on": ev.registered_on,
                        "record": json.dumps(dict(ev.record)) if matching else None,
                        "seen_at": ev.seen_at,
                    }
                )
                delivery_rows += [
                    {
                        "id": str(uuid.uuid4()),
                        "subscription_code": s.code,
                        "event_id": ev.event_id,
                        "state": PENDING,
                        "attempts": 0,
                        "next_attempt_at": ms(now),
                        "created_at": iso(now),
                    }
                    for s in matching
                ]
            conn.execute(events_table.insert(), event_rows)
            if delivery_rows:
                conn.execute(deliveries_table.insert(), delivery_rows)
        return len(event_rows), len(delivery_rows)

    # -- delivering ----------------------------------------------------------------------------------

    def claim(self, limit: int, lease_seconds: float, exclude: Iterable[str] = ()) -> list[Delivery]:
        """Up to `limit` due deliveries, each claimed for `lease_seconds` (its next attempt pushed ahead)."""
        if limit < 1:
            return []
        d = deliveries_table.c
        now = ms(self._now())
        skip = set(exclude)
        claimed: list[Delivery] = []
        with self.engine.begin() as conn:
            due = conn.execute(
                select(d.id, d.subscription_code, d.event_id, d.attempts)
                .where(d.state == PENDING, d.next_attempt_at <= now)
                .order_by(d.next_attempt_at, d.created_at)
                .limit(limit + len(skip))
            ).all()
            for row in due:
                if len(claimed) == limit:
                    break
                if row.id in skip:
                    continue
                taken = conn.execute(
                    deliveries_table.update()
                    .where(d.id == row.id, d.state == PENDING, d.next_attempt_at <= now)
                    .values(next_attempt_at=now + int(lease_seconds * 1000))
                ).rowcount
                if taken != 1:
                    continue
                sub = conn.execute(
                    select(subscriptions_table).where(subscriptions_table.c.code == row.subscription_code)
                ).one()
                ev = conn.execute(select(events_table).where(events_table.c.event_id == row.event_id)).one()
                claimed.append(Delivery(row.id, _subscription(sub), _event(ev), row.attempts))
        return claimed

    def next_due(self) -> float | None:
        """Seconds until the next pending delivery is due (0 when one is due now); None when none is pending."""
        d = deliveries_table.c
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(d.next_attempt_at)).where(d.state == PENDING)).scalar()
        if first is None:
            return None
        return max(0.0, (int(first) - ms(self._now())) / 1000)

    def delivered(self, delivery_id: str, exchange_id: str) -> None:
        d = deliveries_table.c
        now = iso(self._now())
        with self.engine.begin() as conn:
            event_id = conn.execute(select(d.event_id).where(d.id == delivery_id)).scalar()
            conn.execute(
                deliveries_table.update()
                .where(d.id == delivery_id, d.state == PENDING)
                .values(
                    state=DELIVERED,
                    attempts=d.attempts + 1,
                    delivered_at=now,
                    last_attempt_at=now,
                    exchange_id=exchange_id[:255],
                )
            )
            if event_id is not None:
                self._clear_records(conn, [event_id])

    def failed(self, delivery_id: str, code: str, *, max_attempts: int, delay: Callable[[int], float]) -> str:
        """Count a failed attempt: pending again after `delay(attempts)` seconds, or a dead letter at the last.

        Answers the delivery's state afterwards (unchanged when it was cancelled meanwhile).
        """
        d = deliveries_table.c
        now = self._now()
        with self.engine.begin() as conn:
            row = conn.execute(select(d.state, d.attempts).where(d.id == delivery_id)).first()
            if row is None or row.state != PENDING:
                return str(row.state) if row is not None else CANCELLED
            attempts = row.attempts + 1
            state = DEAD if attempts >= max_attempts else PENDING
            conn.execute(
                deliveries_table.update()
                .where(d.id == delivery_id, d.state == PENDING)
                .values(
                    state=state,
                    attempts=attempts,
                    last_error=code[:128],
                    last_attempt_at=iso(now),
                    next_attempt_at=ms(now) + int(delay(attempts) * 1000),
                )
            )
        return state

    def release(self, delivery_ids: Sequence[str]) -> None:
        """Give back claimed deliveries that were not attempted to the end (a stop): due again now."""
        if not delivery_ids:
            return
        d = deliveries_table.c
        with self.engine.begin() as conn:
            conn.execute(
                deliveries_table.update()
                .where(d.id.in_(list(delivery_ids)), d.state == PENDING)
                .values(next_attempt_at=ms(self._now()))
            )

    # -- dead letters --------------------------------------------------------------------------------

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeliveryView]:
        """Oldest first."""
        query = _views().where(deliveries_table.c.state == DEAD)
        query = query.order_by(deliveries_table.c.created_at, deliveries_table.c.id)
        with self.engine.connect() as conn:
            return [_view(row) for row in conn.execute(query.limit(max(limit, 0)).offset(max(offset, 0)))]

    def replay(self, delivery_id: str) -> DeliveryView:
        """A dead letter pending again, its attempts reset, due now."""
        d = deliveries_table.c
        with self.engine.begin() as conn:
            done = conn.execute(
                deliveries_table.update()
                .where(d.id == delivery_id, d.state == DEAD)
                .values(state=PENDING, attempts=0, next_attempt_at=ms(self._now()))
            ).rowcount
            if done != 1:
                raise DeliveryNotFound("no dead letter with that id")
            return _view(conn.execute(_views().where(d.id == delivery_id)).one())

    def replay_all(self) -> int:
        """Every dead letter pending again; how many."""
        d = deliveries_table.c
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    deliveries_table.update()
                    .where(d.state == DEAD)
                    .values(state=PENDING, attempts=0, next_attempt_at=ms(self._now()))
                ).rowcount
            )

    def _clear_records(self, conn: Connection, event_ids: Sequence[str]) -> None:
        """Forget the personal data of events no delivery needs any more."""
        if not event_ids:
            return
        e = events_table.c
        d = deliveries_table.c
        outstanding = exists().where(d.event_id == e.event_id, d.state.in_(OUTSTANDING))
        conn.execute(
            events_table.update()
            .where(e.event_id.in_(list(dict.fromkeys(event_ids))), e.record.is_not(None), ~outstanding)
            .values(record=None)
        )


def _views() -> Any:
    d = deliveries_table.c
    s = subscriptions_table.c
    return select(
        d.id,
        d.subscription_code,
        s.subscriber,
        s.callback_service,
        s.event_type,
        d.state,
        d.attempts,
        d.created_at,
        d.last_attempt_at,
        d.last_error,
        d.delivered_at,
        d.exchange_id,
    ).join_from(deliveries_table, subscriptions_table, d.subscription_code == s.code)


def _view(row: Any) -> DeliveryView:
    return DeliveryView(
        delivery_id=row.id,
        subscription_code=row.subscription_code,
        subscriber=row.subscriber,
        callback_service=row.callback_service,
        event_type=row.event_type,
        state=row.state,
        attempts=row.attempts,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        exchange_id=row.exchange_id,
    )


def _subscription(row: Any) -> Subscription:
    m = row if isinstance(row, Mapping) else row._mapping
    return Subscription(
        code=m["code"],
        subscriber=m["subscriber"],
        event_type=m["event_type"],
        districts=tuple(json.loads(m["districts"])),
        callback_service=m["callback_service"],
        callback_path=m["callback_path"],
        status=m["status"],
        created_at=m["created_at"],
        created_on=m["created_on"],
        cancelled_at=m["cancelled_at"],
    )


def _event(row: Any) -> Event:
    record = json.loads(row.record) if row.record else {}
    return Event(row.event_id, row.event_type, row.registered_on, record, row.seen_at)
