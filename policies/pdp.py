"""The policy decision point: Cedar decides whether a client may call a service for a purpose; default deny.

Every agreement becomes Cedar `permit` policies (one per service grant, annotated `@id("DSA-...#v2#svc0")`),
federation-wide `forbid` rules are added, and Cedar evaluates the request. The policies are parsed once and
split by service, so one decision evaluates a handful of policies whatever the number of agreements. When
Cedar denies, a short pass over the same agreements names the reason, so the client and the DPO learn why.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import cedarpy

from policies.agreements import CODE_RE, Agreement, RateLimit, ServiceGrant, is_identifier, member_of, show_time
from policies.errors import AgreementError, PolicyError

CLIENT_TYPE = "Kiungo::Client"
SERVICE_TYPE = "Kiungo::Service"
ACTION = {"type": "Kiungo::Action", "id": "call"}
FORBID_PREFIX = "forbid#"

REASONS = (
    "allowed",
    "no_agreement",
    "purpose_not_allowed",
    "agreement_expired",
    "agreement_not_yet_valid",
    "method_not_allowed",
    "forbidden",
)


@dataclass(frozen=True)
class DecisionRequest:
    """One exchange to decide: who calls which service, why, and (REST) with which method and path.

    `path` is the service-relative path without the query string; `now` defaults to the current time.
    """

    client: str
    service: str
    purpose: str
    method: str | None = None
    path: str | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """The answer: allowed or not, why, and on allow what the agreement lets the provider send back.

    `fields` is `None` for the whole answer; a refusal carries `()`, so a careless caller shares nothing.
    """

    allowed: bool
    reason: str
    message: str
    agreement_id: str | None = None
    agreement_version: int | None = None
    lawful_basis: str | None = None
    legal_reference: str | None = None
    data_categories: tuple[str, ...] = ()
    fields: tuple[str, ...] | None = ()
    rate_limit: RateLimit | None = None
    cache_seconds: int = 0


@dataclass(frozen=True)
class _Grant:
    """A service grant of an agreement together with the Cedar policy id it became."""

    policy_id: str
    agreement: Agreement
    index: int
    grant: ServiceGrant
    policy: dict[str, Any]


@dataclass(frozen=True)
class _Check:
    """How far one grant got for a request: 0 client, 1 purpose, 2 validity, 3 method/path, 4 applies."""

    stage: int
    reason: str
    detail: str
    grant: _Grant


class PolicyDecisionPoint:
    """Decides requests against the highest version of each agreement plus cross-cutting `forbid` rules."""

    def __init__(self, agreements: Sequence[Agreement], *, forbid: Sequence[str] = ()) -> None:
        seen: dict[tuple[str, int], Agreement] = {}
        problems: list[str] = []
        for agreement in agreements:
            key = (agreement.id, agreement.version)
            if key in seen:
                problems.append(
                    f"{agreement.label} is loaded twice ({_where(seen[key])} and {_where(agreement)}): "
                    "give the new text a higher version"
                )
            seen[key] = agreement
        effective: dict[str, Agreement] = {}
        for agreement in agreements:
            best = effective.get(agreement.id)
            if best is None or agreement.version > best.version:
                effective[agreement.id] = agreement
        for agreement in effective.values():
            for grant in agreement.services:
                if member_of(grant.service) != agreement.provider:
                    problems.append(
                        f"{agreement.label} ({_where(agreement)}): {grant.service} is not a service of "
                        f"the provider {agreement.provider}"
                    )
        if problems:
            raise AgreementError(problems)
        self._effective = dict(sorted(effective.items()))
        self._superseded = sorted(
            (a for a in agreements if effective[a.id] is not a and a.version < effective[a.id].version),
            key=lambda a: (a.id, a.version),
        )
        self._forbid_texts = tuple(forbid)
        self._forbid = _parse_forbid(self._forbid_texts)
        self._grants: dict[str, list[_Grant]] = defaultdict(list)
        for agreement in self._effective.values():
            for index, grant in enumerate(agreement.services):
                policy_id = f"{agreement.id}#v{agreement.version}#svc{index}"
                policy = _permit_policy(policy_id, agreement, grant)
                self._grants[grant.service].append(_Grant(policy_id, agreement, index, grant, policy))
        self._grants = dict(self._grants)
        self._sets: dict[str, Any] = {}
        for service, grants in self._grants.items():
            document = {
                "staticPolicies": {**{g.policy_id: g.policy for g in grants}, **self._forbid},
                "templates": {},
                "templateLinks": [],
            }
            try:
                self._sets[service] = cedarpy.PolicySet.from_json_str(json.dumps(document))
            except ValueError as exc:  # only a hand-built Agreement with impossible values gets here
                raise AgreementError(f"the agreements for {service} do not make valid Cedar policies: {exc}") from None
        self._entities = cedarpy.Entities.from_json_str("[]")

    def agreements_for(self, client: str | None = None, service: str | None = None) -> list[Agreement]:
        """The agreements in force (highest versions) naming this client and/or granting this service."""
        return [
            a
            for a in self._effective.values()
            if (client is None or client in a.clients)
            and (service is None or any(g.service == service for g in a.services))
        ]

    def decide(self, request: DecisionRequest) -> Decision:
        """Allow only what an agreement in force grants and no forbid rule refuses; everything else is denied."""
        client, service, purpose, method, path, epoch = _normalise(request)
        grants = self._grants.get(service)
        if not grants:
            return _deny("no_agreement", "No data-sharing agreement covers this service for this client.")
        try:
            result = cedarpy.is_authorized(
                {
                    "principal": {"type": CLIENT_TYPE, "id": client},
                    "action": ACTION,
                    "resource": {"type": SERVICE_TYPE, "id": service},
                    "context": {"purpose": purpose, "now": epoch, "method": method, "path": path},
                },
                self._sets[service],
                self._entities,
            )
        except (ValueError, TypeError) as exc:
            raise PolicyError(f"the request could not be evaluated: {exc}") from None
        decision = result.decision
        if decision == cedarpy.Decision.NoDecision:
            raise PolicyError("the request could not be evaluated: " + "; ".join(result.diagnostics.errors))
        if result.diagnostics.errors:  # a rule that errs is skipped by Cedar; here it refuses (fail closed)
            return _deny("forbidden", "A federation rule could not be evaluated for this request, so it is refused.")
        reasons: list[str] = list(result.diagnostics.reasons)
        if decision == cedarpy.Decision.Allow:
            decisive = set(reasons)  # Cedar lists them in no fixed order; keep the agreements' own order
            matched = [g for g in grants if g.policy_id in decisive]
            if not _normal_path(path):
                matched = [g for g in matched if g.grant.paths is None]
            if matched:
                return _allow(matched, purpose)
            best = max((c for c in self._checks(grants, client, purpose, epoch, method, path)), key=_rank)
            return _deny_for(best, purpose)
        if any(r.startswith(FORBID_PREFIX) for r in reasons):
            return _deny("forbidden", "A federation rule forbids this exchange.")
        checks = self._checks(grants, client, purpose, epoch, method, path)
        best = max(checks, key=_rank)
        if best.stage == 0:
            return _deny("no_agreement", "No data-sharing agreement covers this service for this client.")
        if best.stage == 4:  # Cedar refused what the agreements grant: only a rule can do that
            return _deny("forbidden", "A federation rule forbids this exchange.")
        return _deny_for(best, purpose)

    def explain(self, request: DecisionRequest) -> str:
        """Which agreements were considered for this request and why each did or did not apply, in plain lines."""
        decision = self.decide(request)
        client, service, purpose, method, path, epoch = _normalise(request)
        when = _moment_text(request.now or datetime.fromtimestamp(epoch, UTC))
        lines = [
            f"request: client {_shown(client)} calls {_shown(service)} for purpose {_shown(purpose)}"
            + (f", {method} {_shown(path or '/')}" if method else (f", path {_shown(path)}" if path else ""))
            + f" at {when}",
        ]
        if decision.allowed:
            fields = "the whole answer" if decision.fields is None else ", ".join(decision.fields)
            lines.append(f"decision: allowed by {decision.agreement_id} v{decision.agreement_version}")
            lines.append(f"lawful basis: {decision.lawful_basis}" + _ref(decision.legal_reference))
            lines.append(f"fields released: {fields}")
            if decision.rate_limit:
                lines.append(f"rate limit: {decision.rate_limit} per client")
            if decision.cache_seconds:
                lines.append(f"answers may be reused for {decision.cache_seconds} s")
        else:
            lines.append(f"decision: denied ({decision.reason}): {decision.message}")
        grants = self._grants.get(service, [])
        if grants:
            lines.append(f"agreements granting {service}:")
            for check in sorted(
                self._checks(grants, client, purpose, epoch, method, path),
                key=lambda c: (c.grant.agreement.id, c.grant.index),
            ):
                agreement = check.grant.agreement
                lines.append(f"  - {agreement.label} [{check.grant.policy_id}] {agreement.title!r}: {check.detail}")
                if check.stage == 4:
                    lines.extend(f"      {line}" for line in cedar_text(check.grant.policy).splitlines())
        else:
            lines.append(f"no agreement in force grants {_shown(service)}")
            others = self.agreements_for(client=client)
            if others:
                lines.append(f"agreements naming {client} cover other services:")
                for agreement in others:
                    services = ", ".join(g.service for g in agreement.services)
                    lines.append(f"  - {agreement.label}: {services}")
        superseded = [a for a in self._superseded if any(g.service == service for g in a.services)]
        for agreement in superseded:
            current = self._effective[agreement.id]
            lines.append(f"  - {agreement.label}: superseded by v{current.version} (only the highest version counts)")
        if self._forbid_texts:
            lines.append(f"federation forbid rules: {len(self._forbid_texts)}")
            if decision.reason == "forbidden":
                lines.extend(f"  {line}" for text in self._forbid_texts for line in text.strip().splitlines())
        return "\n".join(lines)

    def _checks(
        self, grants: Sequence[_Grant], client: str, purpose: str, epoch: int, method: str, path: str
    ) -> list[_Check]:
        return [_check(g, client, purpose, epoch, method, path) for g in grants]


def cedar_text(policy: dict[str, Any]) -> str:
    """One policy (Cedar JSON) as formatted Cedar text, for people reading an explanation."""
    document = json.dumps({"staticPolicies": {"p": policy}, "templates": {}, "templateLinks": []})
    return cedarpy.format_policies(cedarpy.policies_from_json_str(document), 100, 2).strip()


def _normalise(request: DecisionRequest) -> tuple[str, str, str, str, str, int]:
    """Check the request's types and text once; odd input is a `PolicyError`, never another exception."""
    if not isinstance(request, DecisionRequest):
        raise PolicyError("decide() takes a DecisionRequest")
    texts = (request.client, request.service, request.purpose)
    if not all(isinstance(t, str) for t in texts):
        raise PolicyError("client, service and purpose must be text")
    if not all(o is None or isinstance(o, str) for o in (request.method, request.path)):
        raise PolicyError("method and path must be text or None")
    method = (request.method or "").upper()
    path = request.path or ""
    for text in (*texts, method, path):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise PolicyError("the request holds text that is not valid Unicode") from None
    now = request.now
    if now is None:
        now = datetime.now(UTC)
    elif not isinstance(now, datetime):
        raise PolicyError("now must be a datetime")
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return request.client, request.service, request.purpose, method, path, _epoch(now)


def _moment_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # the first or last day a datetime can hold, in a far-off zone: show it as given
        return moment.isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _epoch(moment: datetime) -> int:
    """Whole seconds since 1970 (UTC): the `now` Cedar compares; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def _normal_path(path: str) -> bool:
    """No `.`/`..` segments, even percent-encoded: a glob like /v1/taxpayers/* must not reach past itself."""
    if not path:
        return True
    segments = unquote(path).replace("\\", "/").split("/")
    return not any(s in (".", "..") for s in segments)


def _glob_matches(pattern: str, text: str) -> bool:
    """The same glob Cedar's `like` applies (`*` = any characters), for the reason pass and explain."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == text
    if not text.startswith(parts[0]) or not text.endswith(parts[-1]) or len(text) < len(parts[0]) + len(parts[-1]):
        return False
    position = len(parts[0])
    end = len(text) - len(parts[-1])
    for middle in parts[1:-1]:
        found = text.find(middle, position, end)
        if found < 0:
            return False
        position = found + len(middle)
    return True


def _check(g: _Grant, client: str, purpose: str, epoch: int, method: str, path: str) -> _Check:
    """The Python mirror of one grant's Cedar policy, to name the first condition a request fails."""
    a, grant = g.agreement, g.grant
    if client not in a.clients:
        return _Check(0, "no_agreement", "does not name this client", g)
    if purpose not in a.purposes:
        return _Check(1, "purpose_not_allowed", f"does not list this purpose (it lists {', '.join(a.purposes)})", g)
    if epoch < _epoch(a.valid_from):
        return _Check(2, "agreement_not_yet_valid", f"valid only from {show_time(a.valid_from)}", g)
    if epoch > _epoch(a.valid_until):
        return _Check(2, "agreement_expired", f"expired: valid until {show_time(a.valid_until, end=True)}", g)
    if grant.methods is not None and method not in grant.methods:
        shown = method or "no method"
        return _Check(
            3, "method_not_allowed", f"does not allow {_shown(shown)} (it allows {', '.join(grant.methods)})", g
        )
    if grant.paths is not None:
        if not _normal_path(path):
            return _Check(3, "method_not_allowed", "the path has . or .. segments, which no grant covers", g)
        if not any(_glob_matches(p, path) for p in grant.paths):
            return _Check(
                3,
                "method_not_allowed",
                f"does not cover path {_shown(path or '/')} (it allows {', '.join(grant.paths)})",
                g,
            )
    return _Check(4, "allowed", "applies", g)


def _rank(check: _Check) -> tuple[int, int, str]:
    return check.stage, check.grant.agreement.version, check.grant.agreement.id


def _allow(matched: Sequence[_Grant], purpose: str) -> Decision:
    """The highest-version agreement among those that matched; its matching grants' fields are united."""
    best = max(matched, key=lambda g: (g.agreement.version, g.agreement.valid_from, g.agreement.id)).agreement
    fields: list[str] | None = []
    for g in matched:
        if g.agreement is not best:
            continue
        if g.grant.fields is None:
            fields = None
            break
        assert fields is not None
        fields.extend(f for f in g.grant.fields if f not in fields)
    return Decision(
        allowed=True,
        reason="allowed",
        message=f"Agreement {best.id} version {best.version} allows this exchange for purpose {purpose}.",
        agreement_id=best.id,
        agreement_version=best.version,
        lawful_basis=best.lawful_basis,
        legal_reference=best.legal_reference or None,
        data_categories=best.data_categories,
        fields=None if fields is None else tuple(fields),
        rate_limit=best.rate_limit,
        cache_seconds=best.cache_seconds,
    )


def _deny(reason: str, message: str, agreement: Agreement | None = None) -> Decision:
    return Decision(
        allowed=False,
        reason=reason,
        message=message,
        agreement_id=agreement.id if agreement else None,
        agreement_version=agreement.version if agreement else None,
    )


def _deny_for(check: _Check, purpose: str) -> Decision:
    a = check.grant.agreement
    name = f"Agreement {a.id} version {a.version}"
    shown = f"purpose {purpose}" if CODE_RE.fullmatch(purpose) else "the purpose given"
    messages = {
        "purpose_not_allowed": f"{name} does not cover {shown}.",
        "agreement_not_yet_valid": f"{name} is valid only from {show_time(a.valid_from)}.",
        "agreement_expired": f"{name} expired: it was valid until {show_time(a.valid_until, end=True)}.",
        "method_not_allowed": f"{name} does not allow this method or path for this service.",
    }
    if check.reason not in messages:
        return _deny("forbidden", "A federation rule forbids this exchange.")
    return _deny(check.reason, messages[check.reason], a)


def _shown(text: str) -> str:
    """Request text in an explanation: identifiers as they are, anything odd quoted and cut short."""
    if is_identifier(text, (3, 4, 5, 6)) or CODE_RE.fullmatch(text) or (text.startswith("/") and text.isprintable()):
        return text[:200]
    return repr(text[:60])


def _ref(reference: str | None) -> str:
    return f" ({reference})" if reference else ""


def _where(agreement: Agreement) -> str:
    return str(agreement.source) if agreement.source else "not from a file"


def _parse_forbid(texts: Sequence[str]) -> dict[str, Any]:
    """Cedar EST of each cross-cutting rule, checked to be `forbid` only (a `permit` here would bypass agreements)."""
    policies: dict[str, Any] = {}
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise PolicyError(f"forbid rule {i + 1} must be Cedar policy text")
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as exc:
            raise PolicyError(f"forbid rule {i + 1} is not valid Cedar: {exc}") from None
        if parsed.get("templates"):
            raise PolicyError(f"forbid rule {i + 1} is a template; write a plain forbid policy")
        statics = parsed.get("staticPolicies", {})
        if not statics:
            raise PolicyError(f"forbid rule {i + 1} holds no policy")
        for j, policy in enumerate(statics.values()):
            if policy.get("effect") != "forbid":
                raise PolicyError(f"forbid rule {i + 1} holds a permit policy; only forbid rules may be added")
            policies[f"{FORBID_PREFIX}{i + 1}.{j + 1}"] = policy
    return policies


def _permit_policy(policy_id: str, agreement: Agreement, grant: ServiceGrant) -> dict[str, Any]:
    """One grant as a Cedar policy in its JSON form (built as data, so no text of a file can inject Cedar)."""

    def attr(name: str) -> dict[str, Any]:
        return {".": {"left": {"Var": "context"}, "attr": name}}

    def one_of(values: Sequence[Any], expr: dict[str, Any]) -> dict[str, Any]:
        if len(values) == 1:
            return {"==": {"left": expr, "right": {"Value": values[0]}}}
        return {"contains": {"left": {"Set": [{"Value": v} for v in values]}, "right": expr}}

    def glob(pattern: str) -> dict[str, Any]:
        elements: list[Any] = []
        for k, literal in enumerate(pattern.split("*")):
            if k:
                elements.append("Wildcard")
            if literal:
                elements.append({"Literal": literal})
        return {"like": {"left": attr("path"), "pattern": elements}}

    clients = [{"__entity": {"type": CLIENT_TYPE, "id": c}} for c in agreement.clients]
    conditions: list[dict[str, Any]] = []
    if len(clients) == 1:
        principal: dict[str, Any] = {"op": "==", "entity": clients[0]["__entity"]}
    else:
        principal = {"op": "All"}
        conditions.append(one_of(clients, {"Var": "principal"}))
    conditions.append(one_of(list(agreement.purposes), attr("purpose")))
    conditions.append({">=": {"left": attr("now"), "right": {"Value": _epoch(agreement.valid_from)}}})
    conditions.append({"<=": {"left": attr("now"), "right": {"Value": _epoch(agreement.valid_until)}}})
    if grant.methods is not None:
        conditions.append(one_of(list(grant.methods), attr("method")))
    if grant.paths is not None:
        patterns = [glob(p) for p in grant.paths]
        either = patterns[0]
        for pattern in patterns[1:]:
            either = {"||": {"left": either, "right": pattern}}
        conditions.append(either)
    return {
        "effect": "permit",
        "principal": principal,
        "action": {"op": "==", "entity": ACTION},
        "resource": {"op": "==", "entity": {"type": SERVICE_TYPE, "id": grant.service}},
        "conditions": [{"kind": "when", "body": condition} for condition in conditions],
        "annotations": {"id": policy_id},
    }
