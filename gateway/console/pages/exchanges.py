"""Exchanges: search the log (subject, client, service, purpose, decision, outcome, time) and open one
exchange with its decision and reasons, its signatures and its inclusion proof against a signed tree head.

Filters other than the subject travel in the query string (they are not personal). A subject's
identifier is typed by a DPO, sent by POST, hashed with the node's secret at once and never shown,
logged or put in a link; the trail keeps the hash.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt

from gateway.console.errors import BadInput, Forbidden, NotFound
from gateway.console.html import Html, Option, button, dl, e, el, field, fmt_ms, notice, short, table
from gateway.console.queries import ExchangeFilter, Outcome, latest_heads, record, search
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page, keep_hidden, outcome_badge, paging
from gateway.exchangelog import LogRecord, SignedTreeHead
from gateway.exchangelog.merkle import leaf_hash, verify_inclusion

PAGE = 50
SUBJECT_LIMIT = 200
MAX_SUBJECT = 64
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

#: Why the policy decided as it did, in words (the log keeps the code).
REASONS: dict[str, str] = {
    "allowed": "An agreement in force covers this client, service and purpose.",
    "no_agreement": "No agreement lets this client call this service.",
    "purpose_not_allowed": "An agreement covers this client and service, but not this purpose.",
    "agreement_expired": "The agreement that would cover this exchange has expired.",
    "agreement_not_yet_valid": "The agreement that would cover this exchange is not in force yet.",
    "method_not_allowed": "The agreement does not open this method or path of the service.",
    "forbidden": "A federation-wide rule forbids this exchange.",
    "rate_limited": "The client went over the agreement's rate limit.",
    "consent_missing": "The agreement's basis is consent, and no consent of this person in force is on record.",
    "consent_withdrawn": "The agreement's basis is consent, and the person withdrew hers.",
    "consent_expired": "The agreement's basis is consent, and the person's consent has expired.",
    "consent_does_not_cover": "The person's consent does not cover this recipient, purpose or data.",
}


def reason_text(decision: str | None, outcome: str) -> str:
    if decision is None:
        if outcome == "ok":
            return "No policy decision on this side: the client side of an exchange is decided by the provider."
        return "The exchange failed before or without a policy decision."
    return REASONS.get(decision, "A decision code this console does not describe yet.")


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"the {name} date must look like 2026-05-31") from None


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _filters(ctx: Ctx, values: dict[str, str]) -> ExchangeFilter:
    """Check each filter against what the log holds (a value typed into the wrong box is refused, not echoed)."""
    known = ctx.console.known.get()
    for name in ("client", "service", "purpose", "decision"):
        if values[name] and values[name] not in known[name]:
            raise BadInput(f"choose a {name} from the list")
    if values["outcome"] not in ("", "ok", "refused"):
        raise BadInput("choose an outcome from the list")
    if values["issue"] and not _UUID.fullmatch(values["issue"]):
        raise BadInput("the cause (X-Road-Issue) filter takes an exchange id")
    since, until = _day(values["since"], "from"), _day(values["until"], "to")
    outcome: Outcome | None = "ok" if values["outcome"] == "ok" else "refused" if values["outcome"] else None
    return ExchangeFilter(
        client=values["client"] or None,
        service=values["service"] or None,
        purpose=values["purpose"] or None,
        decision=values["decision"] or None,
        outcome=outcome,
        issue=values["issue"] or None,
        since_ms=_ms(since) if since else None,
        until_ms=_ms(until + timedelta(days=1)) if until else None,
    )


FILTER_NAMES = ("client", "service", "purpose", "decision", "outcome", "since", "until", "issue")


def _form(ctx: Ctx, values: dict[str, str], *, subject_allowed: bool) -> Html:
    known = ctx.console.known.get()

    def choose(name: str, label: str) -> Html:
        options = [Option("", "any")] + [Option(v, v) for v in known[name]]
        return field(name, label, value=values[name], options=options)

    fields = [
        choose("client", "Client (who asked)"),
        choose("service", "Service"),
        choose("purpose", "Purpose"),
        choose("decision", "Decision"),
        field(
            "outcome",
            "Outcome",
            value=values["outcome"],
            options=[Option("", "any"), Option("ok", "answered"), Option("refused", "refused or failed")],
        ),
        field("since", "From (UTC day)", kind="date", value=values["since"]),
        field("until", "To (UTC day, included)", kind="date", value=values["until"]),
    ]
    search_button = el("div", button("Search", busy="Searching…"), class_="field")
    if not subject_allowed:
        return el(
            "form",
            el("div", *fields, keep_hidden({"issue": values["issue"]}), search_button, class_="filters"),
            method="get",
            action=ctx.url("/exchanges"),
            role="search",
            aria_label="Search the exchange log",
        )
    subject = field(
        "subject",
        "Data subject's identifier (optional)",
        autocomplete="off",
        hint="Hashed with this node's secret at once; it is never shown, stored or logged.",
    )
    return ctx.post(
        "/exchanges",
        el("div", subject, *fields, keep_hidden({"issue": values["issue"]}), search_button, class_="filters"),
        role="search",
        aria_label="Search the exchange log",
    )


def _rows(ctx: Ctx, rows: list[tuple[int, LogRecord]]) -> list[list[object]]:
    return [
        [
            el("a", fmt_ms(r.request_in_ts).removesuffix(" UTC"), href=ctx.url(f"/exchanges/{i}")),
            r.side,
            r.client or "-",
            r.service or "-",
            r.purpose or "-",
            r.decision or "-",
            outcome_badge(r.outcome),
        ]
        for i, r in rows
    ]


def _results(ctx: Ctx, rows: list[tuple[int, LogRecord]], caption: str) -> Html:
    headers = ["Time (UTC)", "Side", "Client", "Service", "Purpose", "Decision", "Outcome"]
    return table(headers, _rows(ctx, rows), caption=caption, class_="records")


def _describe(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={values[k]}" for k in FILTER_NAMES if values[k]) or "no filter"


def exchanges(ctx: Ctx) -> Page:
    """The search form and, for GET, the newest matching exchanges."""
    values = {name: ctx.query(name) for name in FILTER_NAMES}
    try:
        offset = max(0, int(ctx.query("offset") or 0))
    except ValueError:
        raise BadInput("offset must be a number") from None
    f = _filters(ctx, values)
    rows = search(ctx.node.log, f, limit=PAGE, offset=offset)
    ctx.note.detail = f"{_describe(values)}; {len(rows)} shown"
    cause = (
        notice(
            "info",
            el("p", "Only the exchanges caused by ", el("code", values["issue"]), " (X-Road-Issue). "),
            el("p", el("a", "Show all exchanges", href=ctx.url("/exchanges"))),
            role="status",
        )
        if values["issue"]
        else ""
    )
    body = Html(
        _form(ctx, values, subject_allowed=ctx.may(Permission.SUBJECT_SEARCH))
        + cause
        + _results(ctx, rows, f"Newest first: {len(rows)} exchange record(s) from {offset + 1 if rows else 0}")
        + paging(ctx, shown=len(rows), limit=PAGE, offset=offset, path="/exchanges", keep=values)
    )
    return Page("Exchanges", body)


def subject_search(ctx: Ctx) -> Page:
    """The same search by POST, where a DPO may add a person's identifier (hashed here, never echoed)."""
    values = {name: ctx.value(name) for name in FILTER_NAMES}
    subject = ctx.value("subject", max_len=MAX_SUBJECT, label="the identifier")
    f = _filters(ctx, values)
    if subject:
        if not ctx.may(Permission.SUBJECT_SEARCH):
            raise Forbidden("searching by a person's identifier is for data protection officers")
        hashed = ctx.node.subject_hash(subject)
        ctx.note.subject_hash = hashed
        f = dataclasses.replace(f, subject_hash=hashed)
    rows = search(ctx.node.log, f, limit=SUBJECT_LIMIT)
    ctx.note.detail = f"{_describe(values)}{', by subject' if subject else ''}; {len(rows)} shown"
    caption = f"Newest first: {len(rows)} exchange record(s)" + (" about this person" if subject else "")
    more = (
        notice("info", el("p", f"Only the newest {SUBJECT_LIMIT} are shown: narrow the filters."))
        if len(rows) == SUBJECT_LIMIT
        else ""
    )
    return Page("Exchanges", Html(_form(ctx, values, subject_allowed=True) + more + _results(ctx, rows, caption)))


def _signature(value: str | None) -> Html:
    if not value:
        return e("none (this side of the exchange carries no signature)")
    try:
        header: dict[str, Any] = jwt.get_unverified_header(value)
    except jwt.PyJWTError:
        return el("span", "present, but not a readable JWS", class_="badge badge-bad")
    return Html(
        el("span", f"{header.get('alg', '?')} detached JWS", class_="badge badge-ok")
        + " key id "
        + short(str(header.get("kid", "-")), 16)
        + el("details", el("summary", "The signature"), el("pre", value))
    )


def _proof(ctx: Ctx, index: int, r: LogRecord) -> Html:
    log = ctx.node.log
    computed = leaf_hash(r.canonical()).hex()
    stored = log.leaf_hash_at(index)
    newest, _ = latest_heads(log, 1)  # sizes only grow: the newest head covers the record if any does
    head: SignedTreeHead | None = newest[0] if newest and newest[0].size > index else None
    if head is not None:
        size, root = head.size, head.root
        against = f"the signed tree head of size {head.size:,}, signed {fmt_ms(head.timestamp)}"
        against += ", time-stamped" if head.tsa_token else ", not time-stamped"
    else:
        current = log.tree_head()
        size, root = current.size, current.root
        against = f"the current tree head of size {size:,} (no signed head covers this record yet)"
    proof = log.inclusion_proof(index, size)
    included = computed == stored and verify_inclusion(
        bytes.fromhex(computed), index, size, [bytes.fromhex(p) for p in proof], bytes.fromhex(root)
    )
    verdict = (
        notice("ok", el("p", f"Verified: this record, hashed now, is leaf {index} of {against}."), role="status")
        if included
        else notice(
            "error", el("p", f"NOT verified against {against}: report this to the security officer."), role="alert"
        )
    )
    return Html(
        verdict
        + dl(
            [
                ("Leaf hash (recomputed)", short(computed, 24)),
                ("Leaf hash (stored)", short(stored, 24)),
                ("Tree size", f"{size:,}"),
                ("Root", short(root, 24)),
                ("Audit path", f"{len(proof)} hash(es)"),
            ]
        )
        + el(
            "details",
            el("summary", "The audit path (RFC 9162)"),
            el("ol", *(el("li", el("code", p)) for p in proof)),
        )
    )


def exchange(ctx: Ctx) -> Page:
    raw = str(ctx.request.path_params.get("index", ""))
    if not raw.isdigit() or len(raw) > 15:
        raise NotFound("no such exchange record")
    index = int(raw)
    r = record(ctx.node.log, index)
    if r is None:
        raise NotFound(f"this log has no record {index}")
    ctx.note.target = f"record {index}"
    ctx.note.subject_hash = r.subject_hash
    agreement = f"{r.agreement_id} v{r.agreement_version}" if r.agreement_id else "-"
    what = dl(
        [
            ("Exchange id", el("code", r.exchange_id)),
            ("Time", f"request in {fmt_ms(r.request_in_ts)}; answered {fmt_ms(r.response_out_ts)}"),
            (
                "Side",
                f"{r.side} ({'this gateway asked for its client' if r.side == 'Client' else 'this gateway answered'})",
            ),
            ("Protocol", f"{r.protocol}{' ' + r.method if r.method else ''}"),
            ("Client", r.client or "-"),
            ("Service", r.service or "-"),
            ("Purpose", r.purpose or "-"),
            ("End user", r.user_id or "-"),
            (
                "Data subject",
                el("span", "recorded as a keyed hash ", short(r.subject_hash)) if r.subject_hash else "none recorded",
            ),
            (
                "Caused by",
                el("a", r.issue, href=ctx.url(f"/exchanges?issue={r.issue}"))
                if r.issue and _UUID.fullmatch(r.issue)
                else r.issue or "-",
            ),
        ]
    )
    decision = dl(
        [
            ("Decision", el("strong", r.decision or "none on this side")),
            ("Why", reason_text(r.decision, r.outcome)),
            (
                "Agreement",
                el("a", agreement, href=ctx.url(f"/agreements?provider=all#{r.agreement_id}"))
                if r.agreement_id
                else "-",
            ),
            ("Lawful basis", r.lawful_basis or "-"),
            ("Consent record", el("code", r.consent_record) if r.consent_record else "-"),
            ("Outcome", Html(outcome_badge(r.outcome) + f" HTTP {r.status_code or '-'}")),
            ("Fault", r.fault_code or "-"),
        ]
    )
    signatures = dl(
        [
            ("Request digest", short(r.request_digest, 24)),
            ("Request signature", _signature(r.request_signature)),
            ("Response digest", short(r.response_digest, 24)),
            ("Response signature", _signature(r.response_signature)),
        ]
    )
    caused = search(ctx.node.log, ExchangeFilter(issue=r.exchange_id), limit=50)
    body = Html(
        el("p", el("a", "← Back to the search", href=ctx.url("/exchanges")), class_="noprint")
        + el("section", el("h2", "What happened"), what)
        + el("section", el("h2", "Decision and its reasons"), decision)
        + el("section", el("h2", "Signatures"), signatures)
        + el("section", el("h2", "Inclusion proof"), _proof(ctx, index, r))
        + (
            el("section", el("h2", "Exchanges this one caused"), _results(ctx, caused, "Look-ups it made"))
            if caused
            else ""
        )
    )
    return Page(f"Exchange record {index}", body)


ACTIONS = (
    Action("/exchanges", exchanges, Permission.EXCHANGES, "search exchanges"),
    Action("/exchanges", subject_search, Permission.EXCHANGES, "search exchanges", methods=("POST",)),
    Action("/exchanges/{index}", exchange, Permission.EXCHANGES, "view exchange"),
)
