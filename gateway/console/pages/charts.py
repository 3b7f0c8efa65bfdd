"""Charts: exchanges per day, purpose and client, and refusals by reason, over a period (aggregates only)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gateway.console.errors import BadInput
from gateway.console.html import Html, button, el, field, notice, table
from gateway.console.queries import DAY_MS, counts
from gateway.console.roles import Permission
from gateway.console.svg import bars, columns
from gateway.console.web import Action, Ctx, Page

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _day(text: str, label: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{label} must be a date like 2026-05-31") from None


def charts(ctx: Ctx) -> Page:
    today = datetime.now(UTC).date()
    until = _day(ctx.query("until"), "to") or today
    since = _day(ctx.query("since"), "from") or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise BadInput("the period starts after it ends")
    if (until - since).days >= MAX_DAYS:
        raise BadInput(f"choose a period of at most {MAX_DAYS} days")
    start = int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
    end = int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp() * 1000) + DAY_MS
    c = counts(ctx.node.log, start, end)
    ctx.note.detail = f"{since} to {until}"
    period = el(
        "form",
        el(
            "div",
            field("since", "From (UTC day)", kind="date", value=since.isoformat()),
            field("until", "To (UTC day, included)", kind="date", value=until.isoformat()),
            el("div", button("Show"), class_="field"),
            class_="filters",
        ),
        method="get",
        action=ctx.url("/charts"),
        aria_label="Choose the period",
    )
    refused = sum(n for _, n in c.refusals)
    summary = notice(
        "info",
        el(
            "p",
            f"{c.total:,} exchange(s) logged by this gateway from {since} to {until} (UTC); "
            f"{refused:,} refused or failed. An exchange counts once even when this gateway both asked and answered.",
        ),
        role="status",
    )
    spikes = [
        [r["day"], r["client"] or "-", r["purpose"] or "-", r["count"], f"{r['median_prev_7d']:g}"]
        for r in ctx.node.log.stats(since_ms=start, until_ms=end)
        if r["spike"]
    ]
    body = Html(
        period
        + summary
        + columns("chart-days", "Exchanges per day", c.per_day, unit="exchanges")
        + bars("chart-purposes", "Exchanges per purpose", c.per_purpose, unit="exchanges")
        + bars("chart-clients", "Exchanges per client", c.per_client, unit="exchanges")
        + bars("chart-refusals", "Refusals by reason", c.refusals, unit="refusals", bad=True)
        + el("h2", "Unusual days")
        + el(
            "p",
            "A day with more than three times the median of the seven days before, for one client and purpose, "
            "once the pair has a week of history. A question to ask, not a finding.",
            class_="muted",
        )
        + table(["Day", "Client", "Purpose", "Records", "Median of the 7 days before"], spikes)
    )
    return Page("Charts", body, wide=True)


ACTIONS = (Action("/charts", charts, Permission.CHARTS, "view charts"),)
