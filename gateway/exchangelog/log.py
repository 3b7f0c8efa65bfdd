"""The exchange log: append-only records in an RFC 9162 Merkle tree, signed tree heads, search, evidence."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, or_, select, tuple_
from sqlalchemy.exc import SQLAlchemyError

from gateway.database import make_engine
from gateway.exchangelog import store
from gateway.exchangelog.errors import LogError, LoggingFailed
from gateway.exchangelog.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    perfect_subtrees,
    subtree_from_nodes,
)
from gateway.exchangelog.record import LogRecord
from gateway.exchangelog.treehead import SignedTreeHead, TreeHead, public_key_pem, sign_payload, sth_payload
from gateway.exchangelog.tsa import TimestampError, request_token
from gateway.exchangelog.verify import VerifyReport, verify_log
from gateway.migrations.errors import MigrationError
from gateway.migrations.runner import require_current
from gateway.migrations.stores import STORES

_log = logging.getLogger("kiungo.exchangelog")
DAY_MS = 86_400_000
#: Seconds one append may take before its connection is broken and the exchange refused: appends run on the
#: gateway's event loop, so a database that stops answering must not hold it (or the exchange) any longer.
WRITE_TIMEOUT = 5.0
#: After the database could not be reached (or a write timed out), appends fail at once for a while instead of
#: each waiting for its own timeout: RETRY_MIN at first, or as long as the failed try took, doubling while the
#: database stays unreachable, up to RETRY_MAX.
RETRY_MIN, RETRY_MAX = 0.5, 10.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class BodyCipher:
    """Bodies encrypted with a key that lives outside the database: AES-GCM (16/24/32 raw bytes) or Fernet.

    The associated data binds each ciphertext to its leaf index and direction, so bodies cannot be swapped.
    """

    def __init__(self, key: bytes) -> None:
        self._aes: AESGCM | None = None
        self._fernet: Fernet | None = None
        if len(key) in (16, 24, 32):
            self._aes = AESGCM(key)
        else:
            self._fernet = Fernet(key)

    def encrypt(self, index: int, kind: str, body: bytes) -> bytes:
        if self._aes is not None:
            nonce = os.urandom(12)
            return nonce + self._aes.encrypt(nonce, body, f"{index}:{kind}".encode())
        assert self._fernet is not None
        return self._fernet.encrypt(f"{index}:{kind}:".encode() + body)

    def decrypt(self, index: int, kind: str, blob: bytes) -> bytes:
        if self._aes is not None:
            return self._aes.decrypt(blob[:12], blob[12:], f"{index}:{kind}".encode())
        assert self._fernet is not None
        plain = self._fernet.decrypt(blob)
        prefix = f"{index}:{kind}:".encode()
        if not plain.startswith(prefix):
            raise LogError("body does not belong to this record")
        return plain[len(prefix) :]


# How psycopg says the server is gone (restarted, or the connection was cut) when a statement is sent.
_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


def _socket_of(raw: Any) -> int | None:
    """The file descriptor of a PostgreSQL connection's socket (psycopg 3), None for SQLite."""
    driver = getattr(raw, "driver_connection", None) or getattr(raw, "dbapi_connection", None)  # detached: the latter
    pgconn = getattr(driver, "pgconn", None)
    if pgconn is None:
        return None
    try:
        fd = pgconn.socket
    except Exception:  # a closed or broken connection has no socket
        return None
    return fd if isinstance(fd, int) else None


class WriteGuard:
    """Keeps writes to a database that stopped answering from holding the gateway (they run on its event loop).

    A watchdog thread breaks the socket of a write that outlives `write_timeout`, so the driver's blocked call
    returns an error (libpq has no read timeout of its own); it looks a few times a second, so a guarded write
    costs two assignments, not a timer. After the database could not be reached, or a write was broken, writes
    are refused at once for a back-off instead of each waiting again: at least as long as the failed try took
    (so a dead database holds the event loop half the time at most), doubling, from RETRY_MIN to RETRY_MAX.
    The exchange log and operational monitoring each keep one.
    """

    def __init__(self, write_timeout: float = WRITE_TIMEOUT) -> None:
        self.write_timeout = write_timeout
        self.fired = False  # the last guarded write was broken by the watchdog
        self._write: tuple[int, float] | None = None  # (socket fd, deadline) of the write in progress
        self._retry_at = 0.0
        self._backoff = 0.0
        self._began = 0.0  # when the current try began
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wait(self) -> float:
        """Seconds until a write may be tried again (0: now)."""
        return max(0.0, self._retry_at - time.monotonic())

    def begin(self) -> None:
        """A try (connect, write) begins: what `unreachable` measures."""
        self.fired = False
        self._began = time.monotonic()

    def unreachable(self) -> None:
        """The database could not be reached (or a write was broken): refuse writes for the next back-off."""
        now = time.monotonic()
        self._backoff = min(max(self._backoff * 2, RETRY_MIN, now - self._began), RETRY_MAX)
        self._retry_at = now + self._backoff

    def reachable(self) -> None:
        self._retry_at = self._backoff = 0.0

    @contextlib.contextmanager
    def guard(self, raw: Any) -> Iterator[None]:
        """The block's writes on `raw` (a pooled DBAPI connection) may take `write_timeout`, no longer."""
        fd = _socket_of(raw)
        if fd is None:  # SQLite: a file, bounded by its busy timeout
            yield
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="database-write-watchdog", daemon=True)
            self._thread.start()
        self._write = (fd, time.monotonic() + self.write_timeout)
        try:
            yield
        finally:
            self._write = None

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            write = self._write
            if write is None or time.monotonic() < write[1] or self._write is not write:
                continue
            self.fired = True
            self._write = None
            with contextlib.suppress(OSError):
                broken = socket.socket(fileno=os.dup(write[0]))
                try:
                    broken.shutdown(socket.SHUT_RDWR)
                finally:
                    broken.close()

    def stop(self) -> None:
        self._stop.set()


def _failure(exc: BaseException) -> LoggingFailed:
    """A message naming only the error class: driver messages can quote parameters (personal data)."""
    orig = getattr(exc, "orig", None)
    cause = type(orig).__name__ if orig is not None else type(exc).__name__
    return LoggingFailed(f"exchange log: the record could not be made durable ({cause})")


class ExchangeLog:
    """One node's log. Thread-safe; several processes may append to one PostgreSQL database."""

    def __init__(
        self,
        engine: Engine,
        *,
        node: str,
        signer: ec.EllipticCurvePrivateKey | None,
        signer_cert_pem: str | None,
        tsa_url: str | None,
        keep_bodies_key: bytes | None,
    ) -> None:
        self.engine = engine
        self.node = node
        self.signer = signer
        self.signer_cert_pem = signer_cert_pem
        self.tsa_url = tsa_url
        self._cipher = BodyCipher(keep_bodies_key) if keep_bodies_key is not None else None
        self._lock = threading.Lock()
        self._conn: Any = None  # a DBAPI connection from the pool: the append path skips SQL compilation
        self._frontier = Frontier(-1)
        self._dialect = engine.dialect.name
        self._sql = store.append_sql(self._dialect)
        self.last_tsa_error: str | None = None
        self.last_failure: str | None = None  # why the last append failed, until one succeeds again
        self._guard = WriteGuard()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        node: str,
        signer: ec.EllipticCurvePrivateKey | None = None,
        signer_cert_pem: str | None = None,
        tsa_url: str | None = None,
        keep_bodies_key: bytes | None = None,
    ) -> ExchangeLog:
        try:
            engine = make_engine(url)
            try:
                require_current(engine, STORES["log"])
            except MigrationError as exc:
                engine.dispose()
                raise LogError(f"exchange log: {exc}") from None
            log = cls(
                engine,
                node=node,
                signer=signer,
                signer_cert_pem=signer_cert_pem,
                tsa_url=tsa_url,
                keep_bodies_key=keep_bodies_key,
            )
            with engine.begin() as conn:
                _, stored_node = store.get_meta(conn, "node")
                if stored_node is None:
                    if not node:
                        raise LogError("exchange log: a new log needs a node name")
                    store.set_meta(conn, "node", text=node)
                elif node and node != stored_node:
                    raise LogError("exchange log: this database belongs to another node")
                else:
                    log.node = stored_node
                if signer_cert_pem is not None:
                    store.set_meta(conn, "signer_cert", text=signer_cert_pem)
                elif signer is not None and store.get_meta(conn, "signer_cert")[1] is None:
                    store.set_meta(conn, "signer_cert", text=public_key_pem(signer))
        except SQLAlchemyError as exc:
            raise LogError(f"exchange log: cannot open the database ({type(exc).__name__})") from None
        return log

    # -- writing ---------------------------------------------------------------------------------

    def append(
        self, record: LogRecord, *, request_body: bytes | None = None, response_body: bytes | None = None
    ) -> int:
        """Durable before it returns (one commit); any failure is LoggingFailed and the exchange must stop.

        A PostgreSQL connection that died while idle (the server restarted) is replaced and the append tried once
        more, but only when nothing was committed on it. A database that cannot be reached, or a write that outlives
        WRITE_TIMEOUT, makes the next appends fail at once for a short while (see `available`).
        """
        content = record.canonical()
        leaf = leaf_hash(content)
        text = content.decode("utf-8")
        with self._lock:
            wait = self._guard.wait()
            if wait > 0:
                raise LoggingFailed(f"exchange log: the database was unreachable moments ago; next try in {wait:.1f} s")
            for attempt in (1, 2):
                fresh = self._conn is None
                committing = False
                self._guard.begin()
                try:
                    if self._conn is None:
                        try:
                            self._conn = self.engine.raw_connection()
                        except Exception:
                            self._guard.unreachable()
                            raise
                    raw = self._conn
                    with self._guard.guard(raw):
                        cur = raw.cursor()
                        try:
                            sql = self._sql
                            cur.execute(sql["bump"])
                            row = cur.fetchone()
                            if row is None:
                                raise LogError("exchange log: the size counter is missing")
                            index = int(row[0]) - 1
                            cached = self._frontier
                            frontier = cached.copy() if cached.size == index else self._load_frontier_raw(cur, index)
                            created = frontier.push(leaf)
                            cur.execute(sql["record"], (index, text))
                            cur.executemany(sql["node"], created)
                            if record.subject_hashes:
                                hashes = dict.fromkeys(record.subject_hashes)
                                cur.executemany(sql["subject"], [(h, index) for h in hashes])
                            if self._cipher is not None:
                                for kind, body in (("request", request_body), ("response", response_body)):
                                    if body is not None:
                                        blob = self._cipher.encrypt(index, kind, body)
                                        cur.execute(sql["body"], (index, kind, blob))
                            committing = True
                            raw.commit()
                        except BaseException:
                            with contextlib.suppress(Exception):  # the connection may be gone; it is dropped below
                                raw.rollback()
                            raise
                        finally:
                            with contextlib.suppress(Exception):
                                cur.close()
                    self._frontier = frontier
                    self._guard.reachable()
                    self.last_failure = None
                    return index
                except Exception as exc:  # any failure at all means not durable: fail closed
                    self._frontier = Frontier(-1)
                    self._drop_connection()
                    if self._guard.fired:
                        self._guard.unreachable()
                    elif attempt == 1 and not fresh and not committing and isinstance(exc, _LOST):
                        continue  # a connection the database server dropped while idle: once more, on a new one
                    failure = _failure(exc)
                    self.last_failure = str(failure)
                    raise failure from None
            raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def available(self) -> bool:
        """False while appends fail at once (the database was unreachable moments ago): callers may refuse
        an exchange before doing any work whose record could not be kept."""
        return self._guard.wait() == 0

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already failing; the original error is what matters
                conn.invalidate()  # not back to the pool: it may be broken, or stuck in a transaction

    def _load_frontier_raw(self, cur: Any, size: int) -> Frontier:
        found: dict[tuple[int, int], bytes] = {}
        wanted = perfect_subtrees(size)
        for level, index in wanted:
            cur.execute(self._sql["node_get"], (level, index))
            row = cur.fetchone()
            if row is None:
                raise LogError("exchange log: the stored tree is incomplete")
            found[(level, index)] = bytes(row[0])
        return Frontier(size, {lv: found[(lv, ix)] for lv, ix in wanted})

    def _load_frontier(self, conn: Connection, size: int) -> Frontier:
        wanted = perfect_subtrees(size)
        found: dict[tuple[int, int], bytes] = {}
        if wanted:
            rows = conn.execute(
                select(store.nodes.c.level, store.nodes.c.idx, store.nodes.c.hash).where(
                    tuple_(store.nodes.c.level, store.nodes.c.idx).in_(wanted)
                )
            )
            found = {(lv, ix): h for lv, ix, h in rows}
        if len(found) != len(wanted):
            raise LogError("exchange log: the stored tree is incomplete")
        return Frontier(size, {lv: found[(lv, ix)] for lv, ix in wanted})

    # -- tree heads and proofs -------------------------------------------------------------------

    def size(self) -> int:
        with self.engine.connect() as conn:
            value, _ = store.get_meta(conn, "size")
        return int(value or 0)

    def _node_lookup(self, conn: Connection) -> Any:
        cache: dict[tuple[int, int], bytes] = {}

        def node(level: int, index: int) -> bytes:
            key = (level, index)
            if key not in cache:
                h = conn.execute(
                    select(store.nodes.c.hash).where(store.nodes.c.level == level, store.nodes.c.idx == index)
                ).scalar_one_or_none()
                if h is None:
                    raise LogError("exchange log: the stored tree is incomplete")
                cache[key] = h
            return cache[key]

        return subtree_from_nodes(node)

    def _root(self, conn: Connection, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return bytes(self._node_lookup(conn)(0, size))

    def tree_head(self, size: int | None = None) -> TreeHead:
        with self.engine.connect() as conn:
            current = int(store.get_meta(conn, "size")[0] or 0)
            n = current if size is None else size
            if not 0 <= n <= current:
                raise LogError("tree size outside the log")
            return TreeHead(n, self._root(conn, n).hex(), now_ms())

    def sign_tree_head(self) -> SignedTreeHead:
        """Sign the current head; with a TSA, stamp it too (a TSA failure is recorded, not raised)."""
        if self.signer is None:
            raise LogError("exchange log: no signing key configured")
        head = self.tree_head()
        jws = sign_payload(
            sth_payload(self.node, head.size, head.root, head.timestamp), self.signer, self.signer_cert_pem
        )
        token: bytes | None = None
        error: str | None = None
        if self.tsa_url:
            sth = SignedTreeHead(self.node, head.size, head.root, head.timestamp, jws)
            try:
                token = request_token(self.tsa_url, sth.tsa_digest())
            except TimestampError as exc:
                error = str(exc)
                _log.warning("exchange log: tree head of size %d kept without time stamp: %s", head.size, error)
        self.last_tsa_error = error
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    store.tree_heads.insert().values(
                        size=head.size,
                        root=head.root,
                        timestamp=head.timestamp,
                        jws=jws,
                        tsa_token=token,
                        tsa_error=error,
                    )
                )
        except SQLAlchemyError as exc:
            raise _failure(exc) from None
        return SignedTreeHead(self.node, head.size, head.root, head.timestamp, jws, token, error)

    def signed_tree_heads(self) -> list[SignedTreeHead]:
        with self.engine.connect() as conn:
            return self._heads(conn)

    def _heads(self, conn: Connection) -> list[SignedTreeHead]:
        t = store.tree_heads.c
        rows = conn.execute(select(t.size, t.root, t.timestamp, t.jws, t.tsa_token, t.tsa_error).order_by(t.id)).all()
        node = self._stored_node(conn)
        return [SignedTreeHead(node, r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def _stored_node(self, conn: Connection) -> str:
        return store.get_meta(conn, "node")[1] or self.node

    def inclusion_proof(self, index: int, size: int | None = None) -> list[str]:
        with self.engine.connect() as conn:
            n = int(store.get_meta(conn, "size")[0] or 0) if size is None else size
            return [h.hex() for h in inclusion_proof(index, n, self._node_lookup(conn))]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[str]:
        with self.engine.connect() as conn:
            n = int(store.get_meta(conn, "size")[0] or 0) if new_size is None else new_size
            return [h.hex() for h in consistency_proof(old_size, n, self._node_lookup(conn))]

    def leaf_hash_at(self, index: int) -> str:
        with self.engine.connect() as conn:
            return bytes(self._node_lookup(conn)(index, index + 1)).hex()

    def signer_certificate(self) -> str | None:
        if self.signer_cert_pem is not None:
            return self.signer_cert_pem
        with self.engine.connect() as conn:
            return store.get_meta(conn, "signer_cert")[1]

    # -- verification ----------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        with self.engine.connect() as conn:
            heads = self._heads(conn)
            cert = self.signer_cert_pem or store.get_meta(conn, "signer_cert")[1]
            return verify_log(conn, heads, cert, self._stored_node(conn))

    # -- reading ---------------------------------------------------------------------------------

    def search(
        self,
        *,
        subject_hash: str | None = None,
        client: str | None = None,
        service: str | None = None,
        purpose: str | None = None,
        decision: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
        offset: int = 0,
        issue: str | None = None,
    ) -> list[tuple[int, LogRecord]]:
        """Records matching every given filter, oldest first; `until_ms` is exclusive."""
        d = self._dialect
        q = select(store.records.c.idx, store.records.c.content)
        if subject_hash is not None:
            among = select(store.subjects.c.idx).where(store.subjects.c.subject_hash == subject_hash)
            q = q.where(or_(store.field(d, "subject_hash") == subject_hash, store.records.c.idx.in_(among)))
        for name, value in (
            ("client", client),
            ("service", service),
            ("purpose", purpose),
            ("decision", decision),
            ("issue", issue),
        ):
            if value is not None:
                q = q.where(store.field(d, name) == value)
        if since_ms is not None:
            q = q.where(store.field(d, "request_in_ts") >= since_ms)
        if until_ms is not None:
            q = q.where(store.field(d, "request_in_ts") < until_ms)
        q = q.order_by(store.records.c.idx).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [(idx, LogRecord.from_canonical(content)) for idx, content in conn.execute(q)]

    def body(self, index: int, kind: str) -> bytes | None:
        """A kept body, decrypted (needs the key the log was opened with)."""
        if self._cipher is None:
            raise LogError("exchange log: opened without a body key")
        with self.engine.connect() as conn:
            blob = conn.execute(
                select(store.bodies.c.ciphertext).where(store.bodies.c.idx == index, store.bodies.c.kind == kind)
            ).scalar_one_or_none()
        return None if blob is None else self._cipher.decrypt(index, kind, blob)

    def stats(self, *, since_ms: int | None = None, until_ms: int | None = None) -> list[dict[str, Any]]:
        """Exchanges per day, client and purpose. Spike: a day above 3x the median of the 7 days before it
        (days without exchanges count as 0; the median is floored at 1), once the pair has 7 days of history."""
        d = self._dialect
        ts, client, purpose = (store.field(d, n) for n in ("request_in_ts", "client", "purpose"))
        q = select(ts, client, purpose).select_from(store.records)
        if since_ms is not None:
            q = q.where(ts >= since_ms - 8 * DAY_MS)
        if until_ms is not None:
            q = q.where(ts < until_ms)
        counts: Counter[tuple[str | None, str | None, int]] = Counter()
        first_day: dict[tuple[str | None, str | None], int] = {}
        with self.engine.connect() as conn:
            for t, c, p in conn.execute(q):
                day = int(t) // DAY_MS
                counts[(c, p, day)] += 1
                first_day[(c, p)] = min(first_day.get((c, p), day), day)
        series: dict[tuple[str | None, str | None], dict[int, int]] = defaultdict(dict)
        for (c, p, day), n in counts.items():
            series[(c, p)][day] = n
        out: list[dict[str, Any]] = []
        since_day = None if since_ms is None else since_ms // DAY_MS
        for (c, p), days in series.items():
            for day in sorted(days):
                if since_day is not None and day < since_day:
                    continue
                previous = [days.get(day - k, 0) for k in range(1, 8)]
                base = float(median(previous))
                history = day - first_day[(c, p)] >= 7
                out.append(
                    {
                        "day": datetime.fromtimestamp(day * 86_400, UTC).date().isoformat(),
                        "client": c,
                        "purpose": p,
                        "count": days[day],
                        "median_prev_7d": base,
                        "spike": history and days[day] > 3 * max(base, 1.0),
                    }
                )
        out.sort(key=lambda r: (r["day"], r["client"] or "", r["purpose"] or ""))
        return out

    # -- evidence and retention ------------------------------------------------------------------

    def export(self, path: Path, *, since_ms: int | None = None, until_ms: int | None = None) -> Path:
        from gateway.exchangelog.bundle import export_bundle

        return export_bundle(self, Path(path), since_ms=since_ms, until_ms=until_ms)

    def archive(self, before_ms: int, path: Path) -> int:
        from gateway.exchangelog.bundle import archive_prefix

        return archive_prefix(self, before_ms, Path(path))

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
        self._guard.stop()
        self.engine.dispose()

    def __enter__(self) -> ExchangeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
