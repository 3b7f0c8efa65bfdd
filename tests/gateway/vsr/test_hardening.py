"""What a reviewer found: each now has a test that shows the exact behaviour."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import tomli_w
from typer.testing import CliRunner

from gateway.commands import app as gateway_app
from sandbox import federation
from tests.gateway.vsr.conftest import Vsr
from tests.gateway.vsr.test_dci import envelope, expr, header, item, predicate
from tests.sandbox import fixtures_country as known


def test_validation_errors_never_echo_the_value_given(vsr: Vsr) -> None:
    answer = vsr.post("eligibility", {"programme": "old-age-grant", "person": {"national_id": "9000000001", "x": 1}})
    assert answer.status_code == 422
    assert "9000000001" not in answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", "person", "x"]
    by_path = vsr.get("persons", "/12345678901234567890123")
    assert by_path.status_code == 422
    assert "12345678901234567890123" not in by_path.text


def test_a_bulk_job_belongs_to_the_client_that_submitted_it(vsr: Vsr) -> None:
    job = vsr.post("bulk", {"programme": "old-age-grant", "people": [{"national_id": "9000000001"}]}).json()
    headers = vsr.headers()
    headers["X-Road-Client"] = federation.RESEARCH
    headers["X-Kiungo-Client-Token"] = vsr.servers.federation.tokens[federation.RESEARCH]  # type: ignore[union-attr]
    # the research unit has no agreement for the registry at all: the gateway refuses first
    refused = httpx.get(vsr.url("bulk", f"/{job['job_id']}"), headers=headers, timeout=10)
    assert refused.status_code == 403
    assert job["params"]["client"] == federation.PROGRAMME_MIS


def test_sources_behind_an_ambiguous_answer_are_named(vsr: Vsr) -> None:
    person = {"given_name": "Amina", "surname": "Mwangi", "sex": "F", "birth_date": "1950-03-14"}
    answer = vsr.post("persons", person, path="/query").json()
    cra = next(s for s in answer["sources"] if s["source"] == "civil-registry")
    assert cra["status"] == "ok"
    assert len(cra["exchange_ids"]) == 1, "the search's exchange"


def test_dci_answers_say_when_nothing_was_decided(vsr: Vsr) -> None:
    twins = item(
        "twins",
        "predicate",
        predicate(
            (expr("given_name", "eq", "Amina"), expr("surname", "eq", "Mwangi")),
            (expr("birth_date", "eq", "1950-03-14"), None),
        ),
    )
    answer = httpx.post(vsr.url("registry", "/sync/search"), json=envelope(twins), headers=vsr.headers(), timeout=30)
    result = answer.json()["message"]["search_response"][0]
    assert result["status"] == "succ"
    assert result["status_reason_message"].startswith("ambiguous: 2 candidate(s), none a confident match")

    def enrolled(national_id: str) -> dict[str, object]:
        request = {
            "header": header(),
            "message": {
                "transaction_id": "T-1",
                "enrolled_criteria": {
                    "query_type": "idtype-value",
                    "query": {"person_identifier": {"eq": national_id}},
                },
            },
        }
        answer = httpx.post(vsr.url("registry", "/sync/enrolled"), json=request, headers=vsr.headers(), timeout=30)
        first: dict[str, object] = answer.json()["message"]["enrolled_response"][0]
        return first

    unknown = enrolled("9999999999")
    assert (unknown["status"], unknown["status_reason_code"]) == ("rjct", "err.request.not_found")
    vsr.fault("msp", "error")
    down = enrolled(known.AMINA["national_id"])
    assert (down["status"], down["status_reason_code"]) == ("rjct", "err.service.unavailable")


def test_gateway_check_loads_the_registrys_rules_model_and_token(vsr: Vsr, tmp_path: Path) -> None:
    assert vsr.servers.federation is not None
    config = copy.deepcopy(vsr.servers.federation.configs["msp"])
    good = tmp_path / "good.toml"
    good.write_text(tomli_w.dumps(config))
    runner = CliRunner()
    assert runner.invoke(gateway_app, ["check", "-c", str(good)]).exit_code == 0
    config["vsr"]["rules"] = [str(tmp_path / "missing")]
    config["vsr"]["token_file"] = str(tmp_path / "no-token")
    config["vsr"]["model"] = str(tmp_path / "no-model.json")
    bad = tmp_path / "bad.toml"
    bad.write_text(tomli_w.dumps(config))
    result = runner.invoke(gateway_app, ["check", "-c", str(bad)])
    assert result.exit_code == 2
    assert "has 3 problem(s)" in result.output
    assert "vsr.rules:" in result.output
    assert "vsr.model: cannot read model" in result.output
    assert f"vsr.token_file: {tmp_path / 'no-token'}: No such file or directory" in result.output
