"""The Tax Authority's taxpayer register: a REST service, the income facts of means tests.

Taxpayers are found by tax identification number or by national ID (a person may hold two TINs,
as real registers have duplicates); incomes are yearly, per payer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

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
    "/v1/incomes/batch",
)

#: Identifiers one batch request may carry (a repeated query parameter), in every REST agency system.
MAX_IDS = 100


def id_list(pattern: str, description: str, *, required: bool = True) -> Any:
    """A repeated query parameter of identifiers: an array in the OpenAPI document (items with their pattern).

    The values are checked by `checked_ids`, not by FastAPI, so that a malformed one is named by its position.
    """
    schema: dict[str, Any] = {"items": {"type": "string", "pattern": pattern}, "maxItems": MAX_IDS}
    if required:
        schema["minItems"] = 1
    text = f"{description}; repeat the parameter for several (at most {MAX_IDS})"
    if required:
        return Query(description=text, json_schema_extra=schema)
    return Query(default_factory=list, description=text, json_schema_extra=schema)


def checked_ids(values: list[str], name: str, pattern: str, *, positions: bool = True) -> list[str]:
    """The distinct identifiers in the order of their first appearance, or a problem (400): more than MAX_IDS
    (`invalid-request`), or malformed ones (`invalid-identifier`), named by their position from 1, never by value.

    With `positions` false, a single value is refused as a search taking one identifier always refused it.
    """
    if len(values) > MAX_IDS:
        raise problems.Problem(
            400, problems.INVALID_REQUEST, f"At most {MAX_IDS} {name} values may be given in one request."
        )
    regex = re.compile(pattern)
    bad = [i for i, value in enumerate(values, start=1) if not regex.fullmatch(value)]
    if not bad:
        return list(dict.fromkeys(values))
    message = f"String should match pattern '{pattern}'"
    if not positions and len(values) == 1:
        detail = f"Malformed identifier: {name} does not have the documented format."
        errors: list[dict[str, Any]] = [{"location": f"query.{name}", "message": message}]
    else:
        if len(bad) == 1:
            detail = f"Malformed identifier: {name} at position {bad[0]} does not have the documented format."
        else:
            where = ", ".join(str(i) for i in bad)
            detail = f"Malformed identifiers: {name} at positions {where} do not have the documented format."
        errors = [{"location": f"query.{name}", "position": i, "message": message} for i in bad]
    raise problems.Problem(400, problems.INVALID_IDENTIFIER, detail, errors=errors)


def marks(values: list[Any]) -> str:
    """Placeholders for `IN (...)`: only `?`s go into the SQL, the values are parameters."""
    return ", ".join("?" * len(values))


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


class IncomesOfPersons(BaseModel):
    items: list[IncomesOfPerson]


Tin = Annotated[str, Path(pattern=TIN_PATTERN, description="'TIN' and eight digits")]
NationalId = Annotated[str, Query(pattern=NATIONAL_ID_PATTERN, description="ten digits")]
NationalIds = Annotated[list[str], id_list(NATIONAL_ID_PATTERN, "ten digits")]
FromYear = Annotated[int | None, Query(ge=1900, le=2100, description="first year included")]
ToYear = Annotated[int | None, Query(ge=1900, le=2100, description="last year included")]

_TAXPAYER = "SELECT tin, national_id, surname, given_name, sex, birth_date, district_code, registered_on FROM taxpayer"


def _years(from_year: int | None, to_year: int | None) -> list[int]:
    """Bounds for `year BETWEEN ? AND ?`, open ends made wide."""
    return [from_year or 0, to_year or 9999]


def _incomes_of(national_id: str, tins: list[str], rows: list[Any]) -> IncomesOfPerson:
    """A person's incomes (rows ordered by year, tin, payer) with their yearly totals."""
    items = [PersonIncome(**{k: r[k] for k in PersonIncome.model_fields}) for r in rows]
    totals: dict[int, YearTotal] = {}
    for item in items:
        total = totals.setdefault(item.year, YearTotal(year=item.year, gross_income=0, tax_paid=0))
        total.gross_income += item.gross_income
        total.tax_paid += item.tax_paid
    return IncomesOfPerson(national_id=national_id, tins=tins, incomes=items, totals=list(totals.values()))


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
        return _incomes_of(national_id, tins, rows)

    @app.get("/v1/incomes/batch", responses=problems.SEARCH_RESPONSES)
    def incomes_of_persons(
        national_id: NationalIds, from_year: FromYear = None, to_year: ToYear = None
    ) -> IncomesOfPersons:
        """`/v1/incomes` for up to 100 people at once: one item per distinct national ID, in the order of first
        appearance (unknown to tax: empty lists). A malformed ID is named by its position (from 1)."""
        wanted = checked_ids(national_id, "national_id", NATIONAL_ID_PATTERN)
        tins: dict[str, list[str]] = {nid: [] for nid in wanted}
        for r in db.all(
            f"SELECT national_id, tin FROM taxpayer WHERE national_id IN ({marks(wanted)}) ORDER BY tin",  # noqa: S608
            wanted,
        ):
            tins[r["national_id"]].append(r["tin"])
        rows: dict[str, list[Any]] = {nid: [] for nid in wanted}
        for r in db.all(
            "SELECT t.national_id, i.tin, i.year, i.kind, i.payer, i.gross_income, i.tax_paid FROM taxpayer t"  # noqa: S608
            f" JOIN income i ON i.tin = t.tin WHERE t.national_id IN ({marks(wanted)}) AND i.year BETWEEN ? AND ?"
            " ORDER BY i.year, i.tin, i.payer",
            [*wanted, *_years(from_year, to_year)],
        ):
            rows[r["national_id"]].append(r)
        return IncomesOfPersons(items=[_incomes_of(nid, tins[nid], rows[nid]) for nid in wanted])

    return problems.with_faults(app)
