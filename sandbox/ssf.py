"""The Social Security Fund's member register: a REST service for contribution and pension facts.

Contribution history says whether someone works formally; pension status matters because many
grants exclude, or reduce for, people already receiving a contributory pension.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel

from sandbox import problems
from sandbox.agencydb import AgencyDb
from sandbox.faults import FaultInjection
from sandbox.tax import checked_ids, id_list, marks

SSN_PATTERN = r"^SSN[0-9]{9}$"
NATIONAL_ID_PATTERN = r"^[0-9]{10}$"

PATHS = (
    "/v1/members",
    "/v1/members/{ssn}",
    "/v1/members/{ssn}/contributions",
    "/v1/members/{ssn}/pension",
    "/v1/pensions",
)


class Member(BaseModel):
    ssn: str
    national_id: str | None
    surname: str
    given_name: str
    sex: str | None
    birth_date: str | None
    district_code: str | None
    status: str  # 'active', 'inactive', 'pensioner', 'deceased'
    registered_on: str


class MemberList(BaseModel):
    items: list[Member]


class Contribution(BaseModel):
    year: int
    employer: str
    months: int
    amount: int


class Contributions(BaseModel):
    ssn: str
    contributions: list[Contribution]
    total_months: int
    total_amount: int
    last_year: int | None


class Pension(BaseModel):
    kind: str  # 'old-age', 'invalidity', 'survivor'
    monthly_amount: int
    start_date: str
    status: str  # 'in-payment', 'suspended', 'ceased'


class PensionStatus(BaseModel):
    ssn: str
    has_pension: bool
    pension: Pension | None


class PensionList(BaseModel):
    items: list[PensionStatus]


Ssn = Annotated[str, Path(pattern=SSN_PATTERN, description="'SSN' and nine digits")]
NationalIds = Annotated[list[str], id_list(NATIONAL_ID_PATTERN, "ten digits")]
Ssns = Annotated[list[str], id_list(SSN_PATTERN, "'SSN' and nine digits")]
FromYear = Annotated[int | None, Query(ge=1900, le=2100, description="first year included")]
ToYear = Annotated[int | None, Query(ge=1900, le=2100, description="last year included")]

_MEMBER = (
    "SELECT ssn, national_id, surname, given_name, sex, birth_date, district_code, status, registered_on FROM member"
)


def create_app(db: AgencyDb) -> FaultInjection:
    app = problems.rest_app(
        "Social Security Fund member register",
        "Members, their yearly contributions and pensions (ZZ/GOV/SSF). Errors are application/problem+json.",
    )

    def member(ssn: str) -> Member:
        row = db.one(f"{_MEMBER} WHERE ssn = ?", (ssn,))
        if row is None:
            raise problems.not_found("member")
        return Member(**dict(row))

    @app.get("/v1/members/{ssn}", responses=problems.LOOKUP_RESPONSES)
    def get_member(ssn: Ssn) -> Member:
        """A member's registration and status."""
        return member(ssn)

    @app.get("/v1/members", responses=problems.SEARCH_RESPONSES)
    def find_members(national_id: NationalIds) -> MemberList:
        """The members registered under a national ID (none is an empty list), by registration; or under any of
        several (the parameter repeated, up to 100; a malformed one named by its position from 1), by ssn."""
        wanted = checked_ids(national_id, "national_id", NATIONAL_ID_PATTERN, positions=False)
        order = "registered_on, ssn" if len(wanted) == 1 else "ssn"
        rows = db.all(f"{_MEMBER} WHERE national_id IN ({marks(wanted)}) ORDER BY {order}", wanted)
        return MemberList(items=[Member(**dict(r)) for r in rows])

    @app.get("/v1/members/{ssn}/contributions", responses=problems.LOOKUP_RESPONSES)
    def get_contributions(ssn: Ssn, from_year: FromYear = None, to_year: ToYear = None) -> Contributions:
        """Yearly contributions per employer, oldest first, with totals over the years asked."""
        member(ssn)
        rows = db.all(
            "SELECT year, employer, months, amount FROM contribution WHERE ssn = ? AND year BETWEEN ? AND ?"
            " ORDER BY year, employer",
            (ssn, from_year or 0, to_year or 9999),
        )
        items = [Contribution(**dict(r)) for r in rows]
        return Contributions(
            ssn=ssn,
            contributions=items,
            total_months=sum(c.months for c in items),
            total_amount=sum(c.amount for c in items),
            last_year=max((c.year for c in items), default=None),
        )

    @app.get("/v1/members/{ssn}/pension", responses=problems.LOOKUP_RESPONSES)
    def get_pension(ssn: Ssn) -> PensionStatus:
        """The member's pension; a member without one is `has_pension` false, not a 404."""
        member(ssn)
        row = db.one("SELECT kind, monthly_amount, start_date, status FROM pension WHERE ssn = ?", (ssn,))
        pension = Pension(**dict(row)) if row is not None else None
        return PensionStatus(ssn=ssn, has_pension=pension is not None, pension=pension)

    @app.get("/v1/pensions", responses=problems.SEARCH_RESPONSES)
    def get_pensions(ssn: Ssns) -> PensionList:
        """`/v1/members/{ssn}/pension` for up to 100 members at once: one item per distinct known ssn, in the order
        of first appearance; an unknown ssn is left out. A malformed ssn is named by its position (from 1)."""
        wanted = checked_ids(ssn, "ssn", SSN_PATTERN)
        rows = db.all(
            "SELECT m.ssn, p.kind, p.monthly_amount, p.start_date, p.status FROM member m"  # noqa: S608
            f" LEFT JOIN pension p ON p.ssn = m.ssn WHERE m.ssn IN ({marks(wanted)})",
            wanted,
        )
        found: dict[str, PensionStatus] = {}
        for r in rows:
            pension = Pension(**{k: r[k] for k in Pension.model_fields}) if r["kind"] is not None else None
            found[r["ssn"]] = PensionStatus(ssn=r["ssn"], has_pension=pension is not None, pension=pension)
        return PensionList(items=[found[s] for s in wanted if s in found])

    return problems.with_faults(app)
