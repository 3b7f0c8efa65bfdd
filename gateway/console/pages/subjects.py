"""Subject report: who accessed one person's data, printable for a citizen's request.

The DPO types the identifier; it is hashed with the node's secret and the log is searched by the
hash. The identifier appears on the printed page the DPO asked for, and nowhere else: not in a link,
not in the console trail (which keeps the hash), not in any log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.console.html import Html, dl, el, field, notice, table
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page, outcome_badge
from gateway.exchangelog import LogRecord
from gateway.exchangelog.cli import subject_report_data

MAX_SUBJECT = 64
MAX_RECORDS = 10_000


def _form(ctx: Ctx) -> Html:
    return ctx.post(
        "/subjects/report",
        field(
            "subject",
            "The person's identifier (national ID)",
            required=True,
            autocomplete="off",
            hint="Hashed with this node's secret; shown only on the report you print, never stored or logged.",
        ),
        el("button", "Make the report", type="submit", class_="button button-primary", data_busy="Searching the log…"),
    )


def form(ctx: Ctx) -> Page:
    intro = el(
        "p",
        "A person may ask who used her data. This report lists every exchange about her that this gateway's log "
        "holds: when, which agency and system asked, for which service and purpose, on which legal basis and "
        "agreement, and how it ended.",
        class_="lead",
    )
    return Page("Subject report", Html(intro + _form(ctx)))


def _client_section(c: dict[str, Any]) -> Html:
    system = f", system {c['system']}" if c["system"] else ""
    rows = [
        [
            a["time"],
            a["service"] or "-",
            a["purpose"] or "-",
            a["lawful_basis"] or "-",
            a["agreement"] or "-",
            a["decision"] or "-",
            outcome_badge(a["outcome"]),
        ]
        for a in c["accesses"]
    ]
    return el(
        "section",
        el("h2", f"{c['agency']}{system}: {len(c['accesses'])} time(s)"),
        table(["When (UTC)", "Service", "Purpose", "Lawful basis", "Agreement", "Decision", "Outcome"], rows),
    )


def report(ctx: Ctx) -> Page:
    subject = ctx.value("subject", max_len=MAX_SUBJECT, required=True, label="the identifier")
    hashed = ctx.node.subject_hash(subject)
    ctx.note.subject_hash = hashed
    rows: list[tuple[int, LogRecord]] = []
    log = ctx.node.log
    while len(rows) < MAX_RECORDS:
        page = log.search(subject_hash=hashed, limit=1000, offset=len(rows))
        rows += page
        if len(page) < 1000:
            break
    data = subject_report_data(rows)
    ctx.note.detail = f"{data['records']} record(s), {data['exchanges']} exchange(s)"
    node = ctx.node
    member = node.federation.member if node.federation is not None else node.settings.instance
    assert ctx.role is not None
    header = dl(
        [
            ("Person", el("strong", subject, class_="report-id")),
            ("Gateway", f"{node.settings.name} ({member})"),
            ("Made", f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by {ctx.user} ({ctx.role.label})"),
            ("Covers", "every exchange about this person in this gateway's log"),
        ]
    )
    if data["records"]:
        summary = el(
            "p",
            f"This person's data was asked for in {data['exchanges']} exchange(s), "
            f"from {data['first']} to {data['last']}.",
            class_="lead",
        )
        sections = Html("".join(_client_section(c) for c in data["clients"]))
    else:
        summary = el("p", "No exchange in this gateway's log concerns this person.", class_="lead")
        sections = Html("")
    truncated = (
        notice("warn", el("p", f"Only the first {MAX_RECORDS:,} records are listed."), role="status")
        if len(rows) >= MAX_RECORDS
        else ""
    )
    notes = el(
        "section",
        el("h2", "About this report"),
        el(
            "ul",
            el("li", "Each gateway keeps its own log. The agencies that hold the data keep theirs: ask them too."),
            el("li", "The log keeps a keyed hash of the person's identifier, never the identifier itself."),
            el("li", "The log is tamper-evident: every record is a leaf of a signed Merkle tree."),
        ),
    )
    actions = el(
        "div",
        el("button", "Print this report", type="button", data_print=True, class_="button button-primary js-only"),
        el("span", "or use your browser's Print command.", class_="muted"),
        el("a", "Make another report", href=ctx.url("/subjects")),
        class_="actions noprint",
    )
    signature = el(
        "div",
        el("p", "Data protection officer: ______________________________"),
        el("p", "Signature and date: ______________________________"),
        class_="print-only",
    )
    body = Html(actions + header + summary + truncated + sections + notes + signature)
    return Page("Who accessed this person's data", body)


ACTIONS = (
    Action("/subjects", form, Permission.SUBJECT_REPORT, "open subject report"),
    Action("/subjects/report", report, Permission.SUBJECT_REPORT, "subject report", methods=("POST",)),
)
