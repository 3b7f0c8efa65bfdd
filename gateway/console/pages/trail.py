"""The console trail: who used this console, for what, with which outcome (newest first)."""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.console.errors import BadInput
from gateway.console.html import Html, Option, button, el, field, fmt_ms, short, table
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page

PAGE = 100


def trail(ctx: Ctx) -> Page:
    audit = ctx.console.audit
    users = sorted(ctx.console.sessions.users)
    actions = audit.actions()
    actor = ctx.query("user")
    action = ctx.query("action")
    if actor and actor not in users:
        raise BadInput("choose a user from the list")
    if action and action not in actions:
        raise BadInput("choose an action from the list")
    raw_before = ctx.query("before")
    if raw_before and not raw_before.isdigit():
        raise BadInput("before must be a row number")
    before = int(raw_before) if raw_before else None
    entries = audit.entries(limit=PAGE, before=before, actor=actor or None, action=action or None)
    ctx.note.detail = ", ".join(f"{k}={v}" for k, v in (("user", actor), ("action", action)) if v) or None
    rows = [
        [
            str(t.seq),
            fmt_ms(t.at_ms),
            t.actor,
            t.role or "-",
            t.action,
            el("span", t.outcome, class_="badge badge-ok" if t.outcome == "ok" else "badge badge-bad"),
            t.target or "-",
            short(t.subject_hash) if t.subject_hash else "-",
            t.detail or "",
        ]
        for t in entries
    ]
    filters = el(
        "form",
        el(
            "div",
            field("user", "User", value=actor, options=[Option("", "everyone")] + [Option(u, u) for u in users]),
            field(
                "action", "Action", value=action, options=[Option("", "every action")] + [Option(a, a) for a in actions]
            ),
            el("div", button("Show"), class_="field"),
            class_="filters",
        ),
        method="get",
        action=ctx.url("/trail"),
        aria_label="Filter the trail",
    )
    older = ""
    if len(entries) == PAGE:
        keep = {k: v for k, v in (("user", actor), ("action", action)) if v}
        older = el(
            "div",
            el("a", "Older →", href=ctx.url("/trail") + "?" + urlencode(keep | {"before": entries[-1].seq})),
            class_="pager",
        )
    intro = el(
        "p",
        "Every request to this console, sign-ins included, is one row here, written before its result is shown. "
        "Where an action concerned a person, the row keeps the keyed hash of her identifier (as the exchange log "
        "does), never the identifier. The table refuses changes and deletions.",
        class_="lead",
    )
    headers = ["#", "Time", "User", "Role", "Action", "Outcome", "Concerning", "Person (keyed hash)", "Detail"]
    return Page("Console trail", Html(intro + filters + table(headers, rows) + older), wide=True)


ACTIONS = (Action("/trail", trail, Permission.TRAIL, "view trail"),)
