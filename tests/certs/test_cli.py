from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from certs import (
    PASSPHRASE_ENV,
    CertificateAuthority,
    check_crl,
    load_certificate,
    load_private_key,
    member_of,
    usage_of,
    verify_directory,
    verify_issued_by,
)
from certs.cli import app
from tests.certs.conftest import PASS

runner = CliRunner()


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASS.decode())


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    result = runner.invoke(
        app, ["init", "--ca", str(tmp_path / "ca"), "--instance", "ZZ", "--name", "Sandbox federation authority"]
    )
    assert result.exit_code == 0, result.output
    assert "directory.cert.pem" in result.output
    return tmp_path / "ca"


def test_issue_member_show_revoke_crl(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cra"
    result = runner.invoke(
        app,
        [
            "issue",
            "--ca",
            str(ca_dir),
            "--member",
            "ZZ/GOV/CRA",
            "--out",
            str(out),
            "--host",
            "127.0.0.1",
            "--host",
            "cra.example",
            "--name",
            "Civil Registration Authority",
        ],
    )
    assert result.exit_code == 0, result.output
    auth = load_certificate(out / "auth.cert.pem")
    ca_cert = load_certificate(out / "ca.cert.pem")
    verify_issued_by(auth, ca_cert, usage="auth")
    assert f"{auth.serial_number:x}" in result.output
    assert load_private_key(out / "sign.key.pem", PASS)

    shown = runner.invoke(app, ["show", str(out / "sign.cert.pem")])
    assert shown.exit_code == 0, shown.output
    assert "ZZ/GOV/CRA" in shown.output
    assert "usage       sign" in shown.output

    revoked = runner.invoke(
        app, ["revoke", "--ca", str(ca_dir), "--cert", str(out / "auth.cert.pem"), "--reason", "keyCompromise"]
    )
    assert revoked.exit_code == 0, revoked.output
    crl_path = tmp_path / "crl.pem"
    written = runner.invoke(app, ["crl", "--ca", str(ca_dir), "--out", str(crl_path)])
    assert written.exit_code == 0, written.output
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(auth.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    check_crl(load_certificate(out / "sign.cert.pem"), crl, ca_cert)


def test_revoke_by_serial(ca_dir: Path, tmp_path: Path) -> None:
    directory_cert = load_certificate(ca_dir / "directory.cert.pem")
    result = runner.invoke(app, ["revoke", "--ca", str(ca_dir), "--serial", f"{directory_cert.serial_number:X}"])
    assert result.exit_code == 0, result.output
    assert CertificateAuthority.open(ca_dir, PASS).is_revoked(directory_cert.serial_number)
    unknown = runner.invoke(app, ["revoke", "--ca", str(ca_dir), "--serial", "abc"])
    assert unknown.exit_code == 2
    assert "error: serial abc was not issued" in unknown.output


def test_member_csr_then_issue(ca_dir: Path, tmp_path: Path) -> None:
    key, request, cert = tmp_path / "m" / "sign.key.pem", tmp_path / "m" / "sign.csr", tmp_path / "m" / "sign.cert.pem"
    made = runner.invoke(app, ["csr", "--member", "ZZ/GOV/TAX", "--key-out", str(key), "--out", str(request)])
    assert made.exit_code == 0, made.output
    issued = runner.invoke(
        app,
        [
            "issue",
            "--ca",
            str(ca_dir),
            "--member",
            "ZZ/GOV/TAX",
            "--usage",
            "sign",
            "--csr",
            str(request),
            "--out",
            str(cert),
        ],
    )
    assert issued.exit_code == 0, issued.output
    certificate = load_certificate(cert)
    assert member_of(certificate) == "ZZ/GOV/TAX"
    assert usage_of(certificate) == "sign"
    assert certificate.public_key() == load_private_key(key, PASS).public_key()
    again = runner.invoke(app, ["csr", "--member", "ZZ/GOV/TAX", "--key-out", str(key), "--out", str(request)])
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.output


def test_directory_sign_and_verify(ca_dir: Path, tmp_path: Path) -> None:
    content = tmp_path / "content.json"
    content.write_text(json.dumps({"members": [{"id": "ZZ/GOV/CRA"}, {"id": "ZZ/GOV/TAX"}]}))
    signed = tmp_path / "directory.jws"
    result = runner.invoke(
        app,
        [
            "directory",
            "sign",
            "--ca",
            str(ca_dir),
            "--input",
            str(content),
            "--out",
            str(signed),
            "--valid-hours",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    anchor = ca_dir / "directory.cert.pem"
    assert verify_directory(signed.read_bytes(), load_certificate(anchor))["instance"] == "ZZ"
    checked = runner.invoke(app, ["directory", "verify", "--anchor", str(anchor), str(signed)])
    assert checked.exit_code == 0, checked.output
    assert "instance ZZ" in checked.output
    assert "members  2" in checked.output

    blob = bytearray(signed.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    signed.write_bytes(bytes(blob))
    failed = runner.invoke(app, ["directory", "verify", "--anchor", str(anchor), str(signed)])
    assert failed.exit_code == 1
    assert failed.output.startswith("error: ")


def test_directory_sign_without_dates_fails_cleanly(ca_dir: Path, tmp_path: Path) -> None:
    content = tmp_path / "content.json"
    content.write_text("{}")
    result = runner.invoke(
        app, ["directory", "sign", "--ca", str(ca_dir), "--input", str(content), "--out", str(tmp_path / "d.jws")]
    )
    assert result.exit_code == 2
    assert "error: directory content lacks issued_at, expires_at" in result.output


def test_missing_passphrase_names_env_and_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    result = runner.invoke(app, ["init", "--ca", str(tmp_path / "ca"), "--instance", "ZZ", "--name", "X"])
    assert result.exit_code == 2
    assert PASSPHRASE_ENV in result.output
    assert "--passphrase-file" in result.output
    assert "Traceback" not in result.output


def test_wrong_passphrase_file(ca_dir: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    result = runner.invoke(app, ["crl", "--ca", str(ca_dir), "--out", str(tmp_path / "c.pem")])
    assert result.exit_code == 0
    result = runner.invoke(
        app, ["crl", "--ca", str(ca_dir), "--out", str(tmp_path / "c.pem"), "--passphrase-file", str(wrong)]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: wrong passphrase")
    assert "not it" not in result.output


def test_usage_errors(ca_dir: Path, tmp_path: Path) -> None:
    again = runner.invoke(app, ["init", "--ca", str(ca_dir), "--instance", "ZZ", "--name", "X"])
    assert again.exit_code == 2
    assert "already exists" in again.output
    no_host = runner.invoke(app, ["issue", "--ca", str(ca_dir), "--member", "ZZ/GOV/CRA", "--out", str(tmp_path)])
    assert no_host.exit_code == 2
    assert "host" in no_host.output
    wrong_instance = runner.invoke(
        app, ["issue", "--ca", str(ca_dir), "--member", "XX/GOV/CRA", "--out", str(tmp_path), "--host", "a.example"]
    )
    assert wrong_instance.exit_code == 2
    assert "not in this federation" in wrong_instance.output
    both = runner.invoke(app, ["revoke", "--ca", str(ca_dir)])
    assert both.exit_code == 2
    assert "exactly one" in both.output
    show_missing = runner.invoke(app, ["show", str(tmp_path / "absent.pem")])
    assert show_missing.exit_code == 2
    assert show_missing.output.startswith("error: cannot read")
