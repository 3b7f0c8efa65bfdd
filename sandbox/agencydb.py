"""Read access to one agency database from the servers' worker threads.

A sqlite3 connection must not be shared by threads running queries at the same time, and opening
one per request is wasteful: each worker thread keeps its own read-only connection.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sandbox.schema import open_readonly


class AgencyDb:
    """One read-only connection per thread to an agency's SQLite file, opened on first use."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no database at {path}; run `kiungo sandbox generate` first")
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []

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

    def close(self) -> None:
        """Close every connection; the threads that opened them are idle once the servers stopped."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
