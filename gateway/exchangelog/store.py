"""Tables and database access for the log: SQLite (WAL) or PostgreSQL through SQLAlchemy 2 Core.

One copy of each record: its canonical JSON (the leaf's content). Search reads fields out of that JSON
through expression indexes, so there is no second copy that could disagree with what was hashed.
Leaf hashes and every perfect interior subtree hash are stored (table `log_node`, level 0 = leaves)
so tree heads and proofs need O(log n) lookups, and a tree can be checked against its records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    literal_column,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

metadata = MetaData()

records = Table(
    "log_record",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("content", Text, nullable=False),
)

nodes = Table(
    "log_node",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

meta = Table(
    "log_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=True),
    Column("text", Text, nullable=True),
)

tree_heads = Table(
    "log_sth",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("jws", Text, nullable=False),
    Column("tsa_token", LargeBinary, nullable=True),
    Column("tsa_error", Text, nullable=True),
)

#: Every data subject of an exchange that concerned several (a batch look-up), for search by subject.
#: Derived from the records' content (their `subject_hashes`), so it is an index, not evidence.
subjects = Table(
    "log_subject",
    metadata,
    Column("subject_hash", String(64), primary_key=True),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

bodies = Table(
    "log_body",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)

archives = Table(
    "log_archive",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("first_index", BigInteger, nullable=False),
    Column("end_index", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("bundle_name", Text, nullable=False),
    Column("bundle_digest", String(64), nullable=False),
)

# Record fields that search and statistics filter on: indexed as expressions over the canonical JSON.
INDEXED = ("subject_hash", "client", "service", "purpose", "decision", "request_in_ts")
#: Searchable without an index of their own (rarer queries, narrowed by the indexed fields first).
UNINDEXED = ("issue",)
NUMERIC = frozenset({"request_in_ts"})


def field(dialect: str, name: str) -> ColumnElement[Any]:
    """A record field read out of the canonical JSON, spelled exactly as its expression index is."""
    return literal_column(field_sql(dialect, name))


def field_sql(dialect: str, name: str) -> str:
    if name not in INDEXED and name not in UNINDEXED:
        raise ValueError("not a searchable field")
    if dialect == "postgresql":
        expr = f"(content::jsonb ->> '{name}')"
        return f"({expr}::bigint)" if name in NUMERIC else expr
    return f"json_extract(content, '$.{name}')"


def get_meta(conn: Connection, key: str) -> tuple[int | None, str | None]:
    row = conn.execute(select(meta.c.value, meta.c.text).where(meta.c.key == key)).first()
    return (None, None) if row is None else (row[0], row[1])


def set_meta(conn: Connection, key: str, *, value: int | None = None, text: str | None = None) -> None:
    if conn.execute(select(meta.c.key).where(meta.c.key == key)).first() is None:
        conn.execute(meta.insert().values(key=key, value=value, text=text))
    else:
        conn.execute(meta.update().where(meta.c.key == key).values(value=value, text=text))


def iter_rows(conn: Connection, stmt: Any, key: Any, start: int, end: int | None, chunk: int = 20_000) -> Iterator[Any]:
    """Keyset pagination over an index column: bounded memory on both backends without server cursors."""
    low = start
    while True:
        q = stmt.where(key >= low)
        if end is not None:
            q = q.where(key < end)
        batch = conn.execute(q.order_by(key).limit(chunk)).all()
        yield from batch
        if len(batch) < chunk:
            return
        low = batch[-1][0] + 1


def append_sql(dialect: str) -> dict[str, str]:
    """Driver-level statements for the append path (one commit per record must stay cheap).

    The size counter's UPDATE ... RETURNING takes the row lock (PostgreSQL) or the write lock (SQLite)
    first, so concurrent writers in several processes get consecutive indices.
    """
    p = "%s" if dialect == "postgresql" else "?"
    # Only the driver's placeholder is interpolated; values always travel as parameters.
    return {
        "bump": "UPDATE log_meta SET value = value + 1 WHERE key = 'size' RETURNING value",
        "record": f"INSERT INTO log_record (idx, content) VALUES ({p}, {p})",  # noqa: S608
        "node": f"INSERT INTO log_node (level, idx, hash) VALUES ({p}, {p}, {p})",  # noqa: S608
        "body": f"INSERT INTO log_body (idx, kind, ciphertext) VALUES ({p}, {p}, {p})",  # noqa: S608
        "subject": f"INSERT INTO log_subject (subject_hash, idx) VALUES ({p}, {p})",  # noqa: S608
        "node_get": f"SELECT hash FROM log_node WHERE level = {p} AND idx = {p}",  # noqa: S608
    }
