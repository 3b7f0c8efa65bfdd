"""How fast the exchange log appends (one commit per record, goal >= 5,000/s on SQLite) and verifies
(goal >= 100,000 records/s), against baselines measured in the same run: a plain insert + commit of the
same record without any hashing or tree, and a plain read + SHA-256 of every record.

Every exchange writes at least one record before it may proceed (fail closed), so the append rate caps
a gateway's exchange rate; verification speed decides how often a DPO can afford a full check.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

from bench.stats import median
from gateway.exchangelog import ExchangeLog, LogRecord
from tests.schemas import migrate

RUNS = 3
APPENDS_SQLITE = 5_000
APPENDS_PG = 1_000
VERIFY_RECORDS = 30_000
GOAL_APPEND = 5_000.0
GOAL_VERIFY = 100_000.0
PG = ("127.0.0.1", 5432)
T0 = 1_780_000_000_000


def record(i: int) -> LogRecord:
    """A realistic record, about 900 bytes of canonical JSON."""
    return LogRecord(
        exchange_id=f"ZZ-{uuid.UUID(int=i)}",
        request_id=f"req-{i}",
        side="Producer",
        protocol="REST",
        client="ZZ/GOV/MSP/vsr",
        service="ZZ/GOV/CRA/civreg/getPerson/v1",
        user_id="EE-officer-0042",
        purpose="old-age-grant-eligibility",
        lawful_basis="public-task",
        agreement_id="DSA-0007",
        agreement_version=3,
        decision="allowed",
        outcome="ok",
        status_code=200,
        request_in_ts=T0 + i,
        request_out_ts=T0 + i + 2,
        response_in_ts=T0 + i + 30,
        response_out_ts=T0 + i + 31,
        request_size=312,
        response_size=1480,
        request_digest=hashlib.sha256(b"q%d" % i).hexdigest(),
        response_digest=hashlib.sha256(b"r%d" % i).hexdigest(),
        request_signature="eyJhbGciOiJFUzI1NiJ9..sig" + "A" * 60,
        response_signature="eyJhbGciOiJFUzI1NiJ9..sig" + "B" * 60,
        subject_hash=hashlib.sha256(b"s%d" % (i % 1000)).hexdigest(),
        method="GET",
        path_template="/persons/{id}",
    )


def _rate(n: int, fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def _plain_sqlite(path: Path, contents: list[str]) -> Callable[[], None]:
    def run() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (idx INTEGER PRIMARY KEY, content TEXT NOT NULL)")
        for i, c in enumerate(contents):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (idx, content) VALUES (?, ?)", (i, c))
            conn.execute("COMMIT")
        conn.close()

    return run


def _appends(url: str, records: list[LogRecord]) -> Callable[[], None]:
    def run() -> None:
        log = ExchangeLog.open(migrate(url, "log"), node="ZZ/GOV/CRA")
        for r in records:
            log.append(r)
        log.close()

    return run


def _pg_available() -> bool:
    try:
        with socket.create_connection(PG, timeout=1):
            pass
        import psycopg  # noqa: F401
    except (OSError, ImportError):
        return False
    return True


def _pg_database() -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"kiungo_bench_log_{uuid.uuid4().hex[:8]}"
    admin = f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql://postgres@{PG[0]}:{PG[1]}/{name}", drop


def _plain_pg(url: str, contents: list[str]) -> Callable[[], None]:
    import psycopg

    def run() -> None:
        with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (idx BIGINT PRIMARY KEY, content TEXT NOT NULL)")
            conn.execute("TRUNCATE t")
            conn.commit()
            for i, c in enumerate(contents):
                conn.execute("INSERT INTO t (idx, content) VALUES (%s, %s)", (i, c))
                conn.commit()

    return run


def _plain_verify(path: Path) -> Callable[[], None]:
    def run() -> None:
        conn = sqlite3.connect(path)
        sha = hashlib.sha256
        for (content,) in conn.execute("SELECT content FROM log_record ORDER BY idx"):
            sha(b"\x00" + content.encode()).digest()
        conn.close()

    return run


def main() -> None:
    console = Console()
    rows: list[tuple[str, float, float | None, float | None, str]] = []
    records = [record(i) for i in range(max(APPENDS_SQLITE, VERIFY_RECORDS))]
    contents = [r.canonical().decode() for r in records]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plain, logged = [], []
        for run in range(RUNS):
            plain.append(_rate(APPENDS_SQLITE, _plain_sqlite(base / f"plain{run}.sqlite", contents[:APPENDS_SQLITE])))
            logged.append(
                _rate(APPENDS_SQLITE, _appends(f"sqlite:///{base / f'log{run}.sqlite'}", records[:APPENDS_SQLITE]))
            )
        rows.append(("SQLite insert + commit, no hashing (baseline)", median(plain), None, None, ""))
        rows.append(("SQLite append, commit per record", median(logged), median(plain), GOAL_APPEND, "records/s"))

        if _pg_available():
            url, drop = _pg_database()
            try:
                plain_pg, logged_pg = [], []
                for _ in range(RUNS):
                    plain_pg.append(_rate(APPENDS_PG, _plain_pg(url, contents[:APPENDS_PG])))
                    logged_pg.append(_rate(APPENDS_PG, _appends(url, records[:APPENDS_PG])))
                rows.append(("PostgreSQL insert + commit, no hashing (baseline)", median(plain_pg), None, None, ""))
                rows.append(("PostgreSQL append, commit per record", median(logged_pg), median(plain_pg), None, ""))
            finally:
                drop()
        else:
            console.print(f"PostgreSQL not reachable on {PG[0]}:{PG[1]}: its rows are left out")

        path = base / "verify.sqlite"
        key = ec.generate_private_key(ec.SECP256R1())
        log = ExchangeLog.open(migrate(f"sqlite:///{path}", "log"), node="ZZ/GOV/CRA", signer=key)
        for i, r in enumerate(records[:VERIFY_RECORDS]):
            log.append(r)
            if i % 5_000 == 4_999:
                log.sign_tree_head()
        plain_v, verified = [], []
        for _ in range(RUNS):
            plain_v.append(_rate(VERIFY_RECORDS, _plain_verify(path)))
            started = time.perf_counter()
            report = log.verify()
            verified.append(report.records / (time.perf_counter() - started))
            assert report.ok, report.summary()
        log.close()
        rows.append(("read + SHA-256 of every record (baseline)", median(plain_v), None, None, ""))
        rows.append(("verify: leaves, tree, 6 signed heads", median(verified), median(plain_v), GOAL_VERIFY, ""))

    table = Table(title=f"exchange log (median of {RUNS} runs)")
    for column in ("measurement", "per second", "× baseline", "goal", "meets goal"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for name, rate, baseline, goal, _unit in rows:
        table.add_row(
            name,
            f"{rate:,.0f}",
            f"{rate / baseline:.2f}" if baseline else "",
            f"{goal:,.0f}" if goal else "",
            ("yes" if rate >= goal else "NO") if goal else "",
        )
    console.print(table)


if __name__ == "__main__":
    main()
