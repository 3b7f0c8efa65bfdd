"""Consent: a person's consent records, a new consent recorded with its signed receipt, a withdrawal.

The identifier travels by POST only and is hashed by the consent store; records carry the hash and
a masked hint. Grants and withdrawals name the console user as the actor in the record's history, and
the console trail keeps the record id and the subject's keyed hash.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

import consent
from consent.model import iso
from gateway.console.errors import BadInput, ConsoleError, NotFound
from gateway.console.html import Html, dl, el, field, hidden, notice, table
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page

MAX_SUBJECT = 64
_RECORD_ID = re.compile(r"[0-9a-fA-F-]{36}")
_SPLIT = re.compile(r"[\s,;]+")


def _store(ctx: Ctx) -> consent.ConsentStore:
    store = ctx.node.consent
    assert store is not None  # the route needs a consent registry (checked before the page runs)
    return store


def _failure(exc: consent.ConsentError) -> ConsoleError:
    """The store's messages name the field and never echo a value; a missing record is a 404."""
    if isinstance(exc, consent.ConsentNotFound):
        return NotFound("no such consent record")
    return BadInput(str(exc))


def _badge(state: str) -> Html:
    kind = {"active": "badge-ok", "withdrawn": "badge-bad", "expired": "badge-warn"}.get(state, "")
    return el("span", state, class_=f"badge {kind}")


def _consent_agreements(ctx: Ctx) -> tuple[list[str], list[str], list[str]]:
    """Recipients, purposes and data categories of this node's consent-based agreements (the form's hints)."""
    pdp = ctx.node.enforcement.pdp
    agreements = [a for a in (pdp.agreements_for() if pdp else []) if a.lawful_basis == consent.LAWFUL_BASIS_CONSENT]
    recipients = sorted({c for a in agreements for c in a.clients})
    purposes = sorted({p for a in agreements for p in a.purposes})
    categories = sorted({c for a in agreements for c in a.data_categories})
    return recipients, purposes, categories


def _record(ctx: Ctx, record: consent.ConsentRecord, *, withdraw: bool) -> Html:
    state = record.state()
    events = el(
        "ul",
        *(
            el("li", f"{ev.type} {ev.time.strftime('%Y-%m-%d %H:%M:%S UTC')} by {ev.actor or '-'}")
            for ev in record.events
        ),
    )
    parts: list[object] = [
        el("h2", "Consent record ", el("code", record.record_id)),
        dl(
            [
                ("State", _badge(state)),
                ("Person", f"hint {record.subject_hint} (the identifier itself is not kept)"),
                ("Controller", record.controller),
                ("Recipients", ", ".join(record.recipients)),
                ("Purposes", ", ".join(record.purposes)),
                ("Data categories", ", ".join(record.data_categories)),
                ("Valid", f"{iso(record.valid_from)} to {iso(record.valid_until)}"),
                ("Privacy notice", record.privacy_notice or "-"),
                ("History", events),
            ]
        ),
    ]
    if withdraw and state in ("active", "pending"):
        parts.append(
            ctx.post(
                "/consent/withdraw",
                hidden("record_id", record.record_id),
                el(
                    "button",
                    "Withdraw this consent",
                    type="submit",
                    class_="button button-danger",
                    aria_label=f"Withdraw consent {record.record_id}",
                ),
                data_confirm="Withdraw this consent? Exchanges that rely on it are refused from now on.",
                class_="noprint",
            )
        )
    return el("article", *parts, class_="card")


def page(ctx: Ctx) -> Page:
    recipients, purposes, categories = _consent_agreements(ctx)
    lookup = ctx.post(
        "/consent/records",
        field("subject", "The person's identifier (national ID)", required=True, autocomplete="off"),
        el("button", "Show her consents", type="submit", class_="button button-primary"),
    )
    grant = ctx.post(
        "/consent/grant",
        field("g-subject", "Identifier of the person who gave her consent", required=True, autocomplete="off"),
        field(
            "recipients",
            "Recipients",
            required=True,
            list_id="dl-recipients",
            value=recipients[0] if len(recipients) == 1 else "",
            hint="Client subsystems (or members) that may receive the data; separate several with commas.",
        ),
        field(
            "purposes",
            "Purposes",
            required=True,
            list_id="dl-purposes",
            value=purposes[0] if len(purposes) == 1 else "",
        ),
        field(
            "categories",
            "Data categories",
            required=True,
            list_id="dl-categories",
            value=", ".join(categories) if len(categories) == 1 else "",
        ),
        field("valid_until", "Valid until (the whole day, UTC)", kind="date", required=True),
        field("notice", "Privacy notice (address)", kind="url", hint="Where the person can read what she agreed to."),
        el("datalist", *(el("option", value=v) for v in recipients), id="dl-recipients"),
        el("datalist", *(el("option", value=v) for v in purposes), id="dl-purposes"),
        el("datalist", *(el("option", value=v) for v in categories), id="dl-categories"),
        el("button", "Record the consent", type="submit", class_="button button-primary", data_busy="Recording…"),
    )
    intro = el(
        "p",
        "Where an agreement's lawful basis is consent, this gateway lets an exchange through only while the "
        "person's consent covers the recipient, the purpose and the data. A withdrawal takes effect at the next "
        "exchange.",
        class_="lead",
    )
    body = Html(
        intro
        + el("section", el("h2", "A person's consents"), lookup)
        + el("section", el("h2", "Record a consent the person has given"), grant)
    )
    return Page("Consent", body)


def records(ctx: Ctx) -> Page:
    subject = ctx.value("subject", max_len=MAX_SUBJECT, required=True, label="the identifier")
    ctx.note.subject_hash = ctx.node.subject_hash(subject)
    found = _store(ctx).list_by_subject(subject)
    ctx.note.detail = f"{len(found)} record(s)"
    if not found:
        body = notice("info", el("p", "No consent of this person is on record at this gateway."), role="status")
    else:
        body = Html(
            el("p", f"{len(found)} consent record(s), newest first.", role="status")
            + "".join(_record(ctx, r, withdraw=True) for r in found)
        )
    back = el("p", el("a", "← Back to consent", href=ctx.url("/consent")), class_="noprint")
    return Page("A person's consents", Html(back + body))


def _claim(name: str, value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if name in ("iat", "consentTimestamp") and isinstance(value, int):
        return f"{value} ({datetime.fromtimestamp(value, UTC).strftime('%Y-%m-%d %H:%M:%S UTC')})"
    return str(value)


def _day(text: str, label: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{label} must be a date like 2027-12-31") from None


def _items(text: str) -> list[str]:
    return [item for item in _SPLIT.split(text) if item]


def grant(ctx: Ctx) -> Page:
    subject = ctx.value("g-subject", max_len=MAX_SUBJECT, required=True, label="the identifier")
    until = _day(ctx.value("valid_until", required=True, label="valid until"), "valid until")
    store = _store(ctx)
    ctx.note.subject_hash = ctx.node.subject_hash(subject)
    controller = ctx.node.enforcement.controller
    if controller is None:
        raise BadInput(
            "this gateway has no controller to record consents for (federation.member or consent.controller)"
        )
    try:
        record = store.grant(
            subject_id=subject,
            controller=controller,
            recipients=_items(ctx.value("recipients", max_len=2000, required=True, label="recipients")),
            purposes=_items(ctx.value("purposes", max_len=2000, required=True, label="purposes")),
            data_categories=_items(ctx.value("categories", max_len=2000, required=True, label="data categories")),
            valid_until=datetime.combine(until, time(23, 59, 59), tzinfo=UTC),
            privacy_notice=ctx.value("notice", max_len=2048),
            actor=f"console:{ctx.user}",
        )
    except consent.ConsentError as exc:
        raise _failure(exc) from None
    ctx.note.target = f"consent {record.record_id}"
    receipts = ctx.node.receipts
    if receipts is None:
        receipt = notice("warn", el("p", "This gateway signs no receipts (no receipt key is configured)."))
    else:
        token = receipts.receipt(record)
        claims = consent.verify_receipt(token, receipts.public_key_pem())
        receipt = Html(
            notice(
                "ok",
                el("p", "The receipt below is signed by ", el("strong", receipts.issuer), " (ES256) and verified now."),
                el("p", "Anyone can check it offline with the key this gateway publishes at /api/consent/receipt-key."),
            )
            + table(
                ["Claim", "Value"],
                [[k, _claim(k, v)] for k, v in claims.items()],
                caption="What the receipt states",
            )
            + el("h3", "The receipt (a signed JWT)")
            + el("pre", token, id="receipt", aria_label="Consent receipt")
        )
    body = Html(
        notice("ok", el("p", "The consent is recorded and in force."), role="status")
        + _record(ctx, record, withdraw=True)
        + el("h2", "Consent receipt")
        + receipt
        + el("p", el("a", "← Back to consent", href=ctx.url("/consent")), class_="noprint")
    )
    return Page("Consent recorded", body)


def withdraw(ctx: Ctx) -> Page:
    record_id = ctx.value("record_id", max_len=64, required=True, label="the record")
    if not _RECORD_ID.fullmatch(record_id):
        raise NotFound("no such consent record")
    try:
        record = _store(ctx).withdraw(record_id, actor=f"console:{ctx.user}")
    except consent.ConsentError as exc:
        raise _failure(exc) from None
    ctx.note.target = f"consent {record.record_id}"
    ctx.note.subject_hash = record.subject_hash  # the store hashes with the node's secret, as the log does
    when = record.withdrawn_at.strftime("%Y-%m-%d %H:%M:%S UTC") if record.withdrawn_at else "-"
    body = Html(
        notice(
            "ok",
            el("p", el("strong", "The consent is withdrawn"), f" (at {when})."),
            el("p", "From the next exchange on, every exchange that relied on it is refused (consent_withdrawn)."),
            role="status",
        )
        + _record(ctx, record, withdraw=False)
        + el("p", el("a", "← Back to consent", href=ctx.url("/consent")), class_="noprint")
    )
    return Page("Consent withdrawn", body)


def one(ctx: Ctx) -> Page:
    record_id = str(ctx.request.path_params.get("record_id", ""))
    if not _RECORD_ID.fullmatch(record_id):
        raise NotFound("no such consent record")
    try:
        record = _store(ctx).get(record_id)
    except consent.ConsentError as exc:
        raise _failure(exc) from None
    ctx.note.target = f"consent {record_id}"
    return Page("Consent record", Html(_record(ctx, record, withdraw=True)))


ACTIONS = (
    Action("/consent", page, Permission.CONSENT, "open consent", needs="consent"),
    Action("/consent/records", records, Permission.CONSENT, "consent records", methods=("POST",), needs="consent"),
    Action("/consent/grant", grant, Permission.CONSENT, "consent grant", methods=("POST",), needs="consent"),
    Action("/consent/withdraw", withdraw, Permission.CONSENT, "consent withdraw", methods=("POST",), needs="consent"),
    Action("/consent/records/{record_id}", one, Permission.CONSENT, "view consent", needs="consent"),
)
