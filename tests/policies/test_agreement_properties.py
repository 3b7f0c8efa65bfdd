"""Properties of agreements: what loads is what was written, and the decision point decides exactly as written.

`test_odd_input.py` shows that no file or request makes the package fail any other way than a
`PolicyError`; these state what a *valid* agreement means, for agreements and requests made up by
Hypothesis: a file loads back to the values written in it, a mistake in any one field is named, and the
Cedar decision (with its reason) equals a plain reading of the agreement, condition by condition.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policies import (
    Agreement,
    AgreementError,
    DecisionRequest,
    PolicyDecisionPoint,
    RateLimit,
    ServiceGrant,
    load_agreement,
    minimise_json,
)
from policies.agreements import END_OF_DAY
from tests.conftest import RUN_SLOW

#: Cheap in memory, a little dearer with files and Cedar; CI (the slow run) takes ten times as many.
SETTINGS = settings(max_examples=400 if RUN_SLOW else 40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PART = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9'()+,\-=]{0,11}", fullmatch=True)
CODE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,20}", fullmatch=True)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
SEGMENT = st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True).filter(lambda s: s not in (".", ".."))
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
GLOB = st.lists(SEGMENT | st.just("*"), min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
FIELD = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True) | st.just("*"), min_size=1, max_size=3).map(
    ".".join
)
DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass
class Written:
    """An agreement as its author writes it (the TOML table), with what loading it must give."""

    table: dict[str, Any]
    provider: str
    clients: list[str]
    purposes: list[str]
    start: date
    end: date


@st.composite
def agreements(draw: st.DrawFn) -> Written:
    provider = "/".join(draw(st.lists(PART, min_size=3, max_size=3)))
    clients = draw(st.lists(st.lists(PART, min_size=4, max_size=4).map("/".join), min_size=1, max_size=3, unique=True))
    purposes = draw(st.lists(CODE, min_size=1, max_size=3, unique=True))
    start = draw(DAYS)
    end = start + timedelta(days=draw(st.integers(0, 3000)))
    services: list[dict[str, Any]] = []
    for code in draw(st.lists(PART, min_size=1, max_size=3, unique=True)):
        grant: dict[str, Any] = {"service": f"{provider}/sub/{code}"}
        if draw(st.booleans()):
            grant["methods"] = draw(st.lists(st.sampled_from(METHODS).map(str.lower), min_size=1, unique=True))
        if draw(st.booleans()):
            grant["paths"] = draw(st.lists(GLOB, min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            grant["fields"] = draw(st.lists(FIELD, min_size=1, max_size=4, unique=True))
        services.append(grant)
    basis = draw(st.sampled_from(["consent", "legal-obligation", "public-task", "vital-interest"]))
    table: dict[str, Any] = {
        "id": draw(st.from_regex(r"DSA-[A-Z0-9]{1,8}", fullmatch=True)),
        "version": draw(st.integers(1, 2**31 - 1)),
        "title": draw(st.text(min_size=1, max_size=30).filter(str.strip)),
        "provider": provider,
        "clients": clients,
        "purposes": purposes,
        "lawful_basis": basis,
        "legal_reference": "" if basis == "consent" else "Act 1, s. 2",
        "data_categories": draw(st.lists(CODE, min_size=1, max_size=3, unique=True)),
        "valid_from": start,
        "valid_until": end,
        "services": services,
    }
    if draw(st.booleans()):
        table["rate_limit"] = f"{draw(st.integers(1, 10**6))}/{draw(st.sampled_from(sorted(PERIODS)))}"
    return Written(table, provider, clients, purposes, start, end)


def load(table: dict[str, Any]) -> Agreement:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agreement.toml"
        path.write_text(tomli_w.dumps(table), encoding="utf-8")
        return load_agreement(path)


# --- loading ------------------------------------------------------------------------------------------


@SETTINGS
@given(agreements())
def test_what_loads_is_what_was_written(written: Written) -> None:
    loaded = load(written.table)
    table = written.table
    assert (loaded.id, loaded.version, loaded.title, loaded.provider) == (
        table["id"],
        table["version"],
        table["title"],
        written.provider,
    )
    assert loaded.clients == tuple(written.clients)
    assert loaded.purposes == tuple(written.purposes)
    assert loaded.valid_from == datetime.combine(written.start, time(0), tzinfo=UTC)
    assert loaded.valid_until == datetime.combine(written.end, END_OF_DAY, tzinfo=UTC)
    if "rate_limit" in table:
        count, unit = table["rate_limit"].split("/")
        assert loaded.rate_limit == RateLimit(int(count), PERIODS[unit])
    else:
        assert loaded.rate_limit is None
    for grant, raw in zip(loaded.services, table["services"], strict=True):
        assert grant.service == raw["service"]
        assert grant.methods == (tuple(m.upper() for m in raw["methods"]) if "methods" in raw else None)
        assert grant.paths == (tuple(raw["paths"]) if "paths" in raw else None)
        fields = raw.get("fields")
        assert grant.fields == (None if fields is None or "*" in fields else tuple(fields))


#: One mistake per field, and the words the refusal must use for it.
MISTAKES: list[tuple[str, Any, str]] = [
    ("id", "DSA 1", "id: must be letters, digits"),
    ("version", 0, "version: must be a whole number from 1"),
    ("provider", "ZZ/GOV", "provider: must be a member identifier"),
    ("clients", ["ZZ/GOV/MSP"], "clients[0]: must be a subsystem identifier"),
    ("clients", [], "clients: must not be empty"),
    ("purposes", ["a b"], "purposes[0]: must be a code"),
    ("lawful_basis", "because", "lawful_basis: must be one of"),
    ("data_categories", "identity", "data_categories: must be a list of text"),
    ("valid_from", "2026-02-30", "valid_from: is not a real date"),
    ("valid_until", "tomorrow", "valid_until: must be a date"),
    ("rate_limit", "lots", "rate_limit: must look like 600/minute"),
    ("services", [], "services: must be one or more [[services]] tables"),
    ("purpose", ["x"], "purpose: unknown field"),
]


@SETTINGS
@given(agreements(), st.sampled_from(MISTAKES))
def test_a_mistake_in_any_field_is_named(written: Written, mistake: tuple[str, Any, str]) -> None:
    field, value, words = mistake
    with pytest.raises(AgreementError, match=re.escape(words)):
        load(written.table | {field: value})


@SETTINGS
@given(agreements(), st.data())
def test_a_foreign_service_is_refused(written: Written, data: st.DataObject) -> None:
    other = "/".join(data.draw(st.lists(PART, min_size=3, max_size=3)))
    assume(other != written.provider)
    services = [*written.table["services"], {"service": f"{other}/sub/x"}]
    with pytest.raises(AgreementError, match=re.escape(f"is not a service of the provider {written.provider}")):
        load(written.table | {"services": services})


@SETTINGS
@given(st.integers(1, 10**9 - 1), st.sampled_from(sorted(PERIODS)), st.sampled_from(["", " ", "  "]))
def test_rate_limits_read_and_print_back(count: int, unit: str, space: str) -> None:
    limit = RateLimit.parse(f"{space}{count}{space}/{space}{unit}{space}")
    assert limit == RateLimit(count, PERIODS[unit])
    assert RateLimit.parse(str(limit)) == limit


# --- deciding ------------------------------------------------------------------------------------------


def _glob(pattern: str, text: str) -> bool:
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), text, re.DOTALL) is not None


def _dot_segments(path: str) -> bool:
    return any(s in (".", "..") for s in unquote(path).replace("\\", "/").split("/"))


def expected(agreement: Agreement, grant: ServiceGrant, request: DecisionRequest) -> str:
    """The agreement read plainly, condition after condition: the first one the request fails, or allowed."""
    assert request.now is not None
    if request.client not in agreement.clients:
        return "no_agreement"
    if request.purpose not in agreement.purposes:
        return "purpose_not_allowed"
    second = int(request.now.timestamp() // 1)
    if second < int(agreement.valid_from.timestamp() // 1):
        return "agreement_not_yet_valid"
    if second > int(agreement.valid_until.timestamp() // 1):
        return "agreement_expired"
    if grant.methods is not None and (request.method or "").upper() not in grant.methods:
        return "method_not_allowed"
    if grant.paths is not None:
        path = request.path or ""
        if _dot_segments(path) or not any(_glob(p, path) for p in grant.paths):
            return "method_not_allowed"
    return "allowed"


@st.composite
def requests(draw: st.DrawFn, written: Written, agreement: Agreement) -> tuple[ServiceGrant, DecisionRequest]:
    grant = draw(st.sampled_from(agreement.services))
    client = draw(st.sampled_from(written.clients) | st.just("ZZ/GOV/OTHER/sub"))
    purpose = draw(st.sampled_from(written.purposes) | CODE)
    method = draw(st.none() | st.sampled_from(METHODS) | st.sampled_from(METHODS).map(str.lower))
    from_grant = st.sampled_from(grant.paths).map(lambda p: p.replace("*", "x")) if grant.paths else PATH
    path = draw(st.none() | from_grant | PATH | from_grant.map(lambda p: p + "/../admin"))
    edges = [agreement.valid_from, agreement.valid_until]
    moment = draw(
        st.sampled_from(edges).flatmap(lambda edge: st.integers(-2, 2).map(lambda s: edge + timedelta(seconds=s)))
        | st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))
    )
    return grant, DecisionRequest(client, grant.service, purpose, method, path, moment)


@SETTINGS
@given(agreements(), st.data())
def test_the_decision_is_the_agreement_read_plainly(written: Written, data: st.DataObject) -> None:
    agreement = load(written.table)
    grants = {g.service: g for g in agreement.services}
    pdp = PolicyDecisionPoint([agreement])
    grant, request = data.draw(requests(written, agreement))
    assert grants[request.service] is grant
    decision = pdp.decide(request)
    assert decision.reason == expected(agreement, grant, request)
    assert decision.allowed == (decision.reason == "allowed")
    if decision.allowed:
        assert decision.agreement_id == agreement.id
        assert decision.fields == grant.fields
        assert decision.rate_limit == agreement.rate_limit
    else:
        assert decision.fields == ()  # a careless caller shares nothing


@SETTINGS
@given(agreements(), st.data())
def test_an_unknown_service_is_never_allowed(written: Written, data: st.DataObject) -> None:
    agreement = load(written.table)
    service = data.draw(PART.map(lambda c: f"{written.provider}/other/{c}"))
    request = DecisionRequest(written.clients[0], service, written.purposes[0], "GET", "/", agreement.valid_from)
    decision = PolicyDecisionPoint([agreement]).decide(request)
    assert (decision.allowed, decision.reason) == (False, "no_agreement")


# --- cutting answers down to the agreed fields -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "person", "id"]), inner, max_size=4)
    ),
    max_leaves=15,
)
paths = st.lists(st.sampled_from(["a", "b", "c", "person", "id", "*"]), min_size=1, max_size=3).map(".".join)


def _inside(small: Any, big: Any) -> bool:
    """Every value kept in `small` is in `big` at the same place; an empty container is nothing kept."""
    if small in ({}, []):
        return True
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _inside(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and all(any(_inside(s, b) for b in big) for s in small)
    return bool(small == big)


@SETTINGS
@given(json_values, st.lists(paths, min_size=1, max_size=4), st.lists(paths, max_size=2))
def test_minimising_only_removes(data: Any, fields: list[str], more: list[str]) -> None:
    kept = minimise_json(data, fields)
    assert _inside(kept, data)
    assert minimise_json(kept, fields) == kept  # idempotent
    assert _inside(kept, minimise_json(data, fields + more))  # more fields never keep less


@SETTINGS
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3))
def test_all_top_level_keys_keep_everything(data: dict[str, Any]) -> None:
    assume(data)
    assert minimise_json(data, sorted(data)) == data
    assert minimise_json(data, ["*"]) == data
    assert minimise_json(data, None) == data
