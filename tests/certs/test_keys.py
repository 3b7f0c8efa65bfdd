from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from certs import (
    PASSPHRASE_ENV,
    CertificateError,
    KeyFileError,
    PassphraseError,
    generate_key,
    load_certificate,
    load_private_key,
    passphrase_from,
    save_certificate,
    save_private_key,
)
from tests.certs.conftest import PASS


def test_encrypted_key_round_trip(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "deep" / "er" / "k.pem"
    save_private_key(key, path, PASS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_bytes()
    assert text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = load_private_key(path, PASS)
    assert loaded.private_numbers() == key.private_numbers()
    assert loaded.curve.name == "secp256r1"


def test_wrong_passphrase_is_named_and_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_private_key(generate_key(), path, PASS)
    with pytest.raises(PassphraseError, match="wrong passphrase") as info:
        load_private_key(path, b"hunter2")
    assert "hunter2" not in str(info.value)
    assert PASS.decode() not in str(info.value)


def test_missing_passphrase_for_encrypted_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_private_key(generate_key(), path, PASS)
    with pytest.raises(PassphraseError, match="no passphrase"):
        load_private_key(path, b"")


def test_refuses_to_write_unencrypted(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    with pytest.raises(PassphraseError, match="no passphrase"):
        save_private_key(generate_key(), path, b"")
    assert not path.exists()


def test_key_file_problems(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_private_key(tmp_path / "absent.pem", PASS)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key at all")
    with pytest.raises(KeyFileError, match="does not hold"):
        load_private_key(garbage, PASS)
    clear = tmp_path / "clear.pem"
    clear.write_bytes(
        generate_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyFileError, match="not encrypted"):
        load_private_key(clear, PASS)
    edwards = tmp_path / "ed.pem"
    edwards.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(PASS)
        )
    )
    with pytest.raises(KeyFileError, match="not an EC key"):
        load_private_key(edwards, PASS)


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "from env")
    assert passphrase_from() == b"from env"


def test_passphrase_file_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "from env")
    file = tmp_path / "pass"
    file.write_bytes(b"from file\n")
    assert passphrase_from(file=file) == b"from file"


def test_no_passphrase_names_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(PassphraseError) as info:
        passphrase_from()
    assert PASSPHRASE_ENV in str(info.value)
    assert "--passphrase-file" in str(info.value)


def test_unusable_passphrase_files(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError, match="cannot read"):
        passphrase_from(file=tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    with pytest.raises(PassphraseError, match="empty"):
        passphrase_from(file=empty)


def test_certificate_round_trip(tmp_path: Path, sign_cert) -> None:
    path = tmp_path / "c" / "sign.cert.pem"
    save_certificate(sign_cert, path)
    assert load_certificate(path) == sign_cert
    der = tmp_path / "sign.der"
    der.write_bytes(sign_cert.public_bytes(serialization.Encoding.DER))
    assert load_certificate(der) == sign_cert


def test_malformed_or_missing_certificate(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="cannot read"):
        load_certificate(tmp_path / "absent.pem")
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match=r"valid X\.509"):
        load_certificate(bad)
