"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, against the sandbox
federation on loopback. Each role signs in (by keyboard) and sees only what it may; an exchange is found
and opened; the log is verified; a subject report is printed; a consent is granted and withdrawn and the
next exchange is refused; the ministry's person look-up and oversight pages work. Every page passes basic
accessibility checks, and a screenshot of each is saved to test-artifacts/console/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

import consent
from sandbox import federation
from tests.gateway.console.conftest import ARTIFACTS, CHROMIUM, IN_CI, MSP, TAX, Federation

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev dependencies carry it
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

NAV: dict[str, list[str]] = {
    "dpo": [
        "Overview",
        "Exchanges",
        "Log integrity",
        "Subject report",
        "Consent",
        "Agreements",
        "Charts",
        "Person look-up",
        "Oversight",
        "Console trail",
    ],
    "auditor": ["Overview", "Exchanges", "Log integrity", "Agreements", "Charts", "Oversight", "Console trail"],
    "operator": ["Overview", "Log integrity", "Agreements", "Charts", "Oversight"],
}
PATHS = {
    "Exchanges": "/exchanges",
    "Log integrity": "/integrity",
    "Subject report": "/subjects",
    "Consent": "/consent",
    "Agreements": "/agreements",
    "Charts": "/charts",
    "Person look-up": "/persons",
    "Oversight": "/oversight",
    "Console trail": "/trail",
}

# Basic accessibility checks, run on every page: language, one h1, no skipped heading level, every
# control labelled and named, images described, charts as images with a title, a skip link to main,
# and a text contrast of at least 4.5:1 against the background actually behind the text.
A11Y = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("html has no lang");
  const h1 = document.querySelectorAll("h1");
  if (h1.length !== 1) problems.push(`${h1.length} h1 elements`);
  let last = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) problems.push(`heading skips from h${last} to h${level}: ${h.textContent}`);
    last = level;
  }
  for (const control of document.querySelectorAll("input, select, textarea")) {
    if (control.type === "hidden") continue;
    const label = (control.id && document.querySelector(`label[for="${control.id}"]`)) || control.closest("label")
      || control.getAttribute("aria-label") || control.getAttribute("aria-labelledby");
    if (!label) problems.push(`no label for ${control.name}`);
  }
  for (const named of document.querySelectorAll("a, button")) {
    if (!(named.textContent.trim() || named.getAttribute("aria-label"))) problems.push("a control without a name");
  }
  for (const img of document.querySelectorAll("img")) if (!img.getAttribute("alt")) problems.push("an img without alt");
  for (const svg of document.querySelectorAll("svg")) {
    if (svg.getAttribute("role") !== "img" || !svg.querySelector("title")) problems.push("an svg without role, title");
  }
  const skip = document.querySelector("a.skip");
  if (!skip || skip.getAttribute("href") !== "#main" || !document.getElementById("main")) problems.push("no skip link");
  const rgb = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(",").map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const behind = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode;
    const el = text.parentElement;
    if (!text.textContent.trim() || !el || seen.has(el) || el.closest("svg, option")) continue;
    seen.add(el);
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const fg = rgb(getComputedStyle(el).color);
    const bg = behind(el);
    const [a, b] = [lum(fg), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} for "${text.textContent.trim().slice(0, 40)}"`);
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"CI needs Debian's Chromium at {CHROMIUM} for the console's browser tests")
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def check(page: Page, name: str | None = None) -> None:
    """The accessibility checks pass; with a name, a full-page screenshot goes to test-artifacts/console/NAME.png."""
    problems = page.evaluate(A11Y)
    assert problems == [], f"{page.url}: {problems}"
    if name is not None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, fed: Federation, role: str, member: str = MSP) -> None:
    page.goto(fed.console(member) + "/sign-in")
    page.get_by_label("User name").fill(role)
    page.get_by_label("Password").fill(fed.password(role, member))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Overview")


def go(page: Page, link: str) -> None:
    page.get_by_role("navigation", name="Console pages").get_by_role("link", name=link, exact=True).click()


@pytest.mark.parametrize("role", ["dpo", "auditor", "operator"])
def test_each_role_signs_in_by_keyboard_and_sees_only_what_it_may(page: Page, fed: Federation, role: str) -> None:
    base = fed.console(MSP)
    response = page.goto(base + "/persons")  # a page first: the console asks to sign in, then comes back
    assert response is not None
    expect(page.locator("h1")).to_have_text("Sign in")
    check(page, "sign-in" if role == "dpo" else None)
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => ({cls: document.activeElement.className, outline: getComputedStyle(document.activeElement).outlineStyle,"
        " width: parseFloat(getComputedStyle(document.activeElement).outlineWidth)})"
    )
    assert focused["cls"] == "skip"  # the first stop is the skip link, and focus is visible
    assert focused["outline"] != "none"
    assert focused["width"] >= 2
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "f-username":
            break
    page.keyboard.type(role)
    page.keyboard.press("Tab")
    page.keyboard.type(fed.password(role))
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/**")
    # back where the sign-in interrupted: the look-up is a DPO's; the others are refused it
    expect(page.locator("h1")).to_have_text("Person look-up" if role == "dpo" else "Not for your role")
    go(page, "Overview")
    expect(page.locator("h1")).to_have_text("Overview")
    links = page.get_by_role("navigation", name="Console pages").get_by_role("link").all_inner_texts()
    assert links == NAV[role]
    expect(page.locator(".who")).to_contain_text(f"Signed in as {role}")
    check(page, f"overview-{role}")
    for label, path in PATHS.items():
        if label in NAV[role]:
            continue
        refused = page.goto(base + path)
        assert refused is not None
        assert refused.status == 403, (role, path)
        expect(page.locator("h1")).to_have_text("Not for your role")
    if role == "operator":
        check(page, "forbidden")
        page.goto(base + "/")
        page.get_by_role("button", name="Refresh the directory now").click()
        expect(page.get_by_role("status")).to_contain_text("The directory was fetched and verified")


def test_search_and_open_an_exchange(page: Page, fed: Federation) -> None:
    fed.sign_tree_head(TAX)  # so that the proofs are against a signed head
    sign_in(page, fed, "auditor", TAX)
    go(page, "Exchanges")
    expect(page.get_by_label("Data subject's identifier (optional)")).to_have_count(0)  # not for an auditor
    page.get_by_label("Purpose").select_option(federation.RESEARCH_PURPOSE)
    page.get_by_label("Outcome").select_option("refused")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/exchanges?*purpose=poverty-research-2026*")
    rows = page.locator("tbody tr")
    assert rows.count() >= 4
    assert set(page.locator("tbody td:nth-child(7)").all_inner_texts()) == {"AccessDenied"}
    check(page, "exchanges")
    rows.filter(has_text="consent_withdrawn").first.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("Exchange record")
    expect(page.get_by_text("the person withdrew hers")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Verified: this record, hashed now, is leaf")
    check(page, "exchange-refused")
    go(page, "Exchanges")
    page.get_by_label("Purpose").select_option(federation.RESEARCH_PURPOSE)
    page.get_by_label("Decision").select_option("allowed")
    page.get_by_role("button", name="Search").click()
    page.locator("tbody tr").first.get_by_role("link").click()
    expect(page.get_by_text("An agreement in force covers this client, service and purpose.")).to_be_visible()
    expect(page.get_by_text("ES256 detached JWS").first).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("of the signed tree head of size")
    check(page, "exchange")


def test_a_dpo_searches_by_subject_without_the_identifier_in_the_address(page: Page, fed: Federation) -> None:
    subject = fed.subjects()[1]
    sign_in(page, fed, "dpo", TAX)
    go(page, "Exchanges")
    page.get_by_label("Data subject's identifier (optional)").fill(subject)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("caption")).to_contain_text("about this person")
    assert subject not in page.url
    assert subject not in page.content()
    assert page.locator("tbody tr").count() >= 1
    check(page, "exchanges-by-subject")


def test_run_a_verification(page: Page, fed: Federation) -> None:
    fed.sign_tree_head(MSP)  # as the node does every 30 s in the sandbox
    sign_in(page, fed, "operator", MSP)
    go(page, "Log integrity")
    expect(page.get_by_role("table")).to_contain_text("time-stamped")
    check(page, "integrity")
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_role("status")).to_contain_text("The log verifies.")
    expect(page.get_by_role("status")).to_contain_text("Records checked")
    check(page, "integrity-verified")


def test_print_a_subject_report(page: Page, fed: Federation) -> None:
    subject = fed.subjects()[0]
    sign_in(page, fed, "dpo", TAX)
    go(page, "Subject report")
    check(page, "subject-form")
    page.get_by_label("The person's identifier (national ID)").fill(subject)
    page.get_by_role("button", name="Make the report").click()
    expect(page.locator("h1")).to_have_text("Who accessed this person's data")
    expect(page.locator(".report-id")).to_have_text(subject)
    expect(page.get_by_role("heading", name="ZZ/GOV/MSP, system research: 1 time(s)")).to_be_visible()
    assert subject not in page.url
    check(page, "subject-report")
    page.evaluate("() => { window.printed = 0; window.print = () => { window.printed += 1; }; }")
    page.get_by_role("button", name="Print this report").click()
    assert page.evaluate("() => window.printed") == 1
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation")).to_be_hidden()
    expect(page.get_by_role("button", name="Print this report")).to_be_hidden()
    expect(page.locator(".report-id")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "subject-report-print.png"), full_page=True)
    page.pdf(path=str(ARTIFACTS / "subject-report.pdf"), format="A4")


def test_withdraw_a_consent_and_the_next_exchange_is_refused(page: Page, fed: Federation) -> None:
    subject = fed.subjects()[4]  # a taxpayer without any consent yet
    assert fed.research(subject).json()["message"].startswith("consent_missing: ")
    sign_in(page, fed, "dpo", TAX)
    go(page, "Consent")
    check(page, "consent")
    page.get_by_label("Identifier of the person who gave her consent").fill(subject)
    page.get_by_label("Recipients").fill(federation.RESEARCH)
    page.get_by_label("Purposes").fill(federation.RESEARCH_PURPOSE)
    page.get_by_label("Data categories").fill("income")
    page.get_by_label("Valid until (the whole day, UTC)").fill((dt.date.today() + dt.timedelta(days=365)).isoformat())
    page.get_by_label("Privacy notice (address)").fill("https://msp.zz.example/research/poverty-2026/notice")
    page.get_by_role("button", name="Record the consent").click()
    expect(page.locator("h1")).to_have_text("Consent recorded")
    receipt = page.locator("#receipt").inner_text()
    claims = consent.verify_receipt(
        receipt, httpx.get(fed.gateway(TAX)["base_url"] + "/api/consent/receipt-key").content
    )
    assert claims["purposes"] == [federation.RESEARCH_PURPOSE]
    assert subject not in receipt
    assert subject not in page.content()
    check(page, "consent-receipt")
    assert fed.research(subject).status_code == 200  # the consent lets the study through

    go(page, "Consent")
    page.get_by_label("The person's identifier (national ID)").fill(subject)
    page.get_by_role("button", name="Show her consents").click()
    expect(page.locator("h1")).to_have_text("A person's consents")
    check(page, "consent-records")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Withdraw consent {claims['jti']}").click()
    expect(page.locator("h1")).to_have_text("Consent withdrawn")
    expect(page.get_by_text("withdrawn", exact=True).first).to_be_visible()
    expect(page.locator("article")).to_contain_text("by console:dpo")
    check(page, "consent-withdrawn")
    refused = fed.research(subject)  # the very next exchange
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("consent_withdrawn: ")


def test_agreements_and_charts(page: Page, fed: Federation) -> None:
    sign_in(page, fed, "auditor", TAX)
    go(page, "Agreements")
    check(page, "agreements")
    page.get_by_label("Client", exact=True).select_option(federation.RESEARCH)
    page.get_by_role("button", name="Show").click()
    articles = page.locator("article")
    assert articles.count() >= 1
    for text in articles.all_inner_texts():
        assert federation.RESEARCH in text
    expect(articles.first).to_contain_text("Fields the client receives")
    go(page, "Charts")
    figures = page.locator("figure")
    expect(figures).to_have_count(4)
    expect(page.get_by_role("img", name="Refusals by reason")).to_be_visible()
    expect(page.locator("figure", has_text="Refusals by reason")).to_contain_text("consent_withdrawn")
    expect(page.locator("figure", has_text="Exchanges per purpose")).to_contain_text(federation.RESEARCH_PURPOSE)
    check(page, "charts")


def test_person_look_up_on_the_ministry_node(page: Page, fed: Federation) -> None:
    sign_in(page, fed, "dpo", MSP)
    go(page, "Person look-up")
    check(page, "person-form")
    page.get_by_label("National ID").fill("9000000001")
    page.get_by_label("Programme").select_option("old-age-grant")
    page.get_by_role("button", name="Decide").click()
    expect(page.get_by_role("status").first).to_contain_text("Eligible: Old-age grant")
    expect(page.get_by_role("heading", name="The rules and how each came out")).to_be_visible()
    expect(page.locator("table").nth(1)).to_contain_text("ZZ/GOV/CRA/civreg/GetPersonByNationalId")
    check(page, "person-lookup")
    page.locator("main a[href*='issue=']").last.click()  # the exchanges this look-up made
    expect(page.locator("tbody")).to_contain_text("ZZ/GOV/MSP/vsr")
    # the registry's look-ups are ordinary exchanges, under the programme's purpose and the console user
    records = httpx.post(
        fed.gateway(MSP)["base_url"] + "/api/log/records/search",
        json={"client": federation.VSR, "limit": 1000},
        headers=fed.operator(MSP),
    ).json()["records"]
    mine = [r for r in records if r["user_id"] == "console:dpo"]
    assert mine
    assert {r["purpose"] for r in mine} == {"old-age-grant-eligibility"}
    assert all(r["outcome"] == "ok" for r in mine)


def test_no_registry_pages_where_there_is_no_registry(page: Page, fed: Federation) -> None:
    sign_in(page, fed, "dpo", TAX)
    links = page.get_by_role("navigation", name="Console pages").get_by_role("link").all_inner_texts()
    assert "Person look-up" not in links
    assert "Oversight" not in links
    answer = page.goto(fed.console(TAX) + "/persons")
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("h1")).to_have_text("Not on this gateway")


def test_oversight_results(page: Page, fed: Federation, oversight_job: str) -> None:
    sign_in(page, fed, "operator", MSP)
    go(page, "Oversight")
    expect(page.get_by_role("link", name=oversight_job)).to_be_visible()
    check(page, "oversight")
    page.get_by_role("link", name=oversight_job).click()
    expect(page.locator("h1")).to_have_text("Oversight: old-age-grant")
    for text in ("2026.1", "2026-06-30", "oversight-statistics", "ZZ/GOV/CRA/civreg", "D01"):
        expect(page.locator("dl")).to_contain_text(text)
    chart = page.get_by_role("img", name="Bar chart of old-age-grant by district")
    expect(chart).to_be_visible()
    assert page.evaluate("() => document.querySelector('main img').naturalWidth") > 100
    expect(page.get_by_role("heading", name="Grants received (active enrolments of living residents), per district"))
    expect(page.locator("table").first).to_contain_text("D01")
    check(page, "oversight-report")


def test_the_console_trail(page: Page, fed: Federation) -> None:
    sign_in(page, fed, "auditor", MSP)
    go(page, "Console trail")
    table = page.locator("tbody")
    expect(table).to_contain_text("sign-in")
    expect(table).to_contain_text("auditor")
    check(page, "trail")
    page.get_by_label("Action").select_option("sign-in")
    page.get_by_role("button", name="Show").click()
    assert set(page.locator("tbody td:nth-child(5)").all_inner_texts()) == {"sign-in"}
