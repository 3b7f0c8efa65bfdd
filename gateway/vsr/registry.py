"""The virtual social registry: resolve a person, ask every source at once, merge, decide.

Nothing is stored: each query asks the agencies afresh through the exchange layer, so an answer is
as current as the sources and every look-up is an exchange a DPO can see.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import matching
from gateway.vsr.eligibility import Decision, Programme, RuleBook, evaluate
from gateway.vsr.errors import QueryError, SourceFailed
from gateway.vsr.facts import Facts
from gateway.vsr.identity import Identity, MatchPolicy, Method, Resolver, check_query
from gateway.vsr.sources import Person, Sources
from gateway.vsr.view import Gathered, SourceOutcome, derive_facts, render
from gateway.xroadclient import CallContext

T = TypeVar("T")
#: What a query asks the sources: everything, only who the person is, or who and her enrolments.
Scope = Literal["full", "identity", "enrolments"]
#: The sources asked besides the civil registry's identification: household, tax, fund, programme MIS.
SOURCES = frozenset({"household", "tax", "ssf", "mis"})
SCOPES: dict[str, frozenset[str]] = {"full": SOURCES, "identity": frozenset(), "enrolments": frozenset({"mis"})}


def sources_for(programme: Programme, *, also: frozenset[str] = frozenset()) -> frozenset[str]:
    """Only the sources whose facts the programme's rules read: asking more would collect data for nothing."""
    needs = set(also)
    for rule in programme.rules:
        prefix = rule.fact.split(".", 1)[0]
        if prefix in ("household", "caregiver"):
            needs.add("household")
        elif prefix == "pension":
            needs.add("ssf")
        elif prefix == "income":
            needs.add("tax")
        elif prefix in ("disability", "enrolment"):
            needs.add("mis")
    return frozenset(needs)


#: Facts whose rules need each household member's means asked (one tax and one fund query per member).
HOUSEHOLD_MEANS = ("household.income_monthly", "household.income_monthly_per_member")


@dataclass
class Answer:
    """A person query's outcome: what was gathered, the facts, and the decision when one was asked."""

    gathered: Gathered
    facts: Facts
    decision: Decision | None = None

    def as_dict(self, *, with_facts: bool = True) -> dict[str, Any]:
        out = render(self.gathered, self.facts, with_facts=with_facts and self.decision is None)
        if self.decision is not None:
            out["decision"] = self.decision.as_dict()
        return out


class VirtualRegistry:
    def __init__(
        self,
        sources: Sources,
        rules: RuleBook,
        model: matching.TrainedModel | None,
        *,
        registry_size: int,
        source_timeout: float = 5.0,
        as_of: dt.date | None = None,
        policy: MatchPolicy | None = None,
    ) -> None:
        self.sources = sources
        self.rules = rules
        self.resolver = Resolver(sources, model, registry_size=registry_size, policy=policy)
        self.source_timeout = source_timeout
        self.as_of = as_of

    def with_sources(self, sources: Sources, *, source_timeout: float | None = None) -> VirtualRegistry:
        """The same registry asking through other sources (a bulk job's batched ones).

        A bulk job's questions queue for their batch or their turn, so its `source_timeout` covers the
        wait too; each exchange keeps the client's own timeout, so a hung source still fails fast.
        """
        twin = copy.copy(self)
        twin.sources = sources
        twin.source_timeout = source_timeout or self.source_timeout
        twin.resolver = Resolver(
            sources, self.resolver.model, registry_size=self.resolver.registry_size, policy=self.resolver.policy
        )
        return twin

    def today(self) -> dt.date:
        return self.as_of or dt.datetime.now(dt.UTC).date()

    def programme(self, name: str) -> Programme:
        return self.rules.get(name, self.today())

    async def person(
        self,
        query: Mapping[str, Any],
        ctx: CallContext,
        *,
        household_means: bool = False,
        scope: Scope = "full",
        needs: frozenset[str] | None = None,
    ) -> Answer:
        """Who the person is and what the sources know; `scope` (or `needs`) asks only what the question needs."""
        clean = check_query(query)
        gathered = await self._gather(clean, ctx, household_means, SCOPES[scope] if needs is None else needs)
        return Answer(gathered, derive_facts(gathered, self.today()))

    async def eligibility(
        self,
        query: Mapping[str, Any],
        programme_name: str,
        ctx: CallContext,
        *,
        purpose: str | None = None,
        also: frozenset[str] = frozenset(),
    ) -> Answer:
        """Decide for one person; `purpose` replaces the programme's own (a list cross-check asks under its own)."""
        programme = self.programme(programme_name)
        if ctx.purpose != (purpose or programme.purpose):
            raise QueryError(
                f"the purpose of this exchange is {ctx.purpose!r}; deciding {programme.programme!r} "
                f"needs the purpose {purpose or programme.purpose!r}"
            )
        needs_means = any(rule.fact in HOUSEHOLD_MEANS for rule in programme.rules)
        answer = await self.person(query, ctx, household_means=needs_means, needs=sources_for(programme, also=also))
        answer.decision = evaluate(programme, answer.facts, on=self.today())
        return answer

    async def _timed(self, service: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.source_timeout)
        except TimeoutError:
            raise SourceFailed(service, "Timeout", f"no answer within {self.source_timeout:g} s") from None

    async def _gather(
        self, query: Mapping[str, Any], ctx: CallContext, household_means: bool, needs: frozenset[str]
    ) -> Gathered:
        services = self.sources.services
        outcomes = {
            "civil-registry": SourceOutcome("civil-registry", services.civil_registry),
            "tax": SourceOutcome("tax", services.tax),
            "social-security": SourceOutcome("social-security", services.social_security),
            "programmes": SourceOutcome("programmes", services.programmes),
        }
        cra = outcomes["civil-registry"]
        method: Method = (
            "national_id" if query.get("national_id") else "record_id" if query.get("record_id") else "matching"
        )
        try:
            identity = await self._timed(services.civil_registry, self.resolver.resolve(query, ctx))
            cra.ok(*identity.provenance)
        except SourceFailed as exc:
            cra.failed(exc)
            identity = Identity("unavailable", method, note="the civil registry could not be asked")
        gathered = Gathered(identity, outcomes)
        person = identity.person
        if person is None:
            return gathered
        asks: list[Awaitable[None]] = []
        if "household" in needs:
            asks.append(self._household(gathered, person, ctx, household_means))
        if "tax" in needs:
            asks.append(self._income(gathered, person, ctx))
        if "ssf" in needs:
            asks.append(self._pension(gathered, person, ctx))
        if "mis" in needs:
            asks.append(self._enrolments(gathered, person, ctx))
        await asyncio.gather(*asks)
        return gathered

    async def _household(self, g: Gathered, person: Person, ctx: CallContext, means: bool) -> None:
        cra = g.outcomes["civil-registry"]
        try:
            g.household = await self._timed(cra.service, self.sources.household(person, ctx))
        except SourceFailed as exc:
            cra.failed(exc)
            return
        if g.household is not None:
            cra.ok(g.household.provenance)
        if not means or g.household is None:
            return
        ids = sorted(
            {m.national_id for m in g.household.members if m.national_id and m.data.get("status") != "deceased"}
        )

        async def one(nid: str) -> None:
            tax, ssf = g.outcomes["tax"], g.outcomes["social-security"]
            try:
                income = await self._timed(tax.service, self.sources.income(nid, ctx))
                g.member_income[nid] = income
                tax.ok(income.provenance)
            except SourceFailed as exc:
                g.member_income[nid] = exc
                tax.failed(exc)
            try:
                pension = await self._timed(ssf.service, self.sources.pension(nid, ctx))
                g.member_pension[nid] = pension
                ssf.ok(*pension.provenance)
            except SourceFailed as exc:
                g.member_pension[nid] = exc
                ssf.failed(exc)

        await asyncio.gather(*(one(nid) for nid in ids))

    async def _income(self, g: Gathered, person: Person, ctx: CallContext) -> None:
        outcome = g.outcomes["tax"]
        if person.national_id is None:
            return
        try:
            g.income = await self._timed(outcome.service, self.sources.income(person.national_id, ctx))
            outcome.ok(g.income.provenance)
        except SourceFailed as exc:
            outcome.failed(exc)

    async def _pension(self, g: Gathered, person: Person, ctx: CallContext) -> None:
        outcome = g.outcomes["social-security"]
        if person.national_id is None:
            return
        try:
            g.pension = await self._timed(outcome.service, self.sources.pension(person.national_id, ctx))
            outcome.ok(*g.pension.provenance)
        except SourceFailed as exc:
            outcome.failed(exc)

    async def _enrolments(self, g: Gathered, person: Person, ctx: CallContext) -> None:
        outcome = g.outcomes["programmes"]
        try:
            if person.national_id is not None:
                g.enrolments = await self._timed(outcome.service, self.sources.enrolments(person.national_id, ctx))
            else:
                g.enrolments = await self._timed(outcome.service, self.sources.enrolments_by_name(person.data, ctx))
            outcome.ok(g.enrolments.provenance)
        except SourceFailed as exc:
            outcome.failed(exc)
