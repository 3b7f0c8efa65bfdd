"""`kiungo vsr` against the real sandbox federation: every command is an exchange through the MSP gateway."""

from __future__ import annotations

import csv
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from gateway.vsr import cli
from sandbox import federation
from tests.gateway.vsr.conftest import OLD_AGE, Vsr
from tests.sandbox import fixtures_country as known

runner = CliRunner()
AMINA_ID = known.AMINA["national_id"]


@pytest.fixture
def token_file(vsr: Vsr, tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(vsr.servers.federation.tokens[federation.PROGRAMME_MIS] + "\n")  # type: ignore[union-attr]
    return path


@pytest.fixture
def invoke(vsr: Vsr, token_file: Path) -> Any:
    """Run a `kiungo vsr` command as an officer's shell would, with the gateway and purpose from the environment."""

    def run(*args: str, gateway: str | None = None, token: Path = token_file) -> Result:
        env = {
            "KIUNGO_GATEWAY": gateway or vsr.gateway()["base_url"],
            "KIUNGO_PURPOSE": OLD_AGE,
            "KIUNGO_USER_ID": "ZZ-officer-7",
            "KIUNGO_CLIENT_TOKEN": None,
            "COLUMNS": "200",
        }
        return runner.invoke(cli.app, [*args, "--token-file", str(token)], env=env)

    return run


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_people_csv(vsr: Vsr, path: Path, count: int) -> int:
    """People from the country's civil registry by national ID, plus two without one; returns the row count."""
    with sqlite3.connect(vsr.servers.country_dir / "cra.sqlite") as db:
        ids = [
            row[0]
            for row in db.execute(
                "SELECT national_id FROM person WHERE national_id IS NOT NULL ORDER BY record_id LIMIT ?", (count,)
            )
        ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(
            f, fieldnames=["national_id", "record_id", "given_name", "surname", "sex", "birth_year"]
        )
        writer.writeheader()
        for nid in ids:
            writer.writerow({"national_id": nid})
        writer.writerow({"record_id": known.BARAKA["record_id"]})
        writer.writerow({"given_name": "Peter", "surname": "Otieno", "sex": "M", "birth_year": "1960"})
    return len(ids) + 2


def assert_complete(lines: list[dict[str, Any]], total: int) -> None:
    """A job line, one result per person with dense seqs, and the end line."""
    assert lines[0]["type"] == "job"
    assert lines[-1]["type"] == "end"
    assert lines[-1]["status"]["job_id"] == lines[0]["job_id"]
    assert lines[-1]["status"]["state"] == "done"
    results = lines[1:-1]
    assert sorted(r["index"] for r in results) == list(range(total))
    assert [r["seq"] for r in results] == list(range(1, total + 1))


# -- one person --------------------------------------------------------------------------------------------


def test_person_by_national_id_is_masked_with_its_sources(invoke: Any) -> None:
    result = invoke("person", "--national-id", AMINA_ID)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "90******01" in out
    assert AMINA_ID not in out
    assert "Amina Wanjiru Mwangi" in out
    assert "ZZ/GOV/CRA/civreg/GetPersonByNationalId · exchange" in out
    assert "household HH90000001" in out
    assert "Baraka Mwangi" in out
    assert "old-age pension 3,500 a month" in out
    for source in ("civil-registry", "tax", "social-security", "programmes"):
        assert source in out
    assert "PARTIAL ANSWER" not in out

    shown = invoke("person", "--national-id", AMINA_ID, "--show-ids")
    assert AMINA_ID in shown.stdout


def test_person_json_is_the_registry_answer(invoke: Any) -> None:
    result = invoke("person", "--national-id", AMINA_ID, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["identity"]["status"] == "resolved"
    assert answer["person"]["identifier"][0]["identifier_value"] == AMINA_ID
    assert answer["complete"] is True


def test_a_failed_source_is_a_partial_answer(vsr: Vsr, invoke: Any) -> None:
    vsr.fault("ssf", "error")
    result = invoke("person", "--national-id", AMINA_ID)
    assert result.exit_code == 0, result.output
    assert "PARTIAL ANSWER: missing ZZ/GOV/SSF/contributions/members" in result.stdout
    assert "HTTP500" in result.stdout


def test_ambiguous_demographics_show_the_candidates(invoke: Any) -> None:
    result = invoke(
        "person", "--given-name", "Amina", "--surname", "Mwangi", "--sex", "F", "--birth-date", "1950-03-14"
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ambiguous" in out
    assert "candidates" in out
    assert known.AMINA["record_id"] in out
    assert known.AMINA_DUPLICATE["record_id"] in out
    assert "perhaps one person registered twice" in out


def test_eligibility_shows_the_decision_and_its_reasons(invoke: Any) -> None:
    result = invoke("eligibility", "--programme", "old-age-grant", "--national-id", AMINA_ID)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ELIGIBLE" in out
    assert "NOT ELIGIBLE" not in out
    assert "Eligible for the Old-age grant (rules version 2026.1)." in out
    assert "76 years old" in out
    assert "aged 65 or more" in out
    assert "ZZ/GOV/SSF/contributions/members" in out
    assert "old-age-grant version 2026.1" in out

    dead = invoke("eligibility", "--programme", "old-age-grant", "--national-id", known.MARY["national_id"], "--json")
    assert json.loads(dead.stdout)["decision"]["outcome"] == "not_eligible"


def test_programmes_table(invoke: Any) -> None:
    result = invoke("programmes")
    assert result.exit_code == 0, result.output
    for purpose in ("old-age-grant-eligibility", "child-grant-eligibility", "disability-grant-eligibility"):
        assert purpose in result.stdout
    assert "aged 65 or more" in result.stdout


# -- errors ------------------------------------------------------------------------------------------------


def test_a_refusal_names_the_x_road_error_and_never_the_token(invoke: Any, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token-0123456789\n")
    result = invoke("person", "--national-id", AMINA_ID, token=wrong)
    assert result.exit_code == 2
    assert result.stderr.startswith("refused: Server.ClientProxy.ClientAuthenticationFailed: ")
    assert "(exchange " in result.stderr
    assert "not-the-token" not in result.output


def test_a_registry_error_prints_its_title(invoke: Any) -> None:
    result = invoke("person", "--record-id", "CRA1")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: record_id must be a civil registry record number: CRA and 9 digits"
    unknown = invoke("eligibility", "--programme", "no-such-grant", "--national-id", AMINA_ID)
    assert unknown.exit_code == 2
    assert "unknown programme 'no-such-grant'" in unknown.stderr


def test_an_unreachable_gateway_exits_3(invoke: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = invoke("person", "--national-id", AMINA_ID, gateway=f"http://127.0.0.1:{port}")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"unreachable: cannot reach the gateway at http://127.0.0.1:{port}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_token_no_call(vsr: Vsr) -> None:
    env = {"KIUNGO_GATEWAY": vsr.gateway()["base_url"], "KIUNGO_PURPOSE": OLD_AGE, "KIUNGO_CLIENT_TOKEN": None}
    result = runner.invoke(cli.app, ["person", "--national-id", AMINA_ID], env=env)
    assert result.exit_code == 2
    assert "no client token" in result.stderr


# -- bulk --------------------------------------------------------------------------------------------------


def test_bulk_from_a_csv_writes_every_result(vsr: Vsr, invoke: Any, tmp_path: Path) -> None:
    people, out = tmp_path / "people.csv", tmp_path / "results.ndjson"
    total = write_people_csv(vsr, people, 28)
    result = invoke("eligibility", "--programme", "old-age-grant", "--file", str(people), "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = read_lines(out)
    assert_complete(lines, total)
    job = lines[0]
    assert job["programme"] == "old-age-grant"
    assert job["purpose"] == "old-age-grant-eligibility"
    assert job["input"]["people"] == total
    by_index = {r["index"]: r["result"] for r in lines[1:-1]}
    assert by_index[total - 1]["identity"]["method"] == "matching"  # Peter, without an ID
    assert by_index[total - 2]["identity"]["method"] == "record_id"  # Baraka
    assert "outcomes" in result.stdout
    assert job["job_id"] in result.stdout
    eligible = sum(1 for r in by_index.values() if r["outcome"] == "eligible")
    assert f"eligible     │ {eligible} " in result.stdout

    status = invoke("job", job["job_id"])
    assert status.exit_code == 0, status.output
    assert "done" in status.stdout
    assert f"{total} of {total}" in status.stdout
    cancelled = invoke("cancel", job["job_id"], "--json")
    assert json.loads(cancelled.stdout)["state"] == "done"  # nothing left to stop

    again = invoke("eligibility", "--programme", "old-age-grant", "--file", str(people), "--out", str(out))
    assert again.exit_code == 0
    assert "already holds the whole of job" in again.stderr
    assert read_lines(out) == lines


def test_bulk_resumes_from_the_file_after_an_interruption(
    vsr: Vsr, invoke: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    people, out = tmp_path / "people.json", tmp_path / "results.ndjson"
    with sqlite3.connect(vsr.servers.country_dir / "cra.sqlite") as db:
        rows = db.execute("SELECT national_id FROM person WHERE national_id IS NOT NULL LIMIT 12 OFFSET 40")
        people.write_text(json.dumps([{"national_id": nid} for (nid,) in rows]))
    args = ("eligibility", "--programme", "old-age-grant", "--file", str(people), "--out", str(out))

    read = cli.BulkRun._read

    def read_then_ctrl_c(self: cli.BulkRun, *a: Any) -> None:
        read(self, *a)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.BulkRun, "_read", read_then_ctrl_c)
    interrupted = invoke(*args)
    assert interrupted.exit_code == 130
    assert "Run the same command again to continue job" in interrupted.stderr
    assert out.read_text().endswith("\n")
    monkeypatch.undo()

    # As if a later crash had cut the file: the job line, three results and half of the fourth.
    first = read_lines(out)
    job_id = first[0]["job_id"]
    invoke(*args)  # let the job finish into the file, then cut it back
    full = out.read_text().splitlines(keepends=True)
    assert len(full) == 14
    out.write_text("".join(full[:4]) + full[4][:25])

    resumed = invoke(*args)
    assert resumed.exit_code == 0, resumed.output
    lines = read_lines(out)
    assert lines[0]["job_id"] == job_id, "continued, not submitted again"
    assert_complete(lines, 12)
    assert lines[1:4] == [json.loads(line) for line in full[1:4]]

    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"national_id": AMINA_ID}]))
    mixed = invoke("eligibility", "--programme", "old-age-grant", "--file", str(other), "--out", str(out))
    assert mixed.exit_code == 2
    assert "with another input" in mixed.stderr

    restarted = invoke(*args, "--restart")
    assert restarted.exit_code == 0, restarted.output
    fresh = read_lines(out)
    assert fresh[0]["job_id"] != job_id
    assert_complete(fresh, 12)


def test_people_files_are_checked_before_any_exchange(tmp_path: Path) -> None:
    good = tmp_path / "people.csv"
    good.write_text("national_id,surname,birth_year,district\n9000000001,,,\n,Otieno, 1960 ,D02\n")
    assert cli.read_people(good) == [
        {"national_id": "9000000001"},
        {"surname": "Otieno", "birth_year": 1960, "district": "D02"},
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("national_id,nickname\n1,x\n")
    with pytest.raises(cli.Usage, match="unknown column"):
        cli.read_people(bad)
    wrong = tmp_path / "wrong.ndjson"
    wrong.write_text('{"national_id": "9000000001"}\n{"sex": "X", "surname": "Otieno"}\n')
    with pytest.raises(cli.Usage, match=r"wrong.ndjson:2: sex"):
        cli.read_people(wrong)
