"""The node's databases by URL: SQLite by default (WAL, a busy timeout), PostgreSQL through psycopg 3.

Every durable store of a node (exchange log, bulk jobs, event subscriptions) opens its engine here,
so they all take the same URLs and behave the same under concurrent writers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url


def engine_url(url: str) -> str:
    """Accept plain `postgresql://` and choose the psycopg 3 driver for it."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


#: Seconds to reach a PostgreSQL server: a host that drops packets fails in seconds, not in minutes.
CONNECT_TIMEOUT = 3


def bounded_url(url: str) -> str:
    """A PostgreSQL URL with a connect timeout, unless it names one."""
    parsed = make_url(engine_url(url))
    if parsed.get_backend_name() != "postgresql" or "connect_timeout" in parsed.query:
        return url
    return parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)}).render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    real = engine_url(bounded_url(url))
    if not real.startswith("sqlite"):
        return create_engine(real, pool_pre_ping=True)
    engine = create_engine(real, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine
