"""The console trail: every console action (sign-ins too) as one append-only row, shown to DPOs and auditors.

The trail answers "who at this gateway looked at what, and when": the user and role, the action,
its outcome, what it concerned (an exchange index, a consent record, a job) and, where it concerned
a person, the node's keyed hash of her identifier (the same hash the exchange log keeps, so a DPO can
find every console look-up of one person), never the identifier itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from gateway.console.errors import ConsoleConfigError, TrailFailed
from gateway.database import make_engine
from gateway.migrations.errors import MigrationError
from gateway.migrations.runner import require_current
from gateway.migrations.stores import STORES

metadata = MetaData()

trail = Table(
    "console_audit",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=True),
    Column("action", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("target", String(255), nullable=True),
    Column("subject_hash", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("remote", String(64), nullable=True),
    Index("ix_console_audit_at", "at_ms"),
    Index("ix_console_audit_subject", "subject_hash"),
)

MAX_DETAIL = 500
UNKNOWN_USER = "(unknown user)"


@dataclass(frozen=True)
class TrailEntry:
    seq: int
    at_ms: int
    actor: str
    role: str | None
    action: str
    outcome: str
    target: str | None
    subject_hash: str | None
    detail: str | None
    remote: str | None


class ConsoleAudit:
    """Append and read the trail; thread-safe (the engine's pool), SQLite by default or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> ConsoleAudit:
        try:
            engine = make_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConsoleConfigError(f"console trail: cannot open the database ({type(exc).__name__})") from None
        try:
            require_current(engine, STORES["console"])  # the table and its append-only guards: a migration's
        except MigrationError as exc:
            engine.dispose()
            raise ConsoleConfigError(f"console trail: {exc}") from None
        return cls(engine)

    def record(
        self,
        *,
        actor: str,
        role: str | None,
        action: str,
        outcome: str,
        target: str | None = None,
        subject_hash: str | None = None,
        detail: str | None = None,
        remote: str | None = None,
    ) -> int:
        """Append one row and say its number; TrailFailed (fail closed) when it cannot be made durable."""
        row = {
            "at_ms": time.time_ns() // 1_000_000,
            "actor": actor[:64],
            "role": role,
            "action": action[:64],
            "outcome": outcome[:32],
            "target": target[:255] if target else None,
            "subject_hash": subject_hash,
            "detail": detail[:MAX_DETAIL] if detail else None,
            "remote": remote[:64] if remote else None,
        }
        try:
            with self.engine.begin() as conn:
                result = conn.execute(trail.insert().values(**row))
        except SQLAlchemyError as exc:  # the driver's message may quote values: name the class only
            raise TrailFailed(f"the console trail could not be written ({type(exc).__name__})") from None
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def entries(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject_hash: str | None = None,
    ) -> list[TrailEntry]:
        """Newest first; `before` pages back from a row number."""
        q = select(trail)
        if before is not None:
            q = q.where(trail.c.seq < before)
        if actor is not None:
            q = q.where(trail.c.actor == actor)
        if action is not None:
            q = q.where(trail.c.action == action)
        if subject_hash is not None:
            q = q.where(trail.c.subject_hash == subject_hash)
        q = q.order_by(trail.c.seq.desc()).limit(limit)
        try:
            with self.engine.connect() as conn:
                return [TrailEntry(**row._mapping) for row in conn.execute(q)]
        except SQLAlchemyError as exc:
            raise TrailFailed(f"the console trail could not be read ({type(exc).__name__})") from None

    def actions(self) -> list[str]:
        """The actions the trail holds, for the filter."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(trail.c.action).distinct().order_by(trail.c.action))]

    def close(self) -> None:
        self.engine.dispose()
