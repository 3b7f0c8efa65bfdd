"""The sandbox's gateway: which subsystems and services it hosts, which clients may call them, and tokens.

Built from the agency systems' manifest, so the gateway's configuration always points at the ports the
systems actually got. Tokens are made afresh for every run (throw-away material, never committed);
the gateway keeps only their hashes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INSTANCE = "ZZ"
PROGRAMME_MIS = f"{INSTANCE}/GOV/MSP/programme-mis"
TAX_CLIENT = f"{INSTANCE}/GOV/TAX/taxreg"

#: Subsystems the sandbox gateway hosts: (subsystem id, name, agency system).
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
CLIENTS: tuple[tuple[str, str], ...] = (
    (PROGRAMME_MIS, "Programme MIS of the Ministry of Social Protection"),
    (TAX_CLIENT, "Tax authority's case system"),
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


def gateway_config(
    systems: Mapping[str, Any], data_dir: Path, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[dict[str, Any], dict[str, str]]:
    """The gateway's settings (as `kiungo gateway serve` reads them) and the fresh tokens by client id."""
    tokens = {cid: secrets.token_urlsafe(24) for cid, _ in CLIENTS}
    tokens["operator"] = secrets.token_urlsafe(24)
    cra = systems["cra"]
    config: dict[str, Any] = {
        "instance": INSTANCE,
        "name": "Sandbox gateway",
        "data_dir": str(data_dir),
        "server": {"host": host, "port": port},
        "operator": {"token_sha256": _hash(tokens["operator"])},
        "clients": {cid: {"name": name, "token_sha256": _hash(tokens[cid])} for cid, name in CLIENTS},
        "subsystems": {sid: {"name": name} for sid, name, _ in SUBSYSTEMS},
        "systems": {
            "cra": {
                "connector": "soap",
                "wsdl": cra["wsdl"],
                "endpoint": cra["endpoint"],
                "idempotent_operations": list(READ_OPERATIONS),
                "timeout": 5.0,
            },
            **{
                code: {"connector": "rest", "base_url": systems[code]["base_url"], "timeout": 5.0}
                for code in ("tax", "ssf", "msp")
            },
        },
        "services": {},
    }
    civreg = SUBSYSTEMS[0][0]
    for operation in cra["operations"]:
        # the tax authority may look people up, but not browse households or deaths
        allow = [PROGRAMME_MIS] + ([TAX_CLIENT] if operation == "GetPersonByNationalId" else [])
        config["services"][f"{civreg}/{operation}"] = {
            "system": "cra",
            "type": "soap",
            "operation": operation,
            "allow": allow,
            "description": f"Civil registry: {operation}",
        }
    for subsystem, code, system, description in REST_SERVICES:
        config["services"][f"{subsystem}/{code}"] = {
            "system": system,
            "type": "rest",
            "operation": "",
            "openapi": "/openapi.json",
            "allow": [PROGRAMME_MIS],
            "description": description,
        }
    return config, tokens


def connector_config(systems: Mapping[str, Any]) -> dict[str, Any]:
    """A connector configuration (`kiungo connectors`, `connectors.Router`) for the four systems."""
    cra = systems["cra"]
    return {
        "systems": {
            "cra": {"connector": "soap", "wsdl": cra["wsdl"], "idempotent_operations": list(READ_OPERATIONS)},
            **{code: {"connector": "rest", "base_url": systems[code]["base_url"]} for code in ("tax", "ssf", "msp")},
        },
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


def gateway_manifest(base_url: str, config: Mapping[str, Any], tokens: Mapping[str, str]) -> dict[str, Any]:
    """What sandbox.json says about the gateway: its address, what it hosts, and the clients' tokens."""
    return {
        "base_url": base_url,
        "soap_endpoint": base_url + "/",
        "instance": config["instance"],
        "members": sorted({"/".join(sid.split("/")[:3]) for sid in config["subsystems"]}),
        "subsystems": sorted(config["subsystems"]),
        "services": sorted(config["services"]),
        "clients": {cid: {"token": tokens[cid]} for cid in config["clients"]},
        "operator_token": tokens["operator"],
    }
