"""Signed tree heads with real RFC 3161 tokens from a loopback TSA; evidence bundles verified offline."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import rfc3161_client
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.exchangelog import ExchangeLog, verify_bundle
from gateway.exchangelog.treehead import verify_sth
from gateway.exchangelog.tsa import TimestampError, request_token, verify_token
from tests.gateway.exchangelog.conftest import NODE, T0, make_record
from tests.schemas import migrate


def test_token_from_loopback_tsa_verifies_and_rfc3161_client_agrees(tsa: tuple[str, str]) -> None:
    url, cert_pem = tsa
    digest = hashlib.sha256(b"tree head").digest()
    token = request_token(url, digest)
    info = verify_token(token, digest, tsa_cert_pem=cert_pem)
    assert info.policy
    with pytest.raises(TimestampError):
        verify_token(token, hashlib.sha256(b"other").digest())
    # An independent verifier (rfc3161-client, Rust) accepts our ECDSA tokens too.
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    query = rfc3161_client.TimestampRequestBuilder().data(b"tree head").nonce(nonce=True).build()
    import httpx

    reply = httpx.post(url, content=query.as_bytes(), headers={"Content-Type": "application/timestamp-query"})
    response = rfc3161_client.decode_timestamp_response(reply.content)
    verifier = rfc3161_client.VerifierBuilder(roots=[cert], tsa_certificate=cert).build()
    assert verifier.verify_message(response, b"tree head")


def test_signed_tree_head_with_token(
    log_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str], tsa: tuple[str, str]
) -> None:
    key, cert = signer
    url, _ = tsa
    with ExchangeLog.open(
        migrate(f"sqlite:///{log_path}", "log"), node=NODE, signer=key, signer_cert_pem=cert, tsa_url=url
    ) as log:
        for i in range(5):
            log.append(make_record(i))
        sth = log.sign_tree_head()
        assert sth.tsa_token is not None
        assert sth.tsa_error is None
        verify_token(sth.tsa_token, sth.tsa_digest())
        verify_sth(sth, cert)
        assert log.signed_tree_heads() == [sth]
        assert log.verify().ok


def test_tsa_down_keeps_the_head_and_reports(log_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    key, cert = signer
    from gateway.server import base_url, bind

    sock = bind("127.0.0.1", 0)
    dead = base_url(sock) + "/"
    sock.close()  # nobody listens there now
    with ExchangeLog.open(
        migrate(f"sqlite:///{log_path}", "log"), node=NODE, signer=key, signer_cert_pem=cert, tsa_url=dead
    ) as log:
        log.append(make_record(0))
        sth = log.sign_tree_head()
        assert sth.tsa_token is None
        assert sth.tsa_error
        assert log.last_tsa_error == sth.tsa_error
        assert log.signed_tree_heads()[0].tsa_error == sth.tsa_error
        assert log.verify().ok


@pytest.fixture
def exported(tmp_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str], tsa: tuple[str, str]) -> Path:
    key, cert = signer
    url, _ = tsa
    db = tmp_path / "db" / "log.sqlite"
    db.parent.mkdir()
    with ExchangeLog.open(
        migrate(f"sqlite:///{db}", "log"), node=NODE, signer=key, signer_cert_pem=cert, tsa_url=url
    ) as log:
        for i in range(25):
            log.append(make_record(i))
        log.sign_tree_head()
        for i in range(25, 40):
            log.append(make_record(i))
        out = log.export(tmp_path / "evidence")  # signs a head covering the tail
        assert len(log.signed_tree_heads()) == 2
    shutil.rmtree(db.parent)  # offline: the log is gone
    return out


def test_export_verifies_offline(exported: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    _, cert = signer
    report = verify_bundle(exported, signer_cert_pem=cert)
    assert report.ok, report.summary()
    assert (report.records, report.tree_heads) == (40, 2)
    assert "README" in (exported / "README.txt").read_text() or (exported / "README.txt").exists()


def test_zip_export_and_time_filter(tmp_path: Path, log: ExchangeLog) -> None:
    for i in range(30):
        log.append(make_record(i))
    out = log.export(tmp_path / "part.zip", since_ms=T0 + 5000, until_ms=T0 + 15000)
    assert zipfile.is_zipfile(out)
    report = verify_bundle(out)
    assert report.ok
    assert report.records == 10


def _rewrite(path: Path, name: str, edit: object) -> None:
    target = path / name
    target.write_text(edit(target.read_text()))  # type: ignore[operator]


def _lines(edit_lines: object) -> object:
    def inner(text: str) -> str:
        lines = text.splitlines()
        return "\n".join(edit_lines(lines)) + "\n"  # type: ignore[operator]

    return inner


def test_bundle_edited_record(exported: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        item = json.loads(lines[6])
        item["record"]["purpose"] = "marketing"
        lines[6] = json.dumps(item)
        return lines

    _rewrite(exported, "records.jsonl", _lines(edit))
    report = verify_bundle(exported)
    assert (report.kind, report.index) == ("altered", 6)


def test_bundle_removed_record(exported: Path) -> None:
    _rewrite(exported, "records.jsonl", _lines(lambda lines: lines[:10] + lines[11:]))
    report = verify_bundle(exported)
    assert (report.kind, report.index) == ("removed", 10)


def test_bundle_swapped_records(exported: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[3], lines[8] = lines[8], lines[3]
        return lines

    _rewrite(exported, "records.jsonl", _lines(edit))
    report = verify_bundle(exported)
    assert (report.kind, report.index) == ("reordered", 3)


def test_bundle_truncated(exported: Path) -> None:
    _rewrite(exported, "records.jsonl", _lines(lambda lines: lines[:30]))
    report = verify_bundle(exported)
    assert (report.kind, report.index) in {("truncated", 30), ("removed", None)}


def test_bundle_replaced_tree_head(exported: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    _, cert = signer
    heads = json.loads((exported / "tree_heads.json").read_text())
    heads[0]["root"] = "11" * 32
    (exported / "tree_heads.json").write_text(json.dumps(heads))
    assert verify_bundle(exported, signer_cert_pem=cert).kind == "tree-head"


def test_bundle_with_substituted_certificate(exported: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    """Re-signing with another key and shipping that key's certificate fails against a pinned certificate."""
    from tests.gateway.exchangelog.conftest import signer as make_signer

    other_key, other_cert = make_signer.__wrapped__()  # type: ignore[attr-defined]
    from gateway.exchangelog.treehead import sign_payload, sth_payload

    heads = json.loads((exported / "tree_heads.json").read_text())
    for h in heads:
        h["jws"] = sign_payload(sth_payload(h["node"], h["size"], h["root"], h["timestamp"]), other_key, other_cert)
        h["tsa_token"] = None
    (exported / "tree_heads.json").write_text(json.dumps(heads))
    (exported / "signer-cert.pem").write_text(other_cert)
    assert verify_bundle(exported).ok  # self-consistent...
    _, pinned = signer
    assert verify_bundle(exported, signer_cert_pem=pinned).kind == "signature"  # ...but not ours
