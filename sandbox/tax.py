"""The Tax Authority's taxpayer register: a REST service, the income facts of means tests.

Taxpayers are found by tax identification number or by national ID (a person may hold two TINs,
as real registers have duplicates); incomes are yearly, per payer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel

from sandbox import problems
from sandbox.agencydb import AgencyDb
from sandbox.faults import FaultInjection

TIN_PATTERN = r"^TIN[0-9]{8}$"
NATIONAL_ID_PATTERN = r"^[0-9]{10}$"

PATHS = (
    "/v1/taxpayers",
    "/v1/taxpayers/{tin}",
    "/v1/taxpayers/{tin}/incomes",
    "/v1/incomes",
)


class Income(BaseModel):
    year: int
    kind: str  # 'employment' or 'business'
    payer: str  # employer's name, or 'self'
    gross_income: int
    tax_paid: int


class PersonIncome(Income):
    tin: str


class Taxpayer(BaseModel):
    tin: str
    national_id: str | None
    surname: str
    given_name: str
    sex: str | None
    birth_date: str | None
    district_code: str | None
    registered_on: str


class TaxpayerWithIncomes(Taxpayer):
    incomes: list[Income]


class TaxpayerList(BaseModel):
    items: list[Taxpayer]


class TaxpayerIncomes(BaseModel):
    tin: str
    incomes: list[Income]


class YearTotal(BaseModel):
    year: int
    gross_income: int
    tax_paid: int


class IncomesOfPerson(BaseModel):
    national_id: str
    tins: list[str]
    incomes: list[PersonIncome]
    totals: list[YearTotal]


Tin = Annotated[str, Path(pattern=TIN_PATTERN, description="'TIN' and eight digits")]
NationalId = Annotated[str, Query(pattern=NATIONAL_ID_PATTERN, description="ten digits")]
FromYear = Annotated[int | None, Query(ge=1900, le=2100, description="first year included")]
ToYear = Annotated[int | None, Query(ge=1900, le=2100, description="last year included")]

_TAXPAYER = "SELECT tin, national_id, surname, given_name, sex, birth_date, district_code, registered_on FROM taxpayer"


def _years(from_year: int | None, to_year: int | None) -> list[int]:
    """Bounds for `year BETWEEN ? AND ?`, open ends made wide."""
    return [from_year or 0, to_year or 9999]


def create_app(db: AgencyDb) -> FaultInjection:
    app = problems.rest_app(
        "Tax Authority taxpayer register",
        "Taxpayers and their yearly incomes (ZZ/GOV/TAX). Errors are application/problem+json.",
    )

    def taxpayer_row(tin: str) -> Taxpayer:
        row = db.one(f"{_TAXPAYER} WHERE tin = ?", (tin,))
        if row is None:
            raise problems.not_found("taxpayer")
        return Taxpayer(**dict(row))

    def incomes(tin: str, from_year: int | None, to_year: int | None) -> list[Income]:
        rows = db.all(
            "SELECT year, kind, payer, gross_income, tax_paid FROM income WHERE tin = ? AND year BETWEEN ? AND ?"
            " ORDER BY year, payer",
            [tin, *_years(from_year, to_year)],
        )
        return [Income(**dict(r)) for r in rows]

    @app.get("/v1/taxpayers/{tin}", responses=problems.LOOKUP_RESPONSES)
    def get_taxpayer(tin: Tin, from_year: FromYear = None, to_year: ToYear = None) -> TaxpayerWithIncomes:
        """A taxpayer and the incomes declared or reported for them, oldest year first."""
        taxpayer = taxpayer_row(tin)
        return TaxpayerWithIncomes(**taxpayer.model_dump(), incomes=incomes(tin, from_year, to_year))

    @app.get("/v1/taxpayers/{tin}/incomes", responses=problems.LOOKUP_RESPONSES)
    def get_taxpayer_incomes(tin: Tin, from_year: FromYear = None, to_year: ToYear = None) -> TaxpayerIncomes:
        """A taxpayer's incomes only."""
        taxpayer_row(tin)
        return TaxpayerIncomes(tin=tin, incomes=incomes(tin, from_year, to_year))

    @app.get("/v1/taxpayers", responses=problems.SEARCH_RESPONSES)
    def find_taxpayers(national_id: NationalId) -> TaxpayerList:
        """The taxpayers registered under a national ID (usually one; none is an empty list)."""
        rows = db.all(f"{_TAXPAYER} WHERE national_id = ? ORDER BY registered_on, tin", (national_id,))
        return TaxpayerList(items=[Taxpayer(**dict(r)) for r in rows])

    @app.get("/v1/incomes", responses=problems.SEARCH_RESPONSES)
    def incomes_of_person(
        national_id: NationalId, from_year: FromYear = None, to_year: ToYear = None
    ) -> IncomesOfPerson:
        """All incomes of a person across their TINs, with yearly totals; unknown to tax is empty lists."""
        tins = [r["tin"] for r in db.all("SELECT tin FROM taxpayer WHERE national_id = ? ORDER BY tin", (national_id,))]
        rows = db.all(
            "SELECT i.tin, i.year, i.kind, i.payer, i.gross_income, i.tax_paid FROM taxpayer t"
            " JOIN income i ON i.tin = t.tin WHERE t.national_id = ? AND i.year BETWEEN ? AND ?"
            " ORDER BY i.year, i.tin, i.payer",
            [national_id, *_years(from_year, to_year)],
        )
        items = [PersonIncome(**dict(r)) for r in rows]
        totals: dict[int, YearTotal] = {}
        for item in items:
            total = totals.setdefault(item.year, YearTotal(year=item.year, gross_income=0, tax_paid=0))
            total.gross_income += item.gross_income
            total.tax_paid += item.tax_paid
        return IncomesOfPerson(national_id=national_id, tins=tins, incomes=items, totals=list(totals.values()))

    return problems.with_faults(app)
