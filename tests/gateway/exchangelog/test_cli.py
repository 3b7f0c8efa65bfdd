"""The `kiungo audit` commands on a real log file."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from gateway.exchangelog import ExchangeLog, subject_hash
from gateway.exchangelog.cli import app
from tests.gateway.exchangelog.conftest import NODE, make_record
from tests.schemas import migrate

runner = CliRunner()


def test_audit_commands(tmp_path: Path, signer: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    key, cert = signer
    secret = tmp_path / "secret"
    secret.write_bytes(b"s3cret\n")
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_text(cert)
    person = subject_hash(b"s3cret", "ZZ-PERSON-1")
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    with ExchangeLog.open(migrate(url, "log"), node=NODE) as log:
        for i in range(12):
            log.append(
                make_record(
                    i, subject_hash=person if i in (2, 5) else None, outcome="ok" if i != 5 else "consent_withdrawn"
                )
            )

    result = runner.invoke(app, ["sign", "--log", url, "--key", str(key_file), "--cert", str(cert_file)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", "--log", url])
    assert result.exit_code == 0
    assert "ok: 12 records, 1 signed tree heads" in result.output

    result = runner.invoke(app, ["search", "--log", url, "--subject", "zz-person-1", "--secret-file", str(secret)])
    assert result.exit_code == 0
    assert "2 record(s)" in result.output

    result = runner.invoke(app, ["subject-report", "ZZ-PERSON-1", "--log", url, "--secret-file", str(secret)])
    assert result.exit_code == 0
    assert "2 exchange(s)" in result.output
    assert "was refused" in result.output
    assert "ZZ/GOV/MSP" in result.output
    result = runner.invoke(app, ["subject-report", "ZZ-PERSON-1", "--log", url, "--secret-file", str(secret), "--json"])
    data = json.loads(result.output)
    assert data["records"] == 2
    assert data["clients"][0]["accesses"][0]["agreement"] == "DSA-0001 v2"

    result = runner.invoke(app, ["stats", "--log", url])
    assert result.exit_code == 0
    assert "vsr1" in result.output

    out = tmp_path / "bundle.zip"
    result = runner.invoke(app, ["export", "--log", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", "--bundle", str(out), "--cert", str(cert_file)])
    assert result.exit_code == 0
    assert "ok: 12 records" in result.output

    import sqlite3

    conn = sqlite3.connect(tmp_path / "log.sqlite")
    conn.execute("DELETE FROM log_record WHERE idx = 4")
    conn.commit()
    conn.close()
    result = runner.invoke(app, ["verify", "--log", url])
    assert result.exit_code == 1
    assert "removed at index 4" in result.output
