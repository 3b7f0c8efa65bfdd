"""The Ministry of Social Protection's programme MIS: beneficiaries of its three grants, over REST.

One row per enrolment: a person in two programmes has two beneficiary numbers. Name search is by
exact name, ignoring case, as programme MISs typically offer; fuzzy matching is `matching`'s job.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel

from sandbox import problems
from sandbox.agencydb import AgencyDb
from sandbox.faults import FaultInjection

BENEFICIARY_PATTERN = r"^(CSG|OAG|DG)-[0-9]{8}$"
NATIONAL_ID_PATTERN = r"^[0-9]{10}$"
PROGRAMMES = ("child-grant", "old-age-grant", "disability-grant")
SEARCH_DEFAULT, SEARCH_MAX = 50, 200

PATHS = (
    "/v1/beneficiaries",
    "/v1/beneficiaries/{beneficiary_no}",
    "/v1/beneficiaries/{beneficiary_no}/enrolment",
)

Programme = Literal["child-grant", "old-age-grant", "disability-grant"]


class Beneficiary(BaseModel):
    beneficiary_no: str
    programme: str
    national_id: str | None
    surname: str
    given_name: str
    second_name: str | None
    sex: str | None
    birth_date: str | None
    birth_year: int | None
    district_code: str | None
    village_code: str | None
    caregiver_name: str | None
    caregiver_national_id: str | None
    enrolled_on: str
    status: str  # 'active', 'suspended', 'exited'
    monthly_amount: int


class BeneficiaryList(BaseModel):
    items: list[Beneficiary]


class Enrolment(BaseModel):
    beneficiary_no: str
    programme: str
    status: str
    active: bool
    enrolled_on: str
    monthly_amount: int


BeneficiaryNo = Annotated[
    str, Path(pattern=BENEFICIARY_PATTERN, description="'CSG-', 'OAG-' or 'DG-' and eight digits")
]

_COLUMNS = ", ".join(Beneficiary.model_fields)


def _case_variants(name: str) -> list[str]:
    """Spellings to look up so that the (case-sensitive) name index still serves a case-blind search."""
    name = name.strip()
    return sorted({name, name.upper(), name.lower(), name.title(), name.capitalize()})


def create_app(db: AgencyDb) -> FaultInjection:
    app = problems.rest_app(
        "Ministry of Social Protection programme MIS",
        "Beneficiaries of the child, old-age and disability grants (ZZ/GOV/MSP). Errors are application/problem+json.",
    )

    def beneficiary(no: str) -> Beneficiary:
        row = db.one(f"SELECT {_COLUMNS} FROM beneficiary WHERE beneficiary_no = ?", (no,))  # noqa: S608
        if row is None:
            raise problems.not_found("beneficiary")
        return Beneficiary(**dict(row))

    @app.get("/v1/beneficiaries/{beneficiary_no}", responses=problems.LOOKUP_RESPONSES)
    def get_beneficiary(beneficiary_no: BeneficiaryNo) -> Beneficiary:
        """One enrolment's beneficiary record."""
        return beneficiary(beneficiary_no)

    @app.get("/v1/beneficiaries/{beneficiary_no}/enrolment", responses=problems.LOOKUP_RESPONSES)
    def get_enrolment(beneficiary_no: BeneficiaryNo) -> Enrolment:
        """Whether the enrolment is active, since when, for how much."""
        b = beneficiary(beneficiary_no)
        return Enrolment(
            beneficiary_no=b.beneficiary_no,
            programme=b.programme,
            status=b.status,
            active=b.status == "active",
            enrolled_on=b.enrolled_on,
            monthly_amount=b.monthly_amount,
        )

    @app.get("/v1/beneficiaries", responses=problems.SEARCH_RESPONSES)
    def search_beneficiaries(
        national_id: Annotated[str | None, Query(pattern=NATIONAL_ID_PATTERN, description="ten digits")] = None,
        surname: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        given_name: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        birth_date: Annotated[date | None, Query(description="YYYY-MM-DD")] = None,
        programme: Programme | None = None,
        limit: Annotated[int, Query(ge=1, le=SEARCH_MAX)] = SEARCH_DEFAULT,
    ) -> BeneficiaryList:
        """Enrolments by national ID, or by surname and/or birth date (given name and programme narrow)."""
        if not (national_id or surname or birth_date):
            raise problems.Problem(400, problems.MISSING_CRITERIA, "Give national_id, or surname and/or birth_date.")
        where: list[str] = []
        params: list[Any] = []
        if national_id:
            where.append("national_id = ?")
            params.append(national_id)
        if surname:
            variants = _case_variants(surname)
            where.append(f"surname IN ({', '.join('?' * len(variants))})")
            params += variants
        if given_name:
            where.append("given_name = ? COLLATE NOCASE")
            params.append(given_name.strip())
        if birth_date:
            where.append("birth_date = ?")
            params.append(birth_date.isoformat())
        if programme:
            where.append("programme = ?")
            params.append(programme)
        # Only constant column names and placeholders go into the SQL; values are parameters.
        rows = db.all(
            f"SELECT {_COLUMNS} FROM beneficiary WHERE {' AND '.join(where)} ORDER BY beneficiary_no LIMIT ?",  # noqa: S608
            [*params, limit],
        )
        return BeneficiaryList(items=[Beneficiary(**dict(r)) for r in rows])

    return problems.with_faults(app)
