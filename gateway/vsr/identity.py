"""Who the query is about: the civil registry by ID, else its candidates scored by the matching model.

A person without a national ID is found by demographics: the civil registry's own search proposes
candidates, and the trained model scores each (the same weights as Splink's). One candidate above
the threshold with a clear margin over the next resolves the person; several plausible ones are
"ambiguous" and returned with their scores for an officer to settle, never silently chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import matching
from gateway.vsr.errors import IdentityError, QueryError
from gateway.vsr.sources import Candidate, Person, Sources
from gateway.xroadclient import CallContext, Provenance

Status = Literal["resolved", "ambiguous", "not_found", "unavailable"]
Method = Literal["national_id", "record_id", "matching"]
#: Query fields a person can be looked for by, besides the national ID.
DEMOGRAPHICS = ("given_name", "second_name", "surname", "sex", "birth_date", "birth_year", "mother_name", "district")


@dataclass(frozen=True)
class MatchPolicy:
    """When a match resolves a person, and when it is ambiguous."""

    threshold: float = 0.95  # match probability needed to resolve
    margin: float = 0.5  # the runner-up must be below best - margin (in probability) to resolve
    floor: float = 0.2  # candidates below this are not mentioned


@dataclass
class Identity:
    status: Status
    method: Method
    person: Person | None = None
    match_probability: float | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None
    provenance: list[Provenance] = field(default_factory=list)  # the civil registry's answers behind it

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "method": self.method}
        if self.match_probability is not None:
            out["match_probability"] = round(self.match_probability, 6)
        if self.candidates:
            out["candidates"] = self.candidates
        if self.note:
            out["note"] = self.note
        return out


def check_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """The query's usable fields; a query with neither an ID nor a name and a birth is refused."""
    allowed = ("national_id", "record_id", *DEMOGRAPHICS)
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise QueryError(f"unknown query field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    clean: dict[str, Any] = {}
    for key, value in query.items():
        if value is None or value == "":
            continue
        if key == "birth_year":
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
                raise QueryError("birth_year must be a year, e.g. 1950")
            clean[key] = int(value)
            continue
        if not isinstance(value, str) or len(value) > 100:
            raise QueryError(f"{key} must be text of at most 100 characters")
        clean[key] = value.strip()
    nid = clean.get("national_id")
    if nid is not None and not (nid.isdigit() and 6 <= len(nid) <= 20):
        raise QueryError("national_id must be 6 to 20 digits")
    record = clean.get("record_id")
    if record is not None and not (record.startswith("CRA") and record[3:].isdigit() and len(record) == 12):
        raise QueryError("record_id must be a civil registry record number: CRA and 9 digits")
    if nid is None and record is None:
        if not (clean.get("surname") or clean.get("given_name")):
            raise QueryError("without a national_id, give at least a surname or a given name")
        if not (clean.get("birth_date") or clean.get("birth_year") or clean.get("district")):
            raise QueryError("without a national_id, give a birth_date, birth_year or district as well")
        if clean.get("sex") and clean["sex"] not in ("M", "F"):
            raise QueryError("sex must be M or F")
    return clean


class Resolver:
    def __init__(
        self,
        sources: Sources,
        model: matching.TrainedModel | None,
        *,
        registry_size: int,
        policy: MatchPolicy | None = None,
    ) -> None:
        self.sources = sources
        self.model = model
        self.registry_size = registry_size
        self.policy = policy or MatchPolicy()

    async def resolve(self, query: Mapping[str, Any], ctx: CallContext) -> Identity:
        nid = query.get("national_id")
        record = query.get("record_id")
        if record and not nid:
            person, seen = await self.sources.person_by_record(str(record), ctx)
            if person is None:
                return Identity(
                    "not_found", "record_id", note="the civil registry has no such record", provenance=[seen]
                )
            return Identity("resolved", "record_id", person=person, match_probability=1.0, provenance=[seen])
        if nid:
            person, seen = await self.sources.person_by_id(str(nid), ctx)
            if person is None:
                note = "the civil registry has no person with this ID"
                return Identity("not_found", "national_id", note=note, provenance=[seen])
            return Identity("resolved", "national_id", person=person, match_probability=1.0, provenance=[seen])
        return await self._match(query, ctx)

    async def _match(self, query: Mapping[str, Any], ctx: CallContext) -> Identity:
        if self.model is None:
            raise IdentityError("finding a person without a national ID needs a matching model (vsr.model)")
        proposed, seen = await self.sources.search(query, ctx)
        identity = self._decide(query, proposed)
        identity.provenance.append(seen)
        return identity

    def _decide(self, query: Mapping[str, Any], proposed: list[Candidate]) -> Identity:
        assert self.model is not None
        if not proposed:
            return Identity("not_found", "matching", note="the civil registry's search found no candidate")
        by_id = {str(c.person.data.get("record_id")): c.person for c in proposed}
        records = [{"source": "cra", **_canonical(c.person.data)} for c in proposed]
        scored = matching.score_candidates(
            self.model, {"record_id": "query", **_canonical(query)}, records, registry_size=self.registry_size
        )
        plausible = [c for c in scored if c.match_probability >= self.policy.floor]
        if not plausible:
            return Identity("not_found", "matching", note="no candidate is a plausible match")
        best = plausible[0]
        runner_up = plausible[1].match_probability if len(plausible) > 1 else 0.0
        if best.match_probability >= self.policy.threshold and runner_up < best.match_probability - self.policy.margin:
            return Identity(
                "resolved", "matching", person=by_id[best.record_id], match_probability=best.match_probability
            )
        candidates = [_candidate(by_id[c.record_id], c) for c in plausible[:5]]
        note = "the best candidate is not a confident match"
        if len(plausible) > 1:
            note = "several people in the civil registry could be this person"
            if _same_person(candidates[0], candidates[1]):
                note += "; the two best agree on name, sex and birth: perhaps one person registered twice"
        return Identity(
            "ambiguous", "matching", match_probability=best.match_probability, candidates=candidates, note=note
        )


def _canonical(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "record_id": data.get("record_id"),
        "given_name": data.get("given_name"),
        "second_name": data.get("second_name"),
        "surname": data.get("surname"),
        "sex": data.get("sex"),
        "birth_date": data.get("birth_date"),
        "birth_year": data.get("birth_year"),
        "mother_name": data.get("mother_name"),
        "district": data.get("district"),
        "locality": data.get("village"),
        "national_id": data.get("national_id"),
    }


def _candidate(person: Person, scored: matching.Candidate) -> dict[str, Any]:
    """What an officer needs to tell candidates apart with the applicant, and why each was proposed."""
    data = person.data
    return {
        "record_id": data.get("record_id"),
        "match_probability": round(scored.match_probability, 6),
        "match_weight": round(scored.match_weight, 3),
        "name": {k: data.get(k) for k in ("given_name", "second_name", "surname") if data.get(k)},
        "sex": data.get("sex"),
        "birth_date": data.get("birth_date"),
        "birth_year": data.get("birth_year"),
        "district": data.get("district"),
        "levels": scored.levels,
    }


def _same_person(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("name", "sex", "birth_date", "birth_year"))
