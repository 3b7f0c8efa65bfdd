"""Overview: the node, its federation directory and its log at a glance; the operator refreshes the directory."""

from __future__ import annotations

from gateway.console.html import Html, button, dl, el, fmt_ms, join, notice, short
from gateway.console.queries import latest_heads
from gateway.console.roles import GRANTS, Permission
from gateway.console.web import NAV, Action, Ctx, Page, hosts


def _directory(ctx: Ctx) -> Html:
    fed = ctx.node.federation
    if fed is None:
        return el("p", "This node is not in a federation (no directory).")
    status = fed.directory.status()
    state = (
        el("span", "expired", class_="badge badge-bad")
        if status["expired"]
        else el("span", "current", class_="badge badge-ok")
    )
    parts: list[object] = [
        dl(
            [
                ("Member", fed.member),
                ("Directory", state),
                ("Serial", status["serial"] if status["serial"] is not None else "-"),
                ("Expires", status["expires_at"] or "-"),
                ("Last error", status["last_error"] or "none"),
            ]
        )
    ]
    if ctx.may(Permission.DIRECTORY_REFRESH):
        parts.append(ctx.post("/directory/refresh", button("Refresh the directory now", busy="Refreshing…")))
    return join(parts)


def _log(ctx: Ctx) -> Html:
    log = ctx.node.log
    size = log.size()
    heads, _ = latest_heads(log, 1)
    last = heads[0] if heads else None
    items: list[tuple[object, object]] = [("Records", f"{size:,}")]
    if last is None:
        items.append(("Latest signed tree head", "none yet"))
    else:
        stamped = (
            "time-stamped"
            if last.tsa_token
            else ("not time-stamped: " + last.tsa_error if last.tsa_error else "no TSA")
        )
        items += [
            ("Latest signed tree head", f"size {last.size:,}, {fmt_ms(last.timestamp)}"),
            ("Its root", short(last.root, 16)),
            ("Time stamp", stamped),
            ("Not yet under a signed head", f"{max(0, size - last.size):,} record(s)"),
        ]
    return dl(items)


def overview(ctx: Ctx) -> Page:
    node = ctx.node
    settings = node.settings
    hosted = [name for name, on in (("virtual social registry", node.vsr), ("vital-event service", node.events)) if on]
    directory_expired = node.federation is not None and node.federation.directory.status()["expired"]
    health = (
        notice("warn", el("p", "Degraded: the federation directory has expired; exchanges are refused."), role="status")
        if directory_expired
        else notice("ok", el("p", "The node is up and its directory is current."), role="status")
    )
    node_card = dl(
        [
            ("Name", settings.name),
            ("Instance", settings.instance),
            ("Subsystems hosted", len(node.catalog.subsystems)),
            ("Services", sum(len(s.services) for s in node.catalog.subsystems.values())),
            ("Agreements decide", "yes" if node.enforcement.pdp is not None else "no (allow lists)"),
            ("Consent registry", "yes" if node.consent is not None else "no"),
            ("Also hosts", ", ".join(hosted) or "nothing else"),
        ]
    )
    assert ctx.role is not None
    pages = [
        item for item in NAV if item.permission in GRANTS[ctx.role] and hosts(node, item.needs) and item.path != "/"
    ]
    role_card = el(
        "div",
        el("p", f"You are signed in as {ctx.role.label}. You may open:"),
        el("ul", *(el("li", el("a", item.label, href=ctx.url(item.path))) for item in pages)),
    )
    body = Html(
        health
        + el(
            "div",
            el("section", el("h2", "This gateway"), node_card, class_="card", aria_labelledby=None),
            el("section", el("h2", "Federation directory"), _directory(ctx), class_="card"),
            el("section", el("h2", "Exchange log"), _log(ctx), class_="card"),
            el("section", el("h2", "Your role"), role_card, class_="card"),
            class_="cards",
        )
    )
    return Page("Overview", body)


async def refresh(ctx: Ctx) -> Page:
    """Fetch the signed directory now (as the operator API's refresh does), and show the result."""
    fed = ctx.node.federation
    if fed is None:
        ctx.note.outcome = "not-federated"
        return Page("Directory refresh", notice("info", el("p", "This node is not in a federation."), role="status"))
    ok = await fed.directory.refresh()
    status = fed.directory.status()
    ctx.note.outcome = "ok" if ok else "failed"
    ctx.note.detail = f"serial {status['serial']}"
    message = (
        notice("ok", el("p", f"The directory was fetched and verified: serial {status['serial']}."), role="status")
        if ok
        else notice("error", el("p", f"The directory could not be refreshed: {status['last_error']}"), role="alert")
    )
    return Page("Directory refresh", Html(message + el("p", el("a", "Back to the overview", href=ctx.url("/")))))


ACTIONS = (
    Action("/", overview, Permission.OVERVIEW, "view overview"),
    Action(
        "/directory/refresh",
        refresh,
        Permission.DIRECTORY_REFRESH,
        "refresh directory",
        methods=("POST",),
        is_async=True,
    ),
)
