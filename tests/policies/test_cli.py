"""`kiungo policies check` and `explain`, through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from policies.cli import app
from tests.policies.helpers import BASE, CRA_SERVICE, MIS, PURPOSE, agreement_dict, write

runner = CliRunner()


def _dir(tmp_path: Path) -> Path:
    directory = tmp_path / "agreements"
    directory.mkdir()
    write(directory, "cra.toml", BASE)
    return directory


def test_check_ok(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(_dir(tmp_path)), "--at", "2026-05-01"])
    assert (result.exit_code, result.output) == (0, "ok: 1 agreements\n")


def test_check_reports_problems(tmp_path: Path) -> None:
    directory = _dir(tmp_path)
    services = tmp_path / "services.json"
    services.write_text(json.dumps({CRA_SERVICE: ["found", "person.surname", "person.givenName"]}), encoding="utf-8")
    result = runner.invoke(
        app,
        ["check", str(directory), "--members", "ZZ/GOV/CRA", "--services", str(services), "--at", "2028-01-01"],
    )
    assert result.exit_code == 1
    path = directory / "cra.toml"
    assert result.output.splitlines() == [
        f"DSA-CRA-MSP-001 v2 ({path}): unknown client member ZZ/GOV/MSP (of {MIS})",
        f"DSA-CRA-MSP-001 v2 ({path}): services[0]: {CRA_SERVICE} does not return the field person.birthDate",
        f"DSA-CRA-MSP-001 v2 ({path}): services[0]: {CRA_SERVICE} does not return the field person.status",
        f"DSA-CRA-MSP-001 v2 ({path}): expired: valid until 2027-12-31",
    ]


def test_check_lists_files_that_do_not_load(tmp_path: Path) -> None:
    directory = _dir(tmp_path)
    bad = write(directory, "bad.toml", agreement_dict(lawful_basis="whim"))
    result = runner.invoke(app, ["check", str(directory)])
    assert result.exit_code == 1
    assert result.output == (
        f"{bad}: lawful_basis: must be one of consent, legal-obligation, public-task, vital-interest, got 'whim'\n"
    )


def test_check_usage_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "error: no such file or directory: " in result.output
    services = tmp_path / "s.json"
    services.write_text("[1]", encoding="utf-8")
    result = runner.invoke(app, ["check", str(_dir(tmp_path)), "--services", str(services)])
    assert result.exit_code == 2
    assert "must be a JSON object" in result.output
    assert "Traceback" not in result.output


def test_explain_allowed(tmp_path: Path) -> None:
    args = ["explain", str(_dir(tmp_path)), "--client", MIS, "--service", CRA_SERVICE, "--purpose", PURPOSE]
    result = runner.invoke(app, [*args, "--at", "2026-05-01"])
    assert result.exit_code == 0, result.output
    assert "decision: allowed by DSA-CRA-MSP-001 v2" in result.output
    assert "fields released: found, person.surname, person.givenName, person.birthDate, person.status" in result.output
    assert "applies" in result.output


def test_explain_denied(tmp_path: Path) -> None:
    forbid = tmp_path / "rules.cedar"
    forbid.write_text('forbid(principal, action, resource) when { context.method == "DELETE" };', encoding="utf-8")
    base = ["explain", str(_dir(tmp_path)), "--client", MIS, "--service", CRA_SERVICE, "--purpose", PURPOSE]
    result = runner.invoke(app, [*base, "--at", "2028-01-01T00:00:00Z"])
    assert result.exit_code == 1
    assert "decision: denied (agreement_expired)" in result.output
    result = runner.invoke(
        app, [*base, "--at", "2026-05-01", "--method", "delete", "--path", "/v1/x", "--forbid", str(forbid)]
    )
    assert result.exit_code == 1
    assert "decision: denied (forbidden)" in result.output


def test_explain_errors(tmp_path: Path) -> None:
    base = ["explain", str(_dir(tmp_path)), "--client", MIS, "--service", CRA_SERVICE, "--purpose", PURPOSE]
    result = runner.invoke(app, [*base, "--at", "tomorrow"])
    assert result.exit_code == 2
    assert "error: --at must be a date" in result.output
    rules = tmp_path / "rules.cedar"
    rules.write_text("permit(principal, action, resource);", encoding="utf-8")
    result = runner.invoke(app, [*base, "--forbid", str(rules)])
    assert (result.exit_code, "error: forbid rule 1 holds a permit policy" in result.output) == (2, True)
    write(tmp_path / "agreements", "bad.toml", agreement_dict(version="x"))
    result = runner.invoke(app, base)
    assert result.exit_code == 2
    assert "version: must be a whole number from 1, got 'x'" in result.output
    assert "Traceback" not in result.output
