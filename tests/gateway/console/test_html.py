"""Markup: every value escaped unless already markup; forms carry their token; charts are described images."""

from __future__ import annotations

from gateway.console.html import Html, Option, e, el, field, form, table
from gateway.console.static import ASSETS
from gateway.console.svg import bars, columns


def test_values_are_escaped_and_markup_is_kept() -> None:
    hostile = '<script>alert("x")</script>'
    built = el("p", hostile, el("strong", "kept"), title=hostile)
    assert "<script>" not in built
    assert "&lt;script&gt;" in built
    assert 'title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in built
    assert "<strong>kept</strong>" in built
    assert e(Html("<b>ok</b>")) == "<b>ok</b>"
    assert e(None) == ""
    assert el("input", name="q", required=True, disabled=False, list=None) == '<input name="q" required>'
    assert el("label", "Name", for_="f-name", class_="x", aria_label="y") == (
        '<label for="f-name" class="x" aria-label="y">Name</label>'
    )


def test_fields_are_labelled_and_hinted() -> None:
    html = field("purpose", "Purpose", hint="why", options=[Option("", "any"), Option("a&b", "A")], value="a&b")
    assert '<label for="f-purpose">Purpose</label>' in html
    assert 'aria-describedby="f-purpose-hint"' in html
    assert '<option value="a&amp;b" selected>A</option>' in html


def test_post_forms_carry_the_token_and_get_forms_do_not() -> None:
    assert '<input type="hidden" name="csrf" value="tok">' in form("/x", "tok", "body")
    assert "csrf" not in form("/x", "tok", "body", method="get")


def test_an_empty_table_says_so() -> None:
    assert "Nothing to show." in table(["a", "b"], [])
    assert '<th scope="col">a</th>' in table(["a"], [["1"]], caption="c")


def test_charts_are_images_with_a_title_a_description_and_their_numbers() -> None:
    chart = bars("c1", "Refusals by reason", [("consent_withdrawn", 3), ("no_agreement", 1)], unit="refusals")
    assert 'role="img"' in chart
    assert 'aria-labelledby="c1-t c1-d"' in chart
    assert '<title id="c1-t">Refusals by reason</title>' in chart
    assert "4 refusals in all; most: consent_withdrawn: 3; no_agreement: 1." in chart
    assert "<td>consent_withdrawn</td><td>3</td>" in chart
    days = columns("c2", "Exchanges per day", [("2026-05-01", 0), ("2026-05-02", 5)], unit="exchanges")
    assert "most: 2026-05-02: 5." in days
    assert "No data in this period." in bars("c3", "Empty", [], unit="exchanges")


def test_the_assets_are_small_and_have_no_outside_reference() -> None:
    for body, _ in ASSETS.values():
        assert len(body) < 8192
        assert b"http://" not in body
        assert b"https://" not in body
