"""Deciding whether a peer gateway is who it says: certificate, revocation, directory pinning, signature.

TLS already refused certificates from outside the federation CA. Here the provider side checks, in
order, each with its own refusal: the certificate's member is the client's member (the TLS identity
is the message's identity); the certificate is the one the directory lists for that member's
gateway; it is not revoked (CRL or OCSP, fresh enough, fail closed when unknown); and the message is
signed by a signing certificate of that same member.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Literal

import httpx
from cryptography import x509

import certs
from gateway import errors
from gateway.directory import Directory
from gateway.errors import GatewayError
from gateway.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureInvalid,
    parse_timestamp,
    response_payload,
    signer_kid,
    verify,
)

RevocationMode = Literal["crl", "ocsp"]


class RevocationChecker:
    """CRL or OCSP status of peer certificates, cached for `cache_seconds`, refused when unknown."""

    def __init__(self, mode: RevocationMode, *, cache_seconds: float, max_age_seconds: float) -> None:
        self.mode = mode
        self.cache_seconds = cache_seconds
        self.max_age = dt.timedelta(seconds=max_age_seconds)
        self._crl: tuple[float, x509.CertificateRevocationList] | None = None
        self._ocsp: dict[int, tuple[float, bytes]] = {}
        self._http = httpx.AsyncClient(timeout=5, follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def check(self, cert: x509.Certificate, issuer: x509.Certificate, directory: Directory) -> float:
        """Raise unless the certificate is known not revoked; return until when (monotonic) that answer stands."""
        try:
            if self.mode == "crl":
                certs.check_crl(cert, await self._crl_of(directory), issuer, max_age=self.max_age)
                assert self._crl is not None
                fetched = self._crl[0]
            else:
                certs.check_ocsp(cert, issuer, await self._ocsp_of(cert, issuer, directory), max_age=self.max_age)
                fetched = self._ocsp[cert.serial_number][0]
        except certs.RevokedError as exc:
            raise GatewayError(
                errors.SSL_AUTH, f"the peer's certificate is revoked ({self.mode.upper()}): {exc}"
            ) from None
        except (certs.RevocationUnknownError, httpx.HTTPError) as exc:
            raise GatewayError(
                errors.SSL_AUTH, f"the peer's revocation status cannot be established ({self.mode.upper()}): {exc}"
            ) from None
        return fetched + self.cache_seconds

    async def _crl_of(self, directory: Directory) -> x509.CertificateRevocationList:
        if self._crl is not None and time.monotonic() - self._crl[0] < self.cache_seconds:
            return self._crl[1]
        if not directory.crl_url:
            raise certs.RevocationUnknownError("the directory names no CRL address")
        response = await self._http.get(directory.crl_url)
        response.raise_for_status()
        try:
            crl = x509.load_pem_x509_crl(response.content)
        except ValueError:
            crl = x509.load_der_x509_crl(response.content)
        self._crl = (time.monotonic(), crl)
        return crl

    async def _ocsp_of(self, cert: x509.Certificate, issuer: x509.Certificate, directory: Directory) -> bytes:
        cached = self._ocsp.get(cert.serial_number)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        if not directory.ocsp_url:
            raise certs.RevocationUnknownError("the directory names no OCSP responder")
        response = await self._http.post(
            directory.ocsp_url,
            content=certs.ocsp_request(cert, issuer),
            headers={"Content-Type": "application/ocsp-request"},
        )
        response.raise_for_status()
        self._ocsp[cert.serial_number] = (time.monotonic(), response.content)
        return response.content


class PeerVerifier:
    def __init__(self, revocation: RevocationChecker) -> None:
        self.revocation = revocation
        # der -> (directory, member, monotonic deadline, cert): a peer sends many requests with one certificate
        self._accepted: dict[bytes, tuple[Directory, str, float, x509.Certificate]] = {}

    async def authenticate(self, der: bytes | None, client_member: str, directory: Directory) -> x509.Certificate:
        """The peer's TLS certificate checked against the client's member and the directory.

        An accepted certificate is accepted again without the checks while the directory is the same
        one and the revocation status it was checked against stands (and the certificate is valid).
        """
        if der is None:
            raise GatewayError(errors.SSL_AUTH, "peer gateways must present their authentication certificate")
        hit = self._accepted.get(der)
        if hit is not None and hit[0] is directory and hit[1] == client_member and time.monotonic() < hit[2]:
            return hit[3]
        cert = x509.load_der_x509_certificate(der)
        try:
            member = certs.member_of(cert)
        except certs.CertsError as exc:
            raise GatewayError(errors.SSL_AUTH, f"the peer's certificate names no member: {exc}") from None
        if member != client_member:
            raise GatewayError(
                errors.SSL_AUTH, f"the TLS identity {member} differs from the message's client member {client_member}"
            )
        entry = directory.members.get(member)
        if entry is None:
            raise GatewayError(errors.SSL_AUTH, f"member {member} is not in the federation directory")
        if certs.fingerprint(cert) != entry.tls_fingerprint:
            raise GatewayError(
                errors.SSL_AUTH, f"the certificate is not the one the directory lists for {member}'s gateway"
            )
        issuer = directory.issuer_of(cert)
        if issuer is None:
            raise GatewayError(errors.SSL_AUTH, "the peer's certificate is not issued by a federation CA")
        try:
            certs.verify_issued_by(cert, issuer, usage="auth")
        except certs.CertsError as exc:
            raise GatewayError(errors.SSL_AUTH, f"the peer's certificate is not acceptable: {exc}") from None
        stands = await self.revocation.check(cert, issuer, directory)
        valid = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds()
        if len(self._accepted) >= 1024:
            self._accepted.clear()
        self._accepted[der] = (directory, member, min(stands, time.monotonic() + valid), cert)
        return cert


# kid -> (cert, issuer, not before, not after): a signing certificate's chain, verified once per directory
_chains: dict[str, tuple[x509.Certificate, x509.Certificate, dt.datetime, dt.datetime]] = {}


def _verify_chain(kid: str, cert: x509.Certificate, issuer: x509.Certificate) -> None:
    now = dt.datetime.now(dt.UTC)
    seen = _chains.get(kid)
    if seen is not None and seen[0] is cert and seen[1] is issuer and seen[2] <= now <= seen[3]:
        return
    certs.verify_issued_by(cert, issuer, usage="sign")
    lo = max(cert.not_valid_before_utc, issuer.not_valid_before_utc)
    hi = min(cert.not_valid_after_utc, issuer.not_valid_after_utc)
    if len(_chains) >= 1024:
        _chains.clear()
    _chains[kid] = (cert, issuer, lo, hi)


def check_signature(
    token: str | None, payload: bytes, member: str, directory: Directory, kind: errors.ErrorKind
) -> None:
    """The message is signed, by a signing certificate the directory lists for `member`, and unaltered."""
    if not token:
        raise GatewayError(kind, "the message is not signed")
    try:
        kid = signer_kid(token)
    except SignatureInvalid as exc:
        raise GatewayError(kind, str(exc)) from None
    found = directory.signers.get(kid)
    if found is None:
        raise GatewayError(kind, "the message is signed with a certificate the federation directory does not list")
    signer_member, cert = found
    if signer_member != member:
        raise GatewayError(kind, f"the message is signed by member {signer_member}, not by {member}")
    issuer = directory.issuer_of(cert)
    try:
        if issuer is None:
            raise certs.CertificateError("not issued by a federation CA")
        _verify_chain(kid, cert, issuer)
        verify(token, payload, cert)
    except (certs.CertsError, SignatureInvalid) as exc:
        raise GatewayError(kind, f"the signature of {member} does not verify: {exc}") from None


def check_answer(answer: httpx.Response, request_hash: str, member: str, directory: Directory) -> None:
    """A provider gateway's answer is signed by `member`, for this request, and unaltered."""
    check_signature(
        answer.headers.get(SIGNATURE_HEADER),
        response_payload(
            request_hash,
            answer.status_code,
            answer.headers.get("content-type", ""),
            answer.content,
            parse_timestamp(answer.headers.get(TIMESTAMP_HEADER), errors.INVALID_SIGNATURE_CLIENT),
        ),
        member,
        directory,
        errors.INVALID_SIGNATURE_CLIENT,
    )
