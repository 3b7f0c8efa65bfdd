"""check_agreements: each kind of problem a DPO should hear about before a set of agreements goes live."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from policies import ServiceGrant, check_agreements
from tests.policies.helpers import CRA_SERVICE, MIS, agreement

AT = datetime(2026, 5, 1, tzinfo=UTC)
MEMBERS = ["ZZ/GOV/CRA", "ZZ/GOV/MSP"]
SERVICES = {CRA_SERVICE: ["found", "person", "person.surname", "person.givenName"], "ZZ/GOV/CRA/civreg/x": None}


def test_a_consistent_set_has_no_problems() -> None:
    assert check_agreements([agreement()], members=MEMBERS, services=SERVICES, now=AT) == []
    assert check_agreements([agreement()], now=AT) == []


def test_unknown_members() -> None:
    a = agreement(clients=(MIS, "ZZ/COM/BANK/loans"))
    assert check_agreements([a], members=["ZZ/GOV/MSP"], now=AT) == [
        "DSA-CRA-MSP-001 v2: unknown provider member ZZ/GOV/CRA",
        "DSA-CRA-MSP-001 v2: unknown client member ZZ/COM/BANK (of ZZ/COM/BANK/loans)",
    ]


def test_unknown_service_and_field() -> None:
    a = agreement(
        services=(
            ServiceGrant(CRA_SERVICE, None, None, ("found", "person.surname", "person.*", "person.income")),
            ServiceGrant("ZZ/GOV/CRA/civreg/Gone"),
            ServiceGrant("ZZ/GOV/CRA/civreg/x", None, None, ("anything",)),  # fields unknown: not judged
        )
    )
    assert check_agreements([a], services=SERVICES, now=AT) == [
        f"DSA-CRA-MSP-001 v2: services[0]: {CRA_SERVICE} does not return the field person.income",
        "DSA-CRA-MSP-001 v2: services[1]: unknown service ZZ/GOV/CRA/civreg/Gone",
    ]


def test_service_of_another_member() -> None:
    a = agreement(services=(ServiceGrant("ZZ/GOV/TAX/income/Get"),))
    assert check_agreements([a], now=AT) == [
        "DSA-CRA-MSP-001 v2: services[0]: ZZ/GOV/TAX/income/Get is not a service of the provider ZZ/GOV/CRA"
    ]


def test_expired_and_not_yet_valid() -> None:
    old = agreement(id="OLD", valid_until=datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    new = agreement(id="NEW", valid_from=datetime(2026, 6, 1, 8, tzinfo=UTC))
    assert check_agreements([old, new], now=AT) == [
        "NEW v2: not yet valid: valid from 2026-06-01T08:00:00Z",
        "OLD v2: expired: valid until 2025-12-31",
    ]


def test_overlapping_grants() -> None:
    a = agreement(id="DSA-A")
    b = agreement(id="DSA-B", purposes=("old-age-grant-eligibility", "audit"))
    later = agreement(
        id="DSA-C",
        valid_from=datetime(2028, 1, 1, tzinfo=UTC),
        valid_until=datetime(2029, 1, 1, tzinfo=UTC),
    )
    other_purpose = agreement(id="DSA-D", purposes=("census",))
    problems = check_agreements([a, b, later, other_purpose], now=AT)
    assert problems == [
        "DSA-C v2: not yet valid: valid from 2028-01-01",
        f"DSA-A v2 and DSA-B v2 overlap: both grant {MIS} -> {CRA_SERVICE} for old-age-grant-eligibility "
        "at the same time",
    ]


def test_overlap_counts_every_shared_grant() -> None:
    a = agreement(id="DSA-A")
    b = agreement(id="DSA-B")
    (problem,) = check_agreements([a, b], now=AT)
    assert problem.endswith("at the same time (and 1 more)")


def test_duplicates_and_versions(tmp_path: Path) -> None:
    first = agreement(source=tmp_path / "a.toml")
    again = agreement(source=tmp_path / "b.toml", title="edited without a new version")
    problems = check_agreements([first, again], now=AT)
    assert problems == [
        f"DSA-CRA-MSP-001 v2 ({tmp_path / 'b.toml'}): duplicate: DSA-CRA-MSP-001 v2 is also defined in "
        f"{tmp_path / 'a.toml'}"
    ]
    # an older version neither overlaps its successor nor is judged for validity: only the highest counts
    stale = agreement(version=1, valid_until=datetime(2020, 1, 1, tzinfo=UTC))
    assert check_agreements([stale, agreement(version=2)], now=AT) == []
