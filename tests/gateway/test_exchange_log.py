"""Both gateways log every exchange, refusals included; no log record, no exchange; the log proves itself."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.exchangelog.merkle import verify_inclusion
from sandbox import federation
from sandbox.demo import soap_request
from tests.gateway.federation_setup import CODE, CRA, MSP, TAX, TAXPAYER, Fed


def operator(fed: Fed) -> dict[str, str]:
    return {"Authorization": f"Bearer {fed.plan.tokens['operator']}"}


def records(fed: Fed, member: str, **query: Any) -> list[dict[str, Any]]:
    answer = httpx.post(
        fed.gateway(member)["base_url"] + "/api/log/records/search",
        json={"limit": 1000, **query},
        headers=operator(fed),
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["records"])


def by_id(fed: Fed, member: str, exchange_id: str) -> dict[str, Any]:
    [record] = [r for r in records(fed, member) if r["exchange_id"] == exchange_id]
    return record


@contextmanager
def broken_log(fed: Fed, member: str) -> Iterator[None]:
    """The member's log database loses its records table for a while (a disk or database failure)."""
    path = Path(fed.plan.configs[CODE[member]]["data_dir"]) / "log.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE log_record RENAME TO log_record_away")
    conn.commit()
    try:
        yield
    finally:
        conn.execute("ALTER TABLE log_record_away RENAME TO log_record")
        conn.commit()
        conn.close()


def test_both_gateways_log_each_exchange(fed: Fed):
    message_id = str(uuid.uuid4())
    assert fed.get(TAXPAYER, **{"X-Road-Id": message_id}).status_code == 200
    consumer, provider = by_id(fed, MSP, message_id), by_id(fed, TAX, message_id)
    assert consumer["side"] == "Client"
    assert provider["side"] == "Producer"
    for record in (consumer, provider):
        assert record["outcome"] == "ok"
        assert record["client"] == federation.PROGRAMME_MIS
        assert record["service"] == "ZZ/GOV/TAX/taxreg/taxpayers"
        assert record["purpose"] == "old-age-grant-eligibility"
        assert record["request_signature"]
        assert record["response_signature"]
        assert record["response_digest"]
        assert record["subject_hash"]  # the keyed hash of the TIN, on both sides
        assert "TIN90000001" not in str(record)
    assert provider["agreement_id"] == "DSA-TAX-MSP-001"
    assert provider["decision"] == "allowed"
    assert provider["lawful_basis"] == "legal-obligation"
    assert consumer["response_digest"] == provider["response_digest"]  # the same answer, seen on both sides


def test_soap_exchanges_too(fed: Fed):
    message_id = str(uuid.uuid4())
    envelope = soap_request("9000000001", federation.PROGRAMME_MIS, message_id=message_id)
    token = fed.plan.tokens[federation.PROGRAMME_MIS]
    r = httpx.post(
        fed.gateway(MSP)["base_url"] + "/",
        content=envelope,
        headers={"Content-Type": "text/xml", "X-Kiungo-Client-Token": token},
    )
    assert r.status_code == 200
    assert by_id(fed, MSP, message_id)["side"] == "Client"
    assert by_id(fed, CRA, message_id)["agreement_id"] == "DSA-CRA-MSP-001"


def test_refusals_are_logged_with_their_reason(fed: Fed):
    message_id = str(uuid.uuid4())
    r = fed.get(TAXPAYER, **{"X-Road-Id": message_id, "X-Road-PDU-Purpose": "marketing-2026"})
    assert r.status_code == 403
    provider = by_id(fed, TAX, message_id)
    assert provider["decision"] == "purpose_not_allowed"
    assert provider["outcome"] == "Server.ServerProxy.AccessDenied"
    assert by_id(fed, MSP, message_id)["outcome"] == "Server.ServerProxy.AccessDenied"


def test_no_log_record_on_the_provider_no_exchange(fed: Fed):
    with broken_log(fed, TAX):
        r = fed.get(TAXPAYER)
    assert r.status_code == 500
    assert r.headers["X-Road-Error"] == "Server.ServerProxy.LoggingFailed"
    assert "Peter" not in r.text  # the answer was withheld
    assert fed.get(TAXPAYER).status_code == 200  # and the log works again once the database does


def test_no_log_record_on_the_consumer_no_exchange(fed: Fed):
    with broken_log(fed, MSP):
        r = fed.get(TAXPAYER)
    assert r.status_code == 500
    assert r.headers["X-Road-Error"] == "Server.ClientProxy.LoggingFailed"
    assert "Peter" not in r.text
    assert fed.get(TAXPAYER).status_code == 200


def test_signed_tree_heads_proofs_and_verification(fed: Fed):
    base = fed.gateway(TAX)["base_url"]
    fed.get(TAXPAYER)
    signed = httpx.post(base + "/api/log/tree-heads", headers=operator(fed))
    assert signed.status_code == 201, signed.text
    head = signed.json()
    assert head["jws"].count(".") == 2
    assert head["tsa_token"], head["tsa_error"]  # time-stamped by the sandbox's RFC 3161 authority
    proof = httpx.get(
        base + "/api/log/proofs/inclusion", params={"index": 0, "size": head["size"]}, headers=operator(fed)
    ).json()
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        0,
        head["size"],
        [bytes.fromhex(p) for p in proof["proof"]],
        bytes.fromhex(head["root"]),
    )
    report = httpx.post(base + "/api/log/verify", headers=operator(fed)).json()
    assert report["ok"] is True, report
    assert report["records"] >= head["size"]
    assert httpx.get(base + "/api/log/tree-heads").status_code == 401


def test_find_usage_tells_a_person_who_used_her_data(fed: Fed):
    beneficiaries = "/r1/ZZ/GOV/MSP/programme-mis/beneficiaries/v1/beneficiaries"
    assert fed.get(beneficiaries + "?national_id=9000000001").status_code == 200
    msp = fed.gateway(MSP)
    portal = {"X-Road-Client": federation.PORTAL, "X-Kiungo-Client-Token": fed.plan.tokens[federation.PORTAL]}
    r = httpx.post(
        msp["base_url"] + "/r1/ZZ/GOV/MSP/programme-mis/findUsage",
        json={"subject_id": "9000000001", "limit": 10},
        headers=portal,
    )
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage
    assert usage[0]["receiver"] == federation.PROGRAMME_MIS
    assert usage[0]["purpose"] == "old-age-grant-eligibility"
    other = httpx.post(
        msp["base_url"] + "/r1/ZZ/GOV/MSP/programme-mis/findUsage",
        json={"subject_id": "9000000001"},
        headers=fed.client_headers(),
    )
    assert other.status_code == 403
