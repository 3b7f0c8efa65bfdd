"""Loading agreement files: what a valid file becomes, and the exact message for each mistake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policies import AgreementError, PolicyError, RateLimit, ServiceGrant, load_agreement, load_agreements
from tests.policies.helpers import BASE, CRA_SERVICE, MIS, agreement_dict, write

EXAMPLE = """\
id = "DSA-CRA-MSP-001"
version = 2
title = "Civil registry facts for the old-age grant"
provider = "ZZ/GOV/CRA"
clients = ["ZZ/GOV/MSP/programme-mis"]
purposes = ["old-age-grant-eligibility", "beneficiary-list-maintenance"]
lawful_basis = "legal-obligation"
legal_reference = "Social Assistance Act 2004, s. 12"
data_categories = ["identity", "vital-status"]
valid_from = 2026-01-01
valid_until = "2027-12-31T18:00:00+03:00"
rate_limit = "600/minute"

[[services]]
service = "ZZ/GOV/CRA/civreg/GetPersonByNationalId"
fields = ["found", "person.surname"]

[[services]]
service = "ZZ/GOV/CRA/civreg/persons/v1"
methods = ["get", "HEAD"]
paths = ["/v1/persons/*", "/v1/count"]
"""


def test_load_a_documented_file(tmp_path: Path) -> None:
    path = tmp_path / "cra.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    a = load_agreement(path)
    assert (a.id, a.version, a.provider, a.clients) == ("DSA-CRA-MSP-001", 2, "ZZ/GOV/CRA", (MIS,))
    assert a.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert a.valid_until == datetime(2027, 12, 31, 15, tzinfo=UTC)
    assert a.rate_limit == RateLimit(600, 60)
    assert a.description == ""
    assert a.source == path
    assert a.label == "DSA-CRA-MSP-001 v2"
    assert a.services == (
        ServiceGrant(CRA_SERVICE, None, None, ("found", "person.surname")),
        ServiceGrant("ZZ/GOV/CRA/civreg/persons/v1", ("GET", "HEAD"), ("/v1/persons/*", "/v1/count"), None),
    )


def test_date_until_covers_the_whole_day(tmp_path: Path) -> None:
    a = load_agreement(write(tmp_path, "a.toml", BASE))
    assert a.valid_until == datetime(2027, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert a.legal_reference == "Social Assistance Act 2004, s. 12"


def test_star_field_means_whole_answer(tmp_path: Path) -> None:
    a = load_agreement(write(tmp_path, "a.toml", agreement_dict(services=[{"service": CRA_SERVICE, "fields": ["*"]}])))
    assert a.services[0].fields is None


def test_consent_needs_no_legal_reference(tmp_path: Path) -> None:
    a = load_agreement(write(tmp_path, "a.toml", agreement_dict(lawful_basis="consent", legal_reference=None)))
    assert (a.lawful_basis, a.legal_reference) == ("consent", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600/minute", RateLimit(600, 60)),
        ("1/second", RateLimit(1, 1)),
        (" 10 / hour ", RateLimit(10, 3600)),
        ("5000/day", RateLimit(5000, 86400)),
    ],
)
def test_rate_limit_parse(text: str, expected: RateLimit) -> None:
    assert RateLimit.parse(text) == expected
    assert str(expected) in {"600/minute", "1/second", "10/hour", "5000/day"}


@pytest.mark.parametrize("text", ["0/minute", "600/fortnight", "600", "-1/second", "many/day"])
def test_rate_limit_parse_refuses(text: str) -> None:
    with pytest.raises(PolicyError, match="must look like 600/minute"):
        RateLimit.parse(text)


SERVICE = {"service": CRA_SERVICE}
ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"purpose": ["x"]}, "purpose: unknown field (check the spelling; see docs/agreements.md)"),
    ({"id": None}, "id: is required"),
    ({"id": "DSA 1"}, "id: must be letters, digits and . _ : - (at most 128), got 'DSA 1'"),
    ({"id": 7}, "id: must be text, got a number"),
    ({"version": None}, "version: is required"),
    ({"version": 0}, "version: must be a whole number from 1, got 0"),
    ({"version": "2"}, "version: must be a whole number from 1, got '2'"),
    ({"version": True}, "version: must be a whole number from 1, got True"),
    ({"title": ""}, "title: must not be empty"),
    ({"provider": "ZZ/GOV"}, "provider: must be a member identifier INSTANCE/CLASS/CODE, got 'ZZ/GOV'"),
    (
        {"clients": ["ZZ/GOV/MSP"]},
        "clients[0]: must be a subsystem identifier INSTANCE/CLASS/CODE/SUBSYSTEM, got 'ZZ/GOV/MSP'",
    ),
    ({"clients": []}, "clients: must not be empty"),
    ({"clients": "ZZ/GOV/MSP/mis"}, "clients: must be a list of text, got text"),
    ({"clients": [MIS, MIS]}, f"clients[1]: {MIS!r} is listed twice"),
    ({"clients": ['ZZ/GOV/MSP/mis"x']}, "clients[0]: must be a subsystem identifier"),
    (
        {"purposes": ["old age"]},
        "purposes[0]: must be a code of letters, digits and . _ : - (starting with a letter or digit), got 'old age'",
    ),
    ({"purposes": [3]}, "purposes[0]: must be text, got a number"),
    (
        {"lawful_basis": "because"},
        "lawful_basis: must be one of consent, legal-obligation, public-task, vital-interest, got 'because'",
    ),
    ({"legal_reference": None}, "legal_reference: is required when lawful_basis is legal-obligation"),
    ({"legal_reference": "  "}, "legal_reference: is required when lawful_basis is legal-obligation"),
    ({"data_categories": None}, "data_categories: is required"),
    ({"valid_from": None}, "valid_from: is required"),
    (
        {"valid_from": "soon"},
        "valid_from: must be a date (2026-01-01) or an RFC 3339 date-time (2026-01-01T08:00:00Z), got 'soon'",
    ),
    ({"valid_from": "2026-02-30"}, "valid_from: is not a real date: '2026-02-30'"),
    (
        {"valid_until": "2027-12-31T18:00:00"},
        "valid_until: needs a time zone offset (Z or +03:00), got '2027-12-31T18:00:00'",
    ),
    ({"valid_until": 2027}, "valid_until: must be a date (2026-01-01) or an RFC 3339 date-time, got a number"),
    ({"valid_until": "2025-12-31"}, "valid_until: is before valid_from"),
    ({"rate_limit": "lots"}, "rate_limit: must look like 600/minute (N/second|minute|hour|day), got 'lots'"),
    ({"rate_limit": 600}, "rate_limit: must be text like 600/minute, got 600"),
    ({"services": None}, "services: is required (one [[services]] table per service)"),
    ({"services": []}, "services: must be one or more [[services]] tables"),
    ({"services": [{}]}, "services[0].service: is required"),
    (
        {"services": [{"service": "ZZ/GOV/CRA/civreg"}]},
        "services[0].service: must be a service identifier INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/VERSION], "
        "got 'ZZ/GOV/CRA/civreg'",
    ),
    (
        {"services": [{"service": "ZZ/GOV/TAX/income/GetIncome"}]},
        "services[0].service: ZZ/GOV/TAX/income/GetIncome is not a service of the provider ZZ/GOV/CRA",
    ),
    (
        {"services": [{**SERVICE, "field": ["found"]}]},
        "services[0].field: unknown field (check the spelling; see docs/agreements.md)",
    ),
    (
        {"services": [{**SERVICE, "methods": ["GET!"]}]},
        "services[0].methods[0]: must be an HTTP method like GET, got 'GET!'",
    ),
    (
        {"services": [{**SERVICE, "paths": ["v1/x"]}]},
        "services[0].paths[0]: must start with / and use URL path characters (* = any characters), got 'v1/x'",
    ),
    (
        {"services": [{**SERVICE, "paths": ['/v1/"x"']}]},
        "services[0].paths[0]: must start with / and use URL path characters",
    ),
    (
        {"services": [{**SERVICE, "fields": ["person..surname"]}]},
        "services[0].fields[0]: must be a dotted path of names or * (like person.surname), got 'person..surname'",
    ),
    ({"services": [{**SERVICE, "fields": []}]}, "services[0].fields: must not be empty"),
]


@pytest.mark.parametrize(("changes", "message"), ERRORS, ids=[m.split(":")[0] for _, m in ERRORS])
def test_each_mistake_has_its_message(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = write(tmp_path, "bad.toml", agreement_dict(**changes))
    with pytest.raises(AgreementError) as caught:
        load_agreement(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert caught.value.problems == [str(caught.value)]


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('id = "x\n', encoding="utf-8")
    with pytest.raises(AgreementError, match=r"a\.toml: not valid TOML: "):
        load_agreement(path)
    path.write_bytes(b'id = "\xff"\n')
    with pytest.raises(AgreementError, match="not valid TOML"):
        load_agreement(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AgreementError, match=r"nope\.toml: cannot be read: "):
        load_agreement(tmp_path / "nope.toml")


def test_load_agreements_reads_directories_and_lists_every_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    write(good, "a.toml", BASE)
    write(good, "b.toml", agreement_dict(version=3))
    (good / "notes.txt").write_text("not an agreement", encoding="utf-8")
    loaded = load_agreements([good])
    assert [(a.id, a.version) for a in loaded] == [("DSA-CRA-MSP-001", 2), ("DSA-CRA-MSP-001", 3)]

    bad1 = write(tmp_path, "bad1.toml", agreement_dict(title=None))
    bad2 = write(tmp_path, "bad2.toml", agreement_dict(version=-1))
    with pytest.raises(AgreementError) as caught:
        load_agreements([good, bad1, bad2, tmp_path / "missing"])
    assert caught.value.problems == [
        f"{bad1}: title: is required",
        f"{bad2}: version: must be a whole number from 1, got -1",
        f"{tmp_path / 'missing'}: no such file or directory",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)
