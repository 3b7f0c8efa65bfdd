"""Consistency checks across agreements, for the DPO before a set goes live (`kiungo policies check`).

Loading proves each file is well formed; this finds what only shows against the rest of the federation:
unknown members and services, fields a service never returns, stale or future agreements, and grants
that overlap (two agreements answering the same question, one of which is surely a mistake).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from itertools import combinations

from policies.agreements import Agreement, member_of, show_time


def check_agreements(
    agreements: Sequence[Agreement],
    *,
    members: Collection[str] | None = None,
    services: Mapping[str, Collection[str] | None] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Every problem found, one readable line each; an empty list means the set is consistent.

    `members`: known member ids; `services`: known service id -> the field paths its answers hold (or None
    when not known). Validity and overlap are judged on the highest version of each agreement, since only
    that one is enforced.
    """
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    problems: list[str] = []
    seen: dict[tuple[str, int], Agreement] = {}
    for a in agreements:
        key = (a.id, a.version)
        if key in seen:
            problems.append(f"{_name(a)}: duplicate: {a.label} is also defined in {_file(seen[key])}")
        else:
            seen[key] = a
    effective: dict[str, Agreement] = {}
    for a in agreements:
        if a.id not in effective or a.version > effective[a.id].version:
            effective[a.id] = a
    known_members = set(members) if members is not None else None
    for a in sorted(effective.values(), key=lambda x: x.id):
        name = _name(a)
        if known_members is not None:
            if a.provider not in known_members:
                problems.append(f"{name}: unknown provider member {a.provider}")
            for client in a.clients:
                if member_of(client) not in known_members:
                    problems.append(f"{name}: unknown client member {member_of(client)} (of {client})")
        for i, grant in enumerate(a.services):
            if member_of(grant.service) != a.provider:
                problems.append(f"{name}: services[{i}]: {grant.service} is not a service of the provider {a.provider}")
            if services is None:
                continue
            if grant.service not in services:
                problems.append(f"{name}: services[{i}]: unknown service {grant.service}")
                continue
            returned = services[grant.service]
            if returned is None or grant.fields is None:
                continue
            known = [k.split(".") for k in returned]
            for field in grant.fields:
                if not _returned(field.split("."), known):
                    problems.append(f"{name}: services[{i}]: {grant.service} does not return the field {field}")
        if a.valid_until < moment:
            problems.append(f"{name}: expired: valid until {show_time(a.valid_until, end=True)}")
        elif a.valid_from > moment:
            problems.append(f"{name}: not yet valid: valid from {show_time(a.valid_from)}")
    problems.extend(_overlapping(list(effective.values())))
    return problems


def _overlapping(agreements: list[Agreement]) -> list[str]:
    """Pairs of agreements granting one client one service for one purpose at the same time."""
    holders: dict[tuple[str, str, str], list[Agreement]] = defaultdict(list)
    for a in agreements:
        for service in dict.fromkeys(g.service for g in a.services):
            for client in a.clients:
                for purpose in a.purposes:
                    holders[(client, service, purpose)].append(a)
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (client, service, purpose), holding in holders.items():
        for left, right in combinations(sorted(holding, key=lambda x: x.id), 2):
            if left.valid_from <= right.valid_until and right.valid_from <= left.valid_until:
                found[(left.label, right.label)].append(f"{client} -> {service} for {purpose}")
    problems: list[str] = []
    for (first, second), grants in sorted(found.items()):
        more = f" (and {len(grants) - 1} more)" if len(grants) > 1 else ""
        problems.append(f"{first} and {second} overlap: both grant {sorted(grants)[0]} at the same time{more}")
    return problems


def _returned(field: list[str], known: list[list[str]]) -> bool:
    """Whether a service's known response paths hold the data an agreement's field path names.

    A field matches a known path, or a node above known paths; below a known path only when that path is
    a leaf in the list (its contents are not described, so anything may be there). `*` matches any name.
    """

    def same(a: list[str], b: list[str]) -> bool:
        return all(x == y or "*" in (x, y) for x, y in zip(a, b, strict=False))

    for path in known:
        if not same(field, path):
            continue
        if len(field) <= len(path):
            return True
        if not any(len(other) > len(path) and same(other, path) for other in known):
            return True
    return False


def _name(a: Agreement) -> str:
    return f"{a.label} ({_file(a)})" if a.source else a.label


def _file(a: Agreement) -> str:
    return str(a.source) if a.source else "not from a file"
