"""Private keys and certificates on disk: keys always encrypted, files written atomically and private."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.errors import CertificateError, KeyFileError, PassphraseError

PASSPHRASE_ENV = "KIUNGO_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret

_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key: what ES256 message signatures and TLS both want."""
    return ec.generate_private_key(ec.SECP256R1())


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` atomically with `mode` from the first byte on, so no reader sees half a file or a loose mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_private_key(key: ec.EllipticCurvePrivateKey, path: Path, passphrase: bytes) -> None:
    """PKCS#8 PEM under the passphrase, mode 0600: a key never reaches the disk in clear."""
    if not passphrase:
        raise PassphraseError(f"no passphrase given to encrypt the key {path}; refusing to write it unencrypted")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    try:
        write_private_file(path, pem)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc


def load_private_key(path: Path, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """Open an encrypted EC key; a wrong passphrase and a bad file are told apart for the operator."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    encrypted = any(marker in data for marker in _ENCRYPTED_MARKERS)
    if encrypted and not passphrase:
        raise PassphraseError(f"no passphrase given for the encrypted key {path}")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:  # cryptography: password given for a clear key, or none for an encrypted one
        if not encrypted:
            raise KeyFileError(f"key file {path} is not encrypted; Kiungo only uses passphrase-protected keys") from exc
        raise PassphraseError(f"no passphrase given for the encrypted key {path}") from exc
    except ValueError as exc:
        if encrypted:
            raise PassphraseError(f"wrong passphrase for the key {path}") from exc
        raise KeyFileError(f"{path} does not hold a PEM private key") from exc
    except Exception as exc:  # unsupported algorithms surface as various errors; all mean "not a usable key"
        raise KeyFileError(f"{path} does not hold a usable private key: {type(exc).__name__}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"key file {path} holds a {type(key).__name__}, not an EC key")
    return key


def passphrase_from(env: str = PASSPHRASE_ENV, file: Path | None = None) -> bytes:
    """The key passphrase from a file (wins, one trailing newline dropped) or the environment."""
    if file is not None:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            raise PassphraseError(f"cannot read the passphrase file {file}: {exc.strerror or exc}") from exc
        value = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        if not value:
            raise PassphraseError(f"the passphrase file {file} is empty")
        return value
    from_env = os.environ.get(env, "")
    if from_env:
        return from_env.encode("utf-8")
    raise PassphraseError(f"no key passphrase: set the environment variable {env} or pass --passphrase-file FILE")


def save_certificate(cert: x509.Certificate, path: Path) -> None:
    """PEM, world-readable: certificates are public."""
    try:
        write_private_file(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    except OSError as exc:
        raise CertificateError(f"cannot write certificate {path}: {exc.strerror or exc}") from exc


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate from PEM (or DER, as other tools write it)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc.strerror or exc}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{path} does not hold a valid X.509 certificate") from exc
