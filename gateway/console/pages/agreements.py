"""Agreements: what each client may ask of this node's services, for which purposes, receiving which fields."""

from __future__ import annotations

from datetime import UTC, datetime

import policies
from gateway.console.errors import BadInput
from gateway.console.html import Html, Option, button, dl, el, field, table
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _state(a: policies.Agreement, now: datetime) -> Html:
    if now < a.valid_from:
        return el("span", "not in force yet", class_="badge badge-warn")
    if now > a.valid_until:
        return el("span", "expired", class_="badge badge-bad")
    return el("span", "in force", class_="badge badge-ok")


def _agreement(a: policies.Agreement, now: datetime) -> Html:
    services = [
        [
            el("code", g.service),
            ", ".join(g.methods) if g.methods else "any",
            ", ".join(g.paths) if g.paths else "any",
            el("ul", *(el("li", el("code", f)) for f in g.fields)) if g.fields is not None else "the whole answer",
        ]
        for g in a.services
    ]
    facts = dl(
        [
            ("State", _state(a, now)),
            ("Provider", a.provider),
            ("Clients", el("ul", *(el("li", c) for c in a.clients))),
            ("Purposes", el("ul", *(el("li", p) for p in a.purposes))),
            ("Lawful basis", a.lawful_basis),
            ("Legal reference", a.legal_reference or "-"),
            ("Data categories", ", ".join(a.data_categories) or "-"),
            ("Valid", f"{_when(a.valid_from)} to {_when(a.valid_until)}"),
            ("Rate limit", str(a.rate_limit) if a.rate_limit else "none"),
        ]
    )
    return el(
        "article",
        el("h2", f"{a.title} ", el("span", f"({a.label})", class_="muted")),
        el("p", a.description) if a.description else "",
        facts,
        table(["Service", "Methods", "Paths", "Fields the client receives"], services, caption="Services it opens"),
        id=a.id,
        class_="card",
    )


def agreements(ctx: Ctx) -> Page:
    pdp = ctx.node.enforcement.pdp
    if pdp is None:
        rows = [[el("code", key), ", ".join(s.allow) or "nobody"] for key, s in ctx.node.settings.services.items()]
        body = Html(
            el("p", "This node has no data-sharing agreements: each service's allow list decides who may call it.")
            + table(["Service", "Allowed clients"], rows)
        )
        return Page("Agreements", body)
    every = pdp.agreements_for()
    clients = sorted({c for a in every for c in a.clients})
    chosen = ctx.query("client")
    if chosen and chosen not in clients:
        raise BadInput("choose a client from the list")
    fed = ctx.node.federation
    mine = fed.member if fed is not None else ctx.node.enforcement.controller
    scope = ctx.query("provider")
    if scope not in ("", "all"):
        raise BadInput("choose a provider from the list")
    shown = sorted(
        (
            a
            for a in every
            if (not chosen or chosen in a.clients) and (scope == "all" or mine is None or a.provider == mine)
        ),
        key=lambda a: (a.provider != mine, a.id),
    )
    ctx.note.detail = ", ".join(
        [f"client={chosen}"] * bool(chosen) + [f"provider={scope or 'this gateway'}", f"{len(shown)} shown"]
    )
    now = datetime.now(UTC)
    providers = [Option("", f"this gateway ({mine})"), Option("all", "every provider")] if mine else []
    choose = el(
        "form",
        el(
            "div",
            field("provider", "Provider", value=scope, options=providers) if providers else "",
            field(
                "client", "Client", value=chosen, options=[Option("", "every client")] + [Option(c, c) for c in clients]
            ),
            el("div", button("Show"), class_="field"),
            class_="filters",
        ),
        method="get",
        action=ctx.url("/agreements"),
        aria_label="Choose the agreements",
    )
    index = el(
        "ul",
        *(el("li", el("a", f"{a.label}: {a.title}", href=f"#{a.id}")) for a in shown),
        aria_label="Agreements on this page",
    )
    own = (
        f"Those whose provider is {mine} decide the exchanges this gateway answers (they are shown first); "
        if mine
        else ""
    )
    intro = el(
        "p",
        f"{len(every)} agreement(s) are loaded on this gateway (the highest version of each), {len(shown)} shown "
        f"here. {own}an exchange that no agreement covers is refused.",
        class_="lead",
    )
    return Page("Agreements", Html(intro + choose + index + "".join(_agreement(a, now) for a in shown)))


ACTIONS = (Action("/agreements", agreements, Permission.AGREEMENTS, "view agreements"),)
