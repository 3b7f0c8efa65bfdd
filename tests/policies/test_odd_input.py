"""Whatever a file or a request holds, the package answers or raises a PolicyError, never anything else."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from policies import AgreementError, DecisionRequest, PolicyDecisionPoint, PolicyError, ServiceGrant, load_agreement
from policies.agreements import parse_moment
from tests.policies.helpers import BASE, CRA_SERVICE, MIS, PURPOSE, agreement

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

toml_scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.sampled_from(["ZZ/GOV/CRA", MIS, CRA_SERVICE, "2026-01-01", "*", "/v1/*", "600/minute", "consent"]),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _load_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.toml"
        path.write_bytes(data)
        with contextlib.suppress(AgreementError):
            load_agreement(path)


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_load_any_bytes(data: bytes) -> None:
    _load_text(data)


@SETTINGS
@given(
    changes=st.dictionaries(st.sampled_from([*BASE, "services.0", "extra"]), toml_values, max_size=4),
    service_changes=st.dictionaries(st.sampled_from(["service", "methods", "paths", "fields", "x"]), toml_values),
)
def test_load_mutated_agreements(changes: dict[str, Any], service_changes: dict[str, Any]) -> None:
    data: dict[str, Any] = {**BASE, "services": [{**BASE["services"][0], **service_changes}]}
    for key, value in changes.items():
        if key == "services.0":
            data["services"] = [value]
        else:
            data[key] = value
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return  # not expressible in TOML (for example a surrogate or a time-zone-less time): nothing to load
    _load_text(text.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(st.one_of(toml_values, st.times()))
def test_parse_moment(value: Any) -> None:
    try:
        result = parse_moment(value, end=True)
    except PolicyError:
        return
    assert result.tzinfo is dt.UTC


PDP = PolicyDecisionPoint(
    [agreement(), agreement(id="REST", services=(ServiceGrant(CRA_SERVICE, ("GET",), ("/v1/*",)),))],
    forbid=['forbid(principal, action, resource) when { context.path like "*admin*" };'],
)
texts = st.one_of(st.text(max_size=40), st.sampled_from([MIS, CRA_SERVICE, PURPOSE, "GET", "/v1/x", "", "*"]))


@SETTINGS
@example(MIS, CRA_SERVICE, PURPOSE, None, None, dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))))
@example(
    MIS, CRA_SERVICE, PURPOSE, "GET", "/v1/x", dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-14)))
)
@example(MIS, CRA_SERVICE, PURPOSE, "GET", "/v1/\ud800", dt.datetime.min)
@given(
    client=texts,
    service=texts,
    purpose=texts,
    method=st.none() | texts,
    path=st.none() | texts,
    now=st.none() | st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
)
def test_decide_and_explain_any_request(
    client: str, service: str, purpose: str, method: str | None, path: str | None, now: dt.datetime | None
) -> None:
    request = DecisionRequest(client, service, purpose, method, path, now)
    try:
        decision = PDP.decide(request)
        PDP.explain(request)
    except PolicyError:
        return
    assert decision.reason in {
        "allowed",
        "no_agreement",
        "purpose_not_allowed",
        "agreement_expired",
        "agreement_not_yet_valid",
        "method_not_allowed",
        "forbidden",
    }
    assert decision.allowed == (decision.reason == "allowed")


@SETTINGS
@given(
    st.text(max_size=80)
    | st.sampled_from(["forbid(principal, action, resource);", "permit(principal,action,resource);"])
)
def test_any_forbid_text(rule: str) -> None:
    with contextlib.suppress(PolicyError):
        PolicyDecisionPoint([agreement()], forbid=[rule])
