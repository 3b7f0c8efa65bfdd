"""The event store on its own: what it keeps, what it hands out, and when (a clock of the test's own)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.events import DeliveryNotFound, Event, EventStore, StoreError
from gateway.events.dci import Criteria
from gateway.events.delivery import backoff
from gateway.settings import from_mapping
from tests.gateway.events.conftest import NOTIFICATIONS
from tests.schemas import migrate

MIS = "ZZ/GOV/MSP/programme-mis"
DEATHS = Criteria("death", (), NOTIFICATIONS, "")
BIRTHS_D01 = Criteria("birth", ("D01",), NOTIFICATIONS, "")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Any:
    s = EventStore(migrate(f"sqlite:///{tmp_path / 'events.sqlite'}", "events"), now=clock)
    yield s
    s.close()


def death(record_id: str, registered_on: str = "2026-11-28") -> Event:
    record = {"recordId": record_id, "registeredOn": registered_on}
    return Event(f"death:{record_id}", "death", registered_on, record, "2026-11-28T09:00:00.000Z")


def birth(record_id: str, district: str) -> Event:
    record = {"recordId": record_id, "districtCode": district, "registeredOn": "2026-11-28"}
    return Event(f"birth:{record_id}", "birth", "2026-11-28", record, "2026-11-28T09:00:00.000Z")


def test_an_event_is_stored_once_and_goes_to_the_subscriptions_it_matches(store: EventStore) -> None:
    deaths, created = store.subscribe(MIS, DEATHS)
    assert created
    again, created = store.subscribe(MIS, DEATHS)
    assert (again.code, created) == (deaths.code, False)
    births, _ = store.subscribe(MIS, BIRTHS_D01)
    assert store.record([death("CRA1"), birth("CRA2", "D01"), birth("CRA3", "D02")]) == (3, 2)
    assert store.record([death("CRA1"), birth("CRA2", "D01")]) == (0, 0), "a day read again"
    # registered before the subscription's day: not its event
    assert store.record([death("CRA4", "2026-11-27")]) == (1, 0)
    progress = store.progress([deaths.code, births.code])
    assert (progress[deaths.code].pending, progress[births.code].pending) == (1, 1)
    assert store.wanted() == {"death": dt.date(2026, 11, 28), "birth": dt.date(2026, 11, 28)}


def test_claims_leases_retries_and_dead_letters(store: EventStore, clock: Clock) -> None:
    sub, _ = store.subscribe(MIS, DEATHS)
    store.record([death("CRA1")])
    claimed = store.claim(4, lease_seconds=30)
    assert [c.event.event_id for c in claimed] == ["death:CRA1"]
    assert claimed[0].event.record["recordId"] == "CRA1"
    assert store.claim(4, lease_seconds=30) == [], "claimed: not handed out twice"
    clock.advance(31)
    assert len(store.claim(4, lease_seconds=30)) == 1, "the lease ran out (the sender died): sent again"
    delivery_id = claimed[0].delivery_id
    assert store.failed(delivery_id, "HTTP500", max_attempts=2, delay=lambda n: 10) == "pending"
    assert store.next_due() == pytest.approx(10)
    clock.advance(10)
    assert store.claim(4, lease_seconds=30)[0].attempts == 1
    assert store.failed(delivery_id, "Timeout", max_attempts=2, delay=lambda n: 10) == "dead"
    assert store.next_due() is None
    [letter] = store.dead_letters()
    assert (letter.delivery_id, letter.attempts, letter.last_error, letter.subscriber) == (
        delivery_id,
        2,
        "Timeout",
        MIS,
    )
    assert store.progress([sub.code])[sub.code].dead_letters == 1
    with pytest.raises(DeliveryNotFound):
        store.replay("no-such-delivery")
    assert store.replay(delivery_id).state == "pending"
    assert store.replay_all() == 0
    again = store.claim(4, lease_seconds=30)[0]
    assert again.attempts == 0
    store.delivered(delivery_id, "exchange-1")
    status = store.progress([sub.code])[sub.code]
    assert (status.delivered, status.pending, status.dead_letters) == (1, 0, 0)
    assert store.claim(4, lease_seconds=30) == []


def test_a_delivered_or_cancelled_event_keeps_no_personal_data(store: EventStore) -> None:
    sub, _ = store.subscribe(MIS, DEATHS)
    store.record([death("CRA1"), death("CRA2")])
    first, second = store.claim(4, lease_seconds=30)
    store.delivered(first.delivery_id, "x")
    store.cancel([sub.code])
    assert store.claim(4, lease_seconds=30) == []
    rows = store.engine.connect().exec_driver_sql("SELECT event_id, record FROM events_events").all()
    assert sorted(rows) == [("death:CRA1", None), ("death:CRA2", None)]
    assert store.failed(second.delivery_id, "HTTP500", max_attempts=1, delay=lambda n: 1) == "cancelled"
    assert store.cancel([sub.code]) == []


def test_everything_survives_a_reopening(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    first = EventStore(migrate(url, "events"), now=clock)
    sub, _ = first.subscribe(MIS, DEATHS)
    first.record([death("CRA1")])
    first.advance("death", dt.date(2026, 11, 28))
    first.close()
    clock.advance(86400 * 3)
    second = EventStore(migrate(url, "events"), now=clock)
    try:
        assert second.created_on == dt.date(2026, 11, 28)
        assert second.cursor("death") == dt.date(2026, 11, 28)
        second.advance("death", dt.date(2026, 11, 1))
        assert second.cursor("death") == dt.date(2026, 11, 28), "never back"
        assert [s.code for s in second.subscriptions(MIS)] == [sub.code]
        assert len(second.claim(4, lease_seconds=30)) == 1
    finally:
        second.close()


def test_a_bad_store_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        EventStore("nosuchdialect://x")


def test_backoff_is_exponential_capped_and_jittered() -> None:
    low = backoff(1.0, 300.0, jitter=lambda: 0.0)
    high = backoff(1.0, 300.0, jitter=lambda: 1.0)
    assert [high(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert [low(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert high(20) == 300.0


def test_settings_host_the_service_like_the_registry(tmp_path: Path) -> None:
    token = tmp_path / "events.token"
    base: dict[str, Any] = {
        "instance": "ZZ",
        "clients": {"ZZ/GOV/CRA/events": {"token_sha256": "0" * 64}},
        "subsystems": {"ZZ/GOV/CRA/events": {}},
        "services": {"ZZ/GOV/CRA/events/subscriptions": {"system": "events", "type": "rest", "operation": "/registry"}},
        "events": {"client": "ZZ/GOV/CRA/events", "token_file": str(token)},
    }
    settings = from_mapping(base)
    assert settings.events is not None
    assert (settings.events.poll_seconds, settings.events.max_attempts, settings.events.purpose) == (
        5.0,
        8,
        "vital-event-notification",
    )
    with pytest.raises(ConfigError, match=r"events.client: ZZ/GOV/CRA/other is not listed in \[clients\]"):
        from_mapping(base | {"events": {"client": "ZZ/GOV/CRA/other", "token_file": str(token)}})
    with pytest.raises(ConfigError, match=r"events\.since: must be an ISO date"):
        from_mapping(base | {"events": base["events"] | {"since": "soon"}})
    with pytest.raises(ConfigError, match="system 'events' is not defined"):
        from_mapping(base | {"events": None})
