"""Agreements and consent decide every exchange, through two gateways, each refusal with its reason code."""

from __future__ import annotations

import uuid

import httpx
import pytest
from lxml import etree

import consent
from sandbox import federation
from sandbox.demo import soap_request
from tests.gateway.federation_setup import MSP, SSF, TAX, TAXPAYER, Fed

INCOMES = "/r1/ZZ/GOV/TAX/taxreg/taxpayers/v1/incomes"
MEMBERS = "/r1/ZZ/GOV/SSF/contributions/members/v1/members"
GRANT = "old-age-grant-eligibility"


def call(fed: Fed, client: str, path: str, purpose: str, **extra: str) -> httpx.Response:
    member = "/".join(client.split("/")[:3])
    headers = {
        "X-Road-Client": client,
        "X-Kiungo-Client-Token": fed.plan.tokens[client],
        "X-Road-PDU-Purpose": purpose,
        **extra,
    }
    return httpx.get(fed.gateway(member)["base_url"] + path, headers=headers, timeout=15)


def assert_denied(response: httpx.Response, reason: str) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["X-Road-Error"] == "Server.ServerProxy.AccessDenied"
    message = response.json()["message"]
    assert message.startswith(f"{reason}: "), message
    return str(message)


def test_no_agreement(fed: Fed):
    r = call(fed, federation.TAX_CLIENT, MEMBERS + "?national_id=9000000001", "tax-identity-verification")
    assert_denied(r, "no_agreement")


def test_purpose_not_allowed(fed: Fed):
    assert_denied(call(fed, federation.PROGRAMME_MIS, TAXPAYER, "marketing-2026"), "purpose_not_allowed")


def test_agreement_expired(fed: Fed):
    r = call(fed, federation.PROGRAMME_MIS, MEMBERS + "?national_id=9000000001", "covid-relief-2024")
    assert_denied(r, "agreement_expired")


def test_rate_limited(fed: Fed):
    answers = [
        call(fed, federation.PROGRAMME_MIS, MEMBERS + "?national_id=9000000001", "emergency-top-up-2026")
        for _ in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert_denied(answers[3], "rate_limited")
    # the other agreement's purpose is not held back by this one's limit
    assert call(fed, federation.PROGRAMME_MIS, MEMBERS + "?national_id=9000000001", GRANT).status_code == 200


def test_paths_outside_the_agreement(fed: Fed):
    r = call(fed, federation.RESEARCH, TAXPAYER, federation.RESEARCH_PURPOSE)
    assert r.status_code == 403
    assert r.json()["message"].split(":")[0] in {"method_not_allowed", "no_agreement"}


def subjects(fed: Fed) -> list[str]:
    return federation.consent_subjects(fed.servers.country_dir)


def research(fed: Fed, subject: str, **extra: str) -> httpx.Response:
    return call(fed, federation.RESEARCH, f"{INCOMES}?national_id={subject}", federation.RESEARCH_PURPOSE, **extra)


def test_consent_given_lets_the_study_see_only_the_agreed_fields(fed: Fed):
    r = research(fed, subjects(fed)[0])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) <= {"national_id", "totals"}
    assert all(set(t) <= {"year", "gross_income"} for t in body.get("totals", []))


@pytest.mark.parametrize(
    ("index", "reason"),
    [(1, "consent_withdrawn"), (2, "consent_expired"), (3, "consent_does_not_cover"), (4, "consent_missing")],
)
def test_consent_refusals(fed: Fed, index: int, reason: str):
    message = assert_denied(research(fed, subjects(fed)[index]), reason)
    assert subjects(fed)[index] not in message  # no personal identifier in the refusal


def test_withdrawal_is_effective_from_the_next_exchange(fed: Fed):
    subject = subjects(fed)[4]
    tax = fed.gateway(TAX)
    auth = {"Authorization": f"Bearer {fed.plan.tokens['operator']}"}
    granted = httpx.post(
        tax["base_url"] + "/api/consent/records",
        headers=auth,
        json={
            "subject_id": subject,
            "recipients": [federation.RESEARCH],
            "purposes": [federation.RESEARCH_PURPOSE],
            "data_categories": ["income"],
            "valid_until": "2027-01-01T00:00:00Z",
        },
    )
    assert granted.status_code == 201, granted.text
    record = granted.json()["record"]
    assert subject not in granted.text.replace(record["subject_hint"], "")
    try:
        assert research(fed, subject).status_code == 200
        withdrawn = httpx.post(f"{tax['base_url']}/api/consent/records/{record['record_id']}/withdraw", headers=auth)
        assert withdrawn.json()["state"] == "withdrawn"
        assert_denied(research(fed, subject), "consent_withdrawn")
    finally:
        httpx.post(f"{tax['base_url']}/api/consent/records/{record['record_id']}/withdraw", headers=auth)
    # the receipt verifies offline, with nothing but the published key
    key = httpx.get(tax["base_url"] + "/api/consent/receipt-key").content
    claims = consent.verify_receipt(granted.json()["receipt"], key)
    assert claims["jti"] == record["record_id"]


def test_consent_reference_names_the_record(fed: Fed):
    auth = {"Authorization": f"Bearer {fed.plan.tokens['operator']}"}
    tax = fed.gateway(TAX)["base_url"]
    records = {
        s: httpx.post(tax + "/api/consent/records/search", headers=auth, json={"subject_id": s}).json()["records"]
        for s in subjects(fed)[:2]
    }
    active = records[subjects(fed)[0]][0]["record_id"]
    withdrawn = records[subjects(fed)[1]][0]["record_id"]
    ok = research(fed, subjects(fed)[0], **{"X-Road-PDU-Consent-Reference": active})
    assert ok.status_code == 200, ok.text
    assert_denied(research(fed, subjects(fed)[1], **{"X-Road-PDU-Consent-Reference": withdrawn}), "consent_withdrawn")
    stranger = research(fed, subjects(fed)[0], **{"X-Road-PDU-Consent-Reference": str(uuid.uuid4())})
    assert_denied(stranger, "consent_missing")
    # someone else's consent does not cover this person
    assert_denied(research(fed, subjects(fed)[3], **{"X-Road-PDU-Consent-Reference": active}), "consent_missing")


def test_rest_answers_are_cut_to_the_agreed_fields(fed: Fed):
    r = call(fed, federation.PROGRAMME_MIS, TAXPAYER, GRANT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tin"] == "TIN90000001"
    for hidden in ("birth_date", "registered_on", "sex", "district_code"):
        assert hidden not in body
    assert body["incomes"]
    for income in body["incomes"]:
        assert "payer" not in income
        assert "tax_paid" not in income
        assert "gross_income" in income


def test_soap_answers_are_cut_to_the_agreed_fields(fed: Fed):
    r = httpx.post(
        fed.gateway(MSP)["base_url"] + "/",
        content=soap_request("9000000001", federation.PROGRAMME_MIS),
        headers={"Content-Type": "text/xml", "X-Kiungo-Client-Token": fed.plan.tokens[federation.PROGRAMME_MIS]},
    )
    assert r.status_code == 200, r.text
    root = etree.fromstring(r.content)
    names = {etree.QName(e).localname for e in root.iter() if isinstance(e.tag, str)}
    assert "surname" in names
    assert "motherName" not in names
    assert "birthDistrict" not in names
    assert b"Grace" not in r.content  # the mother's name, which the agreement does not grant


def test_the_same_service_gives_another_client_less(fed: Fed):
    headers = {"Content-Type": "text/xml", "X-Kiungo-Client-Token": fed.plan.tokens[federation.TAX_CLIENT]}
    envelope = soap_request("9000000001", federation.TAX_CLIENT).replace(
        b"old-age-grant-eligibility", b"tax-identity-verification"
    )
    r = httpx.post(fed.gateway(TAX)["base_url"] + "/", content=envelope, headers=headers)
    assert r.status_code == 200, r.text
    names = {etree.QName(e).localname for e in etree.fromstring(r.content).iter() if isinstance(e.tag, str)}
    assert {"surname", "status"} <= names
    assert "householdId" not in names


def test_consent_api_needs_the_operator(fed: Fed):
    r = httpx.post(fed.gateway(TAX)["base_url"] + "/api/consent/records/search", json={"subject_id": "x"})
    assert r.status_code == 401
    r = httpx.post(
        fed.gateway(SSF)["base_url"] + "/api/consent/records",
        headers={"Authorization": f"Bearer {fed.plan.tokens['operator']}"},
        json={
            "subject_id": "1",
            "recipients": ["bad id"],
            "purposes": ["p"],
            "data_categories": ["c"],
            "valid_until": "2027-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 400
    assert r.headers["X-Road-Error"] == "Client.BadRequest"
