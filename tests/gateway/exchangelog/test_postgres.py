"""The PostgreSQL path against the real server: append from two logs (two 'replicas'), verify, search."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.exchangelog import ExchangeLog, LoggingFailed
from tests.gateway.exchangelog.conftest import NODE, make_record
from tests.gateway.exchangelog.test_merkle import ref_mth
from tests.schemas import migrate


def test_postgres_append_verify_search(pg_url: str, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    key, cert = signer
    a = ExchangeLog.open(migrate(pg_url, "log"), node=NODE, signer=key, signer_cert_pem=cert)
    b = ExchangeLog.open(migrate(pg_url, "log"), node=NODE, signer=key, signer_cert_pem=cert)
    try:
        with ThreadPoolExecutor(4) as pool:
            indices = list(pool.map(lambda i: (a if i % 2 else b).append(make_record(i)), range(60)))
        assert sorted(indices) == list(range(60))
        a.sign_tree_head()
        report = b.verify()
        assert report.ok, report.summary()
        contents = [r.canonical() for _, r in a.search(limit=1000)]
        assert a.tree_head().root == ref_mth(contents).hex()
        assert len(a.search(subject_hash=f"{3:064x}")) == 6
        assert len(a.search(since_ms=make_record(10).request_in_ts, until_ms=make_record(20).request_in_ts)) == 10
        assert a.stats()[0]["count"] == 20

        with psycopg.connect(pg_url) as conn:
            conn.execute("UPDATE log_record SET content = replace(content, 'allowed', 'denied') WHERE idx = 17")
        report = a.verify()
        assert (report.kind, report.index) == ("altered", 17)
    finally:
        a.close()
        b.close()


def test_postgres_unreachable_is_logging_failed(pg_url: str) -> None:
    log = ExchangeLog.open(migrate(pg_url, "log"), node=NODE)
    log.append(make_record(0))
    log.engine.dispose()
    log.engine = type(log.engine).__new__(type(log.engine))  # a broken engine: no pool at all
    log._conn.close()
    log._conn = None
    with pytest.raises(LoggingFailed) as caught:
        log.append(make_record(1))
    assert "ZZ-" not in str(caught.value)
