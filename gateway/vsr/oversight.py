"""Oversight statistics: who receives what, and where eligible people are left out, as aggregates only.

The job decides every resident of the chosen districts through the exchange layer (purpose
`oversight-statistics`), keeps for each only a classification (district, household, class, grants
received), and publishes nothing but counts, with small cells suppressed (`disclosure`). No record
leaves the job: the per-person classifications stay in the job store and are never served.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from gateway.vsr.disclosure import suppress
from gateway.vsr.eligibility import Programme
from gateway.vsr.registry import Answer

PURPOSE = "oversight-statistics"
#: What the job asks beyond the programme's rules: the MIS (who receives what).
SOURCES = frozenset({"mis"})
PROGRAMMES = ("old-age-grant", "child-grant", "disability-grant")
#: Coverage classes of the programme, in the order the tables show them.
CLASSES = (
    "eligible, enrolled",
    "eligible, not enrolled",
    "enrolled, not eligible",
    "enrolled, deceased",
    "undetermined, enrolled",
    "undetermined, not enrolled",
    "not eligible, not enrolled",
)
RECEIVES = ("none", "one", "several")


def classify(answer: Answer, programme: Programme) -> dict[str, Any]:
    """One resident as the statistics need her, and nothing more: no name, no identifier."""
    g = answer.gathered
    person = g.person
    decision = answer.decision
    assert decision is not None
    district = person.data.get("district") if person is not None else None
    household = person.data.get("household_id") if person is not None else None
    active = sorted(
        {str(e.get("programme")) for e in (g.enrolments.items if g.enrolments else []) if e.get("status") == "active"}
    )
    known = g.enrolments is not None
    enrolled = programme.programme in active
    deceased = person is not None and person.data.get("status") == "deceased"
    cls: str | None
    if not known:
        cls = "undetermined, not enrolled" if decision.outcome != "not_eligible" else "not eligible, not enrolled"
    elif deceased:
        cls = "enrolled, deceased" if enrolled else None
    elif decision.outcome == "eligible":
        cls = "eligible, enrolled" if enrolled else "eligible, not enrolled"
    elif decision.outcome == "not_eligible":
        cls = "enrolled, not eligible" if enrolled else "not eligible, not enrolled"
    else:
        cls = "undetermined, enrolled" if enrolled else "undetermined, not enrolled"
    return {
        "district": district,
        "household": household,
        "alive": not deceased,
        "class": cls,
        "receives": active if known else None,
        "missing": sorted(decision.missing),
        "complete": not [o for o in g.outcomes.values() if o.status == "failed"],
        "failures": sorted(f"{o.service}: {o.code}" for o in g.outcomes.values() if o.status == "failed"),
    }


def _table(rows: Mapping[str, Counter[str]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [[rows[r].get(c, 0) for c in columns] for r in sorted(rows)], index=sorted(rows), columns=list(columns)
    )
    return frame.astype("int64")


def report(
    results: Iterable[Mapping[str, Any]],
    *,
    programme: Programme,
    threshold: int,
    as_of: dt.date,
    sources: Sequence[str],
    job: Mapping[str, Any],
    districts: Sequence[str] = (),
) -> dict[str, Any]:
    """The published figures: three tables of counts, each with small cells suppressed, and their basis."""
    coverage: dict[str, Counter[str]] = defaultdict(Counter)
    receipt: dict[str, Counter[str]] = defaultdict(Counter)
    households: dict[tuple[str, str], set[str]] = defaultdict(set)
    missing: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    incomplete = errors = 0
    for r in results:
        if "error" in r:
            errors += 1
            continue
        district = str(r.get("district") or "unknown")
        if r.get("class"):
            coverage[district][r["class"]] += 1
        if not r.get("complete", True):
            incomplete += 1
        missing.update(r.get("missing") or [])
        failures.update(r.get("failures") or [])
        if r.get("alive") and r.get("receives") is not None:
            for name in r["receives"]:
                receipt[district][name] += 1
            if r.get("household"):
                households[(district, str(r["household"]))].update(r["receives"])
    overlap: dict[str, Counter[str]] = defaultdict(Counter)
    for (district, _), received in households.items():
        overlap[district][RECEIVES[min(len(received), 2)]] += 1
    tables = {
        "coverage": (
            f"{programme.title}: residents by eligibility (rules {programme.version}) and enrolment",
            _table(coverage, CLASSES),
        ),
        "receipt": (
            "Grants received (active enrolments of living residents), per district",
            _table(receipt, PROGRAMMES),
        ),
        "households": ("Households by the number of grants their living members receive", _table(overlap, RECEIVES)),
    }
    published: dict[str, Any] = {}
    for name, (title, frame) in tables.items():
        if frame.empty:
            published[name] = {"title": title, "rows": [], "suppressed_cells": 0}
            continue
        cut = suppress(frame, threshold=threshold)
        published[name] = {
            "title": title,
            "rows": cut.as_records(),
            "suppressed_cells": len(cut.primary) + len(cut.complementary),
        }
    return {
        "programme": programme.programme,
        "rules_version": programme.version,
        "as_of": as_of.isoformat(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "purpose": PURPOSE,
        "districts": list(districts),
        "sources": list(sources),
        "threshold": threshold,
        "job": {k: job[k] for k in ("job_id", "state", "total", "done", "created_at", "updated_at") if k in job},
        "quality": {
            "residents_decided": sum(sum(c.values()) for c in coverage.values()),
            "incomplete_answers": incomplete,
            "errors": errors,
            "facts_missing": dict(missing.most_common()),
            "source_failures": dict(failures.most_common()),
            "note": (
                "Counts are of people the civil registry lists as residents: people it has never registered "
                "are not counted, and estimated exclusion misses them. Undetermined decisions lacked a fact."
            ),
        },
        "tables": published,
    }


def to_csv(document: Mapping[str, Any]) -> str:
    """Every published table, one after another; suppressed cells empty (marked in `suppressed`)."""
    out = io.StringIO()
    for name, table in document["tables"].items():
        out.write(f"# {name}: {table['title']} (as of {document['as_of']}, rules {document['rules_version']})\n")
        rows = table["rows"]
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        frame["suppressed"] = frame["suppressed"].map(lambda cells: " ".join(cells))
        frame.to_csv(out, index=False)
        out.write("\n")
    return out.getvalue()


def chart(document: Mapping[str, Any]) -> bytes:
    """A PNG: per district, estimated exclusion and inclusion errors (suppressed cells left out, and said)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in document["tables"]["coverage"]["rows"] if r["row"] != "total"]
    districts = [r["row"] for r in rows]
    series = {
        "eligible, not enrolled (exclusion)": "eligible, not enrolled",
        "enrolled, not eligible (inclusion)": "enrolled, not eligible",
        "enrolled, deceased (inclusion)": "enrolled, deceased",
    }
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(districts) + 2), 4), dpi=100)
    width = 0.8 / len(series)
    for i, (label, column) in enumerate(series.items()):
        values = [r.get(column) for r in rows]
        xs = [j + i * width for j in range(len(rows))]
        ax.bar([x for x, v in zip(xs, values, strict=True) if v is not None], [v for v in values if v is not None],
               width=width, label=label)  # fmt: skip
        for x, v in zip(xs, values, strict=True):
            if v is None:
                ax.text(x, 0, "s", ha="center", va="bottom", fontsize=7, color="grey")
    ax.set_xticks([j + width for j in range(len(rows))], districts, rotation=90, fontsize=7)
    ax.set_ylabel("residents")
    ax.set_ylim(bottom=0)  # counts: an axis below zero (what an empty plot gets) would only confuse
    drawn = [r.get(c) for r in rows for c in series.values() if r.get(c)]
    if not drawn:
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.text(
            0.5, 0.5, "nothing to draw: every count here is zero or suppressed",
            transform=ax.transAxes, ha="center", va="center", fontsize=9, color="grey",
        )  # fmt: skip
    ax.set_title(
        f"{document['programme']}: estimated errors by district, as of {document['as_of']}\n"
        f"rules {document['rules_version']}; s = suppressed (counts under {document['threshold']})",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
