"""The virtual registry through the real federation: every outcome, every source an ordinary exchange."""

from __future__ import annotations

import uuid

import httpx

from sandbox import federation
from tests.gateway.vsr.conftest import CRA, MSP, Vsr
from tests.sandbox import fixtures_country as known

AMINA = {"national_id": known.AMINA["national_id"]}


def test_eligible_with_reasons_and_provenance(vsr: Vsr) -> None:
    answer = vsr.eligibility(AMINA)
    decision = answer["decision"]
    assert decision["outcome"] == "eligible"
    assert decision["explanation"].startswith("Eligible for the Old-age grant (rules version 2026.1).")
    assert "76 years old" in decision["explanation"]
    assert answer["complete"] is True
    assert answer["missing_sources"] == []
    assert answer["identity"] == {"status": "resolved", "method": "national_id", "match_probability": 1.0}
    facts = {f["name"]: f for f in decision["facts_used"]}
    assert facts["pension.contributory_monthly"]["value"] == 3500
    pension_source = facts["pension.contributory_monthly"]["provenance"][0]
    assert pension_source["source"] == "ZZ/GOV/SSF/contributions/members"
    assert facts["person.age_years"]["provenance"][0]["source"] == "ZZ/GOV/CRA/civreg/GetPersonByNationalId"
    for fact in facts.values():
        for p in fact["provenance"]:
            assert set(p) == {"source", "exchange_id", "time"}
    assert answer["person"]["identifier"][0] == {"identifier_type": "UIN", "identifier_value": "9000000001"}
    # only what the rules read is asked: no household, no income for the old-age grant
    asked = {s["source"]: s["status"] for s in answer["sources"]}
    assert asked == {"civil-registry": "ok", "tax": "not_asked", "social-security": "ok", "programmes": "not_asked"}
    assert "group" not in answer


def test_age_from_a_birth_year_alone_decides_when_both_bounds_agree(vsr: Vsr) -> None:
    answer = vsr.eligibility({"national_id": known.PETER["national_id"]})
    rule = next(r for r in answer["decision"]["rules"] if r["id"] == "age")
    assert rule["status"] == "met"
    assert rule["fact"]["value"] == [65, 66]
    assert "65 or 66" in rule["explanation"]


def test_not_eligible_when_deceased(vsr: Vsr) -> None:
    answer = vsr.eligibility({"national_id": known.MARY["national_id"]})
    assert answer["decision"]["outcome"] == "not_eligible"
    assert answer["decision"]["explanation"].startswith(
        "Not eligible for the Old-age grant: the requirement “recorded as alive in the civil registry” is not met."
    )


def test_not_eligible_when_the_registry_has_no_such_id(vsr: Vsr) -> None:
    answer = vsr.eligibility({"national_id": "9999999999"})
    assert answer["identity"]["status"] == "not_found"
    assert answer["decision"]["outcome"] == "not_eligible"
    assert "person" not in answer


def test_undetermined_and_partial_when_a_source_fails(vsr: Vsr) -> None:
    vsr.fault("ssf", "error")
    answer = vsr.eligibility(AMINA)
    assert answer["complete"] is False
    assert answer["missing_sources"] == ["ZZ/GOV/SSF/contributions/members"]
    ssf = next(s for s in answer["sources"] if s["source"] == "social-security")
    assert ssf["status"] == "failed"
    decision = answer["decision"]
    assert decision["outcome"] == "undetermined"
    assert decision["missing"] == ["pension.contributory_monthly"]
    assert decision["explanation"].startswith("Cannot be decided yet for the Old-age grant:")
    assert "(the social security fund gave no usable answer (HTTP500))" in decision["explanation"]
    assert decision["explanation"].rstrip().endswith(".")
    assert "nothing has been guessed" in decision["explanation"]


def test_a_slow_source_times_out_into_a_partial_answer(vsr: Vsr) -> None:
    vsr.fault("tax", "delay", seconds=8)
    answer = vsr.eligibility(AMINA, "disability-grant")
    tax = next(s for s in answer["sources"] if s["source"] == "tax")
    assert tax["status"] == "failed"
    assert answer["missing_sources"] == ["ZZ/GOV/TAX/taxreg/taxpayers"]
    assert answer["decision"]["outcome"] != "eligible"


def test_demographics_without_an_id_resolve_by_matching(vsr: Vsr) -> None:
    person = {
        "given_name": "Peter",
        "surname": "Otieno",
        "sex": "M",
        "birth_year": 1960,
        "district": "D02",
    }
    answer = vsr.eligibility(person)
    assert answer["identity"]["status"] == "resolved", answer["identity"]
    assert answer["identity"]["method"] == "matching"
    assert answer["identity"]["match_probability"] >= 0.95
    assert answer["person"]["identifier"][0]["identifier_value"] == known.PETER["national_id"]


def test_two_close_candidates_are_ambiguous_never_chosen(vsr: Vsr) -> None:
    person = {"given_name": "Amina", "surname": "Mwangi", "sex": "F", "birth_date": "1950-03-14"}
    answer = vsr.eligibility(person)
    identity = answer["identity"]
    assert identity["status"] == "ambiguous"
    records = [c["record_id"] for c in identity["candidates"][:2]]
    assert sorted(records) == [known.AMINA["record_id"], known.AMINA_DUPLICATE["record_id"]]
    assert "perhaps one person registered twice" in identity["note"]
    assert "person" not in answer
    assert answer["decision"]["outcome"] == "undetermined"
    assert answer["decision"]["missing"][0] == "person.identified"


def test_child_grant_counts_the_household_means(vsr: Vsr) -> None:
    answer = vsr.eligibility({"record_id": known.BARAKA["record_id"]}, "child-grant")
    facts = {f["name"]: f for f in answer["decision"]["facts_used"]}
    assert facts["caregiver.identified"]["value"] is True
    assert facts["household.income_monthly_per_member"]["value"] is not None
    assert answer["decision"]["outcome"] in ("eligible", "not_eligible")


def test_every_look_up_is_an_ordinary_logged_exchange(vsr: Vsr) -> None:
    answer = vsr.eligibility(AMINA)
    ids = {p["exchange_id"] for f in answer["decision"]["facts_used"] for p in f["provenance"]}
    cra = vsr.gateway(CRA)
    found = httpx.post(
        cra["base_url"] + "/api/log/records/search",
        json={"subject_id": known.AMINA["national_id"], "client": federation.VSR, "limit": 1000},
        headers=vsr.operator(CRA),
        timeout=10,
    )
    assert found.status_code == 200, found.text
    records = [r for r in found.json()["records"] if r["exchange_id"] in ids]
    assert records, "the civil registry's exchanges behind the answer are in its log"
    for record in records:
        assert record["purpose"] == "old-age-grant-eligibility"
        assert record["user_id"] == "ZZ-officer-7"
    assert known.AMINA["national_id"] not in found.text, "the log keeps a keyed hash, never the ID"


def test_purpose_must_match_the_programme(vsr: Vsr) -> None:
    answer = vsr.post("eligibility", {"programme": "old-age-grant", "person": AMINA}, purpose="child-grant-eligibility")
    assert answer.status_code == 400
    assert answer.json()["title"] == (
        "the purpose of this exchange is 'child-grant-eligibility'; deciding 'old-age-grant' needs the purpose "
        "'old-age-grant-eligibility'"
    )


def test_bad_queries_get_clear_errors(vsr: Vsr) -> None:
    cases = {
        "without a national_id, give at least a surname or a given name": {"birth_year": 1950},
        "without a national_id, give a birth_date, birth_year or district as well": {"surname": "Mwangi"},
        "record_id must be a civil registry record number: CRA and 9 digits": {"record_id": "CRA1"},
    }
    for message, person in cases.items():
        answer = vsr.post("eligibility", {"programme": "old-age-grant", "person": person})
        assert answer.status_code == 400
        assert answer.json()["title"] == message
    unknown = vsr.post("eligibility", {"programme": "no-such-grant", "person": AMINA})
    assert unknown.status_code == 404
    assert unknown.json()["title"].startswith("unknown programme 'no-such-grant'")
    invalid = vsr.post("eligibility", {"programme": "old-age-grant", "person": {"national_id": "12", "x": 1}})
    assert invalid.status_code == 422


def test_a_client_without_an_agreement_is_refused_by_the_gateway(vsr: Vsr) -> None:
    headers = vsr.headers(purpose="poverty-research-2026")
    headers["X-Road-Client"] = federation.RESEARCH
    headers["X-Kiungo-Client-Token"] = vsr.servers.federation.tokens[federation.RESEARCH]  # type: ignore[union-attr]
    answer = httpx.post(vsr.url("eligibility"), json={"programme": "old-age-grant", "person": AMINA}, headers=headers)
    assert answer.status_code == 403
    assert answer.headers["X-Road-Error"] == "Server.ServerProxy.AccessDenied"


def test_person_view_and_programmes(vsr: Vsr) -> None:
    answer = vsr.get("persons", "/" + known.AMINA["national_id"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {f["name"] for f in body["facts"]} >= {"person.alive", "pension.contributory_monthly"}
    assert body["enrolments"]["items"][0]["programme"] == "old-age-grant"
    assert body["group"]["group_type"] == "household"
    assert {m["person"]["name"]["given_name"] for m in body["group"]["member_list"]} >= {"Amina", "Baraka"}
    programmes = vsr.get("programmes").json()
    assert [p["programme"] for p in programmes["programmes"]] == ["child-grant", "disability-grant", "old-age-grant"]
    assert MSP in vsr.servers.manifest["federation"]["gateways"]


def test_the_registry_describes_itself_in_openapi_through_the_gateway(vsr: Vsr) -> None:
    answer = httpx.get(
        f"{vsr.gateway()['base_url']}/r1/{federation.VSR}/getOpenAPI",
        params={"serviceCode": "eligibility"},
        headers=vsr.headers(),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["info"]["title"] == "Kiungo virtual social registry"
    assert any(path.endswith("eligibility") or path == "/" for path in document["paths"]), document["paths"].keys()


def test_a_dpo_follows_one_registry_query_to_every_exchange_it_caused(vsr: Vsr) -> None:
    query_id = str(uuid.uuid4())
    answer = httpx.post(
        vsr.url("eligibility"),
        json={"programme": "old-age-grant", "person": AMINA},
        headers=vsr.headers(**{"X-Road-Id": query_id}),
        timeout=30,
    )
    assert answer.status_code == 200
    caused: dict[str, list[str]] = {}
    for member in ("ZZ/GOV/CRA", "ZZ/GOV/TAX", "ZZ/GOV/SSF", MSP):
        found = httpx.post(
            vsr.gateway(member)["base_url"] + "/api/log/records/search",
            json={"issue": query_id, "limit": 1000},
            headers=vsr.operator(member),
            timeout=10,
        ).json()["records"]
        caused[member] = sorted({r["service"].split("/", 3)[-1] for r in found if r["side"] == "Producer"})
    # the old-age grant's rules read the civil registry and the fund only: nothing else is asked
    assert caused == {
        "ZZ/GOV/CRA": ["civreg/GetPersonByNationalId"],
        "ZZ/GOV/TAX": [],
        "ZZ/GOV/SSF": ["contributions/members"],
        MSP: [],
    }
