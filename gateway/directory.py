"""The federation directory as this node sees it: fetched, verified against the anchor, refreshed, current.

A directory that does not verify is never used; a refresh that fails keeps the last good one; once the
copy in use has expired every federated exchange is refused (X-Road's "outdated global
configuration"), because who may be trusted may have changed since.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

import certs
from gateway.errors import ConfigError, ErrorKind, GatewayError
from gateway.subjects import SubjectFinder


@dataclass(frozen=True)
class MemberEntry:
    id: str
    name: str
    address: str
    tls_fingerprint: str
    signing: dict[str, x509.Certificate]  # by SHA-256 fingerprint
    services: dict[str, dict[str, str]]  # subsystem code -> service code -> "rest" | "soap"
    subjects: dict[str, dict[str, SubjectFinder]] = field(default_factory=dict)  # compiled once per directory

    def finder(self, subsystem: str, service: str) -> SubjectFinder | None:
        """Where the service's data subject sits in a request, as the provider declared it."""
        return self.subjects.get(subsystem, {}).get(service)


@dataclass(frozen=True)
class Directory:
    instance: str
    serial: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    ca_pems: tuple[str, ...]
    ca_certs: tuple[x509.Certificate, ...]
    crl_url: str | None
    ocsp_url: str | None
    members: dict[str, MemberEntry]
    digest: str
    signers: dict[str, tuple[str, x509.Certificate]] = field(default_factory=dict)  # kid -> (member, cert)

    @classmethod
    def parse(cls, content: dict[str, Any], digest: str) -> Directory:
        try:
            members: dict[str, MemberEntry] = {}
            signers: dict[str, tuple[str, x509.Certificate]] = {}
            for member_id, m in content["members"].items():
                signing = {}
                for pem in m.get("signing_certs", []):
                    cert = x509.load_pem_x509_certificate(pem.encode())
                    signing[certs.fingerprint(cert)] = cert
                    signers[certs.fingerprint(cert)] = (member_id, cert)
                gateway = m.get("gateway") or {}
                members[member_id] = MemberEntry(
                    id=member_id,
                    name=str(m.get("name", "")),
                    address=str(gateway.get("address", "")).rstrip("/"),
                    tls_fingerprint=str(gateway.get("tls_cert_sha256", "")).lower(),
                    signing=signing,
                    services={
                        sub: {code: _kind(v) for code, v in s.get("services", {}).items()}
                        for sub, s in (m.get("subsystems") or {}).items()
                    },
                    subjects={
                        sub: {
                            code: SubjectFinder(v.get("subject", ()))
                            for code, v in s.get("services", {}).items()
                            if isinstance(v, dict)
                        }
                        for sub, s in (m.get("subsystems") or {}).items()
                    },
                )
            ca_pems = tuple(content["ca_certs"])
            return cls(
                instance=content["instance"],
                serial=int(content.get("serial", 0)),
                issued_at=_time(content["issued_at"]),
                expires_at=_time(content["expires_at"]),
                ca_pems=ca_pems,
                ca_certs=tuple(x509.load_pem_x509_certificate(p.encode()) for p in ca_pems),
                crl_url=content.get("crl_url"),
                ocsp_url=content.get("ocsp_url"),
                members=members,
                digest=digest,
                signers=signers,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise certs.DirectoryError(
                f"the directory's content is not as expected ({type(exc).__name__}: {exc})"
            ) from None

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        for ca in self.ca_certs:
            if ca.subject == cert.issuer:
                return ca
        return None


def _kind(entry: Any) -> str:
    """A service in the directory: its type, given alone or with the locators of its data subject."""
    kind = entry if isinstance(entry, str) else entry["type"]
    if kind not in ("rest", "soap"):
        raise ValueError(f"unknown service type {kind!r}")
    return str(kind)


def _time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class DirectoryClient:
    """Keeps the node's copy of the directory: initial load at start, refreshes, expiry on every use."""

    def __init__(self, source: str, anchor: Path, *, refresh_seconds: float = 60.0) -> None:
        self.source = source
        self.refresh_seconds = refresh_seconds
        try:
            self.anchor = certs.load_certificate(anchor)
        except certs.CertsError as exc:
            raise ConfigError(f"federation.anchor: {exc}") from None
        self._directory: Directory | None = None
        self.last_error: str | None = None
        self.last_refresh: float | None = None

    def load_initial(self) -> Directory:
        """At start: a directory whose signature verifies is required (an expired one is kept, but refuses)."""
        try:
            blob = self._read_sync()
            self._accept(blob)
        except (certs.CertsError, OSError, httpx.HTTPError) as exc:
            raise ConfigError(f"federation.directory: {self.source}: {exc}") from None
        assert self._directory is not None
        return self._directory

    async def refresh(self) -> bool:
        """Fetch and verify the directory; on any failure keep the copy in use and remember why."""
        try:
            if self.source.startswith(("http://", "https://")):
                async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
                    response = await client.get(self.source)
                response.raise_for_status()
                blob = response.content
            else:
                blob = Path(self.source).read_bytes()
            self._accept(blob)
            return True
        except (certs.CertsError, OSError, httpx.HTTPError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False

    def _read_sync(self) -> bytes:
        if self.source.startswith(("http://", "https://")):
            response = httpx.get(self.source, timeout=10, follow_redirects=False)
            response.raise_for_status()
            return response.content
        return Path(self.source).read_bytes()

    def _accept(self, blob: bytes) -> None:
        try:
            content = certs.verify_directory(blob, self.anchor)
        except certs.DirectoryExpiredError as exc:
            content = exc.content  # authentic but old: kept so that the node can say so on every exchange
        directory = Directory.parse(content, certs.directory_digest(blob))
        if self._directory is not None and directory.serial < self._directory.serial:
            raise certs.DirectoryError(
                f"serial {directory.serial} is older than the one in use ({self._directory.serial})"
            )
        self._directory = directory
        self.last_error = None
        self.last_refresh = time.time()

    def current(self, kind: ErrorKind) -> Directory:
        """The directory in use, or the refusal `kind` (consumer or provider side) once it has expired."""
        directory = self._directory
        if directory is None:
            raise GatewayError(kind, "this gateway has no valid federation directory")
        if dt.datetime.now(dt.UTC) >= directory.expires_at:
            raise GatewayError(
                kind,
                f"the federation directory expired at {directory.expires_at.isoformat()}; refusing federated exchanges",
            )
        return directory

    def status(self) -> dict[str, Any]:
        d = self._directory
        return {
            "source": self.source,
            "serial": d.serial if d else None,
            "expires_at": d.expires_at.isoformat() if d else None,
            "expired": (dt.datetime.now(dt.UTC) >= d.expires_at) if d else True,
            "digest": d.digest if d else None,
            "last_error": self.last_error,
        }
