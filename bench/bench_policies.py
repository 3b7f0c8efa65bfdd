"""How fast the policy decision point decides (goal: p99 < 0.5 ms with 500 agreements loaded).

Every exchange through a provider gateway asks the PDP once, so its latency adds to each call. The table
compares Cedar (pre-parsed policies, indexed by service) with a plain-Python dict lookup that checks the
same facts, measured in the same run, so the ratio says what Cedar's auditable policies cost.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from bench.stats import median, percentile
from policies import Agreement, DecisionRequest, PolicyDecisionPoint, ServiceGrant

SIZES = (50, 500)
DECISIONS = 20_000
WARMUP = 1_000
GOAL_P99_US = 500.0
SEED = 7
PURPOSES = tuple(f"purpose-{i}" for i in range(12))
NOW = datetime(2026, 6, 1, tzinfo=UTC)
FORBID = ('forbid(principal, action, resource) when { context.purpose == "marketing" };',)


def _agreements(count: int, rng: random.Random) -> list[Agreement]:
    """A federation of 20 providers, 40 client subsystems; some agreements expired, some REST-restricted."""
    providers = [f"ZZ/GOV/P{i:02d}" for i in range(20)]
    clients = [f"ZZ/GOV/C{i:02d}/system{i % 3}" for i in range(40)]
    out: list[Agreement] = []
    for n in range(count):
        provider = rng.choice(providers)
        grants = []
        for s in range(rng.randint(1, 3)):
            service = f"{provider}/registry/service{rng.randrange(30)}"
            if s == 2:
                grants.append(ServiceGrant(service, ("GET",), ("/v1/items/*", "/v1/count"), None))
            else:
                grants.append(ServiceGrant(service, None, None, ("found", "person.surname", "person.status")))
        start = NOW - timedelta(days=rng.randint(1, 700))
        end = NOW + timedelta(days=rng.randint(-30, 700))
        out.append(
            Agreement(
                id=f"DSA-{n:04d}",
                version=rng.randint(1, 3),
                title=f"agreement {n}",
                provider=provider,
                clients=tuple(rng.sample(clients, rng.randint(1, 3))),
                purposes=tuple(rng.sample(PURPOSES, 2)),
                lawful_basis="public-task",
                legal_reference="Act 1, s. 1",
                data_categories=("identity",),
                valid_from=start,
                valid_until=max(end, start),
                rate_limit=None,
                services=tuple({g.service: g for g in grants}.values()),
            )
        )
    return out


def _requests(agreements: list[Agreement], rng: random.Random) -> list[DecisionRequest]:
    """Mostly requests some agreement was written for (allowed or near misses), some from strangers."""
    requests = []
    for _ in range(2_000):
        a = rng.choice(agreements)
        grant = rng.choice(a.services)
        roll = rng.random()
        client = rng.choice(a.clients) if roll < 0.9 else "ZZ/GOV/C99/stranger"
        purpose = rng.choice(a.purposes) if roll < 0.7 else rng.choice(PURPOSES)
        method, path = ("GET", "/v1/items/42") if grant.paths else (None, None)
        requests.append(DecisionRequest(client, grant.service, purpose, method, path, NOW))
    return requests


class _Baseline:
    """The same facts checked with dicts and sets: what a hand-written PDP without Cedar would cost."""

    def __init__(self, agreements: list[Agreement]) -> None:
        self.index: dict[tuple[str, str], list[tuple[Agreement, ServiceGrant]]] = defaultdict(list)
        for a in agreements:
            for g in a.services:
                for c in a.clients:
                    self.index[(c, g.service)].append((a, g))

    def decide(self, r: DecisionRequest) -> bool:
        assert r.now is not None
        for a, g in self.index.get((r.client, r.service), ()):
            within = a.valid_from <= r.now <= a.valid_until
            if (
                within
                and r.purpose in a.purposes
                and r.purpose != "marketing"
                and (g.methods is None or r.method in g.methods)
            ):
                return True
        return False


def _timed(decide: object, requests: list[DecisionRequest]) -> list[float]:
    """Microseconds per call, one sample per call."""
    assert callable(decide)
    for r in requests[:WARMUP]:
        decide(r)
    samples = []
    clock = time.perf_counter_ns
    for i in range(DECISIONS):
        r = requests[i % len(requests)]
        started = clock()
        decide(r)
        samples.append((clock() - started) / 1000)
    return samples


def main() -> None:
    console = Console(width=160)
    table = Table(
        title=(
            f"policy decision point: {DECISIONS:,} decide() calls per size (pre-parsed Cedar, indexed by service); "
            f"goal at 500 agreements: p99 < {GOAL_P99_US:.0f} µs"
        )
    )
    for column in ("agreements", "Cedar policies", "allowed", "decisions/s", "p50 µs", "p99 µs", "baseline p50 µs",
                   "p50 vs baseline", "within goal"):  # fmt: skip
        table.add_column(column, justify="right")
    for size in SIZES:
        rng = random.Random(SEED + size)
        agreements = _agreements(size, rng)
        started = time.perf_counter()
        pdp = PolicyDecisionPoint(agreements, forbid=FORBID)
        build_ms = (time.perf_counter() - started) * 1000
        requests = _requests(agreements, rng)
        allowed = sum(pdp.decide(r).allowed for r in requests) / len(requests)
        cedar = _timed(pdp.decide, requests)
        baseline = _timed(_Baseline(agreements).decide, requests)
        p50, p99 = median(cedar), percentile(cedar, 99)
        goal = "yes" if p99 < GOAL_P99_US else "NO"
        table.add_row(
            f"{size:,}",
            f"{sum(len(a.services) for a in agreements):,} (built in {build_ms:.0f} ms)",
            f"{allowed:.0%}",
            f"{len(cedar) / (sum(cedar) / 1e6):,.0f}",
            f"{p50:.0f}",
            f"{p99:.0f}",
            f"{median(baseline):.1f}",
            f"{p50 / median(baseline):.0f}x",
            goal if size == 500 else "-",
        )
    console.print(table)


if __name__ == "__main__":
    main()
