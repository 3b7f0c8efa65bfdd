"""The eligibility engine decides from facts alone, never guesses, and refuses rule files it cannot read exactly."""

from __future__ import annotations

import json
import operator
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from gateway.vsr.eligibility import Decision, Programme, Rule, RuleBook, evaluate
from gateway.vsr.errors import RulesError, VsrError
from gateway.vsr.facts import Fact, Facts, Provenance

PROGRAMMES = Path(__file__).parents[3] / "sandbox" / "programmes"
DAY = date(2026, 3, 1)
CRA = Provenance("ZZ/GOV/CRA/civreg/GetPersonByNationalId", "ex-cra-1", "2026-03-01T09:00:00Z")
SSF = Provenance("ZZ/GOV/SSF/contributions/GetMember", "ex-ssf-1", "2026-03-01T09:00:01Z")
TAX = Provenance("ZZ/GOV/TAX/taxreg/GetIncome", "ex-tax-1", "2026-03-01T09:00:02Z")


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return RuleBook.load([PROGRAMMES])


def person(**values: Any) -> Facts:
    """A resident, living, identified person; keyword values override (dots written as __)."""
    facts = Facts()
    base = {"person.identified": True, "person.alive": True, "person.resident": True}
    for name, value in {**base, **{k.replace("__", "."): v for k, v in values.items()}}.items():
        source = SSF if name.startswith("pension.") else TAX if name.startswith("income.") else CRA
        facts.set(name, value, source)
    return facts


def decide(book: RuleBook, programme: str, facts: Facts) -> Decision:
    return evaluate(book.get(programme, DAY), facts, on=DAY)


def headline(decision: Decision) -> str:
    return decision.explanation.split(". ")[0] + "."


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# --- the sandbox programmes ------------------------------------------------------------------------------------


def test_sandbox_rule_book(book: RuleBook):
    assert book.programmes() == ["child-grant", "disability-grant", "old-age-grant"]
    assert book.purposes() == {
        "child-grant": "child-grant-eligibility",
        "disability-grant": "disability-grant-eligibility",
        "old-age-grant": "old-age-grant-eligibility",
    }
    grant = book.get("old-age-grant", DAY)
    assert (grant.version, grant.title, grant.effective_from, grant.effective_until) == (
        "2026.1",
        "Old-age grant",
        date(2026, 1, 1),
        None,
    )
    assert grant.source == "old-age-grant.toml"
    assert [r.id for r in book.get("disability-grant", DAY).rules] == [
        "identified",
        "alive",
        "resident",
        "age-from",
        "age-to",
        "assessed",
        "income",
    ]
    assert book.get("child-grant", DAY).title == "Child support grant"


def test_sandbox_wording_is_neutral(book: RuleBook):
    for name in book.programmes():
        for rule in book.get(name, DAY).rules:
            for text in (rule.requirement, rule.met, rule.not_met, rule.unknown):
                assert not re.search(r"\b(she|he|her|his|him)\b", text, re.IGNORECASE), (name, rule.id, text)


def test_old_age_eligible(book: RuleBook):
    d = decide(book, "old-age-grant", person(person__age_years=70, pension__contributory_monthly=0))
    assert d.outcome == "eligible"
    assert d.missing == ()
    assert [r.status for r in d.rules] == ["met"] * 5
    assert d.explanation == (
        "Eligible for the Old-age grant (rules version 2026.1). The applicant was identified in the civil registry. "
        "The civil registry records the applicant as alive. The civil registry records the applicant as living in "
        "the country. The applicant is 70 years old, which meets the minimum age of 65. The applicant's contributory "
        "pension is 0 a month, within the limit of 4,000."
    )


def test_old_age_pension_at_the_limit_is_eligible(book: RuleBook):
    d = decide(book, "old-age-grant", person(person__age_years=65, pension__contributory_monthly=4000))
    assert d.outcome == "eligible"


def test_old_age_not_eligible(book: RuleBook):
    d = decide(book, "old-age-grant", person(person__age_years=64, pension__contributory_monthly=4001))
    assert d.outcome == "not_eligible"
    assert headline(d) == (
        "Not eligible for the Old-age grant: the requirements “aged 65 or more” and “a contributory pension of "
        "at most 4,000 a month” are not met."
    )
    assert "The applicant is 64 years old; the grant starts at 65." in d.explanation
    assert "a contributory pension of 4,001 a month, above the limit of 4,000" in d.explanation


def test_child_grant(book: RuleBook):
    facts = person(person__age_years=7, caregiver__identified=True, household__income_monthly_per_member=1499)
    d = decide(book, "child-grant", facts)
    assert d.outcome == "eligible"
    assert headline(d) == "Eligible for the Child support grant (rules version 2026.1)."

    facts.set("person.age_years", 18, CRA)
    d = decide(book, "child-grant", facts)
    assert d.outcome == "not_eligible"
    assert headline(d) == "Not eligible for the Child support grant: the requirement “under 18 years old” is not met."
    assert "The child is 18 years old; the grant is for children under 18." in d.explanation


def test_child_grant_household_at_poverty_line_is_not_eligible(book: RuleBook):
    facts = person(person__age_years=7, caregiver__identified=True, household__income_monthly_per_member=1500)
    d = decide(book, "child-grant", facts)
    assert d.outcome == "not_eligible"
    assert [r.id for r in d.rules if r.status == "not_met"] == ["income"]


@pytest.mark.parametrize(
    ("age", "outcome"), [(4, "not_eligible"), (5, "eligible"), (64, "eligible"), (65, "not_eligible")]
)
def test_disability_grant_ages(book: RuleBook, age: int, outcome: str):
    facts = person(person__age_years=age, disability__assessed=True, income__declared_yearly=12000)
    assert decide(book, "disability-grant", facts).outcome == outcome


def test_disability_grant_not_eligible_on_income(book: RuleBook):
    facts = person(person__age_years=30, disability__assessed=True, income__declared_yearly=36000)
    d = decide(book, "disability-grant", facts)
    assert headline(d) == (
        "Not eligible for the Disability grant: the requirement “declared income under 36,000 a year” is not met."
    )


def test_disability_unknown_assessment_asks_for_referral(book: RuleBook):
    facts = person(person__age_years=30, income__declared_yearly=0)
    facts.unknown("disability.assessed", "no source records disability assessments")
    d = decide(book, "disability-grant", facts)
    assert d.outcome == "undetermined"
    assert d.missing == ("disability.assessed",)
    assert headline(d) == (
        "Cannot be decided yet for the Disability grant: “a disability assessment on record” could not be checked "
        "(no source records disability assessments); nothing has been guessed."
    )
    assessed = next(r for r in d.rules if r.id == "assessed")
    assert "refer the applicant for a disability assessment" in assessed.explanation


# --- three-valued logic ----------------------------------------------------------------------------------------


def test_undetermined_when_the_fund_did_not_answer(book: RuleBook):
    facts = person(person__age_years=70)
    facts.unknown("pension.contributory_monthly", "the social security fund did not answer", SSF)
    d = decide(book, "old-age-grant", facts)
    assert d.outcome == "undetermined"
    assert d.missing == ("pension.contributory_monthly",)
    assert headline(d) == (
        "Cannot be decided yet for the Old-age grant: “a contributory pension of at most 4,000 a month” could not "
        "be checked (the social security fund did not answer); nothing has been guessed."
    )
    assert d.explanation.endswith(
        "The applicant's contributory pension could not be established (the social security fund did not answer)."
    )
    pension = d.rules[-1]
    assert (pension.status, pension.fact) == ("unknown", facts["pension.contributory_monthly"])


def test_a_fact_nobody_established_is_unknown(book: RuleBook):
    d = decide(book, "old-age-grant", person(person__age_years=70))
    assert d.outcome == "undetermined"
    assert d.rules[-1].fact is None
    assert "could not be checked (no source established it)" in d.explanation


def test_not_eligible_wins_over_unknown(book: RuleBook):
    facts = person(person__age_years=40)
    facts.unknown("pension.contributory_monthly", "the social security fund did not answer", SSF)
    d = decide(book, "old-age-grant", facts)
    assert d.outcome == "not_eligible"
    assert d.missing == ("pension.contributory_monthly",)
    assert headline(d) == "Not eligible for the Old-age grant: the requirement “aged 65 or more” is not met."


@pytest.mark.parametrize("age", ["70", True, float("nan")])
def test_a_numeric_rule_on_a_value_that_is_not_a_number_is_unknown(book: RuleBook, age: object):
    d = decide(book, "old-age-grant", person(person__age_years=age, pension__contributory_monthly=0))
    assert d.outcome == "undetermined"
    age_rule = next(r for r in d.rules if r.id == "age")
    assert age_rule.status == "unknown"
    assert re.search(r"of person\.age_years is not a number\)\.$", age_rule.explanation)


def test_is_compares_bools_exactly(book: RuleBook):
    d = decide(book, "old-age-grant", person(person__alive=1, person__age_years=70, pension__contributory_monthly=0))
    assert d.outcome == "undetermined"
    assert "the value 1 of person.alive is not true or false" in d.explanation


def test_one_cause_for_two_rules_is_said_once(book: RuleBook):
    facts = person(disability__assessed=True, income__declared_yearly=0)
    facts.unknown("person.age_years", "only an ambiguous birth year is on record", CRA)
    d = decide(book, "disability-grant", facts)
    assert d.missing == ("person.age_years",)
    assert headline(d) == (
        "Cannot be decided yet for the Disability grant: “aged 5 or more” and “aged 64 or less” could not be "
        "checked (only an ambiguous birth year is on record); nothing has been guessed."
    )
    assert d.explanation.count("The applicant's age could not be established") == 1
    assert len(d.rules) == 7


def test_as_dict_is_json_with_provenance(book: RuleBook):
    facts = person(person__age_years=70)
    facts.unknown("pension.contributory_monthly", "the social security fund did not answer", SSF)
    out = decide(book, "old-age-grant", facts).as_dict()
    assert json.loads(json.dumps(out)) == out
    assert {k: out[k] for k in ("programme", "version", "title", "legal_reference", "outcome", "decided_on")} == {
        "programme": "old-age-grant",
        "version": "2026.1",
        "title": "Old-age grant",
        "legal_reference": "Social Assistance Act (sandbox), s. 5",
        "outcome": "undetermined",
        "decided_on": "2026-03-01",
    }
    assert out["missing"] == ["pension.contributory_monthly"]
    assert out["rules"][3] == {
        "id": "age",
        "requirement": "aged 65 or more",
        "status": "met",
        "explanation": "The applicant is 70 years old, which meets the minimum age of 65.",
        "fact": {"name": "person.age_years", "value": 70, "provenance": [CRA.as_dict()]},
    }
    assert [f["name"] for f in out["facts_used"]] == [
        "person.identified",
        "person.alive",
        "person.resident",
        "person.age_years",
        "pension.contributory_monthly",
    ]
    assert out["facts_used"][-1] == {
        "name": "pension.contributory_monthly",
        "value": None,
        "provenance": [SSF.as_dict()],
        "note": "the social security fund did not answer",
    }


def test_facts_used_lists_a_fact_once(book: RuleBook):
    facts = person(person__age_years=30, disability__assessed=True, income__declared_yearly=0)
    out = decide(book, "disability-grant", facts).as_dict()
    names = [f["name"] for f in out["facts_used"]]
    assert names.count("person.age_years") == 1
    assert len(names) == len(set(names)) == 6


# --- versions ----------------------------------------------------------------------------------------------------


def grant_file(**changes: Any) -> dict[str, Any]:
    """A valid one-rule programme; `changes` replace top-level keys, `rule` updates the rule."""
    rule = {
        "id": "age",
        "fact": "person.age_years",
        "op": "ge",
        "value": 65,
        "requirement": "aged 65 or more",
        "met": "The applicant is {fact}, at least {value}.",
        "not_met": "The applicant is {fact}, under {value}.",
        "unknown": "The age is unknown ({note}).",
    }
    rule.update(changes.pop("rule", {}))
    rule = {k: v for k, v in rule.items() if v is not None}
    doc: dict[str, Any] = {
        "programme": "test-grant",
        "version": "2026.1",
        "title": "Test grant",
        "purpose": "test-grant-eligibility",
        "legal_reference": "Social Assistance Act (sandbox), s. 99",
        "effective_from": "2026-01-01",
        "summary": "For tests.",
        "rules": [rule],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(doc))
    return path


def test_version_in_force_on_a_date(tmp_path: Path):
    write(tmp_path / "v1.toml", grant_file(version="2026.1", effective_from="2026-01-01"))
    write(tmp_path / "v2.toml", grant_file(version="2027.1", effective_from="2027-01-01", rule={"value": 60}))
    book = RuleBook.load([tmp_path])
    assert [v.version for v in book.versions("test-grant")] == ["2026.1", "2027.1"]
    assert book.get("test-grant", date(2026, 12, 31)).version == "2026.1"
    assert book.get("test-grant", date(2027, 1, 1)).version == "2027.1"
    assert book.get("test-grant").version in ("2026.1", "2027.1")
    with pytest.raises(RulesError, match=exactly("no version of 'test-grant' is in force on 2025-12-31")):
        book.get("test-grant", date(2025, 12, 31))
    with pytest.raises(RulesError, match=exactly("unknown programme 'no-grant'; known: test-grant")):
        book.get("no-grant", DAY)
    with pytest.raises(RulesError, match=exactly("unknown programme 'no-grant'; known: test-grant")):
        book.versions("no-grant")


def test_an_ended_version_is_not_in_force(tmp_path: Path):
    write(tmp_path / "v1.toml", grant_file(effective_from=date(2026, 1, 1), effective_until="2026-06-30"))
    book = RuleBook.load([tmp_path / "v1.toml"])
    assert book.get("test-grant", date(2026, 6, 30)).effective_until == date(2026, 6, 30)
    with pytest.raises(RulesError, match=exactly("no version of 'test-grant' is in force on 2026-07-01")):
        book.get("test-grant", date(2026, 7, 1))


def test_a_temporary_version_reverts_to_the_one_before(tmp_path: Path):
    write(tmp_path / "base.toml", grant_file(version="base"))
    write(
        tmp_path / "relief.toml",
        grant_file(version="relief", effective_from="2026-04-01", effective_until="2026-06-30"),
    )
    book = RuleBook.load([tmp_path])
    assert [book.get("test-grant", date(2026, m, 15)).version for m in (3, 5, 7)] == ["base", "relief", "base"]


# --- invalid rule files --------------------------------------------------------------------------------------


def load_error(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = write(tmp_path / "bad.toml", doc)
    with pytest.raises(RulesError) as caught:
        RuleBook.load([path])
    return str(caught.value).removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"rule": {"op": "gte"}},
            "rule 'age': unknown op 'gte' (use one of eq, ne, lt, le, gt, ge, in, not_in, is)",
        ),
        ({"title": None}, "'title' is required"),
        ({"rules": None}, "'rules' is required"),
        ({"rule": {"requirement": None}}, "rule 'age': 'requirement' is required"),
        ({"rule": {"value": None}}, "rule 'age': 'value' is required"),
        ({"rule": {"unknown": None}}, "rule 'age': 'unknown' is required"),
        ({"rule": {"id": None}}, "rule #1: 'id' is required and must be text"),
        ({"version": 2026.1}, "'version' must be non-empty text, got the number 2026.1"),
        ({"rule": {"fact": 3}}, "rule 'age': 'fact' must be non-empty text, got the number 3"),
        ({"rule": {"value": "65"}}, "rule 'age': value for 'ge' must be a number, got text '65'"),
        ({"rule": {"value": True}}, "rule 'age': value for 'ge' must be a number, got true"),
        ({"rule": {"op": "in"}}, "rule 'age': value for 'in' must be a non-empty list, got the number 65"),
        (
            {"rule": {"op": "not_in", "value": []}},
            "rule 'age': value for 'not_in' must be a non-empty list, got a list",
        ),
        (
            {"rule": {"op": "in", "value": [1, "2"]}},
            "rule 'age': value for 'in' must list numbers, texts or true/false, all of one kind",
        ),
        ({"rule": {"op": "is", "value": 1}}, "rule 'age': value for 'is' must be true or false, got the number 1"),
        (
            {"rule": {"op": "eq", "value": [1]}},
            "rule 'age': value for 'eq' must be a number, text or true/false, got a list",
        ),
        (
            {"rule": {"fact": "person.age"}},
            "rule 'age': unknown fact 'person.age' (not in the fact catalogue; the person.* facts are "
            "person.identified, person.alive, person.age_years, person.sex, person.resident, person.district)",
        ),
        ({"rule": {"fact": "shoe.size"}}, "rule 'age': unknown fact 'shoe.size' (not in the fact catalogue)"),
        (
            {"rule": {"met": "Aged {age}."}},
            "rule 'age': template 'met' uses {age}; only {fact}, {value} and {note} are allowed",
        ),
        (
            {"rule": {"not_met": "Aged {fact:>5}."}},
            "rule 'age': template 'not_met' uses {fact:>5}; only {fact}, {value} and {note} are allowed",
        ),
        (
            {"rule": {"unknown": "Unknown {}."}},
            "rule 'age': template 'unknown' uses {}; only {fact}, {value} and {note} are allowed",
        ),
        (
            {"rule": {"met": "Aged {fact."}},
            "rule 'age': template 'met' is malformed (expected '}' before end of string); write {{ and }} for braces",
        ),
        (
            {"rule": {"colour": "red"}},
            "rule 'age': unknown key 'colour' (known: id, fact, op, value, requirement, met, not_met, unknown)",
        ),
        (
            {"effective_from": "2026-13-01"},
            "'effective_from' must be an ISO date like 2026-01-01, got text '2026-13-01'",
        ),
        ({"effective_from": "20260101"}, "'effective_from' must be an ISO date like 2026-01-01, got text '20260101'"),
        ({"effective_from": None}, "'effective_from' is required"),
        (
            {"effective_until": "2025-12-31"},
            "'effective_until' is before 'effective_from'",
        ),
        (
            {"rules": []},
            "'rules' is empty; a programme without rules would admit everyone",
        ),
        ({"rules": {"id": "x"}}, "'rules' must be an array of tables, each written [[rules]]"),
        (
            {"effective_form": "2026-01-01"},
            "unknown key 'effective_form' (known: programme, version, title, purpose, legal_reference, "
            "effective_from, effective_until, summary, not_combinable_with, rules)",
        ),
    ],
)
def test_invalid_rule_file(tmp_path: Path, changes: dict[str, Any], message: str):
    assert load_error(tmp_path, grant_file(**changes)) == message


def test_a_toml_datetime_is_not_a_date(tmp_path: Path):
    from datetime import datetime

    doc = grant_file(effective_from=datetime(2026, 1, 1, 12, 0))
    assert load_error(tmp_path, doc) == (
        "'effective_from' must be an ISO date like 2026-01-01, got the date and time 2026-01-01T12:00:00"
    )


def test_duplicate_rule_ids(tmp_path: Path):
    doc = grant_file()
    doc["rules"] = [doc["rules"][0], {**doc["rules"][0], "op": "le", "value": 99}]
    assert load_error(tmp_path, doc) == "rule 'age': duplicate rule id"


def test_unparseable_toml(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text('programme = "x"\nversion = \n')
    with pytest.raises(RulesError, match=rf"^{re.escape(str(path))}: not valid TOML: Invalid value \(at line 2"):
        RuleBook.load([path])


def test_missing_path(tmp_path: Path):
    with pytest.raises(RulesError, match=exactly(f"{tmp_path / 'nope'}: no such file or directory")):
        RuleBook.load([tmp_path / "nope"])


def test_the_same_programme_version_twice(tmp_path: Path):
    write(tmp_path / "a.toml", grant_file())
    write(tmp_path / "b.toml", grant_file(effective_from="2026-02-01"))
    with pytest.raises(
        RulesError, match=exactly("b.toml: programme 'test-grant' version '2026.1' is already declared in a.toml")
    ):
        RuleBook.load([tmp_path])


def test_two_versions_taking_effect_the_same_day(tmp_path: Path):
    write(tmp_path / "a.toml", grant_file())
    write(tmp_path / "b.toml", grant_file(version="2026.2"))
    with pytest.raises(
        RulesError,
        match=exactly("b.toml: versions '2026.1' and '2026.2' of 'test-grant' both take effect on 2026-01-01"),
    ):
        RuleBook.load([tmp_path])


def test_one_programme_one_purpose(tmp_path: Path):
    write(tmp_path / "a.toml", grant_file())
    write(tmp_path / "b.toml", grant_file(version="2027.1", effective_from="2027-01-01", purpose="other"))
    with pytest.raises(
        RulesError,
        match=exactly(
            "b.toml: programme 'test-grant' has purpose 'other', but a.toml gives it 'test-grant-eligibility'"
        ),
    ):
        RuleBook.load([tmp_path])


def test_rules_errors_are_vsr_errors():
    assert issubclass(RulesError, VsrError)


# --- the three-valued rule, for any facts ------------------------------------------------------------------------

ANY_RULES = (
    Rule("identified", "person.identified", "is", True, "identified", "ok", "no", "unknown ({note})"),
    Rule("age", "person.age_years", "ge", 18, "adult", "{fact} ok", "{fact} no", "unknown ({note})"),
    Rule("young", "person.age_years", "lt", 60, "under 60", "{fact} ok", "{fact} no", "unknown ({note})"),
    Rule("pension", "pension.contributory_monthly", "le", 4000.5, "pension", "ok", "no", "unknown ({note})"),
    Rule("income", "income.declared_yearly", "gt", 0, "some income", "ok", "no", "unknown ({note})"),
    Rule("sex", "person.sex", "in", ("F",), "female", "ok", "no", "unknown ({note})"),
    Rule("district", "person.district", "not_in", ("D99", "D98"), "not D98/D99", "ok", "no", "unknown ({note})"),
    Rule("size", "household.size", "ne", 0, "a household", "ok", "no", "unknown ({note})"),
    Rule("alive", "person.alive", "eq", True, "alive", "ok", "no", "unknown ({note})"),
)
ANY_PROGRAMME = Programme(
    programme="any",
    version="1",
    title="Any grant",
    purpose="any-eligibility",
    legal_reference="none",
    effective_from=date(2026, 1, 1),
    effective_until=None,
    summary="Every op.",
    rules=ANY_RULES,
    source="any.toml",
)
MISSING = object()
VALUES = st.one_of(
    st.just(MISSING),
    st.none(),
    st.booleans(),
    st.integers(-10, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["F", "M", "D98", "D01", ""]),
)
FACT_NAMES = sorted({r.fact for r in ANY_RULES})
TESTS = {
    "eq": operator.eq,
    "is": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}


def kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if value == value and abs(value) != float("inf") else "nan"
    return type(value).__name__


def expected_status(rule: Rule, value: object) -> str:
    if value is MISSING or value is None:
        return "unknown"
    wanted = kind(rule.value[0] if isinstance(rule.value, tuple) else rule.value)
    if kind(value) != wanted:
        return "unknown"
    return "met" if TESTS[rule.op](value, rule.value) else "not_met"


@given(st.fixed_dictionaries({name: VALUES for name in FACT_NAMES}))
def test_outcome_follows_the_three_valued_rule(values: dict[str, object]):
    facts = Facts()
    for name, value in values.items():
        if value is not MISSING:
            facts.add(Fact(name, value, (CRA,), None if value is not None else "the source failed"))
    d = evaluate(ANY_PROGRAMME, facts, on=DAY)
    statuses = [r.status for r in d.rules]
    assert statuses == [expected_status(rule, values[rule.fact]) for rule in ANY_RULES]
    assert (d.outcome == "eligible") == all(s == "met" for s in statuses)
    assert (d.outcome == "not_eligible") == ("not_met" in statuses)
    assert (d.outcome == "undetermined") == ("not_met" not in statuses and "unknown" in statuses)
    assert set(d.missing) == {r.fact for r, s in zip(ANY_RULES, statuses, strict=True) if s == "unknown"}
    first = {
        "eligible": "Eligible for",
        "not_eligible": "Not eligible for",
        "undetermined": "Cannot be decided yet for",
    }
    assert d.explanation.startswith(f"{first[d.outcome]} the Any grant")
    json.dumps(d.as_dict())


def test_programmes_not_to_be_combined_are_read_and_checked(tmp_path: Path) -> None:
    book = RuleBook.load([PROGRAMMES])
    assert book.get("old-age-grant", date(2026, 6, 30)).not_combinable_with == ("disability-grant",)
    assert book.get("child-grant", date(2026, 6, 30)).not_combinable_with == ()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (PROGRAMMES / "child-grant.toml")
        .read_text()
        .replace("\n[[rules]]", '\nnot_combinable_with = "x"\n[[rules]]', 1)
    )
    with pytest.raises(RulesError, match="'not_combinable_with' must be a list of programme ids"):
        RuleBook.load([bad])
