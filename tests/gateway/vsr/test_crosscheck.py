"""Cross-checking a beneficiary list through the federation: each flag with its evidence, and the report."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from gateway.vsr import cli
from sandbox import federation
from tests.gateway.vsr.conftest import Vsr
from tests.sandbox import fixtures_country as known

LIST_PURPOSE = "beneficiary-list-maintenance"


def _one(vsr: Vsr, db: str, sql: str) -> Any:
    conn = sqlite3.connect(vsr.servers.country_dir / db)
    try:
        row = conn.execute(sql).fetchone()
    finally:
        conn.close()
    assert row is not None, sql
    return row[0]


def _run(vsr: Vsr, beneficiaries: list[dict[str, Any]]) -> dict[str, Any]:
    created = vsr.post(
        "crosscheck", {"programme": "old-age-grant", "beneficiaries": beneficiaries}, purpose=LIST_PURPOSE
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    deadline = time.monotonic() + 60
    while vsr.get("bulk", f"/{job_id}", purpose=LIST_PURPOSE).json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    report = vsr.get("crosscheck", f"/{job_id}/report", purpose=LIST_PURPOSE)
    assert report.status_code == 200, report.text
    document: dict[str, Any] = report.json()
    csv_text = vsr.get("crosscheck", f"/{job_id}/report", purpose=LIST_PURPOSE, format="csv")
    assert csv_text.headers["content-type"].startswith("text/csv")
    document["csv"] = list(csv.DictReader(io.StringIO(csv_text.text)))
    return document


def _flags(row: dict[str, Any]) -> list[str]:
    return sorted(f["flag"] for f in row["flags"])


def test_a_list_is_cross_checked_with_evidence_for_every_flag(vsr: Vsr) -> None:
    rich = _one(
        vsr,
        "ssf.sqlite",
        "SELECT m.national_id FROM member m JOIN pension p USING (ssn) WHERE p.monthly_amount > 4000 "
        "AND p.status = 'in-payment' AND m.national_id IS NOT NULL ORDER BY m.ssn LIMIT 1",
    )
    young = _one(
        vsr,
        "cra.sqlite",
        "SELECT national_id FROM person WHERE national_id IS NOT NULL AND death_date IS NULL "
        "AND birth_year BETWEEN 1980 AND 1990 ORDER BY record_id LIMIT 1",
    )
    disability = _one(
        vsr,
        "msp.sqlite",
        "SELECT national_id FROM beneficiary WHERE programme = 'disability-grant' AND status = 'active' "
        "AND national_id IS NOT NULL ORDER BY beneficiary_no LIMIT 1",
    )
    beneficiaries = [
        {"beneficiary_no": "OAG-90000001", "national_id": known.AMINA["national_id"]},
        {"beneficiary_no": "OAG-L0002", "national_id": known.MARY["national_id"]},
        {"beneficiary_no": "OAG-L0003", "national_id": "9999999999"},
        {"beneficiary_no": "OAG-L0004", "given_name": "Amina", "surname": "Mwangi", "birth_date": "1950-03-14"},
        {"beneficiary_no": "OAG-L0005", "national_id": rich},
        {"beneficiary_no": "OAG-L0006", "national_id": young},
        {"beneficiary_no": "OAG-L0007", "national_id": disability},
        {"beneficiary_no": "OAG-L0008", "national_id": known.AMINA["national_id"]},
    ]
    document = _run(vsr, beneficiaries)
    rows = {r["beneficiary_no"]: r for r in document["beneficiaries"]}
    assert _flags(rows["OAG-90000001"]) == ["duplicate_in_list"]
    assert _flags(rows["OAG-L0008"]) == ["duplicate_in_list", "enrolled_twice"]
    deceased = rows["OAG-L0002"]["flags"][0]
    assert deceased["flag"] == "deceased"
    assert deceased["detail"] == f"died {known.MARY['death_date']}"
    assert deceased["evidence"][0]["source"] == "ZZ/GOV/CRA/civreg/GetPersonsByNationalIds"  # a batch
    assert deceased["evidence"][0]["exchange_id"]
    assert deceased["match_probability"] == 1.0
    assert _flags(rows["OAG-L0003"]) == ["identity_not_found"]
    assert rows["OAG-L0004"]["flags"] == []
    assert [r["flag"] for r in rows["OAG-L0004"]["review"]] == ["identity_ambiguous"]
    above = next(f for f in rows["OAG-L0005"]["flags"] if f["flag"] == "above_threshold")
    assert above["evidence"][0]["source"] == "ZZ/GOV/SSF/contributions/members"
    assert "no_longer_qualifies" in _flags(rows["OAG-L0006"])
    assert "not_combinable" in _flags(rows["OAG-L0007"])
    summary = document["summary"]
    assert summary["beneficiaries"] == 8
    assert summary["flags"]["deceased"] == 1
    assert summary["flags"]["duplicate_in_list"] == 2
    assert summary["review"]["identity_ambiguous"] == 1
    for row in document["beneficiaries"]:
        for flag in row["flags"]:
            assert flag["evidence"], f"no flag without evidence: {flag}"
    job_id = document["job"]["job_id"]
    summary_only = vsr.get("crosscheck", f"/{job_id}/report", purpose=LIST_PURPOSE, limit=0).json()
    assert summary_only["beneficiaries"] == []
    assert summary_only["page"] == {"offset": 0, "limit": 0, "total": 8}
    assert summary_only["summary"] == summary
    second = vsr.get("crosscheck", f"/{job_id}/report", purpose=LIST_PURPOSE, offset=3, limit=3).json()
    assert [r["index"] for r in second["beneficiaries"]] == [3, 4, 5]
    line = next(r for r in document["csv"] if r["beneficiary_no"] == "OAG-L0002")
    assert line["flags"].startswith("deceased: died")
    assert deceased["evidence"][0]["exchange_id"] in line["evidence"]


def test_a_source_down_leaves_beneficiaries_incomplete_not_flagged(vsr: Vsr) -> None:
    vsr.fault("ssf", "error")
    document = _run(vsr, [{"beneficiary_no": "OAG-90000001", "national_id": known.AMINA["national_id"]}])
    row = document["beneficiaries"][0]
    assert row["flags"] == []
    assert row["complete"] is False
    assert row["missing_sources"] == ["ZZ/GOV/SSF/contributions/members"]
    assert document["summary"]["incomplete"] == 1


def test_the_list_purpose_is_required_and_its_own(vsr: Vsr) -> None:
    answer = vsr.post("crosscheck", {"programme": "old-age-grant", "beneficiaries": [{"national_id": "9000000001"}]})
    assert answer.status_code == 400
    assert answer.json()["title"] == "a list cross-check is made for the purpose 'beneficiary-list-maintenance'"
    # the grant agreements no longer cover list maintenance: the registry asks under the BLM agreements
    _run(vsr, [{"national_id": known.PETER["national_id"]}])
    cra = vsr.gateway("ZZ/GOV/CRA")
    found = httpx.post(
        cra["base_url"] + "/api/log/records/search",
        json={"purpose": LIST_PURPOSE, "limit": 1000},
        headers=vsr.operator("ZZ/GOV/CRA"),
        timeout=10,
    ).json()["records"]
    assert {r["agreement_id"] for r in found if r["side"] == "Producer"} == {"DSA-CRA-BLM-001"}


def test_kiungo_vsr_crosscheck_writes_the_report(vsr: Vsr, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(vsr.servers.federation.tokens[federation.PROGRAMME_MIS])  # type: ignore[union-attr]
    listing = tmp_path / "list.csv"
    listing.write_text(
        "beneficiary_no,national_id,given_name,surname,birth_date\n"
        f"OAG-90000001,{known.AMINA['national_id']},,,\n"
        f"OAG-L0002,{known.MARY['national_id']},,,\n"
        "OAG-L0003,,Amina,Mwangi,1950-03-14\n"
    )
    env = {"KIUNGO_GATEWAY": vsr.gateway()["base_url"], "KIUNGO_CLIENT_TOKEN": None, "COLUMNS": "200"}
    args = ["crosscheck", str(listing), "--programme", "old-age-grant", "--out", str(tmp_path / "report")]
    result = CliRunner().invoke(cli.app, [*args, "--token-file", str(token)], env=env)
    assert result.exit_code == 0, result.output
    assert "deceased" in result.stdout
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["summary"]["flags"]["deceased"] == 1
    assert document["summary"]["review"]["identity_ambiguous"] == 1
    lines = list(csv.DictReader((tmp_path / "report.csv").read_text().splitlines()))
    assert [line["beneficiary_no"] for line in lines] == ["OAG-90000001", "OAG-L0002", "OAG-L0003"]
    bad = tmp_path / "bad.csv"
    bad.write_text("beneficiary_no,nid\nX,1\n")
    refused = CliRunner().invoke(
        cli.app,
        [
            "crosscheck",
            str(bad),
            "--programme",
            "old-age-grant",
            "--out",
            str(tmp_path / "r"),
            "--token-file",
            str(token),
        ],
        env=env,
    )
    assert refused.exit_code == 2
    assert "unknown column(s) nid" in refused.output


def test_a_batch_look_up_is_found_by_each_person_it_concerned(vsr: Vsr) -> None:
    people = [known.PETER["national_id"], known.MARY["national_id"], known.JOSEPH["national_id"]]
    _run(vsr, [{"beneficiary_no": f"OAG-B{i}", "national_id": nid} for i, nid in enumerate(people)])
    cra = vsr.gateway("ZZ/GOV/CRA")
    for nid in people:
        found = httpx.post(
            cra["base_url"] + "/api/log/records/search",
            json={"subject_id": nid, "purpose": LIST_PURPOSE, "limit": 1000},
            headers=vsr.operator("ZZ/GOV/CRA"),
            timeout=10,
        ).json()["records"]
        batches = [r for r in found if r["service"].endswith("GetPersonsByNationalIds") and r["side"] == "Producer"]
        assert batches, f"the batch that asked about person {people.index(nid)} is found by her ID"
        assert all(r.get("subject_hashes") or r["subject_hash"] for r in batches)
