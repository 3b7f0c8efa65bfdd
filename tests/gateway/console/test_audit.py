"""The console trail: appended, read newest first, and refusing any change (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.console import ConsoleAudit, TrailFailed
from gateway.console.audit import MAX_DETAIL, trail
from tests.postgres import database
from tests.schemas import migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def audit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsoleAudit]:
    if request.param == "sqlite":
        opened = ConsoleAudit.open(migrate(f"sqlite:///{tmp_path / 'console.sqlite'}", "console"))
        yield opened
        opened.close()
        return
    with database("console") as url:
        opened = ConsoleAudit.open(migrate(url, "console"))
        ConsoleAudit.open(url).close()  # opening again is harmless
        try:
            yield opened
        finally:
            opened.close()


def test_rows_are_appended_and_read_newest_first(audit: ConsoleAudit) -> None:
    first = audit.record(actor="amina", role="dpo", action="sign-in", outcome="ok", remote="127.0.0.1")
    second = audit.record(
        actor="amina",
        role="dpo",
        action="subject report",
        outcome="ok",
        subject_hash="ab" * 32,
        detail="x" * (MAX_DETAIL + 50),
    )
    audit.record(actor="otto", role="operator", action="verify log", outcome="ok", target="log")
    assert second > first
    rows = audit.entries()
    assert [r.action for r in rows] == ["verify log", "subject report", "sign-in"]
    assert rows[1].subject_hash == "ab" * 32
    assert rows[1].detail is not None
    assert len(rows[1].detail) == MAX_DETAIL
    assert [r.actor for r in audit.entries(actor="amina")] == ["amina", "amina"]
    assert [r.seq for r in audit.entries(before=second)] == [first]
    assert [r.action for r in audit.entries(subject_hash="ab" * 32)] == ["subject report"]
    assert audit.actions() == ["sign-in", "subject report", "verify log"]


def test_the_database_refuses_changes_and_deletions(audit: ConsoleAudit) -> None:
    audit.record(actor="amina", role="dpo", action="sign-in", outcome="ok")
    with pytest.raises(SQLAlchemyError, match="append-only"), audit.engine.begin() as conn:
        conn.execute(update(trail).values(actor="mallory"))
    with pytest.raises(SQLAlchemyError, match="append-only"), audit.engine.begin() as conn:
        conn.execute(delete(trail))
    assert [r.actor for r in audit.entries()] == ["amina"]


def test_a_trail_that_cannot_be_written_fails_closed(tmp_path: Path) -> None:
    audit = ConsoleAudit.open(migrate(f"sqlite:///{tmp_path / 'console.sqlite'}", "console"))
    with audit.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE console_audit")
    with pytest.raises(TrailFailed) as caught:
        audit.record(actor="amina", role="dpo", action="subject report", outcome="ok", detail="9000000001")
    assert "9000000001" not in str(caught.value)  # the driver's message is not passed on
    audit.close()
