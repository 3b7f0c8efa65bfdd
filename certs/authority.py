"""The federation's certificate authority: a root, a directory signer, member certificates, CRL and OCSP.

Everything lives in one directory:

    ca.cert.pem, ca.key.pem                 the root (key encrypted)
    directory.cert.pem, directory.key.pem   the directory signer; its certificate is the configuration anchor
    state.json                              issued serials and revocations (the CRL and OCSP answers come from it)
    issued/<serial hex>.pem                 every certificate ever issued
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import CertificateError, CertsError, PassphraseError
from certs.identity import (
    DIRECTORY_SIGNING_OID,
    fingerprint,
    member_subject,
    validate_instance,
    validate_member,
)
from certs.keys import (
    generate_key,
    load_certificate,
    load_private_key,
    save_certificate,
    save_private_key,
    write_private_file,
)
from certs.revocation import issuer_hashes

CA_CERT = "ca.cert.pem"
CA_KEY = "ca.key.pem"
DIRECTORY_CERT = "directory.cert.pem"
DIRECTORY_KEY = "directory.key.pem"
STATE = "state.json"
ISSUED = "issued"

# Certificates start a little in the past so a peer whose clock lags does not see them as not yet valid.
BACKDATE = timedelta(minutes=5)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _key_usage(*, sign_content: bool = False, ca: bool = False) -> x509.KeyUsage:
    """digitalSignature always (TLS, messages, OCSP); nonRepudiation for message signing; cert/CRL signing for CAs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=sign_content,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_ids(
    builder: x509.CertificateBuilder, public_key: PublicKey, ca_cert: x509.Certificate | None
) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if ca_cert is not None:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return builder


def _public_key(public_key_or_csr: object) -> PublicKey:
    """Only the key is taken from a CSR: the CA, not the requester, decides the subject and extensions."""
    if isinstance(public_key_or_csr, x509.CertificateSigningRequest):
        try:
            valid = public_key_or_csr.is_signature_valid
        except Exception as exc:  # unsupported algorithms raise various errors
            raise CertificateError(f"the CSR's signature cannot be checked: {exc}") from exc
        if not valid:
            raise CertificateError("the CSR's signature is invalid: it does not prove possession of the key")
        key: object = public_key_or_csr.public_key()
    elif isinstance(public_key_or_csr, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        key = public_key_or_csr.public_key()
    else:
        key = public_key_or_csr
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise CertificateError(f"unsupported curve {key.curve.name}; use P-256")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CertificateError(f"RSA key of {key.key_size} bits is too small; use P-256 or RSA 2048+")
        return key
    raise CertificateError(f"unsupported public key {type(key).__name__}; use P-256")


class CertificateAuthority:
    """One federation CA on disk; the instance code of every member it certifies is its own."""

    cert: x509.Certificate
    directory_cert: x509.Certificate
    dir: Path

    def __init__(
        self,
        dir: Path,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        directory_cert: x509.Certificate,
        directory_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        self.dir = dir
        self.cert = cert
        self.directory_cert = directory_cert
        self._key = key
        self._directory_key = directory_key
        self._state_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        state = self._state()
        self.instance: str = state["instance"]
        self.name: str = state["name"]

    # ---- creating and opening ----

    @classmethod
    def init(
        cls, dir: Path, instance: str, name: str, passphrase: bytes, valid_days: int = 3650
    ) -> CertificateAuthority:
        """Create the root and the directory signer; never over an existing CA, whose members would be orphaned."""
        dir = Path(dir)
        validate_instance(instance)
        if not name or not name.strip():
            raise CertsError("the federation authority needs a name")
        if valid_days < 1:
            raise CertsError("valid_days must be at least 1")
        if not passphrase:
            raise PassphraseError("no passphrase given to encrypt the CA keys")
        if any((dir / f).exists() for f in (CA_CERT, CA_KEY, STATE)):
            raise CertsError(f"a CA already exists in {dir}; refusing to overwrite it")
        try:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{instance} federation CA"),
                ]
            )
            signer_subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{instance} directory signer"),
                ]
            )
        except ValueError as exc:  # a common name over the 64 characters X.509 allows
            raise CertsError(f"instance code {instance!r} is too long for a certificate subject") from exc
        dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = _now()
        key = generate_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            # digitalSignature too, because the CA signs OCSP responses itself.
            .add_extension(_key_usage(ca=True), critical=True)
        )
        cert = _key_ids(builder, key.public_key(), None).sign(key, hashes.SHA256())
        save_private_key(key, dir / CA_KEY, passphrase)
        save_certificate(cert, dir / CA_CERT)
        state = {"version": 1, "instance": instance, "name": name, "issued": {}, "revoked": {}}
        write_private_file(dir / STATE, json.dumps(state, indent=2).encode())

        directory_key = generate_key()
        directory_cert = cls._sign(
            cert,
            key,
            signer_subject,
            directory_key.public_key(),
            [
                (_key_usage(), True),
                (x509.ExtendedKeyUsage([DIRECTORY_SIGNING_OID]), False),
            ],
            valid_days,
        )
        save_private_key(directory_key, dir / DIRECTORY_KEY, passphrase)
        save_certificate(directory_cert, dir / DIRECTORY_CERT)
        authority = cls(dir, cert, key, directory_cert, directory_key)
        authority._record(directory_cert, instance, "directory")
        return authority

    @classmethod
    def open(cls, dir: Path, passphrase: bytes) -> CertificateAuthority:
        """Load an existing CA; its keys need the passphrase it was created with."""
        dir = Path(dir)
        if not (dir / CA_CERT).exists():
            raise CertsError(f"no CA in {dir} (missing {CA_CERT}); create one with `kiungo certs init`")
        cert = load_certificate(dir / CA_CERT)
        key = load_private_key(dir / CA_KEY, passphrase)
        directory_cert = load_certificate(dir / DIRECTORY_CERT)
        directory_key = load_private_key(dir / DIRECTORY_KEY, passphrase)
        for c, k, what in ((cert, key, "CA"), (directory_cert, directory_key, "directory signer")):
            if c.public_key() != k.public_key():
                raise CertsError(f"the {what} key in {dir} does not belong to its certificate")
        return cls(dir, cert, key, directory_cert, directory_key)

    # ---- issuing ----

    @staticmethod
    def _sign(
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        subject: x509.Name,
        public_key: PublicKey,
        extensions: Sequence[tuple[x509.ExtensionType, bool]],
        valid_days: int,
    ) -> x509.Certificate:
        now = _now()
        # A certificate never outlives its CA: a verifier would reject the tail end anyway.
        not_after = min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        signed: x509.Certificate = _key_ids(builder, public_key, ca_cert).sign(ca_key, hashes.SHA256())
        return signed

    def issue(
        self,
        member: str,
        usage: str,
        public_key_or_csr: Any,
        *,
        hosts: Sequence[str] = (),
        valid_days: int = 365,
        name: str | None = None,
    ) -> x509.Certificate:
        """A member certificate for TLS ("auth") or message signatures ("sign"), recorded and kept on disk."""
        validate_member(member, self.instance)
        if valid_days < 1:
            raise CertsError("valid_days must be at least 1")
        public_key = _public_key(public_key_or_csr)
        extensions: list[tuple[x509.ExtensionType, bool]]
        if usage == "auth":
            if not hosts:
                raise CertsError("an auth certificate needs at least one host (the gateway's DNS name or IP address)")
            extensions = [
                (_key_usage(), True),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
                (x509.SubjectAlternativeName([_general_name(h) for h in hosts]), False),
            ]
        elif usage == "sign":
            extensions = [(_key_usage(sign_content=True), True)]
        else:
            raise CertsError(f"unknown usage {usage!r}: a member certificate is 'auth' or 'sign'")
        cert = self._sign(self.cert, self._key, member_subject(member, name), public_key, extensions, valid_days)
        self._record(cert, member, usage)
        return cert

    def issue_member(
        self,
        member: str,
        out: Path,
        passphrase: bytes,
        *,
        hosts: Sequence[str],
        name: str | None = None,
        valid_days: int = 365,
    ) -> dict[str, Path]:
        """Both key pairs and certificates for one member's gateway, plus the CA certificate it must trust."""
        out = Path(out)
        paths = {
            "auth_key": out / "auth.key.pem",
            "auth_cert": out / "auth.cert.pem",
            "sign_key": out / "sign.key.pem",
            "sign_cert": out / "sign.cert.pem",
            "ca_cert": out / "ca.cert.pem",
        }
        existing = [str(p) for k, p in paths.items() if k.endswith("_key") and p.exists()]
        if existing:
            raise CertsError(f"refusing to overwrite existing keys: {', '.join(existing)}")
        if not passphrase:
            raise CertsError("a passphrase is needed to encrypt the member's keys")
        validate_member(member, self.instance)
        if not hosts:
            raise CertsError("an auth certificate needs at least one host (the gateway's DNS name or IP address)")
        for usage in ("auth", "sign"):
            key = generate_key()
            cert = self.issue(member, usage, key.public_key(), hosts=hosts, name=name, valid_days=valid_days)
            save_private_key(key, paths[f"{usage}_key"], passphrase)
            save_certificate(cert, paths[f"{usage}_cert"])
        save_certificate(self.cert, paths["ca_cert"])
        return paths

    def sign_directory(self, content: Mapping[str, Any]) -> bytes:
        """Sign the federation directory with this CA's directory signer (see `certs.directory`)."""
        from certs.directory import sign_directory

        return sign_directory(content, self._directory_key, self.directory_cert)

    # ---- state ----

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write the state under a file lock, so two CLI runs cannot lose each other's changes."""
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read_state()
                yield state
                write_private_file(self.dir / STATE, json.dumps(state, indent=2, sort_keys=True).encode())
                self._state_cache = None
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.dir / STATE).read_text())
        except (OSError, ValueError) as exc:
            raise CertsError(f"cannot read the CA state {self.dir / STATE}: {exc}") from exc
        if not isinstance(state, dict) or not {"instance", "name", "issued", "revoked"} <= state.keys():
            raise CertsError(f"the CA state {self.dir / STATE} is malformed")
        return state

    def _state(self) -> dict[str, Any]:
        """The state as on disk now (re-read when the file changed: another process may have revoked)."""
        try:
            info = os.stat(self.dir / STATE)
            # Every change rewrites the file (new inode) and only ever adds entries (new size), so this
            # stamp changes even when two writes fall within one tick of the file system's clock.
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError as exc:
            raise CertsError(f"cannot read the CA state {self.dir / STATE}: {exc.strerror or exc}") from exc
        if self._state_cache is None or self._state_cache[0] != stamp:
            self._state_cache = (stamp, self._read_state())
        return self._state_cache[1]

    def _record(self, cert: x509.Certificate, member: str, usage: str) -> None:
        serial = f"{cert.serial_number:x}"
        save_certificate(cert, self.dir / ISSUED / f"{serial}.pem")
        with self._locked() as state:
            state["issued"][serial] = {
                "member": member,
                "usage": usage,
                "not_after": _iso(cert.not_valid_after_utc),
                "fingerprint": fingerprint(cert),
            }

    def issued(self) -> dict[int, dict[str, Any]]:
        """Every certificate this CA issued: serial -> member, usage, not_after, fingerprint."""
        return {int(k, 16): dict(v) for k, v in self._state()["issued"].items()}

    # ---- revocation ----

    def revoke(self, serial: int, reason: x509.ReasonFlags = x509.ReasonFlags.unspecified) -> None:
        """Mark a certificate revoked; doing it again changes nothing (the first time and reason stand)."""
        key = f"{serial:x}"
        with self._locked() as state:
            if key not in state["issued"]:
                raise CertsError(f"serial {key} was not issued by this CA")
            state["revoked"].setdefault(key, {"revoked_at": _iso(_now()), "reason": reason.value})

    def is_revoked(self, serial: int) -> bool:
        return f"{serial:x}" in self._state()["revoked"]

    def _revocations(self) -> dict[int, tuple[datetime, x509.ReasonFlags]]:
        return {
            int(k, 16): (_parse_iso(v["revoked_at"]), x509.ReasonFlags(v["reason"]))
            for k, v in self._state()["revoked"].items()
        }

    def crl(self, next_update: timedelta = timedelta(hours=1)) -> x509.CertificateRevocationList:
        """A fresh CRL of everything revoked so far, signed by the CA key."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + next_update)
            # Milliseconds since the epoch: increases from one CRL to the next without a counter to keep.
            .add_extension(x509.CRLNumber(int(datetime.now(UTC).timestamp() * 1000)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        for serial, (when, reason) in sorted(self._revocations().items()):
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if reason != x509.ReasonFlags.unspecified:  # RFC 5280 5.3.1: omit rather than say "unspecified"
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self._key, hashes.SHA256())

    def ocsp_response(self, request_der: bytes, *, valid_for: timedelta = timedelta(minutes=10)) -> bytes:
        """Answer one OCSP request, signed by the CA key itself; bad input gets an OCSP error, not an exception."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            name_hash, key_hash = issuer_hashes(self.cert, algorithm)
            serial = request.serial_number
            requested_issuer = (request.issuer_name_hash, request.issuer_key_hash)
            nonces = [e.value for e in request.extensions if isinstance(e.value, x509.OCSPNonce)]
        except Exception:  # network input: any parse failure is the requester's problem, told in OCSP terms
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if requested_issuer != (name_hash, key_hash):
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        now = _now()
        revoked = self._revocations().get(serial)
        if f"{serial:x}" not in self._state()["issued"]:
            status, when, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        elif revoked is not None:
            status, when = ocsp.OCSPCertStatus.REVOKED, revoked[0]
            reason = None if revoked[1] == x509.ReasonFlags.unspecified else revoked[1]
        else:
            status, when, reason = ocsp.OCSPCertStatus.GOOD, None, None
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(name_hash, key_hash, serial, algorithm, status, now, now + valid_for, when, reason)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
        )
        for nonce in nonces[:1]:  # echoed, so a requester that sent one can match the answer to its question
            builder = builder.add_extension(nonce, critical=False)
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def _general_name(host: str) -> x509.GeneralName:
    """An IP address SAN when the host parses as one (TLS matches IPs only against those), else a DNS name."""
    try:
        return x509.IPAddress(ip_address(host))
    except ValueError:
        pass
    if not host or any(c.isspace() or c in "/@:" for c in host) or host.startswith(".") or ".." in host:
        raise CertsError(f"invalid host {host!r}: expected a DNS name or an IP address")
    return x509.DNSName(host.lower())
