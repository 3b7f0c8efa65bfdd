"""What the registry asks each agency, in the agencies' own terms (the sandbox's reference APIs).

One adapter per kind of source: the civil registry (SOAP: a person by ID, a search by demographics,
a household), the tax authority (declared incomes), the social security fund (members and their
pensions) and the programme MIS (enrolments). Each returns plain data with the provenance of the
exchange that produced it; a source that fails raises `SourceFailed`, and the registry carries on
without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from gateway.vsr.batching import Batcher
from gateway.xroadclient import Answer, CallContext, Provenance, XRoadClient

CRA_NAMESPACE = "urn:zz:cra:civreg:1"
#: The civil registry's person fields, as its WSDL names them, and the view's names for them.
PERSON_FIELDS: dict[str, str] = {
    "recordId": "record_id",
    "nationalId": "national_id",
    "birthCertificateNo": "birth_certificate_no",
    "surname": "surname",
    "givenName": "given_name",
    "secondName": "second_name",
    "sex": "sex",
    "birthDate": "birth_date",
    "birthYear": "birth_year",
    "motherName": "mother_name",
    "districtCode": "district",
    "villageCode": "village",
    "householdId": "household_id",
    "deathDate": "death_date",
    "status": "status",
}


@dataclass(frozen=True)
class SourceServices:
    """The services the registry asks; configured per country (these defaults are the sandbox's)."""

    civil_registry: str = "ZZ/GOV/CRA/civreg"  # subsystem offering the operations below
    tax: str = "ZZ/GOV/TAX/taxreg/taxpayers"
    social_security: str = "ZZ/GOV/SSF/contributions/members"
    programmes: str = "ZZ/GOV/MSP/programme-mis/beneficiaries"


@dataclass
class Person:
    """A civil registry record in the view's words, with the exchange it came from."""

    data: dict[str, Any]
    provenance: Provenance
    relationship: str | None = None  # within a household

    @property
    def national_id(self) -> str | None:
        value = self.data.get("national_id")
        return str(value) if value else None


@dataclass
class Household:
    household_id: str | None
    members: list[Person]
    provenance: Provenance


@dataclass
class Candidate:
    person: Person
    registry_score: float  # the civil registry's own naive score, not the match probability


@dataclass
class Income:
    yearly: dict[int, int]  # year -> declared gross income
    provenance: Provenance


@dataclass
class Pension:
    members: list[dict[str, Any]]  # fund members with this national ID
    pensions: list[dict[str, Any]] = field(default_factory=list)  # each {"ssn", "kind", "monthly_amount", "status"}
    provenance: list[Provenance] = field(default_factory=list)


@dataclass
class Enrolments:
    items: list[dict[str, Any]]
    provenance: Provenance


def _person(element: etree._Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = PERSON_FIELDS.get(etree.QName(child).localname)
        if name is None or child.text is None:
            continue
        text = child.text.strip()
        out[name] = int(text) if name == "birth_year" and text.isdigit() else text
    return out


def _q(local: str) -> str:
    return f"{{{CRA_NAMESPACE}}}{local}"


class Sources:
    """The four kinds of source, reached through the gateway."""

    def __init__(self, client: XRoadClient, services: SourceServices | None = None) -> None:
        self.client = client
        self.services = services or SourceServices()

    def _cra(self, operation: str) -> str:
        return f"{self.services.civil_registry}/{operation}"

    async def person_by_id(self, national_id: str, ctx: CallContext) -> tuple[Person | None, Provenance]:
        service = self._cra("GetPersonByNationalId")
        answer = await self.client.soap(service, ctx, {"nationalId": national_id}, CRA_NAMESPACE)
        element = answer.data.find(_q("person"))
        if answer.data.findtext(_q("found")) != "true" or element is None:
            return None, answer.provenance
        return Person(_person(element), answer.provenance), answer.provenance

    async def search(
        self, criteria: Mapping[str, Any], ctx: CallContext, max_results: int = 20
    ) -> tuple[list[Candidate], Provenance]:
        arguments = {
            "surname": criteria.get("surname"),
            "givenName": criteria.get("given_name"),
            "sex": criteria.get("sex"),
            "birthDate": criteria.get("birth_date"),
            "birthYear": None if criteria.get("birth_date") else criteria.get("birth_year"),
            "districtCode": criteria.get("district"),
            "maxResults": max_results,
        }
        answer = await self.client.soap(
            self._cra("SearchPersons"), ctx, {k: v for k, v in arguments.items() if v}, CRA_NAMESPACE
        )
        out: list[Candidate] = []
        for candidate in answer.data.findall(_q("candidate")):
            element = candidate.find(_q("person"))
            if element is None:
                continue
            score = float(candidate.findtext(_q("score")) or 0)
            out.append(Candidate(Person(_person(element), answer.provenance), score))
        return out, answer.provenance

    async def household(self, person: Person, ctx: CallContext) -> Household | None:
        key = ("nationalId", person.national_id) if person.national_id else ("recordId", person.data.get("record_id"))
        answer = await self.client.soap(self._cra("GetHousehold"), ctx, {key[0]: str(key[1])}, CRA_NAMESPACE)
        if answer.data.findtext(_q("found")) != "true":
            return None
        members = []
        for member in answer.data.findall(_q("member")):
            element = member.find(_q("person"))
            if element is not None:
                members.append(Person(_person(element), answer.provenance, member.findtext(_q("relationship"))))
        return Household(answer.data.findtext(_q("householdId")), members, answer.provenance)

    async def income(self, national_id: str, ctx: CallContext) -> Income:
        answer = await self.client.rest(self.services.tax, "/v1/incomes", ctx, params={"national_id": national_id})
        totals = (answer.data or {}).get("totals") or []
        yearly = {int(t["year"]): int(t["gross_income"]) for t in totals if t.get("gross_income") is not None}
        return Income(yearly, answer.provenance)

    async def pension(self, national_id: str, ctx: CallContext) -> Pension:
        members_answer = await self.client.rest(
            self.services.social_security, "/v1/members", ctx, params={"national_id": national_id}
        )
        members = list((members_answer.data or {}).get("items") or [])
        result = Pension(members, [], [members_answer.provenance])
        ssns = [str(m["ssn"]) for m in members if m.get("ssn")]
        answers: list[Answer] = await asyncio.gather(
            *(self.client.rest(self.services.social_security, f"/v1/members/{ssn}/pension", ctx) for ssn in ssns)
        )
        for ssn, answer in zip(ssns, answers, strict=True):
            result.provenance.append(answer.provenance)
            pension = (answer.data or {}).get("pension") if answer.found else None
            if pension:
                result.pensions.append({"ssn": ssn, **pension})
        return result

    async def enrolments(self, national_id: str, ctx: CallContext) -> Enrolments:
        answer = await self.client.rest(
            self.services.programmes, "/v1/beneficiaries", ctx, params={"national_id": national_id}
        )
        return Enrolments(list((answer.data or {}).get("items") or []), answer.provenance)

    async def enrolments_by_name(self, data: Mapping[str, Any], ctx: CallContext) -> Enrolments:
        """Enrolments of a person without a national ID: the MIS's search by surname and birth date."""
        params = {k: str(data[k]) for k in ("surname", "given_name", "birth_date") if data.get(k)}
        answer = await self.client.rest(self.services.programmes, "/v1/beneficiaries", ctx, params=params)
        items = [i for i in (answer.data or {}).get("items") or [] if not i.get("national_id")]
        return Enrolments(items, answer.provenance)

    async def person_by_record(self, record_id: str, ctx: CallContext) -> tuple[Person | None, Provenance]:
        service = self._cra("GetPersonByRecordId")
        answer = await self.client.soap(service, ctx, {"recordId": record_id}, CRA_NAMESPACE)
        element = answer.data.find(_q("person"))
        if answer.data.findtext(_q("found")) != "true" or element is None:
            return None, answer.provenance
        return Person(_person(element), answer.provenance), answer.provenance

    async def residents(
        self, district: str, ctx: CallContext, *, offset: int, limit: int, status: str = "alive"
    ) -> tuple[list[Person], bool]:
        """One page of the people the civil registry lists in a district (living, or `all`)."""
        arguments: dict[str, str | int] = {"districtCode": district, "offset": offset, "limit": limit, "status": status}
        answer = await self.client.soap(self._cra("ListResidents"), ctx, arguments, CRA_NAMESPACE)
        people = [Person(_person(e), answer.provenance) for e in answer.data.findall(_q("person"))]
        return people, answer.data.findtext(_q("hasMore")) == "true"


def _by(items: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item.get(key):
            out.setdefault(str(item[key]), []).append(item)
    return out


class BatchedSources(Sources):
    """The same questions, asked for up to `size` people per exchange (the agencies' batch look-ups).

    For bulk work only: each answer waits a few milliseconds for others to share its exchange, and
    the log of each such exchange names every person it concerned.
    """

    def __init__(
        self,
        client: XRoadClient,
        services: SourceServices | None,
        ctx: CallContext,
        *,
        size: int = 100,
        wait: float = 0.01,
        single: int = 8,
    ) -> None:
        super().__init__(client, services)
        self.ctx = ctx  # one job's purpose, end user and issue: every batch is that job's
        # questions that cannot travel in a batch go one at a time, a few at once, so that the many
        # people in flight for the batches do not flood the gateway with single exchanges (and time out)
        self._single = asyncio.Semaphore(single)
        self._people: Batcher[str, tuple[Person | None, Provenance]] = Batcher(self._fetch_people, size=size, wait=wait)
        self._incomes: Batcher[str, Income] = Batcher(self._fetch_incomes, size=size, wait=wait)
        self._members: Batcher[str, tuple[list[dict[str, Any]], Provenance]] = Batcher(
            self._fetch_members, size=size, wait=wait
        )
        self._pensions: Batcher[str, tuple[dict[str, Any] | None, Provenance]] = Batcher(
            self._fetch_pensions, size=size, wait=wait
        )
        self._enrolments: Batcher[str, Enrolments] = Batcher(self._fetch_enrolments, size=size, wait=wait)

    async def aclose(self) -> None:
        for batcher in (self._people, self._incomes, self._members, self._pensions, self._enrolments):
            await batcher.aclose()

    async def _fetch_people(self, ids: list[str]) -> dict[str, tuple[Person | None, Provenance]]:
        service = self._cra("GetPersonsByNationalIds")
        answer = await self.client.soap(service, self.ctx, {"nationalId": ids}, CRA_NAMESPACE)
        found: dict[str, tuple[Person | None, Provenance]] = {nid: (None, answer.provenance) for nid in ids}
        for element in answer.data.findall(_q("person")):
            person = Person(_person(element), answer.provenance)
            if person.national_id in found:
                found[person.national_id] = (person, answer.provenance)
        return found

    async def _fetch_incomes(self, ids: list[str]) -> dict[str, Income]:
        answer = await self.client.rest(self.services.tax, "/v1/incomes/batch", self.ctx, params={"national_id": ids})
        out = {nid: Income({}, answer.provenance) for nid in ids}
        for item in (answer.data or {}).get("items") or []:
            totals = item.get("totals") or []
            yearly = {int(t["year"]): int(t["gross_income"]) for t in totals if t.get("gross_income") is not None}
            out[str(item.get("national_id"))] = Income(yearly, answer.provenance)
        return out

    async def _fetch_members(self, ids: list[str]) -> dict[str, tuple[list[dict[str, Any]], Provenance]]:
        answer = await self.client.rest(
            self.services.social_security, "/v1/members", self.ctx, params={"national_id": ids}
        )
        members = _by(list((answer.data or {}).get("items") or []), "national_id")
        return {nid: (members.get(nid, []), answer.provenance) for nid in ids}

    async def _fetch_pensions(self, ssns: list[str]) -> dict[str, tuple[dict[str, Any] | None, Provenance]]:
        answer = await self.client.rest(self.services.social_security, "/v1/pensions", self.ctx, params={"ssn": ssns})
        items = {str(i.get("ssn")): i.get("pension") for i in (answer.data or {}).get("items") or []}
        return {ssn: (items.get(ssn), answer.provenance) for ssn in ssns}

    async def _fetch_enrolments(self, ids: list[str]) -> dict[str, Enrolments]:
        answer = await self.client.rest(
            self.services.programmes, "/v1/beneficiaries", self.ctx, params={"national_id": ids}
        )
        items = _by(list((answer.data or {}).get("items") or []), "national_id")
        return {nid: Enrolments(items.get(nid, []), answer.provenance) for nid in ids}

    async def person_by_id(self, national_id: str, ctx: CallContext) -> tuple[Person | None, Provenance]:
        found = await self._people.load(national_id)
        assert found is not None  # every asked key is answered, found or not
        return found

    async def income(self, national_id: str, ctx: CallContext) -> Income:
        found = await self._incomes.load(national_id)
        assert found is not None
        return found

    async def pension(self, national_id: str, ctx: CallContext) -> Pension:
        members_found = await self._members.load(national_id)
        assert members_found is not None
        members, seen = members_found
        result = Pension(members, [], [seen])
        ssns = [str(m["ssn"]) for m in members if m.get("ssn")]
        for ssn, answer in zip(ssns, await asyncio.gather(*(self._pensions.load(ssn) for ssn in ssns)), strict=True):
            assert answer is not None
            pension, where = answer
            if where not in result.provenance:
                result.provenance.append(where)
            if pension:
                result.pensions.append({"ssn": ssn, **pension})
        return result

    async def enrolments(self, national_id: str, ctx: CallContext) -> Enrolments:
        found = await self._enrolments.load(national_id)
        assert found is not None
        return found

    async def person_by_record(self, record_id: str, ctx: CallContext) -> tuple[Person | None, Provenance]:
        async with self._single:
            return await super().person_by_record(record_id, ctx)

    async def search(
        self, criteria: Mapping[str, Any], ctx: CallContext, max_results: int = 20
    ) -> tuple[list[Candidate], Provenance]:
        async with self._single:
            return await super().search(criteria, ctx, max_results)

    async def household(self, person: Person, ctx: CallContext) -> Household | None:
        async with self._single:
            return await super().household(person, ctx)

    async def enrolments_by_name(self, data: Mapping[str, Any], ctx: CallContext) -> Enrolments:
        async with self._single:
            return await super().enrolments_by_name(data, ctx)
