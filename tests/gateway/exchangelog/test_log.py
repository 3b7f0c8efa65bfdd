"""Appending, proofs against the RFC reference, and every kind of tampering caught with index and kind."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.exchangelog import ExchangeLog, LogError, LoggingFailed, TamperError, merkle
from gateway.exchangelog.record import LogRecord
from gateway.exchangelog.treehead import sign_payload
from tests.gateway.exchangelog.conftest import NODE, make_record
from tests.gateway.exchangelog.test_merkle import ref_mth, ref_path, ref_subproof
from tests.schemas import migrate


def fill(log: ExchangeLog, n: int, start: int = 0) -> list[bytes]:
    contents = []
    for i in range(start, start + n):
        record = make_record(i)
        assert log.append(record) == i
        contents.append(record.canonical())
    return contents


def test_append_and_proofs_agree_with_the_reference(log: ExchangeLog) -> None:
    data = fill(log, 37)
    assert log.size() == 37
    for size in (1, 2, 5, 8, 13, 37):
        assert log.tree_head(size).root == ref_mth(data[:size]).hex()
        for i in range(size):
            assert log.inclusion_proof(i, size) == [h.hex() for h in ref_path(i, data[:size])]
    for old in (1, 3, 8, 20, 36):
        assert log.consistency_proof(old, 37) == [h.hex() for h in ref_subproof(old, data, True)]
    report = log.verify()
    assert report.ok
    assert report.records == 37


def test_reopened_log_continues_the_tree(log_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    key, cert = signer
    data: list[bytes] = []
    for _ in range(3):  # each process-like reopen reloads the frontier from stored nodes
        with ExchangeLog.open(
            migrate(f"sqlite:///{log_path}", "log"), node=NODE, signer=key, signer_cert_pem=cert
        ) as log:
            data += fill(log, 11, start=len(data))
            log.sign_tree_head()
    with ExchangeLog.open(migrate(f"sqlite:///{log_path}", "log"), node=NODE, signer_cert_pem=cert) as log:
        assert log.tree_head().root == ref_mth(data).hex()
        assert log.verify().ok
        assert len(log.signed_tree_heads()) == 3


def test_concurrent_appends_from_threads(log: ExchangeLog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        indices = list(pool.map(lambda i: log.append(make_record(i)), range(200)))
    assert sorted(indices) == list(range(200))
    log.sign_tree_head()
    assert log.verify().ok


@pytest.fixture
def signed_log(log: ExchangeLog, log_path: Path) -> tuple[ExchangeLog, Path]:
    fill(log, 20)
    log.sign_tree_head()
    fill(log, 12, start=20)
    log.sign_tree_head()
    assert log.verify().ok
    return log, log_path


def tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def problem(log: ExchangeLog) -> tuple[str | None, int | None]:
    report = log.verify()
    assert not report.ok
    with pytest.raises(TamperError) as caught:
        report.raise_for_problem()
    assert caught.value.kind == report.kind
    return report.kind, report.index


def test_edited_field_is_altered(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(
        path,
        'UPDATE log_record SET content = replace(content, \'"decision":"allowed"\', '
        '\'"decision":"no_agreement"\') WHERE idx = 7',
    )
    assert problem(log) == ("altered", 7)


def test_deleted_record_is_removed(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(path, "DELETE FROM log_record WHERE idx = 5")
    assert problem(log) == ("removed", 5)


def test_deleted_and_renumbered_record_is_removed(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(
        path,
        "DELETE FROM log_record WHERE idx = 5",
        "UPDATE log_record SET idx = -(idx - 1) WHERE idx > 5",
        "UPDATE log_record SET idx = -idx WHERE idx < 0",
    )
    assert problem(log) == ("removed", 5)


def test_inserted_record_is_inserted(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    forged = make_record(999).canonical().decode().replace("'", "''")
    tamper(
        path,
        "UPDATE log_record SET idx = -(idx + 1) WHERE idx >= 9",
        "UPDATE log_record SET idx = -idx WHERE idx < 0",
        f"INSERT INTO log_record (idx, content) VALUES (9, '{forged}')",
    )
    assert problem(log) == ("inserted", 9)


def test_record_appended_without_leaf_is_inserted(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    forged = make_record(999).canonical().decode().replace("'", "''")
    tamper(path, f"INSERT INTO log_record (idx, content) VALUES (32, '{forged}')")
    assert problem(log) == ("inserted", 32)


def test_swapped_records_are_reordered(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(
        path,
        "UPDATE log_record SET idx = -1 WHERE idx = 3",
        "UPDATE log_record SET idx = 3 WHERE idx = 11",
        "UPDATE log_record SET idx = 11 WHERE idx = -1",
    )
    assert problem(log) == ("reordered", 3)


def test_truncated_tail_is_truncated(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(path, "DELETE FROM log_record WHERE idx >= 25")
    assert problem(log) == ("truncated", 25)


def test_truncation_that_also_rewrites_the_tree_is_caught_by_the_signed_head(
    signed_log: tuple[ExchangeLog, Path],
) -> None:
    log, path = signed_log
    tamper(
        path,
        "DELETE FROM log_record WHERE idx >= 25",
        "DELETE FROM log_node WHERE (idx << level) + (1 << level) > 25",
        "UPDATE log_meta SET value = 25 WHERE key = 'size'",
    )
    assert problem(log) == ("truncated", 25)


def test_consistent_rewrite_is_caught_by_the_signed_root(signed_log: tuple[ExchangeLog, Path]) -> None:
    """An attacker who edits a record and recomputes its leaf and every interior hash still misses the STH."""
    log, path = signed_log
    conn = sqlite3.connect(path)
    content = make_record(4, outcome="ok", decision="consent_withdrawn").canonical()
    conn.execute("UPDATE log_record SET content = ? WHERE idx = 4", (content.decode(),))
    leaves = [row[0] for row in conn.execute("SELECT hash FROM log_node WHERE level = 0 ORDER BY idx")]
    leaves[4] = merkle.leaf_hash(content)
    conn.execute("DELETE FROM log_node WHERE level > 0")
    frontier = merkle.Frontier()
    for leaf in leaves:
        for level, idx, h in frontier.push(leaf):
            conn.execute("INSERT OR REPLACE INTO log_node (level, idx, hash) VALUES (?, ?, ?)", (level, idx, h))
    conn.commit()
    conn.close()
    assert problem(log) == ("altered", None)


def test_replaced_tree_head_root_is_tree_head(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(path, f"UPDATE log_sth SET root = '{'00' * 32}' WHERE id = 1")
    assert problem(log) == ("tree-head", None)


def test_tree_head_signed_by_another_key_is_signature(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    other = ec.generate_private_key(ec.SECP256R1())
    head = log.signed_tree_heads()[0]
    forged = sign_payload(head.payload(), other, None)
    tamper(path, f"UPDATE log_sth SET jws = '{forged}' WHERE id = 1")
    assert problem(log) == ("signature", None)


def test_edited_interior_hash_is_altered(signed_log: tuple[ExchangeLog, Path]) -> None:
    log, path = signed_log
    tamper(path, "UPDATE log_node SET hash = zeroblob(32) WHERE level = 2 AND idx = 1")
    assert problem(log) == ("altered", 4)


def test_logging_failed_on_read_only_file(log_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    key, cert = signer
    with ExchangeLog.open(migrate(f"sqlite:///{log_path}", "log"), node=NODE, signer=key, signer_cert_pem=cert) as log:
        fill(log, 3)
    for p in log_path.parent.glob("log.sqlite*"):
        os.chmod(p, stat.S_IRUSR)
    os.chmod(log_path.parent, stat.S_IRUSR | stat.S_IXUSR)
    try:
        # root ignores file modes: then SQLite itself opens the file read-only
        url = f"sqlite:///file:{log_path}?mode=ro&uri=true" if os.access(log_path, os.W_OK) else f"sqlite:///{log_path}"
        log = ExchangeLog.open(migrate(url, "log"), node=NODE)
        secret = make_record(3, subject_hash="f" * 64, user_id="officer-secret-name")
        with pytest.raises(LoggingFailed) as caught:
            log.append(secret)
        message = str(caught.value)
        assert "officer-secret-name" not in message
        assert "f" * 64 not in message
        assert "ZZ-" not in message
        assert caught.value.__cause__ is None
    finally:
        os.chmod(log_path.parent, stat.S_IRWXU)
        for p in log_path.parent.glob("log.sqlite*"):
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


def test_logging_failed_on_closed_connection(log: ExchangeLog) -> None:
    fill(log, 2)
    log._conn.close()  # the connection dies under the log (server restart, network)
    with pytest.raises(LoggingFailed) as caught:
        log.append(make_record(2, user_id="officer-secret-name"))
    assert "officer-secret-name" not in str(caught.value)
    assert log.append(make_record(2)) == 2  # the next append reconnects
    log.sign_tree_head()
    assert log.verify().ok


def test_bodies_are_kept_encrypted_outside_the_leaf(log_path: Path) -> None:
    key = os.urandom(32)
    with ExchangeLog.open(migrate(f"sqlite:///{log_path}", "log"), node=NODE, keep_bodies_key=key) as log:
        index = log.append(make_record(0), request_body=b'{"nid":"SECRET-ID-1"}', response_body=b"resp")
        assert log.body(index, "request") == b'{"nid":"SECRET-ID-1"}'
        assert log.body(index, "response") == b"resp"
    raw = log_path.read_bytes() + b"".join(p.read_bytes() for p in log_path.parent.glob("log.sqlite-wal"))
    assert b"SECRET-ID-1" not in raw
    with ExchangeLog.open(migrate(f"sqlite:///{log_path}", "log"), node=NODE) as log, pytest.raises(LogError):
        log.body(0, "request")


def test_archive_keeps_the_log_verifiable(log: ExchangeLog, tmp_path: Path) -> None:
    from gateway.exchangelog import verify_bundle
    from tests.gateway.exchangelog.conftest import T0

    fill(log, 30)
    log.sign_tree_head()
    moved = log.archive(T0 + 10 * 1000, tmp_path / "archive-1.zip")
    assert moved == 10
    assert log.search(limit=1000)[0][0] == 10
    fill(log, 5, start=30)
    log.sign_tree_head()
    report = log.verify()
    assert report.ok, report.summary()
    assert report.archived == 10
    assert verify_bundle(tmp_path / "archive-1.zip").ok
    assert log.archive(T0 + 10 * 1000, tmp_path / "again.zip") == 0


def test_a_batch_exchange_is_found_by_each_of_its_subjects(log: ExchangeLog) -> None:
    log.append(make_record(0, subject_hash="a" * 64))
    batch = make_record(1, subject_hash="b" * 64, subject_hashes=["b" * 64, "c" * 64, "d" * 64])
    index = log.append(batch)
    for subject in ("b", "c", "d"):
        assert [i for i, _ in log.search(subject_hash=subject * 64)] == [index]
    assert [i for i, _ in log.search(subject_hash="a" * 64)] == [0]
    assert log.search(subject_hash="e" * 64) == []
    assert log.verify().ok


def test_records_without_the_later_fields_keep_their_leaves() -> None:
    old = make_record(3)
    data = old.to_dict()
    assert "issue" not in data
    assert "subject_hashes" not in data
    assert LogRecord.from_dict(data) == old
    assert b"subject_hashes" not in old.canonical()
