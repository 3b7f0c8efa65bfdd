from __future__ import annotations

import ipaddress
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import (
    CertificateAuthority,
    CertificateError,
    CertsError,
    PassphraseError,
    fingerprint,
    generate_key,
    load_certificate,
    load_private_key,
    make_csr,
    member_of,
    usage_of,
    verify_issued_by,
)
from tests.certs.conftest import FEDERATION, INSTANCE, PASS


def test_init_writes_root_and_directory_signer(ca: CertificateAuthority) -> None:
    for name in ("ca.key.pem", "directory.key.pem"):
        assert stat.S_IMODE((ca.dir / name).stat().st_mode) == 0o600
        assert (ca.dir / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    root = load_certificate(ca.dir / "ca.cert.pem")
    assert root == ca.cert
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key_usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.key_cert_sign
    assert key_usage.crl_sign
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert usage_of(root) == "ca"
    assert load_certificate(ca.dir / "directory.cert.pem") == ca.directory_cert
    verify_issued_by(ca.directory_cert, ca.cert, usage="directory")
    assert ca.instance == INSTANCE
    assert ca.name == FEDERATION


def test_init_refuses_to_overwrite(ca: CertificateAuthority) -> None:
    before = (ca.dir / "ca.key.pem").read_bytes()
    with pytest.raises(CertsError, match="already exists"):
        CertificateAuthority.init(ca.dir, INSTANCE, FEDERATION, PASS)
    assert (ca.dir / "ca.key.pem").read_bytes() == before


def test_init_input_checks(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError):
        CertificateAuthority.init(tmp_path / "a", INSTANCE, FEDERATION, b"")
    with pytest.raises(CertsError, match="instance"):
        CertificateAuthority.init(tmp_path / "b", "Z/Z", FEDERATION, PASS)
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_open(ca: CertificateAuthority, tmp_path: Path) -> None:
    reopened = CertificateAuthority.open(ca.dir, PASS)
    assert reopened.cert == ca.cert
    assert reopened.directory_cert == ca.directory_cert
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        CertificateAuthority.open(ca.dir, b"nope")
    with pytest.raises(CertsError, match="no CA"):
        CertificateAuthority.open(tmp_path / "nowhere", PASS)


def test_auth_certificate(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    assert member_of(auth_cert) == "ZZ/GOV/CRA"
    assert usage_of(auth_cert) == "auth"
    subject = auth_cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CRA"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "ZZ/GOV/CRA"
    eku = auth_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = auth_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["cra.example"]
    assert not auth_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    verify_issued_by(auth_cert, ca.cert, usage="auth")
    assert (ca.dir / "issued" / f"{auth_cert.serial_number:x}.pem").exists()
    record = ca.issued()[auth_cert.serial_number]
    assert record["member"] == "ZZ/GOV/CRA"
    assert record["usage"] == "auth"
    assert record["fingerprint"] == fingerprint(auth_cert) == auth_cert.fingerprint(hashes.SHA256()).hex()


def test_sign_certificate(ca: CertificateAuthority, sign_cert: x509.Certificate) -> None:
    assert usage_of(sign_cert) == "sign"
    assert member_of(sign_cert) == "ZZ/GOV/CRA"
    assert sign_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Civil Registration Authority"
    )
    key_usage = sign_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature
    assert key_usage.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        sign_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    verify_issued_by(sign_cert, ca.cert, usage="sign")
    with pytest.raises(CertificateError, match="not auth"):
        verify_issued_by(sign_cert, ca.cert, usage="auth")


def test_auth_needs_hosts_and_usage_must_be_known(ca: CertificateAuthority) -> None:
    key = generate_key().public_key()
    with pytest.raises(CertsError, match="host"):
        ca.issue("ZZ/GOV/CRA", "auth", key)
    with pytest.raises(CertsError, match="unknown usage"):
        ca.issue("ZZ/GOV/CRA", "ca", key)
    with pytest.raises(CertsError, match="invalid host"):
        ca.issue("ZZ/GOV/CRA", "auth", key, hosts=["bad host"])


@pytest.mark.parametrize(
    "member",
    ["ZZ/GOV", "ZZ/GOV/CRA/civreg", "XX/GOV/CRA", "ZZ/GOV/C RA", "ZZ//CRA", "ZZ/GOV/CRA\n", "ZZ/GÖV/CRA"],
)
def test_member_identifier_is_validated(ca: CertificateAuthority, member: str) -> None:
    with pytest.raises(CertsError, match="member"):
        ca.issue(member, "sign", generate_key().public_key())


def test_x_road_characters_are_allowed(ca: CertificateAuthority) -> None:
    cert = ca.issue("ZZ/GOV/C.R-A(1)+,=?'", "sign", generate_key().public_key())
    assert member_of(cert) == "ZZ/GOV/C.R-A(1)+,=?'"


def test_issue_from_csr_takes_only_the_key(ca: CertificateAuthority) -> None:
    key = generate_key()
    forged_subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "ZZ/GOV/TAX")])
    request = x509.CertificateSigningRequestBuilder().subject_name(forged_subject).sign(key, hashes.SHA256())
    cert = ca.issue("ZZ/GOV/CRA", "sign", request)
    assert member_of(cert) == "ZZ/GOV/CRA"
    assert cert.public_key() == key.public_key()
    own = ca.issue("ZZ/GOV/CRA", "auth", make_csr(key, "ZZ/GOV/CRA"), hosts=["cra.example"])
    assert own.public_key() == key.public_key()


def test_csr_with_bad_signature_is_refused(ca: CertificateAuthority) -> None:
    der = bytearray(make_csr(generate_key(), "ZZ/GOV/CRA").public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte of the ECDSA signature's s value
    request = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(CertificateError, match="signature is invalid"):
        ca.issue("ZZ/GOV/CRA", "sign", request)
    assert ca.issued().keys() == {ca.directory_cert.serial_number}


def test_issue_member_writes_everything(ca: CertificateAuthority, tmp_path: Path) -> None:
    out = tmp_path / "cra"
    paths = ca.issue_member("ZZ/GOV/CRA", out, b"member pass", hosts=["127.0.0.1"], name="CRA")
    assert set(paths) == {"auth_key", "auth_cert", "sign_key", "sign_cert", "ca_cert"}
    assert paths["auth_key"] == out / "auth.key.pem"
    assert paths["ca_cert"] == out / "ca.cert.pem"
    assert load_certificate(paths["ca_cert"]) == ca.cert
    for usage in ("auth", "sign"):
        cert = load_certificate(paths[f"{usage}_cert"])
        key = load_private_key(paths[f"{usage}_key"], b"member pass")
        assert stat.S_IMODE(paths[f"{usage}_key"].stat().st_mode) == 0o600
        assert cert.public_key() == key.public_key()
        verify_issued_by(cert, ca.cert, usage=usage)
        assert member_of(cert) == "ZZ/GOV/CRA"
    assert load_private_key(paths["auth_key"], b"member pass") != load_private_key(paths["sign_key"], b"member pass")
    with pytest.raises(CertsError, match="overwrite"):
        ca.issue_member("ZZ/GOV/CRA", out, b"member pass", hosts=["127.0.0.1"])


def test_certificate_from_another_ca_is_rejected(other_ca: CertificateAuthority, ca: CertificateAuthority) -> None:
    foreign = other_ca.issue("ZZ/GOV/CRA", "sign", generate_key().public_key())
    assert foreign.issuer == ca.cert.subject  # same names: only the signature gives it away
    with pytest.raises(CertificateError, match="signature"):
        verify_issued_by(foreign, ca.cert)


def test_issuer_must_be_a_ca(ca: CertificateAuthority, auth_cert: x509.Certificate, sign_cert) -> None:
    with pytest.raises(CertificateError, match="not a CA"):
        verify_issued_by(sign_cert, auth_cert)


def test_validity_window(ca: CertificateAuthority) -> None:
    cert = ca.issue("ZZ/GOV/CRA", "sign", generate_key().public_key(), valid_days=30)
    now = datetime.now(UTC)
    verify_issued_by(cert, ca.cert, now=now + timedelta(days=29))
    with pytest.raises(CertificateError, match="expired"):
        verify_issued_by(cert, ca.cert, now=now + timedelta(days=31))
    with pytest.raises(CertificateError, match="not valid before"):
        verify_issued_by(cert, ca.cert, now=now - timedelta(days=1))


def test_certificates_never_outlive_the_ca(tmp_path: Path) -> None:
    short = CertificateAuthority.init(tmp_path / "short", INSTANCE, FEDERATION, PASS, valid_days=10)
    cert = short.issue("ZZ/GOV/CRA", "sign", generate_key().public_key(), valid_days=365)
    assert cert.not_valid_after_utc == short.cert.not_valid_after_utc


def test_revoke(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    assert not ca.is_revoked(auth_cert.serial_number)
    ca.revoke(auth_cert.serial_number, x509.ReasonFlags.key_compromise)
    ca.revoke(auth_cert.serial_number, x509.ReasonFlags.superseded)  # idempotent: the first reason stands
    assert ca.is_revoked(auth_cert.serial_number)
    state = json.loads((ca.dir / "state.json").read_text())
    assert state["revoked"][f"{auth_cert.serial_number:x}"]["reason"] == "keyCompromise"
    with pytest.raises(CertsError, match="not issued"):
        ca.revoke(12345)


def test_revocation_seen_by_another_process(ca: CertificateAuthority, auth_cert: x509.Certificate) -> None:
    responder = CertificateAuthority.open(ca.dir, PASS)
    assert not responder.is_revoked(auth_cert.serial_number)
    ca.revoke(auth_cert.serial_number)
    assert responder.is_revoked(auth_cert.serial_number)
    assert responder.crl().get_revoked_certificate_by_serial_number(auth_cert.serial_number) is not None
