"""Eligibility rules: each programme version is a TOML data file, checked strictly on load, evaluated without guessing.

Rules are data so that a programme officer can read, and a lawyer can date, exactly what decided a case. Every
rule is met, not met or unknown; an unknown fact never counts for or against the applicant, and a decision
that depends on one says so instead of answering.
"""

from __future__ import annotations

import math
import operator
import re
import string
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from gateway.vsr.errors import RulesError
from gateway.vsr.facts import CATALOGUE, Fact

Scalar = bool | int | float | str
Status = Literal["met", "not_met", "unknown"]
Outcome = Literal["eligible", "not_eligible", "undetermined"]

NUMERIC_OPS = ("lt", "le", "gt", "ge")
OPS = ("eq", "ne", *NUMERIC_OPS, "in", "not_in", "is")
PLACEHOLDERS = ("fact", "value", "note")
NO_NOTE = "no source established it"

_TOP_KEYS = (
    "programme",
    "version",
    "title",
    "purpose",
    "legal_reference",
    "effective_from",
    "effective_until",
    "summary",
    "not_combinable_with",
    "rules",
)
_RULE_KEYS = ("id", "fact", "op", "value", "requirement", "met", "not_met", "unknown")
_TEMPLATES = ("met", "not_met", "unknown")
_KIND_NAMES = {"bool": "true or false", "number": "a number", "text": "text"}
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Operands are already of one kind when these run, so True never equals 1.
_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "is": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda actual, allowed: actual in allowed,
    "not_in": lambda actual, allowed: actual not in allowed,
}


@dataclass(frozen=True)
class Rule:
    """One requirement: a fact compared with a value, and what to tell the applicant in each case."""

    id: str
    fact: str
    op: str
    value: Scalar | tuple[Scalar, ...]
    requirement: str
    met: str
    not_met: str
    unknown: str


@dataclass(frozen=True)
class Programme:
    """One version of a programme's rules, as its file declared it."""

    programme: str
    version: str
    title: str
    purpose: str
    legal_reference: str
    effective_from: date
    effective_until: date | None
    summary: str
    rules: tuple[Rule, ...]
    source: str  # the file's name, to trace a decision back to the text that made it
    not_combinable_with: tuple[str, ...] = ()  # programmes a beneficiary may not also receive

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_until is None or on <= self.effective_until)


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule came out, in words the applicant can be told."""

    id: str
    requirement: str
    status: Status
    explanation: str
    fact: Fact | None


@dataclass(frozen=True)
class Decision:
    """A programme's answer for one applicant, with every rule and fact that led to it."""

    programme: str
    version: str
    title: str
    legal_reference: str
    outcome: Outcome
    rules: tuple[RuleOutcome, ...]
    decided_on: date
    explanation: str
    missing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        used: dict[str, Fact] = {}
        for rule in self.rules:
            if rule.fact is not None:
                used.setdefault(rule.fact.name, rule.fact)
        return {
            "programme": self.programme,
            "version": self.version,
            "title": self.title,
            "legal_reference": self.legal_reference,
            "outcome": self.outcome,
            "decided_on": self.decided_on.isoformat(),
            "explanation": self.explanation,
            "missing": list(self.missing),
            "rules": [
                {
                    "id": r.id,
                    "requirement": r.requirement,
                    "status": r.status,
                    "explanation": r.explanation,
                    "fact": r.fact.as_dict() if r.fact is not None else None,
                }
                for r in self.rules
            ],
            "facts_used": [fact.as_dict() for fact in used.values()],
        }


class RuleBook:
    """Every loaded version of every programme; answers which version is in force on a day."""

    def __init__(self, programmes: Sequence[Programme]) -> None:
        self._versions: dict[str, list[Programme]] = {}
        seen: dict[tuple[str, str], Programme] = {}
        for p in programmes:
            earlier = seen.get((p.programme, p.version))
            if earlier is not None:
                raise RulesError(
                    f"{p.source}: programme {p.programme!r} version {p.version!r} is already declared in "
                    f"{earlier.source}"
                )
            seen[(p.programme, p.version)] = p
            for other in self._versions.get(p.programme, []):
                if other.purpose != p.purpose:
                    # One programme, one purpose: the registry's agreements are granted per purpose.
                    raise RulesError(
                        f"{p.source}: programme {p.programme!r} has purpose {p.purpose!r}, but {other.source} "
                        f"gives it {other.purpose!r}"
                    )
                if other.effective_from == p.effective_from:
                    raise RulesError(
                        f"{p.source}: versions {other.version!r} and {p.version!r} of {p.programme!r} both take "
                        f"effect on {p.effective_from.isoformat()}"
                    )
            self._versions.setdefault(p.programme, []).append(p)
        for versions in self._versions.values():
            versions.sort(key=lambda v: v.effective_from)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> RuleBook:
        """Load rule files, or directories of `*.toml` (sorted); the first invalid file stops the load."""
        programmes: list[Programme] = []
        for given in paths:
            path = Path(given)
            if path.is_dir():
                files = sorted(path.glob("*.toml"))
            elif path.is_file():
                files = [path]
            else:
                raise RulesError(f"{path}: no such file or directory")
            programmes.extend(load_programme(f) for f in files)
        return cls(programmes)

    def programmes(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, programme: str) -> list[Programme]:
        """All versions, oldest effective_from first."""
        found = self._versions.get(programme)
        if found is None:
            raise RulesError(f"unknown programme {programme!r}; known: {', '.join(self.programmes()) or 'none'}")
        return list(found)

    def get(self, programme: str, on: date | None = None) -> Programme:
        """The version in force on `on` (default today): the latest to take effect that has not yet ended.

        A version that has ended does not hide an older open-ended one, so a temporary version reverts to
        the rules before it.
        """
        day = on or date.today()
        in_force = [v for v in self.versions(programme) if v.in_force(day)]
        if not in_force:
            raise RulesError(f"no version of {programme!r} is in force on {day.isoformat()}")
        return in_force[-1]

    def purposes(self) -> dict[str, str]:
        return {name: versions[0].purpose for name, versions in sorted(self._versions.items())}


def evaluate(programme: Programme, facts: Mapping[str, Fact], *, on: date) -> Decision:
    """Apply every rule; not_eligible if any is not met, else undetermined if any is unknown, else eligible."""
    applied = [_apply(rule, facts.get(rule.fact)) for rule in programme.rules]
    outcomes = tuple(o for o, _ in applied)
    statuses = {o.status for o in outcomes}
    outcome: Outcome
    if "not_met" in statuses:
        outcome = "not_eligible"
    elif "unknown" in statuses:
        outcome = "undetermined"
    else:
        outcome = "eligible"
    missing = tuple(
        dict.fromkeys(r.fact for r, o in zip(programme.rules, outcomes, strict=True) if o.status == "unknown")
    )
    headline = _headline(programme, outcome, applied)
    return Decision(
        programme=programme.programme,
        version=programme.version,
        title=programme.title,
        legal_reference=programme.legal_reference,
        outcome=outcome,
        rules=outcomes,
        decided_on=on,
        # Two rules on one fact (an age range) may say the same thing; the applicant hears it once.
        explanation=" ".join(dict.fromkeys([headline, *(o.explanation for o in outcomes)])),
        missing=missing,
    )


def _headline(programme: Programme, outcome: Outcome, applied: Sequence[tuple[RuleOutcome, str]]) -> str:
    """The decision in one sentence, first, because it is what the applicant asked."""
    title = programme.title
    if outcome == "eligible":
        return f"Eligible for the {title} (rules version {programme.version})."
    if outcome == "not_eligible":
        failed = [f"“{o.requirement}”" for o, _ in applied if o.status == "not_met"]
        verb = "requirement {} is" if len(failed) == 1 else "requirements {} are"
        return f"Not eligible for the {title}: the {verb.format(_join(failed, 'and'))} not met."
    by_note: dict[str, list[str]] = {}
    for o, note in applied:
        if o.status == "unknown":
            by_note.setdefault(note, []).append(f"“{o.requirement}”")
    unknown = [f"{_join(reqs, 'and')} could not be checked ({note})" for note, reqs in by_note.items()]
    return f"Cannot be decided yet for the {title}: {'; '.join(unknown)}; nothing has been guessed."


def _apply(rule: Rule, fact: Fact | None) -> tuple[RuleOutcome, str]:
    """The rule's outcome, and the note that explains it (why it is unknown, when it is)."""
    status: Status
    note = (fact.note if fact is not None else None) or NO_NOTE
    if fact is None or fact.value is None:
        status = "unknown"
    elif _is_range(fact.value) and rule.op in NUMERIC_OPS:
        # A value known only within bounds (an age from a birth year): decided if both bounds agree.
        low, high = (_TESTS[rule.op](bound, rule.value) for bound in fact.value)
        status = "met" if low and high else "not_met" if not (low or high) else "unknown"
    else:
        wanted = _kind(rule.value[0] if isinstance(rule.value, tuple) else rule.value)
        if _kind(fact.value) != wanted:
            status = "unknown"
            note = f"the value {fact.value!r} of {rule.fact} is not {_KIND_NAMES[wanted] if wanted else 'comparable'}"
        else:
            status = "met" if _TESTS[rule.op](fact.value, rule.value) else "not_met"
    template = {"met": rule.met, "not_met": rule.not_met, "unknown": rule.unknown}[status]
    shown = _show(fact.value) if fact is not None and fact.value is not None else "unknown"
    text = template.format(fact=shown, value=_show(rule.value), note=note).strip()
    if text and text[-1] not in ".!?":
        text += "."
    return RuleOutcome(rule.id, rule.requirement, status, text, fact), note


def _is_range(value: object) -> bool:
    """A [low, high] pair of numbers: a fact known only within bounds."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(_kind(v) == "number" for v in value)
        and value[0] <= value[1]
    )


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def _show(value: object) -> str:
    """A value as it reads in a sentence: 4,000 not 4000, yes/no not True/False."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    if isinstance(value, list) and _is_range(value):
        low, high = value
        return f"{_show(low)} or {_show(high)}" if high - low == 1 else f"{_show(low)} to {_show(high)}"
    if isinstance(value, tuple):
        return _join([_show(v) for v in value], "or")
    return str(value)


def _join(items: Sequence[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def load_programme(path: Path) -> Programme:
    """Load and validate one rule file; `RulesError` names the file, and the rule when one is at fault."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise RulesError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return _Reader(path).programme(raw)


class _Reader:
    """Validates a parsed file key by key, so each message says which file, which rule and which key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str, rule: str | None = None) -> RulesError:
        where = f"{self.path}: rule {rule!r}: " if rule is not None else f"{self.path}: "
        return RulesError(where + problem)

    def programme(self, raw: dict[str, Any]) -> Programme:
        unknown = [k for k in raw if k not in _TOP_KEYS]
        if unknown:
            raise self.fail(f"unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
        programme, version, title, purpose, legal_reference = (
            self.text(raw, k) for k in ("programme", "version", "title", "purpose", "legal_reference")
        )
        effective_from = self.date(raw, "effective_from")
        effective_until = self.date(raw, "effective_until") if "effective_until" in raw else None
        if effective_until is not None and effective_until < effective_from:
            raise self.fail("'effective_until' is before 'effective_from'")
        summary = self.text(raw, "summary")
        exclusive = raw.get("not_combinable_with", [])
        if not isinstance(exclusive, list) or not all(isinstance(x, str) and x.strip() for x in exclusive):
            raise self.fail("'not_combinable_with' must be a list of programme ids")
        rules = raw.get("rules")
        if rules is None:
            raise self.fail("'rules' is required")
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise self.fail("'rules' must be an array of tables, each written [[rules]]")
        if not rules:
            raise self.fail("'rules' is empty; a programme without rules would admit everyone")
        parsed: list[Rule] = []
        for number, table in enumerate(rules, start=1):
            rule = self.rule(table, number)
            if any(r.id == rule.id for r in parsed):
                raise self.fail("duplicate rule id", rule.id)
            parsed.append(rule)
        return Programme(
            programme=programme,
            version=version,
            title=title,
            purpose=purpose,
            legal_reference=legal_reference,
            effective_from=effective_from,
            effective_until=effective_until,
            summary=summary,
            rules=tuple(parsed),
            source=self.path.name,
            not_combinable_with=tuple(exclusive),
        )

    def rule(self, table: dict[str, Any], number: int) -> Rule:
        ident = table.get("id")
        if not isinstance(ident, str) or not ident.strip():
            raise self.fail(f"rule #{number}: 'id' is required and must be text")
        unknown = [k for k in table if k not in _RULE_KEYS]
        if unknown:
            raise self.fail(f"unknown key {unknown[0]!r} (known: {', '.join(_RULE_KEYS)})", ident)
        fact, op, requirement = (self.text(table, k, ident) for k in ("fact", "op", "requirement"))
        if op not in OPS:
            raise self.fail(f"unknown op {op!r} (use one of {', '.join(OPS)})", ident)
        if fact not in CATALOGUE:
            prefix = fact.split(".")[0] + "."
            kin = [name for name in CATALOGUE if name.startswith(prefix)]
            hint = f"; the {prefix}* facts are {', '.join(kin)}" if kin else ""
            raise self.fail(f"unknown fact {fact!r} (not in the fact catalogue{hint})", ident)
        if "value" not in table:
            raise self.fail("'value' is required", ident)
        value = self.value(table["value"], op, ident)
        templates = [self.template(table, k, ident) for k in _TEMPLATES]
        return Rule(ident, fact, op, value, requirement, *templates)

    def value(self, value: object, op: str, rule: str) -> Scalar | tuple[Scalar, ...]:
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise self.fail(f"value for {op!r} must be a non-empty list, got {_describe(value)}", rule)
            kinds = {_kind(v) for v in value}
            if None in kinds or len(kinds) > 1:
                raise self.fail(f"value for {op!r} must list numbers, texts or true/false, all of one kind", rule)
            return tuple(value)
        if op == "is":
            if not isinstance(value, bool):
                raise self.fail(f"value for 'is' must be true or false, got {_describe(value)}", rule)
            return value
        if op in NUMERIC_OPS:
            if _kind(value) != "number":
                raise self.fail(f"value for {op!r} must be a number, got {_describe(value)}", rule)
        elif _kind(value) is None:
            raise self.fail(f"value for {op!r} must be a number, text or true/false, got {_describe(value)}", rule)
        assert isinstance(value, bool | int | float | str)
        return value

    def template(self, table: dict[str, Any], key: str, rule: str) -> str:
        text = self.text(table, key, rule)
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            raise self.fail(f"template {key!r} is malformed ({exc}); write {{{{ and }}}} for braces", rule) from None
        for name, spec, conv in fields:
            if name not in PLACEHOLDERS or spec or conv:
                placeholder = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                raise self.fail(
                    f"template {key!r} uses {placeholder}; only {{fact}}, {{value}} and {{note}} are allowed", rule
                )
        return text

    def text(self, table: dict[str, Any], key: str, rule: str | None = None) -> str:
        value = table.get(key)
        if value is None:
            raise self.fail(f"{key!r} is required", rule)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key!r} must be non-empty text, got {_describe(value)}", rule)
        return value.strip()

    def date(self, raw: dict[str, Any], key: str) -> date:
        value = raw.get(key)
        if value is None:
            raise self.fail(f"{key!r} is required")
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _ISO_DATE_RE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(f"{key!r} must be an ISO date like 2026-01-01, got {_describe(value)}")


def _describe(value: object) -> str:
    """A TOML value as the file's author wrote it: `true`, `text '65'`, `a list`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, datetime):
        return f"the date and time {value.isoformat()}"
    kinds = {list: "a list", dict: "a table", date: "a date"}
    return kinds.get(type(value), type(value).__name__)
