"""Access to one agency database from the servers' worker threads.

A sqlite3 connection must not be shared by threads running queries at the same time, and opening
one per request is wasteful: each worker thread keeps its own read-only connection. The few writes a
running system makes (the civil registry's events, the MIS's notifications) go through one writable
connection, one short transaction at a time, so readers wait at most for one commit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.schema import open_readonly, open_writable


class AgencyDb:
    """One read-only connection per thread to an agency's SQLite file, opened on first use, and one writer."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no database at {path}; run `kiungo sandbox generate` first")
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_readonly(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def all(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn().execute(sql, params).fetchall())

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn().execute(sql, params).fetchone()
        return row

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the writer, committed on success; the checks before a write belong inside it.

        `BEGIN IMMEDIATE` takes the write lock up front, so two writers never both read and then both
        write; the threading lock keeps the shared writer connection to one thread at a time.
        """
        with self._write_lock:
            if self._writer is None:
                self._writer = open_writable(self.path)
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (e.g. after SQLITE_FULL)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def ensure(self, ddl: str) -> None:
        """Create what a running system adds to its database (`CREATE ... IF NOT EXISTS` statements)."""
        with self._write_lock:
            if self._writer is None:
                self._writer = open_writable(self.path)
            self._writer.executescript(ddl)

    def close(self) -> None:
        """Close every connection; the threads that opened them are idle once the servers stopped."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._local = threading.local()
