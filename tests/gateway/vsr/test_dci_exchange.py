"""DCI clients query the virtual registry unchanged, through the exchange layer, and get spec-valid answers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.gateway.vsr.conftest import Vsr
from tests.gateway.vsr.test_dci import (
    IBR,
    JSON_BODY,
    SYNC_ENROLLED,
    by_id,
    envelope,
    errors,
    expr,
    header,
    item,
    predicate,
    ref,
    search_response_schema,
    validator,
)
from tests.sandbox import fixtures_country as known


def _post(vsr: Vsr, path: str, body: Any) -> dict[str, Any]:
    answer = httpx.post(vsr.url("registry", path), json=body, headers=vsr.headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_sync_search_by_id_and_by_predicate(vsr: Vsr) -> None:
    request = envelope(
        item("by-id", "idtype-value", by_id(known.AMINA["national_id"])),
        item(
            "by-name",
            "predicate",
            predicate(
                (expr("given_name", "eq", "Peter"), expr("surname", "eq", "Otieno")),
                (expr("birth_date", "ge", "1960-01-01"), expr("birth_date", "le", "1960-12-31")),
                (expr("sex", "eq", "M"), expr("district", "eq", "D02")),
            ),
        ),
        item(
            "twins",
            "predicate",
            predicate(
                (expr("given_name", "eq", "Amina"), expr("surname", "eq", "Mwangi")),
                (expr("birth_date", "eq", "1950-03-14"), None),
            ),
        ),
        item("bad", "expression", {"expression": "x"}),
    )
    answer = _post(vsr, "/sync/search", request)
    assert errors(search_response_schema(), answer) == []
    by_ref = {r["reference_id"]: r for r in answer["message"]["search_response"]}
    amina = by_ref["by-id"]
    assert amina["status"] == "succ"
    records = amina["data"]["reg_records"]
    assert len(records) == 1
    assert "9000000001" in str(records[0])
    peter = by_ref["by-name"]["data"]["reg_records"]
    assert len(peter) == 1
    assert known.PETER["national_id"] in str(peter[0])
    assert len(by_ref["twins"]["data"]["reg_records"]) == 2, "both candidates, none chosen silently"
    assert by_ref["bad"]["status"] == "rjct"
    assert by_ref["bad"]["status_reason_code"] == "rjct.search_criteria.invalid"


def test_a_malformed_envelope_is_rejected_in_dci_terms(vsr: Vsr) -> None:
    answer = _post(vsr, "/sync/search", {"header": header(action="nonsense"), "message": {}})
    assert answer["header"]["status"] == "rjct"
    assert answer["header"]["status_reason_code"] == "rjct.action.invalid"


def test_sync_enrolled(vsr: Vsr) -> None:
    request = {
        "header": header(),  # the IBR bundle wants action "search" here too
        "message": {
            "transaction_id": "T-9",
            "enrolled_criteria": {
                "query_type": "idtype-value",
                "query": {
                    "person_identifier": {"eq": known.AMINA["national_id"]},
                    "programme_identifier.program.programme_identifier": {"eq": "old-age-grant"},
                },
            },
        },
    }
    assert errors(validator(ref(IBR, f"{SYNC_ENROLLED}/requestBody/{JSON_BODY}")), request) == []
    answer = _post(vsr, "/sync/enrolled", request)
    assert answer["message"]["enrolled_response"][0]["enrolled_status"] == "yes"
    request["message"]["enrolled_criteria"]["query"]["programme_identifier.program.programme_identifier"] = {
        "eq": "child-grant"
    }
    answer = _post(vsr, "/sync/enrolled", request)
    assert answer["message"]["enrolled_response"][0]["enrolled_status"] == "no"
