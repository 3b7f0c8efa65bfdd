"""Operational monitoring records on SQLite and PostgreSQL: written best effort, queried by time, client, service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from gateway.database import make_engine
from gateway.migrations import SchemaNotCurrent
from gateway.monitoring import OperationalMonitor, OperationalRecord
from tests.postgres import BACKENDS, backend_url, migrated, postgres_fixture

T0 = 1_780_000_000_000  # ms since the epoch: beyond 32 bits, as every timestamp is

pg_database = postgres_fixture("monitoring")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated monitoring database and an engine on it, as the node makes both."""
    made = migrated(backend_url(request, tmp_path, "monitoring.sqlite"), "monitoring")
    yield made
    made.dispose()


def record(i: int, **changes: object) -> OperationalRecord:
    fields: dict[str, object] = {
        "message_id": f"m-{i}",
        "request_id": f"r-{i}",
        "security_server_type": "Producer" if i % 2 else "Client",
        "protocol": "REST",
        "request_in_ts": T0 + i * 1000,
        "request_out_ts": T0 + i * 1000 + 5,
        "response_in_ts": T0 + i * 1000 + 30,
        "response_out_ts": T0 + i * 1000 + 31,
        "client_id": f"ZZ/GOV/MSP/c{i % 3}",
        "service_id": "ZZ/GOV/TAX/taxreg/taxpayers" if i % 2 else "ZZ/GOV/CRA/civreg/getPerson",
        "purpose": "old-age-grant-eligibility",
        "rest_method": "GET",
        "rest_path": "/v1/taxpayers/{tin}",
        "request_size": 120,
        "response_size": 5_000_000_000,  # a 64-bit size
        "status_code": 200,
        "succeeded": i % 5 != 0,
        "fault_code": None if i % 5 else "Server.ServerProxy.ServiceFailed",
    }
    fields.update(changes)
    return OperationalRecord(**fields)  # type: ignore[arg-type]


def test_records_round_trip_with_filters_and_pages(engine: Engine) -> None:
    monitor = OperationalMonitor(engine)
    for i in range(30):
        monitor.add(record(i))
    everything = monitor.query(limit=1000)
    assert [r["message_id"] for r in everything] == [f"m-{i}" for i in range(30)]
    first = everything[0]
    assert first == {"seq": first["seq"], **record(0).as_json()}
    assert first["succeeded"] is False
    assert everything[1]["succeeded"] is True
    assert first["response_size"] == 5_000_000_000
    assert [r["message_id"] for r in monitor.query(since=T0 + 10_000, until=T0 + 13_000)] == ["m-10", "m-11", "m-12"]
    assert len(monitor.query(client="ZZ/GOV/MSP/c1", limit=1000)) == 10
    assert len(monitor.query(service="ZZ/GOV/TAX/taxreg/taxpayers", client="ZZ/GOV/MSP/c1", limit=1000)) == 5
    page = monitor.query(limit=12)
    rest = monitor.query(after_seq=page[-1]["seq"], limit=1000)
    assert [r["message_id"] for r in page + rest] == [r["message_id"] for r in everything]
    assert monitor.dropped == 0
    monitor.close()
    with engine.connect() as conn:  # the node's engine stays usable
        assert conn.execute(text("SELECT COUNT(*) FROM monitoring_record")).scalar_one() == 30


def test_two_replicas_share_one_database(engine: Engine) -> None:
    other = make_engine(engine.url.render_as_string(hide_password=False))
    a, b = OperationalMonitor(engine), OperationalMonitor(other)
    try:
        for i in range(10):
            (a if i % 2 else b).add(record(i))
        assert sorted(r["message_id"] for r in a.query()) == sorted(f"m-{i}" for i in range(10))
    finally:
        a.close()
        b.close()
        other.dispose()


def test_a_failure_is_counted_not_raised_and_the_monitor_recovers(engine: Engine) -> None:
    monitor = OperationalMonitor(engine)
    monitor.add(record(0))
    if engine.dialect.name == "postgresql":  # the server ends the monitor's session: retried on a new one
        with engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        monitor.add(record(1))
        assert monitor.dropped == 0
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE monitoring_record RENAME TO monitoring_record_away"))
    monitor.add(record(2))  # no table at all: dropped, and the exchange goes on
    assert monitor.dropped == 1
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE monitoring_record_away RENAME TO monitoring_record"))
    monitor.add(record(3))
    assert monitor.dropped == 1
    expected = ["m-0", "m-1", "m-3"] if engine.dialect.name == "postgresql" else ["m-0", "m-3"]
    assert [r["message_id"] for r in monitor.query()] == expected
    monitor.close()


def test_in_memory_monitor_migrates_itself() -> None:
    monitor = OperationalMonitor(None)
    monitor.add(record(7))
    assert [r["message_id"] for r in monitor.query()] == ["m-7"]
    monitor.close()


def test_an_unmigrated_database_names_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitoring.sqlite'}"
    with pytest.raises(SchemaNotCurrent, match=f"run `kiungo db upgrade --store monitoring --url {url}`"):
        OperationalMonitor(url)
    migrated(url, "monitoring").dispose()
    monitor = OperationalMonitor(url)
    monitor.add(record(1))
    assert len(monitor.query()) == 1
    monitor.close()
