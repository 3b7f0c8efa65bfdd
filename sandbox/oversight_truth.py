"""How far the registry's oversight estimates are from the sandbox's ground truth, and why.

Only the sandbox knows the truth: who really lives where, who is really eligible, who is really
enrolled. The registry sees people through the civil registry (which has never registered some and
has registered others twice) and through facts the agencies may not hold. This module counts the
truth for the same districts, date and rules, and sets it beside an oversight report, naming the
sources of the difference it can measure.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox.enrolment import OLD_AGE_GRANT_AGE, OLD_AGE_PENSION_TEST
from sandbox.schema import TRUTH_FILE

CLASSES = (
    "eligible, enrolled",
    "eligible, not enrolled",
    "enrolled, not eligible",
    "enrolled, deceased",
    "not eligible, not enrolled",
)


def _age(birth: str | None, on: dt.date) -> int | None:
    if not birth:
        return None
    born = dt.date.fromisoformat(birth)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def truth(country: Path, districts: Sequence[str], on: dt.date, programme: str = "old-age-grant") -> dict[str, Any]:
    """The old-age grant's true coverage classes per district, and how many of each the registry cannot see."""
    if programme != "old-age-grant":
        raise ValueError("the truth comparison covers the old-age grant")
    t = sqlite3.connect(country / TRUTH_FILE)
    msp = sqlite3.connect(country / "msp.sqlite")
    try:
        status = dict(msp.execute("SELECT beneficiary_no, status FROM beneficiary WHERE programme = 'old-age-grant'"))
        enrolled: set[int] = set()
        for record_id, person_id in t.execute("SELECT record_id, person_id FROM record WHERE source = 'msp'"):
            if status.get(record_id) == "active":
                enrolled.add(int(person_id))
        registered = {int(r[0]) for r in t.execute("SELECT DISTINCT person_id FROM record WHERE source = 'cra'")}
        marks = ",".join("?" for _ in districts)
        rows = t.execute(
            f"SELECT person_id, district_code, birth_date, death_date, pension_monthly FROM person "  # noqa: S608
            f"WHERE district_code IN ({marks})",
            list(districts),
        ).fetchall()
    finally:
        t.close()
        msp.close()
    classes: Counter[str] = Counter()
    unseen: Counter[str] = Counter()
    for person_id, _district, birth, death, pension in rows:
        alive = death is None
        age = _age(birth, on)
        eligible = alive and age is not None and age >= OLD_AGE_GRANT_AGE and (pension or 0) <= OLD_AGE_PENSION_TEST
        is_enrolled = person_id in enrolled
        if not alive:
            cls = "enrolled, deceased" if is_enrolled else None
        elif eligible:
            cls = "eligible, enrolled" if is_enrolled else "eligible, not enrolled"
        else:
            cls = "enrolled, not eligible" if is_enrolled else "not eligible, not enrolled"
        if cls is None:
            continue
        classes[cls] += 1
        if person_id not in registered:
            unseen[cls] += 1
    return {"classes": dict(classes), "not_in_civil_registry": dict(unseen)}


def compare(report: Mapping[str, Any], country: Path) -> list[dict[str, Any]]:
    """Estimate against truth, class by class, over the report's districts (its unsuppressed total row)."""
    districts = report["districts"]
    on = dt.date.fromisoformat(report["as_of"])
    true = truth(country, districts, on, report["programme"])
    total = next(r for r in report["tables"]["coverage"]["rows"] if r["row"] == "total")
    parts = [total.get(c) for c in ("undetermined, enrolled", "undetermined, not enrolled")]
    undetermined = None if None in parts else sum(p or 0 for p in parts)  # a suppressed part hides the sum
    out = []
    for cls in CLASSES:
        estimate = total.get(cls)
        real = true["classes"].get(cls, 0)
        out.append(
            {
                "class": cls,
                "estimate": estimate,
                "truth": real,
                "error": None if estimate is None else estimate - real,
                "relative_error": None if estimate is None or not real else round((estimate - real) / real, 3),
                "not_in_civil_registry": true["not_in_civil_registry"].get(cls, 0),
            }
        )
    out.append({"class": "undetermined (a fact missing)", "estimate": undetermined, "truth": None, "error": None,
                "relative_error": None, "not_in_civil_registry": None})  # fmt: skip
    return out
