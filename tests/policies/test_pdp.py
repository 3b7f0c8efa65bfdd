"""The policy decision point, with real Cedar: what it allows, and the reason it gives for each refusal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from policies import (
    AgreementError,
    Decision,
    DecisionRequest,
    PolicyDecisionPoint,
    PolicyError,
    RateLimit,
    ServiceGrant,
)
from tests.policies.helpers import CRA_SERVICE, MIS, PURPOSE, agreement

AT = datetime(2026, 5, 1, 9, tzinfo=UTC)
REST = "ZZ/GOV/CRA/civreg/persons"
MARKETING = 'forbid(principal, action, resource) when { context.purpose == "marketing" };'


def ask(pdp: PolicyDecisionPoint, **changes: object) -> Decision:
    values: dict[str, object] = {"client": MIS, "service": CRA_SERVICE, "purpose": PURPOSE, "now": AT}
    values.update(changes)
    return pdp.decide(DecisionRequest(**values))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pdp() -> PolicyDecisionPoint:
    rest = ServiceGrant(REST, ("GET",), ("/v1/persons/*", "/v1/count"), ("persons.id",))
    return PolicyDecisionPoint(
        [
            agreement(services=(ServiceGrant(CRA_SERVICE, None, None, ("found", "person.surname")), rest)),
            agreement(
                id="DSA-CRA-OLD",
                version=1,
                purposes=("audit",),
                valid_from=datetime(2020, 1, 1, tzinfo=UTC),
                valid_until=datetime(2025, 12, 31, tzinfo=UTC),
            ),
            agreement(
                id="DSA-CRA-FUTURE",
                version=1,
                purposes=("census",),
                valid_from=datetime(2027, 1, 1, tzinfo=UTC),
            ),
        ],
        forbid=[MARKETING],
    )


def test_allowed_carries_what_the_agreement_says(pdp: PolicyDecisionPoint) -> None:
    decision = ask(pdp)
    assert decision == Decision(
        allowed=True,
        reason="allowed",
        message="Agreement DSA-CRA-MSP-001 version 2 allows this exchange for purpose old-age-grant-eligibility.",
        agreement_id="DSA-CRA-MSP-001",
        agreement_version=2,
        lawful_basis="legal-obligation",
        legal_reference="Social Assistance Act 2004, s. 12",
        data_categories=("identity", "vital-status"),
        fields=("found", "person.surname"),
        rate_limit=RateLimit(600, 60),
    )


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        (
            {"client": "ZZ/GOV/TAX/income"},
            "no_agreement",
            "No data-sharing agreement covers this service for this client.",
        ),
        (
            {"service": "ZZ/GOV/CRA/civreg/Other"},
            "no_agreement",
            "No data-sharing agreement covers this service for this client.",
        ),
        (
            {"purpose": "child-grant"},
            "purpose_not_allowed",
            "Agreement DSA-CRA-MSP-001 version 2 does not cover purpose child-grant.",
        ),
        (
            {"purpose": "no such purpose!"},
            "purpose_not_allowed",
            "Agreement DSA-CRA-MSP-001 version 2 does not cover the purpose given.",
        ),
        (
            {"purpose": "audit"},
            "agreement_expired",
            "Agreement DSA-CRA-OLD version 1 expired: it was valid until 2025-12-31T00:00:00Z.",
        ),
        (
            {"purpose": "census"},
            "agreement_not_yet_valid",
            "Agreement DSA-CRA-FUTURE version 1 is valid only from 2027-01-01.",
        ),
        ({"purpose": "marketing"}, "forbidden", "A federation rule forbids this exchange."),
        (
            {"service": REST, "method": "POST", "path": "/v1/count"},
            "method_not_allowed",
            "Agreement DSA-CRA-MSP-001 version 2 does not allow this method or path for this service.",
        ),
    ],
)
def test_each_refusal_names_its_reason(
    pdp: PolicyDecisionPoint, changes: dict[str, object], reason: str, message: str
) -> None:
    decision = ask(pdp, **changes)
    assert (decision.allowed, decision.reason, decision.message) == (False, reason, message)
    assert decision.fields == ()  # a refusal releases nothing, even to a careless caller
    assert decision.lawful_basis is None


def test_refusal_names_the_agreement_it_came_closest_to(pdp: PolicyDecisionPoint) -> None:
    decision = ask(pdp, purpose="audit")
    assert (decision.agreement_id, decision.agreement_version) == ("DSA-CRA-OLD", 1)
    assert ask(pdp, client="ZZ/GOV/TAX/income").agreement_id is None


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/count", True),
        ("get", "/v1/count", True),
        ("GET", "/v1/persons/12", True),
        ("GET", "/v1/persons/12/addresses", True),  # * is any characters, slashes included
        ("GET", "/v1/persons", False),
        ("GET", "/v1/count/extra", False),
        ("GET", "/v1/countx", False),
        ("GET", "/v1/persons/../secrets", False),
        ("GET", "/v1/persons/%2e%2E/secrets", False),
        ("GET", "/v1/persons/./12", False),
        ("GET", None, False),
        (None, "/v1/count", False),
        ("DELETE", "/v1/persons/12", False),
    ],
)
def test_rest_method_and_path(pdp: PolicyDecisionPoint, method: str | None, path: str | None, allowed: bool) -> None:
    decision = ask(pdp, service=REST, method=method, path=path)
    assert decision.allowed is allowed
    assert decision.reason == ("allowed" if allowed else "method_not_allowed")
    if allowed:
        assert decision.fields == ("persons.id",)


def test_unrestricted_service_ignores_method_and_path(pdp: PolicyDecisionPoint) -> None:
    assert ask(pdp, method="POST", path="/anything/../at/all").allowed


def test_validity_edges_are_inclusive_to_the_second() -> None:
    bounded = agreement(
        valid_from=datetime(2026, 3, 1, 8, tzinfo=timezone(timedelta(hours=3))),  # 05:00 UTC
        valid_until=datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    pdp = PolicyDecisionPoint([bounded])
    start = datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert ask(pdp, now=start).allowed
    assert ask(pdp, now=start - timedelta(seconds=1)).reason == "agreement_not_yet_valid"
    assert ask(pdp, now=datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)).allowed
    assert ask(pdp, now=datetime(2026, 4, 1, tzinfo=UTC)).reason == "agreement_expired"
    assert ask(pdp, now=datetime(2026, 3, 1, 5)).allowed  # naive: taken as UTC
    assert ask(pdp, now=datetime(2026, 3, 1, 7, 59, tzinfo=timezone(timedelta(hours=3)))).reason == (
        "agreement_not_yet_valid"
    )


def test_now_defaults_to_the_current_time() -> None:
    current = agreement(valid_from=datetime.now(UTC) - timedelta(days=1))
    stale = agreement(
        id="OLD", valid_from=datetime(2000, 1, 1, tzinfo=UTC), valid_until=datetime(2001, 1, 1, tzinfo=UTC)
    )
    assert PolicyDecisionPoint([current]).decide(DecisionRequest(MIS, CRA_SERVICE, PURPOSE)).allowed
    assert PolicyDecisionPoint([stale]).decide(DecisionRequest(MIS, CRA_SERVICE, PURPOSE)).reason == "agreement_expired"


def test_only_the_highest_version_counts() -> None:
    v1 = agreement(version=1, purposes=(PURPOSE, "audit"))
    v2 = agreement(version=2, purposes=(PURPOSE,), services=(ServiceGrant(CRA_SERVICE, None, None, ("found",)),))
    for order in ([v1, v2], [v2, v1]):
        pdp = PolicyDecisionPoint(order)
        refused = ask(pdp, purpose="audit")
        assert (refused.reason, refused.agreement_version) == ("purpose_not_allowed", 2)
        allowed = ask(pdp)
        assert (allowed.agreement_version, allowed.fields) == (2, ("found",))
        assert pdp.agreements_for() == [v2]


def test_of_two_matching_agreements_the_higher_version_answers() -> None:
    a = agreement(id="DSA-A", version=1, services=(ServiceGrant(CRA_SERVICE, None, None, ("found",)),))
    b = agreement(id="DSA-B", version=4, lawful_basis="public-task", services=(ServiceGrant(CRA_SERVICE),))
    decision = ask(PolicyDecisionPoint([a, b]))
    assert (decision.agreement_id, decision.lawful_basis, decision.fields) == ("DSA-B", "public-task", None)


def test_grants_of_one_service_in_one_agreement_unite_their_fields() -> None:
    a = agreement(
        services=(
            ServiceGrant(REST, ("GET",), ("/v1/persons/*",), ("person.surname", "found")),
            ServiceGrant(REST, ("GET",), ("/v1/persons/12",), ("found", "person.birthDate")),
            ServiceGrant(REST, ("POST",), None, None),
        )
    )
    pdp = PolicyDecisionPoint([a])
    assert ask(pdp, service=REST, method="GET", path="/v1/persons/12").fields == (
        "person.surname",
        "found",
        "person.birthDate",
    )
    assert ask(pdp, service=REST, method="GET", path="/v1/persons/13").fields == ("person.surname", "found")
    assert ask(pdp, service=REST, method="POST", path="/v1/x").fields is None


def test_several_clients() -> None:
    other = "ZZ/GOV/SIF/benefits"
    pdp = PolicyDecisionPoint([agreement(clients=(MIS, other))])
    assert ask(pdp).allowed
    assert ask(pdp, client=other).allowed
    assert ask(pdp, client="ZZ/GOV/SIF/other").reason == "no_agreement"


def test_forbid_rules_beat_agreements() -> None:
    rules = [
        'forbid(principal == Kiungo::Client::"ZZ/GOV/MSP/programme-mis", action, resource);',
        '@id("no-night") forbid(principal, action, resource) when { context.now < 0 };',
    ]
    pdp = PolicyDecisionPoint([agreement()], forbid=rules)
    assert ask(pdp).reason == "forbidden"
    assert ask(PolicyDecisionPoint([agreement()], forbid=rules[1:])).allowed


def test_a_forbid_rule_that_errs_refuses() -> None:
    pdp = PolicyDecisionPoint([agreement()], forbid=["forbid(principal, action, resource) when { context.nope == 1 };"])
    decision = ask(pdp)
    assert (decision.allowed, decision.reason) == (False, "forbidden")
    assert "could not be evaluated" in decision.message


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("forbid(principal, action, resource", "forbid rule 1 is not valid Cedar: "),
        ("permit(principal, action, resource);", "forbid rule 1 holds a permit policy; only forbid rules may be added"),
        ("", "forbid rule 1 holds no policy"),
        ("forbid(?principal, action, resource);", "forbid rule 1 is not valid Cedar"),
    ],
)
def test_bad_forbid_rules(rule: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint([agreement()], forbid=[rule])
    assert str(caught.value).startswith(message)


def test_refuses_duplicates_and_foreign_services() -> None:
    with pytest.raises(AgreementError, match=r"DSA-CRA-MSP-001 v2 is loaded twice \(not from a file and not from"):
        PolicyDecisionPoint([agreement(), agreement(title="another text")])
    with pytest.raises(AgreementError, match="ZZ/GOV/TAX/income/Get is not a service of the provider ZZ/GOV/CRA"):
        PolicyDecisionPoint([agreement(services=(ServiceGrant("ZZ/GOV/TAX/income/Get"),))])


def test_no_agreements_means_deny() -> None:
    assert ask(PolicyDecisionPoint([])).reason == "no_agreement"


def test_hand_built_values_cannot_inject_cedar() -> None:
    sneaky = agreement(clients=('ZZ/GOV/MSP/x" || true || "',), purposes=('p" || true || "',))
    pdp = PolicyDecisionPoint([sneaky])
    assert not ask(pdp).allowed
    assert ask(pdp, client='ZZ/GOV/MSP/x" || true || "', purpose='p" || true || "').allowed


def test_agreements_for(pdp: PolicyDecisionPoint) -> None:
    assert [a.id for a in pdp.agreements_for()] == ["DSA-CRA-FUTURE", "DSA-CRA-MSP-001", "DSA-CRA-OLD"]
    assert [a.id for a in pdp.agreements_for(service=REST)] == ["DSA-CRA-MSP-001"]
    assert [a.id for a in pdp.agreements_for(client=MIS, service=CRA_SERVICE)] == [
        "DSA-CRA-FUTURE",
        "DSA-CRA-MSP-001",
        "DSA-CRA-OLD",
    ]
    assert pdp.agreements_for(client="ZZ/GOV/X/y") == []


def test_explain_says_why_each_agreement_did_or_did_not_apply(pdp: PolicyDecisionPoint) -> None:
    text = pdp.explain(DecisionRequest(MIS, CRA_SERVICE, "audit", now=AT))
    assert text.splitlines()[:2] == [
        f"request: client {MIS} calls {CRA_SERVICE} for purpose audit at 2026-05-01T09:00:00Z",
        "decision: denied (agreement_expired): Agreement DSA-CRA-OLD version 1 expired: it was valid until "
        "2025-12-31T00:00:00Z.",
    ]
    assert "  - DSA-CRA-FUTURE v1 [DSA-CRA-FUTURE#v1#svc0] 'Civil registry facts for the old-age grant': " in text
    assert "does not list this purpose (it lists census)" in text
    assert "expired: valid until 2025-12-31T00:00:00Z" in text

    allowed = pdp.explain(DecisionRequest(MIS, REST, PURPOSE, "GET", "/v1/count", AT))
    assert "decision: allowed by DSA-CRA-MSP-001 v2" in allowed
    assert "fields released: persons.id" in allowed
    assert "rate limit: 600/minute per client" in allowed
    assert '@id("DSA-CRA-MSP-001#v2#svc1")' in allowed  # the Cedar policy that applied, for the DPO
    assert 'when { (context.method) == "GET" }' in allowed

    forbidden = pdp.explain(DecisionRequest(MIS, CRA_SERVICE, "marketing", now=AT))
    assert "decision: denied (forbidden)" in forbidden
    assert MARKETING in forbidden

    nothing = pdp.explain(DecisionRequest(MIS, "ZZ/GOV/CRA/civreg/Unknown", PURPOSE, now=AT))
    assert "no agreement in force grants ZZ/GOV/CRA/civreg/Unknown" in nothing
    assert f"agreements naming {MIS} cover other services:" in nothing


def test_explain_mentions_superseded_versions() -> None:
    pdp = PolicyDecisionPoint([agreement(version=1), agreement(version=3)])
    text = pdp.explain(DecisionRequest(MIS, CRA_SERVICE, PURPOSE, now=AT))
    assert "DSA-CRA-MSP-001 v1: superseded by v3 (only the highest version counts)" in text


@pytest.mark.parametrize(
    "request_",
    [
        DecisionRequest(MIS, CRA_SERVICE, "p\ud800", now=AT),
        DecisionRequest(MIS, CRA_SERVICE, 3, now=AT),  # type: ignore[arg-type]
        DecisionRequest(MIS, CRA_SERVICE, PURPOSE, method=b"GET", now=AT),  # type: ignore[arg-type]
        DecisionRequest(MIS, CRA_SERVICE, PURPOSE, now="2026-05-01"),  # type: ignore[arg-type]
        "not a request",
    ],
)
def test_odd_requests_are_policy_errors(pdp: PolicyDecisionPoint, request_: DecisionRequest) -> None:
    with pytest.raises(PolicyError):
        pdp.decide(request_)


def test_decision_is_frozen(pdp: PolicyDecisionPoint) -> None:
    decision = ask(pdp)
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]
    assert replace(decision, allowed=False).allowed is False
