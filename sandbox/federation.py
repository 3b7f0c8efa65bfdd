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
import functools
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

import certs
from gateway.exchangelog.tsa import make_tsa_certificate

INSTANCE = "ZZ"
PROGRAMME_MIS = f"{INSTANCE}/GOV/MSP/programme-mis"
RESEARCH = f"{INSTANCE}/GOV/MSP/research"
PORTAL = f"{INSTANCE}/GOV/MSP/citizen-portal"
TAX_CLIENT = f"{INSTANCE}/GOV/TAX/taxreg"
VSR = f"{INSTANCE}/GOV/MSP/vsr"
EVENTS = f"{INSTANCE}/GOV/CRA/events"
PROGRAMMES = Path(__file__).with_name("programmes")
AGREEMENTS = Path(__file__).with_name("agreements")
RESEARCH_PURPOSE = "poverty-research-2026"
#: The console's users on every sandbox gateway: one per role, named after it (docs/console.md).
CONSOLE_ROLES = ("dpo", "auditor", "operator")

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
    (VSR, "Virtual social registry", "msp"),
    (EVENTS, "Vital event notifications", "cra"),
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
    (RESEARCH, "Poverty research unit of the Ministry of Social Protection", "msp"),
    (PORTAL, "Citizen portal: who used my data?", "msp"),
    (VSR, "Virtual social registry (asking the agencies)", "msp"),
    (EVENTS, "Vital event service of the civil registry (polling it, notifying subscribers)", "cra"),
)
#: The virtual registry's REST services: (service code, base path, where the subject's ID sits, what it answers).
VSR_SERVICES: tuple[tuple[str, str, list[str], str], ...] = (
    ("persons", "/v1/persons", ["json:national_id", "path:/{national_id}"], "A person across the agencies"),
    ("eligibility", "/v1/eligibility", ["json:person.national_id"], "Eligibility for a programme, with reasons"),
    ("bulk", "/v1/bulk", [], "Eligibility for many people, streamed"),
    ("crosscheck", "/v1/crosscheck", [], "Cross-checks of beneficiary lists"),
    ("oversight", "/v1/oversight", [], "Oversight statistics: aggregates only, small cells suppressed"),
    ("programmes", "/v1/programmes", [], "Programmes and their rule versions"),
    ("registry", "/registry", [], "DCI sync/search and sync/enrolled"),
)
#: Where each agency's services find the data subject's identifier in a request.
SUBJECTS: dict[str, list[str]] = {
    "cra": ["xml:nationalId", "xml:birthCertificateNo", "xml:recordId"],
    "tax": ["query:national_id", "path:/v1/taxpayers/{tin}", "path:/v1/taxpayers/{tin}/incomes"],
    "ssf": [
        "query:national_id",
        "query:ssn",
        "path:/v1/members/{ssn}",
        "path:/v1/members/{ssn}/contributions",
        "path:/v1/members/{ssn}/pension",
    ],
    "msp": [
        "query:national_id",
        "path:/v1/beneficiaries/{beneficiary_no}",
        "path:/v1/beneficiaries/{beneficiary_no}/enrolment",
    ],
}
READ_OPERATIONS = (
    "GetPersonByNationalId",
    "GetPersonByBirthCertificate",
    "SearchPersons",
    "GetHousehold",
    "GetDeathsSince",
    "GetPersonByRecordId",
    "ListResidents",
    "GetBirthsSince",
    "GetPersonsByNationalIds",
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
                "subject": SUBJECTS["cra"],
                "description": f"Civil registry: {operation}",
            }
    if "cra" in chosen:
        services[f"{EVENTS}/subscriptions"] = {
            "system": "events",
            "type": "rest",
            "operation": "/registry",
            "openapi": "/openapi.json",
            "allow": [PROGRAMME_MIS],
            "subject": [],
            "description": "Subscriptions to registered deaths and births (DCI subscribe/unsubscribe)",
        }
    if "msp" in chosen:
        services[f"{PROGRAMME_MIS}/notifications"] = {
            "system": "msp",
            "type": "rest",
            "operation": "/v1/notifications",
            "openapi": "/openapi.json",
            "allow": [EVENTS],
            "subject": [],
            "description": "Vital event notifications from the civil registry (DCI notify)",
        }
        for code, base, subject, description in VSR_SERVICES:
            services[f"{VSR}/{code}"] = {
                "system": "vsr",
                "type": "rest",
                "operation": base,
                "openapi": "/openapi.json",
                "allow": [PROGRAMME_MIS],
                "subject": subject,
                "description": description,
            }
    for subsystem, code, system, description in REST_SERVICES:
        if system in chosen:
            services[f"{subsystem}/{code}"] = {
                "system": system,
                "type": "rest",
                "operation": "",
                "openapi": "/openapi.json",
                "allow": [PROGRAMME_MIS],
                "subject": SUBJECTS[system],
                "description": description,
            }
    return services


@functools.cache
def _console_hash(password: str) -> str:
    from gateway.console import hash_password

    return hash_password(password, ln=12)  # a random throw-away password: a low scrypt cost is enough


def console_settings(tokens: Mapping[str, str]) -> dict[str, Any]:
    """The console's users, one per role; their passwords are the run's fresh tokens (in the manifest)."""
    users = {r: {"role": r, "password_hash": _console_hash(tokens[f"console:{r}"])} for r in CONSOLE_ROLES}
    return {"users": users}


def node_config(
    systems: Mapping[str, Any],
    agencies: Iterable[str],
    data_dir: Path,
    tokens: Mapping[str, str],
    *,
    name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    policy: bool = True,
    vsr: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A gateway's settings (as `kiungo gateway serve` reads them) hosting these agencies' subsystems.

    The ministry's gateway hosts the virtual registry too (`vsr`: what `prepare_vsr` made), with the
    registry's client token written next to the gateway's data.

    With `policy`, the sandbox's data-sharing agreements decide every exchange (the services' allow
    lists are then unused); without, the allow lists do (a bare node for protocol tests).
    """
    chosen = list(agencies)
    extra: dict[str, Any] = {"policy": {"agreements": [str(AGREEMENTS)]}} if policy else {}
    if "msp" in chosen:
        data_dir.mkdir(parents=True, exist_ok=True)
        token_file = data_dir / "vsr.token"
        token_file.write_text(tokens[VSR])
        token_file.chmod(0o600)
        extra["vsr"] = {"client": VSR, "token_file": str(token_file), "rules": [str(PROGRAMMES)], **(vsr or {})}
    if "cra" in chosen:
        data_dir.mkdir(parents=True, exist_ok=True)
        events_token = data_dir / "events.token"
        events_token.write_text(tokens[EVENTS])
        events_token.chmod(0o600)
        extra["events"] = {"client": EVENTS, "token_file": str(events_token), "poll_seconds": 0.5}
    return extra | {
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
        "usage_clients": [PORTAL],
        "console": console_settings(tokens),
    }


def fresh_tokens() -> dict[str, str]:
    tokens = {cid: secrets.token_urlsafe(24) for cid, _, _ in CLIENTS}
    tokens["operator"] = secrets.token_urlsafe(24)
    tokens |= {f"console:{role}": secrets.token_urlsafe(24) for role in CONSOLE_ROLES}
    return tokens


def prepare_vsr(country_dir: Path) -> dict[str, Any]:
    """The virtual registry's settings for a country: its matching model (trained once, kept with the
    country), the civil registry's size for the match prior, and the country's reference date."""
    import matching
    from sandbox.population import REFERENCE_DATE

    model_file = country_dir / "vsr-model.json"
    conn = sqlite3.connect(country_dir / "cra.sqlite")
    try:  # the registry's size, without loading it: on every start but the first, that is all we need
        (size,) = conn.execute("SELECT COUNT(*) FROM person").fetchone()
    finally:
        conn.close()
    settings: dict[str, Any] = {"registry_size": int(size), "as_of": str(REFERENCE_DATE)}
    if not model_file.exists():
        cra = matching.load(country_dir / "cra.sqlite", matching.CRA_PERSON)
        msp = matching.load(country_dir / "msp.sqlite", matching.MSP_BENEFICIARY)
        try:
            model = matching.train(matching.normalise_frame(msp), matching.normalise_frame(cra), sources=("msp", "cra"))
        except matching.MatchingError:
            return settings  # too small a country to learn from: the registry then answers by ID only
        tmp = model_file.with_suffix(".tmp")
        model.save(tmp)
        os.replace(tmp, model_file)
    return settings | {"model": str(model_file)}


def gateway_config(
    systems: Mapping[str, Any],
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    policy: bool = True,
    vsr: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """One gateway for every agency (the `single` shape), and the fresh tokens by client id."""
    tokens = fresh_tokens()
    config = node_config(
        systems, MEMBERS, data_dir, tokens, name="Sandbox gateway", host=host, port=port, policy=policy, vsr=vsr
    )
    return config, tokens


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
        "console": {"url": base_url + "/console/", "users": {r: tokens[f"console:{r}"] for r in CONSOLE_ROLES}},
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
    tsa_key: ec.EllipticCurvePrivateKey
    tsa_cert_pem: str
    content: dict[str, Any] = field(default_factory=dict)

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
    tsa_url: str | None = None,
    valid_for: dt.timedelta = dt.timedelta(days=1),
    vsr: Mapping[str, Any] | None = None,
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
            vsr=vsr,
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
        config["log"] = {"sign_interval_seconds": 30.0} | ({"tsa_url": tsa_url} if tsa_url else {})
        configs[code] = config
        subsystems: dict[str, Any] = {}
        for key, service in config["services"].items():
            sub = key.split("/")[3]
            subsystems.setdefault(sub, {"services": {}})["services"][key.split("/")[4]] = {
                "type": service["type"],
                "subject": service.get("subject", []),
            }
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
    tsa_key = certs.generate_key()
    plan = FederationPlan(
        root, ca, passphrase_file, anchor, directory_file, configs, tokens, tsa_key, make_tsa_certificate(tsa_key)
    )
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


def consent_subjects(country_dir: Path, count: int = 5) -> list[str]:
    """National ids of taxpayers whose consents the sandbox seeds, the same for the same country."""
    conn = sqlite3.connect(country_dir / "tax.sqlite")
    try:
        rows = conn.execute(
            "SELECT DISTINCT national_id FROM taxpayer WHERE national_id IS NOT NULL ORDER BY national_id LIMIT ?",
            (count,),
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def research_consent(
    subject: str, *, purpose: str = RESEARCH_PURPOSE, start: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict[str, Any]:
    """A consent to the research study (the body of `POST /api/consent/records`): from now, for a year."""
    now = dt.datetime.now(dt.UTC)
    return {
        "subject_id": subject,
        "recipients": [RESEARCH],
        "purposes": [purpose],
        "data_categories": ["income"],
        "valid_from": (start or now - dt.timedelta(minutes=1)).isoformat(),
        "valid_until": (until or now + dt.timedelta(days=365)).isoformat(),
        "privacy_notice": "https://msp.zz.example/research/poverty-2026/notice",
    }


def seed_consents(gateway_url: str, operator_token: str, subjects: Sequence[str]) -> dict[str, str]:
    """Consents for the research study: given, withdrawn, expired, for another study, and none (in order)."""
    now = dt.datetime.now(dt.UTC)
    auth = {"Authorization": f"Bearer {operator_token}"}
    states: dict[str, str] = {}
    plans = [
        ("active", RESEARCH_PURPOSE, now - dt.timedelta(days=1), now + dt.timedelta(days=365)),
        ("withdrawn", RESEARCH_PURPOSE, now - dt.timedelta(days=1), now + dt.timedelta(days=365)),
        ("expired", RESEARCH_PURPOSE, now - dt.timedelta(days=60), now - dt.timedelta(days=1)),
        ("other-study", "nutrition-study-2025", now - dt.timedelta(days=1), now + dt.timedelta(days=365)),
    ]
    with httpx.Client(timeout=10) as http:
        for subject, (state, purpose, start, until) in zip(subjects, plans, strict=False):
            body = research_consent(subject, purpose=purpose, start=start, until=until)
            answer = http.post(gateway_url + "/api/consent/records", json=body, headers=auth)
            answer.raise_for_status()
            record_id = answer.json()["record"]["record_id"]
            if state == "withdrawn":
                http.post(f"{gateway_url}/api/consent/records/{record_id}/withdraw", headers=auth).raise_for_status()
            states[record_id] = state
    return states
