"""Log integrity: the latest signed tree heads and their time stamps, and "verify now" with its result."""

from __future__ import annotations

import time

import jwt

from gateway.console.html import Html, button, dl, el, fmt_ms, notice, short, table
from gateway.console.queries import latest_heads
from gateway.console.roles import Permission
from gateway.console.web import Action, Ctx, Page
from gateway.exchangelog import SignedTreeHead, VerifyReport

HEADS_SHOWN = 20


def _stamp(sth: SignedTreeHead) -> Html:
    if sth.tsa_token:
        return el("span", "time-stamped", class_="badge badge-ok")
    if sth.tsa_error:
        return el("span", "no time stamp", class_="badge badge-warn", title=sth.tsa_error)
    return el("span", "no TSA", class_="badge")


def _key(sth: SignedTreeHead) -> Html:
    try:
        header = jwt.get_unverified_header(sth.jws)
    except jwt.PyJWTError:
        return el("span", "unreadable", class_="badge badge-bad")
    return short(str(header.get("x5t#S256", "-")), 12)


def _heads(ctx: Ctx) -> Html:
    log = ctx.node.log
    current = log.tree_head()
    newest, count = latest_heads(log, HEADS_SHOWN)
    rows = [[f"{h.size:,}", fmt_ms(h.timestamp), short(h.root, 16), _stamp(h), _key(h)] for h in newest]
    unsigned = current.size - (newest[0].size if newest else 0)
    summary = dl(
        [
            ("Records in the log", f"{current.size:,}"),
            ("Current root", short(current.root, 24)),
            ("Signed tree heads", f"{count:,}"),
            ("Newest records not yet under a signed head", f"{max(0, unsigned):,}"),
            (
                "Signed every",
                f"{ctx.node.settings.log.sign_interval_seconds:g} s"
                + (", time-stamped by " + ctx.node.settings.log.tsa_url if ctx.node.settings.log.tsa_url else ""),
            ),
        ]
    )
    return Html(
        summary
        + table(
            ["Size", "Signed at", "Root", "Time stamp", "Signer (certificate thumbprint)"],
            rows,
            caption=f"The {len(newest)} newest signed tree heads, newest first",
        )
    )


def _verify_form(ctx: Ctx) -> Html:
    if not ctx.may(Permission.VERIFY):
        return Html("")
    return ctx.post(
        "/integrity/verify",
        el(
            "p",
            "Recompute every record's leaf and the tree, and check every signed tree head's signature, "
            "time stamp and root against it.",
        ),
        button("Verify now", busy="Verifying the whole log…"),
        class_="noprint",
    )


def _report(report: VerifyReport, seconds: float) -> Html:
    facts = dl(
        [
            ("Records checked", f"{report.records:,}"),
            ("Signed tree heads checked", f"{report.tree_heads:,}"),
            ("Archived records (leaf hash only)", f"{report.archived:,}"),
            ("Newest records not yet under a signed head", f"{report.unsigned_tail:,}"),
            ("Took", f"{seconds:.2f} s"),
        ]
    )
    warnings = el("ul", *(el("li", w) for w in report.warnings)) if report.warnings else ""
    if report.ok:
        box = notice(
            "ok", el("p", el("strong", "The log verifies. "), report.summary()), facts, warnings, role="status"
        )
    else:
        box = notice(
            "error",
            el("p", el("strong", "The log does NOT verify. "), report.summary()),
            el("p", "Report this to the security officer and keep the database as it is (copy it, do not repair it)."),
            facts,
            role="alert",
        )
    return Html(el("section", el("h2", "Verification result"), box, aria_live="polite"))


def integrity(ctx: Ctx) -> Page:
    return Page("Log integrity", Html(_verify_form(ctx) + el("h2", "Tree heads") + _heads(ctx)))


def verify(ctx: Ctx) -> Page:
    started = time.perf_counter()
    report = ctx.node.log.verify()
    seconds = time.perf_counter() - started
    ctx.note.outcome = "ok" if report.ok else "failed"
    ctx.note.detail = report.summary()
    body = Html(_report(report, seconds) + _verify_form(ctx) + el("h2", "Tree heads") + _heads(ctx))
    return Page("Log integrity", body)


ACTIONS = (
    Action("/integrity", integrity, Permission.INTEGRITY, "view integrity"),
    Action("/integrity/verify", verify, Permission.VERIFY, "verify log", methods=("POST",)),
)
