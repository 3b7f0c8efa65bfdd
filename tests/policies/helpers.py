"""Agreement files for the tests: a valid one, changed field by field."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import tomli_w

from policies import Agreement, RateLimit, ServiceGrant
from policies.agreements import END_OF_DAY

CRA_SERVICE = "ZZ/GOV/CRA/civreg/GetPersonByNationalId"
MIS = "ZZ/GOV/MSP/programme-mis"
PURPOSE = "old-age-grant-eligibility"

BASE: dict[str, Any] = {
    "id": "DSA-CRA-MSP-001",
    "version": 2,
    "title": "Civil registry facts for the old-age grant",
    "provider": "ZZ/GOV/CRA",
    "clients": [MIS],
    "purposes": [PURPOSE, "beneficiary-list-maintenance"],
    "lawful_basis": "legal-obligation",
    "legal_reference": "Social Assistance Act 2004, s. 12",
    "data_categories": ["identity", "vital-status"],
    "valid_from": "2026-01-01",
    "valid_until": "2027-12-31",
    "rate_limit": "600/minute",
    "description": "Facts the old-age grant needs.",
    "services": [
        {
            "service": CRA_SERVICE,
            "fields": ["found", "person.surname", "person.givenName", "person.birthDate", "person.status"],
        }
    ],
}


def agreement_dict(**changes: Any) -> dict[str, Any]:
    """BASE with top-level changes; a value of None removes the key."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def write(directory: Path, name: str, data: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def agreement(**changes: Any) -> Agreement:
    """An Agreement built in code (no file): the BASE facts, with changes."""
    values: dict[str, Any] = {
        "id": "DSA-CRA-MSP-001",
        "version": 2,
        "title": "Civil registry facts for the old-age grant",
        "provider": "ZZ/GOV/CRA",
        "clients": (MIS,),
        "purposes": (PURPOSE, "beneficiary-list-maintenance"),
        "lawful_basis": "legal-obligation",
        "legal_reference": "Social Assistance Act 2004, s. 12",
        "data_categories": ("identity", "vital-status"),
        "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
        "valid_until": datetime.combine(date(2027, 12, 31), END_OF_DAY, tzinfo=UTC),
        "rate_limit": RateLimit(600, 60),
        "services": (ServiceGrant(CRA_SERVICE, None, None, ("found", "person.surname")),),
    }
    values.update(changes)
    return Agreement(**values)
