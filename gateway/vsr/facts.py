"""Facts the virtual registry knows about a person, each with where it came from.

A fact is never a guess: a value the sources could not establish is `None`, with a note saying why
(a source that failed, a field the agency does not record, an ambiguous birth year). Eligibility
rules read facts by name; whatever they decide names the facts and their provenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.xroadclient import Provenance

__all__ = ["CATALOGUE", "Fact", "Facts", "Provenance"]


@dataclass(frozen=True, slots=True)
class Fact:
    """One named value about a person or household; `value` None means unknown (see `note`)."""

    name: str
    value: Any
    provenance: tuple[Provenance, ...] = ()
    note: str | None = None  # why unknown, or how it was derived

    @property
    def known(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        out["provenance"] = [p.as_dict() for p in self.provenance]
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Facts(Mapping[str, Fact]):
    """The facts established for one decision, by name; a name never set reads as unknown."""

    by_name: dict[str, Fact] = field(default_factory=dict)

    def add(self, fact: Fact) -> None:
        self.by_name[fact.name] = fact

    def set(self, name: str, value: Any, *provenance: Provenance, note: str | None = None) -> None:
        self.by_name[name] = Fact(name, value, tuple(provenance), note)

    def unknown(self, name: str, note: str, *provenance: Provenance) -> None:
        self.by_name[name] = Fact(name, None, tuple(provenance), note)

    def __getitem__(self, name: str) -> Fact:
        return self.by_name[name]

    def get_fact(self, name: str) -> Fact:
        """The fact, or an unknown one saying nobody established it."""
        return self.by_name.get(name) or Fact(name, None, (), "no source established this fact")

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)


#: The facts the registry derives, with their meaning; rule files may use these names only.
CATALOGUE: dict[str, str] = {
    "person.identified": "the person was identified in the civil registry (by ID, or by a confident match)",
    "person.alive": "the civil registry records the person as alive (bool)",
    "person.age_years": "whole years of age on the decision date (int); unknown if only an ambiguous birth year",
    "person.sex": "M or F, as the civil registry records it",
    "person.resident": "the civil registry records a district of residence in the country (bool)",
    "person.district": "district code of residence (str)",
    "pension.contributory_monthly": "contributory pensions in payment, per month, from the social security fund "
    "(int; 0 when the fund knows no pension)",
    "income.declared_yearly": "gross income declared to the tax authority for the latest year on record (int; "
    "0 when the tax authority knows no income)",
    "household.size": "living members of the person's household in the civil registry (int)",
    "household.income_monthly": "declared incomes and contributory pensions of the living household members, "
    "per month (int); unknown if any member's could not be established",
    "household.income_monthly_per_member": "household.income_monthly divided by household.size (int)",
    "caregiver.identified": "a living adult in the household who can receive a grant for the child (bool)",
    "disability.assessed": "a disability assessment is on record (bool); unknown when no source records one",
    "enrolment.old-age-grant": "enrolled and active in the old-age grant (bool)",
    "enrolment.child-grant": "enrolled and active in the child support grant (bool)",
    "enrolment.disability-grant": "enrolled and active in the disability grant (bool)",
}
