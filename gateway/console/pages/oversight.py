"""Oversight (the ministry's node): the registry's oversight runs and their published aggregates.

What is shown is what the registry publishes (`VsrService.oversight_report`): counts with small cells
suppressed, their date, the sources asked and the rule version; never a record. The chart is the
registry's own PNG, served here so the page needs nothing from outside the gateway.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.console.errors import NotFound, NotHosted
from gateway.console.html import Html, dl, el, notice, table
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page
from gateway.vsr import JobError, VsrService
from gateway.vsr import oversight as published
from gateway.vsr.service import OVERSIGHT_KIND

THRESHOLD = 10
_JOB_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def _vsr(ctx: Ctx) -> VsrService:
    vsr = ctx.node.vsr
    if vsr is None:
        raise NotHosted("this gateway does not host the virtual social registry")
    return vsr


def _job_id(ctx: Ctx) -> str:
    job_id = str(ctx.request.path_params.get("job_id", ""))
    if not _JOB_ID.fullmatch(job_id):
        raise NotFound("no such oversight run")
    return job_id


def _document(ctx: Ctx, job_id: str) -> dict[str, Any]:
    try:
        return _vsr(ctx).oversight_report(job_id, THRESHOLD)
    except JobError:
        raise NotFound("no such oversight run") from None


def runs(ctx: Ctx) -> Page:
    jobs = [j for j in _vsr(ctx).jobs.list(limit=1000) if j.kind == OVERSIGHT_KIND]
    rows = [
        [
            el("a", j.job_id, href=ctx.url(f"/oversight/{j.job_id}")),
            j.params.get("programme", "-"),
            ", ".join(j.params.get("districts") or []) or "-",
            j.state,
            f"{j.done:,} of {j.total:,}",
            j.created_at,
            j.updated_at,
        ]
        for j in jobs
    ]
    ctx.note.detail = f"{len(rows)} run(s)"
    intro = el(
        "p",
        "Each oversight run decides every resident of some districts through the exchange layer (purpose "
        "oversight-statistics) and publishes counts only, with cells under "
        f"{THRESHOLD} suppressed so that no person can be picked out.",
        class_="lead",
    )
    headers = ["Run", "Programme", "Districts", "State", "Residents decided", "Started", "Last progress"]
    return Page("Oversight", Html(intro + table(headers, rows, caption="Oversight runs, newest first")))


def _count(value: Any) -> str:
    return "suppressed" if value is None else f"{value:,}"


def _published(name: str, section: dict[str, Any]) -> Html:
    rows = section["rows"]
    if not rows:
        return el("section", el("h2", section["title"]), el("p", "No counts yet."))
    columns = [k for k in rows[0] if k not in ("row", "suppressed")]
    body = [[r["row"], *(_count(r.get(c)) for c in columns)] for r in rows]
    return el(
        "section",
        el("h2", section["title"]),
        table(["District", *columns], body, caption=f"{section['suppressed_cells']} cell(s) suppressed"),
    )


def report(ctx: Ctx) -> Page:
    job_id = _job_id(ctx)
    document = _document(ctx, job_id)
    ctx.note.target = f"oversight {job_id}"
    job = document["job"]
    quality = document["quality"]
    facts = dl(
        [
            ("Programme", document["programme"]),
            ("Rules version", document["rules_version"]),
            ("As of", document["as_of"]),
            ("Published", document["generated_at"]),
            ("Purpose", document["purpose"]),
            ("Districts", ", ".join(document["districts"]) or "-"),
            ("Sources asked", el("ul", *(el("li", el("code", s)) for s in document["sources"]))),
            ("Small cells", f"counts under {document['threshold']} suppressed, with enough partners to protect them"),
            ("Run", f"{job.get('state', '-')}: {job.get('done', 0):,} of {job.get('total', 0):,} residents decided"),
            ("Residents counted", f"{quality['residents_decided']:,}"),
            ("Incomplete answers", f"{quality['incomplete_answers']:,}"),
        ]
    )
    running = (
        notice("info", el("p", "This run is still going: the figures are so far."), role="status")
        if job.get("state") != "done"
        else ""
    )
    chart = el(
        "figure",
        el("figcaption", "Estimated exclusion and inclusion errors by district"),
        el(
            "img",
            src=ctx.url(f"/oversight/{job_id}/chart.png"),
            alt=(
                f"Bar chart of {document['programme']} by district as of {document['as_of']}: eligible but not "
                "enrolled, enrolled but not eligible, and enrolled but deceased; the same counts are in the "
                "coverage table below."
            ),
            width="720",
        ),
    )
    sections = Html("".join(_published(name, section) for name, section in document["tables"].items()))
    body = Html(
        el("p", el("a", "← All oversight runs", href=ctx.url("/oversight")), class_="noprint")
        + running
        + facts
        + chart
        + sections
        + el("h2", "About these figures")
        + el("p", quality["note"])
    )
    return Page(f"Oversight: {document['programme']}", body)


async def chart(ctx: Ctx) -> Response:
    job_id = _job_id(ctx)
    document = await run_in_threadpool(_document, ctx, job_id)
    ctx.note.target = f"oversight {job_id}"
    png = await run_in_threadpool(published.chart, document)
    return Response(png, media_type="image/png")


ACTIONS = (
    Action("/oversight", runs, Permission.OVERSIGHT, "view oversight", needs="vsr"),
    Action("/oversight/{job_id}", report, Permission.OVERSIGHT, "view oversight report", needs="vsr"),
    Action("/oversight/{job_id}/chart.png", chart, Permission.OVERSIGHT, "oversight chart", needs="vsr", is_async=True),
)
