from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from consent import ConsentStore, verify_receipt
from consent.cli import PASSPHRASE_ENV, SECRET_ENV, app
from tests.consent.conftest import SECRET, SUBJECT
from tests.postgres import migrated

runner = CliRunner()
GRANT = [
    "--subject",
    SUBJECT,
    "--controller",
    "ZZ/GOV/TAX",
    "--recipient",
    "ZZ/GOV/MSP/research",
    "--purpose",
    "research-poverty-2026",
    "--category",
    "income",
    "--until",
    "2099-01-01",
]


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A consent store as `kiungo db upgrade --store consent` leaves it."""
    path = tmp_path / "consent.sqlite"
    migrated(f"sqlite:///{path}", "consent").dispose()
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> Path:
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def _public(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(pem)
    return path


def test_grant_list_withdraw(db: Path) -> None:
    result = runner.invoke(app, ["grant", "--db", str(db), *GRANT, "--category", "employer"])
    assert result.exit_code == 0, result.output
    record_id = result.output.strip()
    assert len(record_id) == 36

    listed = runner.invoke(app, ["list", "--db", str(db), "--subject", SUBJECT])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["record", "id", "state", "recipients", "purposes", "categories", "until"]
    assert record_id in lines[1]
    assert "active" in lines[1]
    assert "income,employer" in lines[1]
    assert "2099-01-01" in lines[1]

    withdrawn = runner.invoke(app, ["withdraw", "--db", str(db), record_id, "--actor", "dpo"])
    assert withdrawn.exit_code == 0, withdrawn.output
    assert withdrawn.output.startswith(f"withdrawn {record_id} at ")

    as_json = runner.invoke(app, ["list", "--db", str(db), "--subject", SUBJECT, "--json"])
    records = json.loads(as_json.output)
    assert records[0]["state"] == "withdrawn"
    assert [e["type"] for e in records[0]["events"]] == ["given", "withdrawn"]
    assert SUBJECT not in as_json.output

    with ConsentStore(db, SECRET) as store:
        assert store.get(record_id).state() == "withdrawn"
    assert SUBJECT.encode() not in db.read_bytes()


@pytest.mark.parametrize("passphrase", [None, b"correct horse battery"])
def test_grant_with_receipt_and_verify(db: Path, tmp_path: Path, passphrase: bytes | None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = _write_key(tmp_path / "signing.pem", key, passphrase)
    extra = ["--key", str(key_file)]
    if passphrase:
        (tmp_path / "pass").write_bytes(passphrase + b"\n")
        extra += ["--passphrase-file", str(tmp_path / "pass")]
    result = runner.invoke(app, ["grant", "--db", str(db), *GRANT, *extra])
    assert result.exit_code == 0, result.output
    record_id, token = result.output.split()
    claims = verify_receipt(token, key.public_key())
    assert claims["jti"] == record_id
    assert claims["iss"] == "ZZ/GOV/TAX"

    public = _public(tmp_path / "pub.pem", key)
    verified = runner.invoke(app, ["verify-receipt", "--public-key", str(public), token])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["jti"] == record_id

    other = _public(tmp_path / "other.pem", ec.generate_private_key(ec.SECP256R1()))
    failed = runner.invoke(app, ["verify-receipt", "--public-key", str(other), token])
    assert failed.exit_code == 1
    assert failed.output.startswith("error: bad signature")

    malformed = runner.invoke(app, ["verify-receipt", "--public-key", str(public), "garbage"])
    assert malformed.exit_code == 1
    assert "malformed" in malformed.output


def test_encrypted_key_needs_the_right_passphrase(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = _write_key(tmp_path / "signing.pem", ec.generate_private_key(ec.SECP256R1()), b"right passphrase")
    result = runner.invoke(app, ["grant", "--db", str(db), *GRANT, "--key", str(key_file)])
    assert result.exit_code == 2
    assert "encrypted" in result.output
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong passphrase")
    result = runner.invoke(app, ["grant", "--db", str(db), *GRANT, "--key", str(key_file)])
    assert result.exit_code == 2
    assert "wrong passphrase" in result.output
    with ConsentStore(db, SECRET) as store:  # the key is opened before the store: nothing was recorded
        assert store.list_by_subject(SUBJECT) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["grant", "--db", "{db}", *GRANT[:-2], "--until", "soon"], "--until"),
        (["grant", "--db", "{db}", *GRANT[:-2], "--until", "2000-01-01", "--from", "2001-01-01"], "valid_until"),
        (["grant", "--db", "{db}", *GRANT, "--recipient", "not-an-id"], "recipients"),
        (["grant", "--db", "{db}", *GRANT, "--key", "{tmp}/missing.pem"], "cannot read the key"),
        (["withdraw", "--db", "{db}", "no-such-record"], "no consent record"),
        (["verify-receipt", "--public-key", "{tmp}/missing.pem", "a.b.c"], "cannot read the public key"),
        (["verify-receipt", "--public-key", "{db}", "a.b.c"], "public key"),
    ],
)
def test_errors_are_one_line_and_exit_2(db: Path, tmp_path: Path, args: list[str], words: str) -> None:
    if "verify-receipt" in args:
        db.write_bytes(b"")  # an empty file: no PEM key in it
    argv = [a.format(db=db, tmp=tmp_path) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert words in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_secret_is_required(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV)
    result = runner.invoke(app, ["list", "--db", str(db), "--subject", SUBJECT])
    assert result.exit_code == 2
    assert SECRET_ENV in result.output
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    result = runner.invoke(app, ["grant", "--db", str(db), "--secret-file", str(secret_file), *GRANT])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(SECRET_ENV, "a-different-secret-of-enough-length")
    result = runner.invoke(app, ["list", "--db", str(db), "--subject", SUBJECT])
    assert result.exit_code == 2
    assert "another secret" in result.output


def test_list_of_unknown_subject(db: Path) -> None:
    result = runner.invoke(app, ["list", "--db", str(db), "--subject", "nobody"])
    assert result.exit_code == 0
    assert "no consent records" in result.output


def test_a_store_that_does_not_exist_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    result = runner.invoke(app, ["list", "--db", str(path), "--subject", SUBJECT])
    assert result.exit_code == 2
    url = f"sqlite:///{path}"
    assert result.output == f"error: {url} has no consent tables: run `kiungo db upgrade --store consent --url {url}`\n"
    assert not path.exists()


def test_db_may_be_a_url(consent_url: str) -> None:
    result = runner.invoke(app, ["grant", "--db", consent_url, *GRANT])
    assert result.exit_code == 0, result.output
    record_id = result.output.strip()
    withdrawn = runner.invoke(app, ["withdraw", "--db", consent_url, record_id])
    assert withdrawn.exit_code == 0, withdrawn.output
    listed = runner.invoke(app, ["list", "--db", consent_url, "--subject", SUBJECT, "--json"])
    [record] = json.loads(listed.output)
    assert (record["record_id"], record["state"]) == (record_id, "withdrawn")
