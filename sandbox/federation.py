"""The sandbox's gateways: who hosts which subsystems and services, who may call them, and the federation.

Two shapes, built from the agency systems' manifest so they always point at the ports the systems got:
- `single`: one gateway hosting every agency's subsystems (a district office's set-up);
- `federation`: a federation authority (CA, signed directory, CRL, OCSP) and one gateway per member,
  each hosting only its own member's subsystems, talking to the others over mutual TLS.
Keys, passphrases and tokens are made afresh for every run (throw-away material, never committed);
gateways keep only the tokens' hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certs

INSTANCE = "ZZ"
PROGRAMME_MIS = f"{INSTANCE}/GOV/MSP/programme-mis"
TAX_CLIENT = f"{INSTANCE}/GOV/TAX/taxreg"

#: Members of the sandbox federation, by agency code: (member id, name).
MEMBERS: dict[str, tuple[str, str]] = {
    "cra": (f"{INSTANCE}/GOV/CRA", "Civil Registration Authority"),
    "tax": (f"{INSTANCE}/GOV/TAX", "Tax Authority"),
    "ssf": (f"{INSTANCE}/GOV/SSF", "Social Security Fund"),
    "msp": (f"{INSTANCE}/GOV/MSP", "Ministry of Social Protection"),
}
#: Subsystems: (subsystem id, name, agency system).
SUBSYSTEMS: tuple[tuple[str, str, str], ...] = (
    (f"{INSTANCE}/GOV/CRA/civreg", "Civil register", "cra"),
    (f"{INSTANCE}/GOV/TAX/taxreg", "Taxpayer register", "tax"),
    (f"{INSTANCE}/GOV/SSF/contributions", "Contributions and pensions", "ssf"),
    (f"{INSTANCE}/GOV/MSP/programme-mis", "Programme MIS", "msp"),
)
#: REST services: (subsystem id, service code, agency system, what it answers).
REST_SERVICES: tuple[tuple[str, str, str, str], ...] = (
    (f"{INSTANCE}/GOV/TAX/taxreg", "taxpayers", "tax", "Taxpayers and their yearly incomes"),
    (f"{INSTANCE}/GOV/SSF/contributions", "members", "ssf", "Contribution history and pension status"),
    (f"{INSTANCE}/GOV/MSP/programme-mis", "beneficiaries", "msp", "Grant beneficiaries and enrolments"),
)
#: Client subsystems: (client id, name, agency whose gateway it uses).
CLIENTS: tuple[tuple[str, str, str], ...] = (
    (PROGRAMME_MIS, "Programme MIS of the Ministry of Social Protection", "msp"),
    (TAX_CLIENT, "Tax authority's case system", "tax"),
)
READ_OPERATIONS = (
    "GetPersonByNationalId",
    "GetPersonByBirthCertificate",
    "SearchPersons",
    "GetHousehold",
    "GetDeathsSince",
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _member_of(subsystem: str) -> str:
    return "/".join(subsystem.split("/")[:3])


def system_settings(systems: Mapping[str, Any], code: str) -> dict[str, Any]:
    """How a gateway reaches one agency system (its connector settings)."""
    entry = systems[code]
    if entry["kind"] == "soap":
        return {
            "connector": "soap",
            "wsdl": entry["wsdl"],
            "endpoint": entry["endpoint"],
            "idempotent_operations": list(READ_OPERATIONS),
            "timeout": 5.0,
        }
    return {"connector": "rest", "base_url": entry["base_url"], "timeout": 5.0}


def services_of(systems: Mapping[str, Any], agencies: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The services hosted for these agencies, with who may call them."""
    chosen = set(agencies)
    services: dict[str, dict[str, Any]] = {}
    if "cra" in chosen:
        civreg = SUBSYSTEMS[0][0]
        for operation in systems["cra"]["operations"]:
            # the tax authority may look people up, but not browse households or deaths
            allow = [PROGRAMME_MIS] + ([TAX_CLIENT] if operation == "GetPersonByNationalId" else [])
            services[f"{civreg}/{operation}"] = {
                "system": "cra",
                "type": "soap",
                "operation": operation,
                "allow": allow,
                "description": f"Civil registry: {operation}",
            }
    for subsystem, code, system, description in REST_SERVICES:
        if system in chosen:
            services[f"{subsystem}/{code}"] = {
                "system": system,
                "type": "rest",
                "operation": "",
                "openapi": "/openapi.json",
                "allow": [PROGRAMME_MIS],
                "description": description,
            }
    return services


def node_config(
    systems: Mapping[str, Any],
    agencies: Iterable[str],
    data_dir: Path,
    tokens: Mapping[str, str],
    *,
    name: str,
    host: str = "127.0.0.1",
    port: int = 0,
) -> dict[str, Any]:
    """A gateway's settings (as `kiungo gateway serve` reads them) hosting these agencies' subsystems."""
    chosen = list(agencies)
    return {
        "instance": INSTANCE,
        "name": name,
        "data_dir": str(data_dir),
        "server": {"host": host, "port": port},
        "operator": {"token_sha256": _hash(tokens["operator"])},
        "clients": {
            cid: {"name": cname, "token_sha256": _hash(tokens[cid])}
            for cid, cname, agency in CLIENTS
            if agency in chosen
        },
        "subsystems": {sid: {"name": sname} for sid, sname, agency in SUBSYSTEMS if agency in chosen},
        "systems": {code: system_settings(systems, code) for code in chosen},
        "services": services_of(systems, chosen),
    }


def fresh_tokens() -> dict[str, str]:
    tokens = {cid: secrets.token_urlsafe(24) for cid, _, _ in CLIENTS}
    tokens["operator"] = secrets.token_urlsafe(24)
    return tokens


def gateway_config(
    systems: Mapping[str, Any], data_dir: Path, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[dict[str, Any], dict[str, str]]:
    """One gateway for every agency (the `single` shape), and the fresh tokens by client id."""
    tokens = fresh_tokens()
    return node_config(systems, MEMBERS, data_dir, tokens, name="Sandbox gateway", host=host, port=port), tokens


def gateway_manifest(base_url: str, config: Mapping[str, Any], tokens: Mapping[str, str]) -> dict[str, Any]:
    """What sandbox.json says about a gateway: its address, what it hosts, and its clients' tokens."""
    return {
        "base_url": base_url,
        "soap_endpoint": base_url + "/",
        "instance": config["instance"],
        "members": sorted({_member_of(sid) for sid in config["subsystems"]}),
        "subsystems": sorted(config["subsystems"]),
        "services": sorted(config["services"]),
        "clients": {cid: {"token": tokens[cid]} for cid in config["clients"]},
        "operator_token": tokens["operator"],
    }


@dataclass
class FederationPlan:
    """Everything a sandbox federation needs before its servers start: keys, configs, the signed directory."""

    root: Path
    ca: certs.CertificateAuthority
    passphrase_file: Path
    anchor: Path
    directory_file: Path
    configs: dict[str, dict[str, Any]]  # by agency code
    tokens: dict[str, str]
    content: dict[str, Any] = field(default_factory=dict)

    def directory_content(self) -> dict[str, Any]:
        return self.content

    def publish(self, content: Mapping[str, Any]) -> None:
        """Sign and write a directory (atomically), as the authority does after every change."""
        blob = self.ca.sign_directory(content)
        tmp = self.directory_file.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, self.directory_file)
        self.content = dict(content)


def plan_federation(
    systems: Mapping[str, Any],
    root: Path,
    *,
    host: str,
    client_ports: Mapping[str, int],
    peer_ports: Mapping[str, int],
    authority_url: str,
    valid_for: dt.timedelta = dt.timedelta(days=1),
) -> FederationPlan:
    """A CA, one member credential set and gateway configuration per agency, and the signed directory."""
    root.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(24).encode()
    passphrase_file = root / "passphrase"
    passphrase_file.write_bytes(passphrase)
    passphrase_file.chmod(0o600)
    ca = certs.CertificateAuthority.init(root / "ca", INSTANCE, "Sandbox federation authority", passphrase)
    anchor = root / "anchor.pem"
    certs.save_certificate(ca.directory_cert, anchor)
    directory_file = root / "directory.jws"
    tokens = fresh_tokens()
    configs: dict[str, dict[str, Any]] = {}
    members: dict[str, Any] = {}
    for code, (member, name) in MEMBERS.items():
        creds = ca.issue_member(member, root / "members" / code, passphrase, hosts=[host], name=name)
        config = node_config(
            systems,
            [code],
            root / "members" / code / "data",
            tokens,
            name=f"{name} gateway",
            host=host,
            port=client_ports[code],
        )
        config["federation"] = {
            "member": member,
            "directory": str(directory_file),
            "anchor": str(anchor),
            "host": host,
            "port": peer_ports[code],
            "auth_cert": str(creds["auth_cert"]),
            "auth_key": str(creds["auth_key"]),
            "sign_cert": str(creds["sign_cert"]),
            "sign_key": str(creds["sign_key"]),
            "passphrase_file": str(passphrase_file),
            "revocation": "ocsp" if code == "cra" else "crl",  # both ways in use, in one federation
            "revocation_cache_seconds": 0,
        }
        configs[code] = config
        subsystems: dict[str, Any] = {}
        for key, service in config["services"].items():
            sub = key.split("/")[3]
            subsystems.setdefault(sub, {"services": {}})["services"][key.split("/")[4]] = service["type"]
        members[member] = {
            "name": name,
            "gateway": {
                "address": f"https://{host}:{peer_ports[code]}",
                "tls_cert_sha256": certs.fingerprint(certs.load_certificate(creds["auth_cert"])),
            },
            "signing_certs": [creds["sign_cert"].read_text()],
            "subsystems": subsystems,
        }
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    plan = FederationPlan(root, ca, passphrase_file, anchor, directory_file, configs, tokens)
    plan.publish(
        {
            "instance": INSTANCE,
            "serial": 1,
            "issued_at": now.isoformat().replace("+00:00", "Z"),
            "expires_at": (now + valid_for).isoformat().replace("+00:00", "Z"),
            "ca_certs": [(root / "ca" / "ca.cert.pem").read_text()],
            "crl_url": authority_url + "/crl",
            "ocsp_url": authority_url + "/ocsp",
            "members": members,
        }
    )
    return plan


def connector_config(systems: Mapping[str, Any]) -> dict[str, Any]:
    """A connector configuration (`kiungo connectors`, `connectors.Router`) for the four systems."""
    return {
        "systems": {code: system_settings(systems, code) for code in MEMBERS},
        "services": {
            **{op[0].lower() + op[1:]: {"system": "cra", "operation": op} for op in READ_OPERATIONS},
            "getIncomes": {"system": "tax", "operation": "/v1/incomes", "description": "by national_id"},
            "getTaxpayer": {"system": "tax", "operation": "/v1/taxpayers/{tin}"},
            "getMembers": {"system": "ssf", "operation": "/v1/members", "description": "by national_id"},
            "getPension": {"system": "ssf", "operation": "/v1/members/{ssn}/pension"},
            "getContributions": {"system": "ssf", "operation": "/v1/members/{ssn}/contributions"},
            "findBeneficiaries": {"system": "msp", "operation": "/v1/beneficiaries", "description": "search"},
            "getBeneficiary": {"system": "msp", "operation": "/v1/beneficiaries/{beneficiary_no}"},
            "getEnrolment": {"system": "msp", "operation": "/v1/beneficiaries/{beneficiary_no}/enrolment"},
        },
    }
