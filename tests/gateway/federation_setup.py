"""A running sandbox federation for the gateway tests, and the means to attack it from outside."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import certs
from gateway import tls
from gateway.exchange import now_ms
from gateway.requesthash import rest_request_hash
from gateway.rest import xroad_headers
from gateway.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, Signer, request_payload
from sandbox import federation
from sandbox.federation import FederationPlan
from sandbox.servers import SandboxServers

MSP, TAX, CRA, SSF = "ZZ/GOV/MSP", "ZZ/GOV/TAX", "ZZ/GOV/CRA", "ZZ/GOV/SSF"
CODE = {MSP: "msp", TAX: "tax", CRA: "cra", SSF: "ssf"}
TAXPAYER = "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/taxpayers/TIN90000001"
PURPOSE = "old-age-grant-eligibility"


class Fed:
    def __init__(self, servers: SandboxServers) -> None:
        self.servers = servers
        assert servers.federation is not None
        self.plan: FederationPlan = servers.federation
        self.manifest = servers.manifest["federation"]
        self.passphrase = self.plan.passphrase_file.read_bytes()
        self.original = copy.deepcopy(self.plan.content)

    def gateway(self, member: str) -> dict[str, Any]:
        return self.manifest["gateways"][member]  # type: ignore[no-any-return]

    def creds(self, member: str) -> dict[str, Path]:
        fed = self.plan.configs[CODE[member]]["federation"]
        return {k: Path(fed[k]) for k in ("auth_cert", "auth_key", "sign_cert", "sign_key")}

    def signer(self, member: str) -> Signer:
        c = self.creds(member)
        return Signer(
            certs.load_private_key(c["sign_key"], self.passphrase),
            certs.fingerprint(certs.load_certificate(c["sign_cert"])),
        )

    def client_headers(self, **extra: str) -> dict[str, str]:
        token = self.plan.tokens[federation.PROGRAMME_MIS]
        return {
            "X-Road-Client": federation.PROGRAMME_MIS,
            "X-Kiungo-Client-Token": token,
            "X-Road-PDU-Purpose": PURPOSE,
            **extra,
        }

    def get(self, path: str, **extra: str) -> httpx.Response:
        return httpx.get(self.gateway(MSP)["base_url"] + path, headers=self.client_headers(**extra), timeout=15)

    def republish(self, change: Callable[[dict[str, Any]], None]) -> None:
        """A new directory (next serial), published and fetched by every gateway at once."""
        content = copy.deepcopy(self.plan.content)
        change(content)
        content["serial"] = self.plan.content["serial"] + 1
        self.plan.publish(content)
        self.refresh_all()

    def restore(self) -> None:
        def back(content: dict[str, Any]) -> None:
            content.clear()
            content.update(copy.deepcopy(self.original))

        self.republish(back)

    def refresh_all(self) -> list[dict[str, Any]]:
        token = self.plan.tokens["operator"]
        return [
            httpx.post(
                gw["base_url"] + "/api/operator/directory/refresh", headers={"Authorization": f"Bearer {token}"}
            ).json()
            for gw in self.manifest["gateways"].values()
        ]

    def peer_client(self, member: str, *, cert: Path | None = None, key: Path | None = None) -> httpx.Client:
        c = self.creds(member)
        context = tls.client_context(
            cert or c["auth_cert"], key or c["auth_key"], self.passphrase, server_cas=self.plan.content["ca_certs"]
        )
        return httpx.Client(verify=context, timeout=15)

    def forged(
        self,
        *,
        tls_member: str = MSP,
        signer: str = MSP,
        client: str = federation.PROGRAMME_MIS,
        signed_body: bytes = b"",
        sent_body: bytes = b"",
        timestamp: int | None = None,
        message_id: str | None = None,
        provider: str = TAX,
        target: str = TAXPAYER,
        method: str = "GET",
    ) -> httpx.Response:
        """A request made by hand, as an attacker holding `tls_member`'s TLS key and `signer`'s signing key."""
        headers = {"x-road-client": client, "x-road-id": message_id or str(uuid.uuid4()), "x-road-pdu-purpose": PURPOSE}
        request_hash = rest_request_hash(method, target, xroad_headers(headers), signed_body)
        ts = timestamp if timestamp is not None else now_ms()
        headers[TIMESTAMP_HEADER] = str(ts)
        headers[SIGNATURE_HEADER] = self.signer(signer).sign(request_payload(request_hash, ts))
        with self.peer_client(tls_member) as http:
            return http.request(method, self.gateway(provider)["peer_url"] + target, headers=headers, content=sent_body)
