"""Person look-up (the ministry's node): the registry's eligibility decision for one person, with its reasons
and the facts behind it, each with its provenance.

The registry runs in this process and asks the agencies through the exchange layer as always: under
the programme's eligibility purpose, with the console user as the end user (`X-Road-UserId`
`console:NAME`) and a look-up id as `X-Road-Issue`, so every source exchange is an ordinary logged,
policy-checked exchange a DPO can follow from the console trail.
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway.console.errors import BadInput, ConsoleError, NotFound, NotHosted, SourceFailed
from gateway.console.html import Html, Option, dl, el, field, notice, table
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page
from gateway.vsr import CallContext, Programme, QueryError, RulesError, VsrError, VsrService
from gateway.vsr import SourceFailed as VsrSourceFailed

OUTCOMES = {
    "eligible": ("ok", "Eligible"),
    "not_eligible": ("error", "Not eligible"),
    "undetermined": ("warn", "Undetermined: a fact the rules need is missing"),
}
STATUS = {"met": ("badge-ok", "met"), "not_met": ("badge-bad", "not met"), "unknown": ("badge-warn", "unknown")}


def _vsr(ctx: Ctx) -> VsrService:
    vsr = ctx.node.vsr
    if vsr is None:
        raise NotHosted("this gateway does not host the virtual social registry")
    return vsr


def _programmes(vsr: VsrService) -> list[Programme]:
    registry = vsr.registry
    out = []
    for name in registry.rules.programmes():
        try:
            out.append(registry.programme(name))
        except VsrError:  # no version in force today
            continue
    return out


def _form(ctx: Ctx, vsr: VsrService, chosen: str = "") -> Html:
    options = [Option(p.programme, f"{p.title} (rules {p.version})") for p in _programmes(vsr)]
    return ctx.post(
        "/persons",
        el(
            "div",
            field("national_id", "National ID", required=True, autocomplete="off", inputmode="numeric"),
            field("programme", "Programme", value=chosen, options=options),
            el(
                "div",
                el("button", "Decide", type="submit", class_="button button-primary", data_busy="Asking the agencies…"),
                class_="field",
            ),
            class_="filters",
        ),
    )


def form(ctx: Ctx) -> Page:
    vsr = _vsr(ctx)
    intro = el(
        "p",
        "Ask the virtual social registry whether a person is eligible for a programme, and why. The registry asks "
        "the agencies now, through the exchange layer, under the programme's purpose and in your name.",
        class_="lead",
    )
    return Page("Person look-up", Html(intro + _form(ctx, vsr)))


def _provenance(items: list[dict[str, Any]]) -> Html:
    if not items:
        return Html("-")
    return el(
        "ul",
        *(
            el("li", p.get("source", "-"), " ", el("code", p.get("exchange_id", "-")), f" at {p.get('time', '-')}")
            for p in items
        ),
    )


def _value(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _failure(exc: VsrError) -> ConsoleError:
    if isinstance(exc, VsrSourceFailed):
        return SourceFailed(f"{exc.service} did not answer ({exc.code}); try again later")
    if isinstance(exc, RulesError):
        return NotFound(str(exc))
    if isinstance(exc, QueryError):
        return BadInput(str(exc))
    return BadInput(str(exc))


async def lookup(ctx: Ctx) -> Page:
    vsr = _vsr(ctx)
    national_id = ctx.value("national_id", max_len=20, required=True, label="the national ID")
    name = ctx.value("programme", max_len=128, required=True, label="the programme")
    known = {p.programme: p for p in _programmes(vsr)}
    programme = known.get(name)
    if programme is None:
        raise BadInput("choose a programme from the list")
    if not (national_id.isdigit() and 6 <= len(national_id) <= 20):
        raise BadInput("a national ID is 6 to 20 digits")
    issue = str(uuid.uuid4())
    ctx.note.subject_hash = ctx.node.subject_hash(national_id)
    ctx.note.target = f"look-up {issue}"
    call = CallContext(purpose=programme.purpose, user_id=f"console:{ctx.user}", issue=issue)
    try:
        answer = await vsr.registry.eligibility({"national_id": national_id}, programme.programme, call)
    except VsrError as exc:
        raise _failure(exc) from None
    result = answer.as_dict()
    decision = result["decision"]
    ctx.note.detail = f"{programme.programme} {programme.version}: {decision['outcome']}"
    kind, label = OUTCOMES.get(decision["outcome"], ("info", decision["outcome"]))
    person = result.get("person") or {}
    names = person.get("name") or {}
    identity = result["identity"]
    who = dl(
        [
            ("Identified", f"{identity['status']} ({identity['method']})"),
            ("Name", " ".join(str(names[k]) for k in ("given_name", "second_name", "surname") if names.get(k)) or "-"),
            ("Born", person.get("birth_date") or person.get("birth_year") or "-"),
            ("Civil status", person.get("status") or "-"),
            ("District", (person.get("address") or {}).get("district") or "-"),
        ]
    )
    rules = [
        [
            r["requirement"],
            el(
                "span",
                STATUS.get(r["status"], ("", r["status"]))[1],
                class_=f"badge {STATUS.get(r['status'], ('', ''))[0]}",
            ),
            r["explanation"],
        ]
        for r in decision["rules"]
    ]
    facts = [
        [el("code", f["name"]), _value(f["value"]), _provenance(f.get("provenance") or []), f.get("note") or ""]
        for f in decision["facts_used"]
    ]
    sources = [
        [
            s.get("source", "-"),
            el("code", s.get("service", "-")),
            s.get("status", "-"),
            len(s.get("exchange_ids") or []),
        ]
        for s in result["sources"]
    ]
    partial = (
        notice("warn", el("p", "A source did not answer: " + ", ".join(result["missing_sources"])), role="status")
        if result["missing_sources"]
        else ""
    )
    body = Html(
        notice(
            kind,
            el(
                "p",
                el("strong", f"{label}: {decision['title']}"),
                f" (rules version {decision['version']}, decided on {decision['decided_on']})",
            ),
            el("p", decision["explanation"]),
            role="status",
        )
        + partial
        + el("h2", "Who")
        + who
        + el("h2", "The rules and how each came out")
        + table(["Requirement", "Status", "Why"], rules)
        + el("h2", "Facts used, and where each came from")
        + table(["Fact", "Value", "Provenance (service, exchange id, time)", "Note"], facts)
        + el("h2", "Sources asked")
        + table(["Source", "Service", "Status", "Exchanges"], sources)
        + el(
            "p",
            "These look-ups are in the exchange log under your name (",
            el("code", f"console:{ctx.user}"),
            ") and this look-up's id: ",
            el("a", issue, href=ctx.url(f"/exchanges?issue={issue}")),
            ".",
        )
        + el("h2", "Another look-up")
        + _form(ctx, vsr, programme.programme)
    )
    return Page("Person look-up", body)


ACTIONS = (
    Action("/persons", form, Permission.PERSON_LOOKUP, "open person look-up", needs="vsr"),
    Action(
        "/persons", lookup, Permission.PERSON_LOOKUP, "person look-up", methods=("POST",), needs="vsr", is_async=True
    ),
)
