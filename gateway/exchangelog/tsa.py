"""RFC 3161 time stamps: a client, a verifier (asn1crypto + cryptography, works with ECDSA), and a
tiny local time-stamp authority as a Starlette app so the sandbox and tests can run one.

A token proves that a signed tree head existed no later than the TSA's time: a signer who later
back-dates a tree head, or re-signs a rewritten log, cannot obtain old tokens for it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as a509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.exchangelog.errors import LogError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
DEFAULT_POLICY = "1.3.6.1.4.1.99999.1.1"  # the sandbox TSA's policy (a private arc; not a real registration)


_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


class TimestampError(LogError):
    """A token could not be obtained or does not verify."""


@dataclass(frozen=True)
class TimestampInfo:
    time: datetime
    serial: int
    policy: str
    tsa_cert_der: bytes


def request_token(url: str, digest: bytes, *, timeout: float = 5.0) -> bytes:
    """Ask a TSA to stamp a SHA-256 digest; return the TimeStampToken (DER ContentInfo)."""
    nonce = secrets.randbits(63)
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": True,
        }
    )
    try:
        reply = httpx.post(url, content=req.dump(), headers={"Content-Type": QUERY_TYPE}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TimestampError(f"time-stamp authority unreachable ({type(exc).__name__})") from exc
    if reply.status_code != 200:
        raise TimestampError(f"time-stamp authority answered HTTP {reply.status_code}")
    try:
        resp = tsp.TimeStampResp.load(reply.content)
        status = resp["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            raise TimestampError(f"time-stamp authority refused: {status}")
        der = bytes(resp["time_stamp_token"].dump())
    except (ValueError, TypeError) as exc:
        raise TimestampError("time-stamp authority sent an unreadable reply") from exc
    info = verify_token(der, digest)
    got_nonce = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].parsed["nonce"].native
    if got_nonce != nonce:
        raise TimestampError("time-stamp reply does not answer our request (nonce)")
    del info
    return der


def verify_token(token: bytes, digest: bytes, *, tsa_cert_pem: str | None = None) -> TimestampInfo:
    """Check a token stamps this SHA-256 digest and is signed by its (or the given) TSA certificate."""
    try:
        content_info = cms.ContentInfo.load(token)
        if content_info["content_type"].native != "signed_data":
            raise TimestampError("token is not CMS signed data")
        signed = content_info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampError("token does not carry a TSTInfo")
        tst_der = encap["content"].contents
        tst = tsp.TSTInfo.load(tst_der)
        imprint = tst["message_imprint"]
        if imprint["hash_algorithm"]["algorithm"].native != "sha256" or imprint["hashed_message"].native != digest:
            raise TimestampError("token stamps another digest")
        certs = [c.chosen for c in signed["certificates"] if isinstance(c.chosen, a509.Certificate)]
        if tsa_cert_pem is not None:
            cert = x509.load_pem_x509_certificate(tsa_cert_pem.encode())
        elif certs:
            cert = x509.load_der_x509_certificate(certs[0].dump())
        else:
            raise TimestampError("no TSA certificate to check the token against")
        signer = signed["signer_infos"][0]
        attrs = signer["signed_attrs"]
        found_digest = None
        for attr in attrs:
            if attr["type"].native == "message_digest":
                found_digest = attr["values"][0].native
            if attr["type"].native == "content_type" and attr["values"][0].native != "tst_info":
                raise TimestampError("token content type attribute is wrong")
        if found_digest != hashlib.sha256(tst_der).digest():
            raise TimestampError("token TSTInfo does not match its signed digest")
        sig_alg = signer["digest_algorithm"]["algorithm"].native
        if sig_alg != "sha256":
            raise TimestampError("token uses an unsupported digest algorithm")
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise TimestampError("only ECDSA time-stamp authorities are supported")
        public_key.verify(signer["signature"].native, attrs.untag().dump(force=True), ec.ECDSA(hashes.SHA256()))
        _check_timestamping_cert(cert)
        return TimestampInfo(
            time=tst["gen_time"].native,
            serial=tst["serial_number"].native,
            policy=tst["policy"].dotted,
            tsa_cert_der=cert.public_bytes(serialization.Encoding.DER),
        )
    except InvalidSignature as exc:
        raise TimestampError("token signature does not verify") from exc
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise TimestampError("token is malformed") from exc


def _check_timestamping_cert(cert: x509.Certificate) -> None:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampError("TSA certificate lacks the timeStamping extended key usage") from exc
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError("TSA certificate's extended key usage must be timeStamping only, critical")


def make_tsa_certificate(key: ec.EllipticCurvePrivateKey, name: str = "Kiungo sandbox TSA", days: int = 3650) -> str:
    """A self-signed TSA certificate (EKU timeStamping, critical) for the sandbox and tests."""
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    from datetime import timedelta

    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class LocalTSA:
    """Issues tokens: TSTInfo signed with an ECDSA key, the certificate included on request."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert_pem: str, policy: str = DEFAULT_POLICY) -> None:
        self.key = key
        self.cert = a509.Certificate.load(
            x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
        )
        self.policy = policy

    def respond(self, request_der: bytes) -> bytes:
        try:
            req = tsp.TimeStampReq.load(request_der)
            imprint = req["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            hashed = imprint["hashed_message"].native
            nonce = req["nonce"].native
            cert_req = bool(req["cert_req"].native)
        except (ValueError, TypeError, KeyError):
            return _refusal("bad_request")
        if _DIGEST_SIZES.get(algorithm) != len(hashed):
            return _refusal("bad_alg")
        tst = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self.policy,
                "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": hashed},
                "serial_number": secrets.randbits(63),
                "gen_time": datetime.now(UTC),
                "accuracy": {"seconds": 1},
                "ordering": False,
                "nonce": nonce,
            }
        )
        tst_der = tst.dump()
        cert_der = self.cert.dump()
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "signing_time", "values": [cms.Time({"utc_time": datetime.now(UTC)})]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}],
                },
            ]
        )
        signature = self.key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": {
                    "issuer_and_serial_number": {
                        "issuer": self.cert.issuer,
                        "serial_number": self.cert.serial_number,
                    }
                },
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": "sha256"}],
                "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_der)},
                "certificates": [self.cert] if cert_req else [],
                "signer_infos": [signer_info],
            }
        )
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return bytes(tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump())


def _refusal(reason: str) -> bytes:
    # asn1crypto marks timeStampToken as required; RFC 3161 omits it on refusal, so wrap the status by hand.
    status = bytes(tsp.PKIStatusInfo({"status": "rejection", "fail_info": {reason}}).dump())
    return bytes([0x30, len(status)]) + status


def create_tsa_app(key: ec.EllipticCurvePrivateKey, cert_pem: str) -> Starlette:
    """ASGI app answering RFC 3161 queries by HTTP POST on any path ("/" by convention)."""
    tsa = LocalTSA(key, cert_pem)

    async def stamp(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != QUERY_TYPE:
            return Response(status_code=415)
        body = await request.body()
        if len(body) > 16_384:
            return Response(status_code=413)
        return Response(tsa.respond(body), media_type=REPLY_TYPE)

    return Starlette(routes=[Route("/", stamp, methods=["POST"]), Route("/tsa", stamp, methods=["POST"])])
