"""The matching package's databases (review queue, crosswalks) by URL: SQLite files by default, PostgreSQL.

Matching imports nothing from the gateway, so it cannot migrate a database itself: `kiungo db upgrade`
does, and the checks here refuse a database without the schema, saying exactly which command creates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError

from matching.errors import MatchingError


def is_url(target: str | Path) -> bool:
    """A database URL (`sqlite:///…`, `postgresql://…`) rather than a file name."""
    return isinstance(target, str) and "://" in target


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def open_engine(db: str | Path | Engine, error: type[MatchingError]) -> tuple[Engine, bool]:
    """The engine to use and whether the caller owns it (and disposes of it when done).

    An Engine is used as given; a Path is an SQLite file, a str a database URL (`postgresql://` gets the
    psycopg 3 driver). SQLite runs in WAL mode with a busy timeout and foreign keys on.
    """
    if isinstance(db, Engine):
        return db, False
    if isinstance(db, str) and not is_url(db):
        raise error(f"{db!r} is not a database URL (sqlite:///PATH, postgresql://...); give a file as a Path")
    url = sqlite_url(db) if isinstance(db, Path) else db
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True), True
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    except (ArgumentError, ImportError) as exc:
        raise error(f"not a usable database URL ({type(exc).__name__})") from None

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine, True


def where(engine: Engine) -> str:
    """The database's URL as it may be shown: never its password."""
    return engine.url.render_as_string(hide_password=True)


def sqlite_file(engine: Engine) -> Path | None:
    """The file of an SQLite engine (None in memory or on another database)."""
    name = engine.url.database
    if engine.dialect.name != "sqlite" or name in (None, "", ":memory:"):
        return None
    return Path(str(name))


def require_schema(
    engine: Engine, *, store: str, what: str, metadata: MetaData, revision: str, error: type[MatchingError]
) -> None:
    """Refuse a database without `store`'s tables or at another revision, naming the command that fixes it.

    A missing SQLite file is not opened (that would leave an empty file behind): the message says which
    commands create it (its folder too, when that is missing).
    """
    url = where(engine)
    command = f"kiungo db upgrade --store {store} --url {url}"
    path = sqlite_file(engine)
    if path is not None and not path.exists():
        folder = path.parent
        make = "" if folder.is_dir() else f"mkdir -p {folder} && "
        raise error(f"no {what} at {path}: create it with `{make}{command}`")
    version_table = f"kiungo_schema_{store}"
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if not {t.name for t in metadata.sorted_tables} <= tables:
            raise error(f"{url} has no {store} tables: run `{command}`")
        found = (
            conn.execute(text(f"SELECT version_num FROM {version_table}")).scalars().all()  # noqa: S608 - a constant
            if version_table in tables
            else []
        )
    if found != [revision]:
        at = ", ".join(found) or "no recorded revision"
        raise error(f"the {store} tables in {url} are at {at}, this Kiungo needs {revision}: run `{command}`")
